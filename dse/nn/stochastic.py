"""Stochastic-computing input encoding (Hirtzlin et al., IEEE Access 2019, arXiv 1906.00915).

Each pixel p in [0, 1] becomes a bitstream of L independent Bernoulli(p) bits, coded ±1, and the
first (binary) layer accumulates its XNOR-popcount over the L bits. Because that layer is linear,
L binary passes averaged equal one pass on the stream mean, ``2·Binomial(L, p)/L − 1``, which is
what this module feeds forward: the same numbers at 1/L of the cost. The encoded value therefore
lies on the grid {2k/L − 1 : k = 0..L} and equals 2p − 1 (the pixel in ±1 coding) in
expectation, with variance 4p(1−p)/L. Fresh bits are drawn on every forward pass, in training
and at test time, from the module's own generator; ``dse.train.train`` seeds it from the
experiment seed (``reseed(seed·1000 + 7)``), so a run is reproducible, and :meth:`reseed`
restarts it for a reproducible evaluation. With ``input: stochastic`` and binary weights and
activations the whole network is binary.

**Our reading, not the paper's procedure.** Only the abstract of the paper could be read
(Hirtzlin et al., arXiv 1906.00915): it says the input is binarised as stochastic bitstreams, that
the result "can
approach the performance of conventional BNNs" and that "the training procedure should be
adapted", without saying how, nor which bitstream lengths or networks were used. Training on
fresh stochastic samples of length L (``bitstream_length``, default 8: an assumption, no value
is published in the part we could read) is our proposal.
"""

from __future__ import annotations

import torch
from torch import nn


class StochasticInput(nn.Module):
    """Encode [0, 1] pixels as the ±1 mean of an L-bit Bernoulli stream."""

    def __init__(self, length: int, seed: int = 0) -> None:
        super().__init__()
        if length < 1:
            raise ValueError("bitstream length must be >= 1")
        self.length = int(length)
        self.generator = torch.Generator().manual_seed(seed)

    def reseed(self, seed: int) -> None:
        """Restart the bit source (for reproducible evaluations)."""
        self.generator = torch.Generator(device=self.generator.device).manual_seed(seed)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.generator.device != x.device:
            seed = int(self.generator.initial_seed())
            self.generator = torch.Generator(device=x.device).manual_seed(seed)
        p = x.clamp(0.0, 1.0)
        count = torch.full_like(p, float(self.length))
        ones = torch.binomial(count, p, generator=self.generator)
        return 2.0 * ones / self.length - 1.0

    def extra_repr(self) -> str:
        return f"length={self.length}"

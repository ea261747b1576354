"""Stochastic-computing (SC) input, a fully binary network (Hirtzlin, Penkovsky, Bocquet, Klein,
Portal, Querlioz, "Stochastic Computing for Hardware Implementation of Binarized Neural Networks",
IEEE Access 7:76394-76403, 2019, IEEE Xplore document 8731879, arXiv 1906.00915).

Each pixel p in [0, 1] becomes a bitstream of L independent Bernoulli(p) bits, coded ±1 (the XNOR
convention of the binary layers), and the network runs L binary passes, one bit of every pixel
per pass. Two places to accumulate the L passes are offered:

``input: stochastic`` (:class:`StochasticInput`)
    the first layer's pre-activations (its XNOR-popcounts) are summed over the L passes by a
    counter before its BatchNorm and sign; the layers after it run once. Because the first layer
    is linear, the L-pass average equals one pass on the stream mean ``2·Binomial(L, p)/L − 1``,
    which is what this module feeds forward: the same numbers at 1/L of the cost
    (:func:`first_layer_passes` runs the L passes explicitly; a test checks they agree). The
    encoded value lies on the grid {2k/L − 1 : k = 0..L}, equals 2p − 1 in expectation, with
    variance 4p(1−p)/L.
``input: stochastic_output`` (:class:`StochasticPasses`)
    L complete binary passes (every layer sees only ±1), the class scores averaged: no counter
    wider than the popcount anywhere before the output.

**Which one the paper does: NOT FOUND.** Only the abstract could be read (the body was not
available to us): the input "is also binarized", the result "can approach the performance of
conventional BNNs", and "the training procedure should be adapted for use with stochastic
computing", without the accumulation point, the bitstream lengths, the networks or the
adaptation. The default (``stochastic``, first-layer accumulation) is our reading of "their first
layer remains with fixed point input … the input is also binarized": only the first layer's input
changes. Our training adaptation is to train with the bitstream in the loop: fresh bits on every
forward pass, in training and at test time (L passes per image in both modes), from the module's
own generator; ``dse.train.train`` seeds it from the experiment seed (``input.bits``), so a run is
reproducible, and :meth:`StochasticInput.reseed` restarts it for a reproducible evaluation.
benchmarks/sc_bnn.py measures accuracy against L, with and without the adaptation.
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

    def _generator_on(self, device: torch.device) -> torch.Generator:
        if self.generator.device != device:
            seed = int(self.generator.initial_seed())
            self.generator = torch.Generator(device=device).manual_seed(seed)
        return self.generator

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gen = self._generator_on(x.device)
        p = x.clamp(0.0, 1.0)
        count = torch.full_like(p, float(self.length))
        ones = torch.binomial(count, p, generator=gen)
        return 2.0 * ones / self.length - 1.0

    def extra_repr(self) -> str:
        return f"length={self.length}"


class StochasticPasses(StochasticInput):
    """``input: stochastic_output``: L full binary passes, the class scores accumulated.

    Pass l feeds one Bernoulli(p) sample of every pixel, coded ±1, through the whole binary
    network (the first layer included: it only ever sees ±1), and the L outputs are averaged.
    The passes are stacked on the batch axis (L·B rows, pass-major), so one forward call runs
    them all; :meth:`fold` averages them back to B rows. Unlike ``input: stochastic`` (the
    first layer's pre-activations accumulated over the L passes, which by linearity equals
    one pass on the stream mean), every hidden sign sees a single pass, so the network is
    nonlinear in the bits and the L-pass average is not a single pass on anything.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return bit_samples(x, self.length, self._generator_on(x.device)).flatten(0, 1)

    def fold(self, out: torch.Tensor, batch: int) -> torch.Tensor:
        """Average the L passes of ``out`` (``(..., L·B, C)``) to ``(..., B, C)``."""
        lead, rest = out.shape[:-2], out.shape[-1:]
        return out.reshape(*lead, self.length, batch, *rest).mean(-3)


def bit_samples(x: torch.Tensor, length: int, generator: torch.Generator) -> torch.Tensor:
    """``length`` independent ±1 samples of each pixel (P(+1) = pixel): shape ``(L, *x.shape)``."""
    p = x.clamp(0.0, 1.0)
    u = torch.rand((length, *p.shape), generator=generator, device=p.device, dtype=p.dtype)
    return (u < p).to(p.dtype).mul_(2.0).sub_(1.0)


@torch.no_grad()
def first_layer_passes(layer: nn.Module, x: torch.Tensor, length: int,
                       generator: torch.Generator) -> torch.Tensor:
    """The first layer's pre-activation of each of ``length`` binary passes: ``(L, B, out)``.

    The hardware reading of ``input: stochastic``: pass l computes the XNOR-popcount of the
    binary weights with one ±1 sample of the input, and a counter accumulates the L results
    before BatchNorm and sign. Their mean is what :class:`StochasticInput` computes in one
    pass (``layer(mean of the samples)``); as L grows it tends to ``layer(2x − 1)``, the
    pre-activation of the real input in ±1 coding, with variance Σ_j w_j²·4p_j(1−p_j)/L.
    """
    bits = bit_samples(x, length, generator)
    out = layer(bits.flatten(0, 1))
    return out.reshape(length, x.shape[0], *out.shape[1:])

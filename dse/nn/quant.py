"""Quantizers with straight-through gradients (code of Laborieux et al. 2020,
Laborieux-Axel/Quantized_VGG).

* Weights: ``sign(W_h)`` (binary) or ``sign(W_h)·1{|W_h| > Δ}`` (ternary, Laborieux et al. 2020,
  ``Quantized_VGG``). The gradient with respect to the quantized weight is applied to the latent
  weight W_h unchanged (identity STE, as in BinaryNet.pytorch and the metaplasticity code, which
  must not clip |W_h|).
* Activations: ``sign(x)`` forward; ``grad · 1{|x| ≤ 1}`` backward (hardtanh STE).

Binary values are exactly ±1: ``sign(0)`` is taken as +1 (for −0.0 too), as a sense amplifier has
no third state.
The functions are ``torch.autograd.Function``s with a separate ``setup_context`` and
``generate_vmap_rule`` so that ``torch.vmap`` can batch Monte-Carlo fault maps through them;
with gradients off (evaluation, fault injection) they call the same forward directly (the same
values without the Function's dispatch and the activation's saved mask).
The forwards use only cheap arithmetic kernels: on the CPU build here ``torch.where`` with scalar
branches and comparison ops cost 5–15× a plain elementwise op (benchmarks/README.md, "Quantized
training overhead"), so ``sign`` with +1 at zero is ``copysign(1, x + 0.0)`` (adding +0.0 turns
−0.0 into +0.0) and the ternary level is ``sign(softshrink(w, Δ))``, which is exact: softshrink
is w ∓ Δ beyond ±Δ (nonzero iff |w| > Δ, IEEE subtraction of unequal floats never gives 0) and
0 inside.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F


def _sign_plus(x: torch.Tensor) -> torch.Tensor:
    """±1 with +1 at ±0 (``x >= 0``), in x's dtype."""
    return torch.copysign(x.new_ones(()), x + 0.0)


class _SignWeight(torch.autograd.Function):
    generate_vmap_rule = True

    @staticmethod
    def forward(w: torch.Tensor) -> torch.Tensor:
        return _sign_plus(w)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: torch.Tensor) -> None:
        pass

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        return grad


class _TernaryWeight(torch.autograd.Function):
    generate_vmap_rule = True

    @staticmethod
    def forward(w: torch.Tensor, delta: float) -> torch.Tensor:
        return torch.sign(F.softshrink(w, delta))

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: torch.Tensor) -> None:
        pass

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad, None


class _SignActivation(torch.autograd.Function):
    generate_vmap_rule = True

    @staticmethod
    def forward(x: torch.Tensor) -> torch.Tensor:
        return _sign_plus(x)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: torch.Tensor) -> None:
        (x,) = inputs
        ctx.save_for_backward(x.abs() <= 1)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        (inside,) = ctx.saved_tensors
        return grad * inside


def binarize_weight(w: torch.Tensor) -> torch.Tensor:
    """±1 weights; identity gradient to the latent weight."""
    return _SignWeight.apply(w) if torch.is_grad_enabled() else _sign_plus(w)


def ternarize_weight(w: torch.Tensor, delta: float) -> torch.Tensor:
    """{-1, 0, +1} weights, zero where ``|w| <= delta``; identity gradient."""
    if not torch.is_grad_enabled():
        return torch.sign(F.softshrink(w, float(delta)))
    return _TernaryWeight.apply(w, float(delta))


def sign_activation(x: torch.Tensor) -> torch.Tensor:
    """±1 activations; gradient passed where ``|x| <= 1``."""
    return _SignActivation.apply(x) if torch.is_grad_enabled() else _sign_plus(x)


def quantize_weight(w: torch.Tensor, precision: str, delta: float = 0.05) -> torch.Tensor:
    """The weight a layer of the given precision computes with."""
    if precision == "binary":
        return binarize_weight(w)
    if precision == "ternary":
        return ternarize_weight(w, delta)
    if precision == "float":
        return w
    raise ValueError(f"unknown precision {precision!r} (float, binary, ternary)")

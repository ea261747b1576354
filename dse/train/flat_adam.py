"""Adam over one flat buffer: the digital parameters of a device-in-the-loop trainer in ~8 ops.

``torch.optim.Adam`` on the biases of a batch-16 MLP costs ~0.25 ms a step, mostly per-parameter
Python and the ``Optimizer.step`` wrapper; the parameters' values here live in *one* flat tensor
(each parameter's ``.data`` a view of it), so a step is one concatenation of the gradients and
the update of torch's single-tensor Adam (``torch/optim/adam.py``, ``_single_tensor_adam``, not
amsgrad, no weight decay), op for op: the same numbers as ``torch.optim.Adam`` with
``foreach=False``. Parameters without a gradient are skipped, as there.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch

Tensor = torch.Tensor


class FlatAdam:
    """Adam (β = (0.9, 0.999), ε = 1e-8) over ``params``, whose data it flattens into one buffer.

    ``param_groups[0]["lr"]`` is read every step (the training loop decays it there)."""

    def __init__(self, params: Iterable[torch.nn.Parameter], lr: float,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> None:
        self.params = list(params)
        self.param_groups: list[dict[str, Any]] = [{"lr": float(lr), "params": self.params}]
        self.betas, self.eps = betas, eps
        self.flat = torch.cat([p.detach().reshape(-1) for p in self.params])
        self.m, self.v = torch.zeros_like(self.flat), torch.zeros_like(self.flat)
        self.t = 0
        self._steps: list[int] | None = None  # per parameter, once some step skipped one
        self._views, o = [], 0
        for p in self.params:
            p.data = self.flat[o:o + p.numel()].view_as(p)
            self._views.append((o, p.numel()))
            o += p.numel()

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            p.grad = None

    def step(self) -> None:
        grads = [p.grad for p in self.params]
        if self._steps is not None or any(g is None for g in grads):
            self._step_some(grads)
            return
        g = torch.cat([g.reshape(-1) for g in grads]) if len(grads) > 1 else grads[0].reshape(-1)
        self.t += 1
        self._update(self.flat, self.m, self.v, g, self.t)

    def _update(self, p: Tensor, m: Tensor, v: Tensor, g: Tensor, t: int) -> None:
        b1, b2 = self.betas
        m.lerp_(g, 1 - b1)
        v.mul_(b2).addcmul_(g, g, value=1 - b2)
        step_size = self.param_groups[0]["lr"] / (1 - b1 ** t)
        denom = (v.sqrt() / math.sqrt(1 - b2 ** t)).add_(self.eps)
        p.addcdiv_(m, denom, value=-step_size)

    def _step_some(self, grads: list[Tensor | None]) -> None:
        """Some parameters have no gradient: update the others one by one (their own step count,
        as torch's per-parameter state)."""
        if self._steps is None:
            self._steps = [self.t] * len(self.params)
        for i, ((o, n), g) in enumerate(zip(self._views, grads, strict=True)):
            if g is None:
                continue
            self._steps[i] += 1
            self._update(self.flat[o:o + n], self.m[o:o + n], self.v[o:o + n], g.reshape(-1),
                         self._steps[i])

    def release(self) -> None:
        """Give each parameter its own storage again (the end of training)."""
        for p in self.params:
            p.data = p.data.clone()

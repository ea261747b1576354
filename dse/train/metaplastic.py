"""``metaplastic``: synaptic metaplasticity in BNNs (Laborieux et al., Nat. Commun. 12:2549, 2021).

Follows the official code, ``Laborieux-Axel/SynapticMetaplasticityBNN``
(``Continual_Learning_.../models_utils.py::Adam_meta`` and ``main.py``), as summarised in
Laborieux et al., Nat. Commun. 12:2549 (2021), code Laborieux-Axel/SynapticMetaplasticityBNN:

* :class:`AdamMeta` is Adam whose steps that would *shrink* a latent weight |W_h| (move it towards
  zero or across it) are scaled by f_meta = 1 − tanh²(m·|W_h|); ``cond`` and ``f_meta`` are taken
  on the pre-update W_h, and the scale multiplies the first moment only. Weight decay is coupled
  L2 (added to the gradient), 1-D parameters (BatchNorm γ, β) get plain Adam, and the latent
  weights are never clipped, so that |W_h| can grow and consolidate a weight.
* :class:`MetaplasticTrainer` builds a fresh :class:`AdamMeta` for every task (fresh moments,
  lr·gamma^(−k), ``main.py``), with ``m`` per weight layer, initialises the latent weights
  uniformly in ±init_width/2 (``--init uniform --init-width 0.1``), and keeps task-specific
  BatchNorm (``--scenario task``): each task's BN state is saved when the task ends and restored
  to test that task; tasks not trained yet are tested with the current BN.

BatchNorm statistics (Laborieux et al., Nat. Commun. 12:2549 (2021), code
Laborieux-Axel/SynapticMetaplasticityBNN): the published code tests with *batch* statistics
(``track_running_stats=False`` since commit 5351570; the test batch is 1000 images, as in
:func:`dse.train.evaluate`), the code before that commit with running statistics. ``bn_stats``
selects which one ``tasks.csv`` and ``history.csv`` use; the running statistics are tracked in
both cases and saved per task, so ``model.pt`` always holds the last task's γ, β and running
statistics, which is what a chip (fixed thresholds) and the downstream stages use.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Iterable
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from dse.config import Experiment
from dse.errors import DseError
from dse.nn import QNet
from dse.train.loop import Trainer, register_algorithm
from dse.train.settings import MetaplasticSettings, settings_from

log = logging.getLogger(__name__)

# Adam's constants in Adam_meta (models_utils.py defaults, not overridden by main.py).
BETAS = (0.9, 0.999)
EPS = 1e-8


class AdamMeta(torch.optim.Optimizer):
    """Adam with metaplastic attenuation of the updates that decrease |W| (Laborieux et al., Nat.
    Commun. 12:2549 (2021), code Laborieux-Axel/SynapticMetaplasticityBNN).

    For every parameter with more than one dimension, with ``meta`` = m of its parameter group::

        g   = ∇L + weight_decay·W                       (coupled L2)
        m_t = β1·m_{t−1} + (1−β1)·g ;  v_t = β2·v_{t−1} + (1−β2)·g²
        α_t = lr·sqrt(1−β2^t)/(1−β1^t)
        W  ← W − α_t·(sign(W)·m_t > 0 ? (1 − tanh²(m·|W|))·m_t : m_t)/(sqrt(v_t) + eps)

    1-D parameters get the same update without the attenuation (plain Adam). With m = 0 the rule
    is Adam in the form PyTorch ≤ 1.4 wrote it (eps added to sqrt(v_t) before the bias
    correction, which differs from today's ``torch.optim.Adam`` by a factor sqrt(1−β2^t) on eps).
    """

    def __init__(self, params: Iterable[Any], lr: float = 1e-3,
                 betas: tuple[float, float] = BETAS, eps: float = EPS,
                 weight_decay: float = 0.0, meta: float = 0.0) -> None:
        if lr <= 0 or eps < 0 or weight_decay < 0 or meta < 0:
            raise ValueError("AdamMeta needs lr > 0 and eps, weight_decay, meta >= 0")
        if not (0.0 <= betas[0] < 1.0 and 0.0 <= betas[1] < 1.0):
            raise ValueError(f"AdamMeta betas must lie in [0, 1), got {betas}")
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                      meta=meta))

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            meta = float(group["meta"])
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad
                if group["weight_decay"] != 0:
                    grad = grad.add(p, alpha=group["weight_decay"])
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
                state["step"] += 1
                exp_avg.mul_(beta1).add_(grad, alpha=1 - beta1)
                exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                denom = exp_avg_sq.sqrt().add_(group["eps"])
                t = state["step"]
                step_size = group["lr"] * math.sqrt(1 - beta2 ** t) / (1 - beta1 ** t)
                if p.dim() == 1 or meta == 0.0:
                    p.addcdiv_(exp_avg, denom, value=-step_size)
                    continue
                # cond and f_meta on the pre-update W_h; m_t has the sign of the Adam step's
                # negative, so sign(W)·m_t > 0 means the step moves W towards (or across) zero.
                shrinks = torch.sign(p) * exp_avg > 0
                f_meta = 1.0 - torch.tanh(meta * p.abs()).square()
                p.addcdiv_(torch.where(shrinks, f_meta * exp_avg, exp_avg), denom,
                           value=-step_size)
        return loss


def metaplastic_settings(exp: Experiment) -> MetaplasticSettings:
    """The experiment's ``metaplastic:`` block as typed settings (defaults filled)."""
    return settings_from(MetaplasticSettings, exp.metaplastic,
                         f"experiments.{exp.name}.metaplastic")


def per_layer_m(m: float | list[float], layers: list[str], exp_name: str) -> list[float]:
    """One m per weight layer: a number is shared, a list must have one entry per layer."""
    if isinstance(m, int | float):
        return [float(m)] * len(layers)
    if len(m) != len(layers):
        raise DseError(f"experiments.{exp_name}.metaplastic.m: {len(m)} values for "
                       f"{len(layers)} weight layers ({', '.join(layers)}); give one number or "
                       "one per layer")
    return [float(v) for v in m]


def _batch_stats_hook(module: nn.Module, inputs: tuple[torch.Tensor, ...],
                      output: torch.Tensor) -> torch.Tensor | None:
    """Forward hook: in eval mode, normalise with the batch's own statistics."""
    if module.training:
        return None
    assert isinstance(module, nn.modules.batchnorm._BatchNorm)
    return F.batch_norm(inputs[0], None, None, module.weight, module.bias, True, 0.0, module.eps)


@register_algorithm
class MetaplasticTrainer(Trainer):
    """``metaplastic``: :class:`AdamMeta` per task, task-specific BatchNorm."""

    name: ClassVar[str] = "metaplastic"
    settings_block: ClassVar[str | None] = "metaplastic"
    settings_class: ClassVar[type] = MetaplasticSettings

    def __init__(self, exp: Experiment, model: QNet, device: torch.device,
                 generator: torch.Generator, cards: dict[str, Any] | None = None) -> None:
        super().__init__(exp, model, device, generator, cards)
        self.settings = metaplastic_settings(exp)
        layers = model.quant_layers()
        self.m = per_layer_m(self.settings.m, [n for n, _ in layers], exp.name)
        width = self.settings.init_width
        if width is not None and exp.precision == "ternary" and width / 2 <= exp.ternary_threshold:
            log.warning("%s: metaplastic.init_width %g starts every ternary weight at 0 "
                        "(threshold %g); set init_width: null or > 2*threshold", exp.name,
                        width, exp.ternary_threshold)
        if width is not None:  # U(−width/2, width/2), models_utils.py BNN(init="uniform")
            with torch.no_grad():
                for _, layer in layers:
                    w = layer.weight
                    u = torch.rand(w.shape, generator=generator, dtype=w.dtype)
                    w.copy_(((u - 0.5) * width).to(w.device))
        named = [(n, mod) for n, mod in model.named_modules()
                 if isinstance(mod, nn.modules.batchnorm._BatchNorm)]
        self.bn_names = [n for n, _ in named]
        self.bns = [mod for _, mod in named]
        self.bn_states: list[list[dict[str, torch.Tensor]]] = []
        self._hooks = []
        if self.settings.bn_stats == "batch":
            self._hooks = [bn.register_forward_hook(_batch_stats_hook) for bn in self.bns]
        log.info("metaplastic: m per layer %s, bn %s with %s statistics", self.m,
                 self.settings.bn, self.settings.bn_stats)

    def start_task(self, task: int) -> None:
        """A fresh AdamMeta per task (main.py), lr·gamma^(−task); one m per weight layer."""
        lr = self.exp.lr * self.settings.lr_gamma ** (-task)
        weights = {id(layer.weight) for _, layer in self.model.quant_layers()}
        groups: list[dict[str, Any]] = [
            {"params": [layer.weight], "meta": m}
            for (_, layer), m in zip(self.model.quant_layers(), self.m, strict=True)]
        others = [p for p in self.model.parameters() if id(p) not in weights]
        if others:  # BatchNorm γ, β: plain Adam (1-D)
            groups.append({"params": others, "meta": 0.0})
        self.optimizer = AdamMeta(groups, lr=lr, weight_decay=self.exp.weight_decay)

    def _bn_state(self) -> list[dict[str, torch.Tensor]]:
        return [copy.deepcopy(bn.state_dict()) for bn in self.bns]

    def _load_bn(self, states: list[dict[str, torch.Tensor]]) -> None:
        for bn, state in zip(self.bns, states, strict=True):
            bn.load_state_dict(state)

    def end_task(self, task: int) -> None:
        """Save this task's BatchNorm state (γ, β, running statistics)."""
        if self.settings.bn == "task":
            self.bn_states.append(self._bn_state())

    def use_task(self, task: int) -> None:
        """Restore the BatchNorm of ``task``; a task not trained yet uses the latest one."""
        if self.settings.bn == "task" and self.bn_states:
            self._load_bn(self.bn_states[min(task, len(self.bn_states) - 1)])

    def finalize(self) -> None:
        """Deploy the last task's BatchNorm with its running statistics (hooks removed)."""
        if self.settings.bn == "task" and self.bn_states:
            self._load_bn(self.bn_states[-1])
        for hook in self._hooks:
            hook.remove()
        self._hooks = []

    def task_states(self) -> list[dict[str, torch.Tensor]]:
        """Each trained task's BatchNorm (γ, β, running statistics) keyed as in the model's
        state dict (``body.bn1.weight``, ...): what the inject stage loads to test task k on a
        chip (task-specific BN, ``bn: task``); empty with ``bn: shared``."""
        if self.settings.bn != "task":
            return []
        return [{f"{name}.{key}": value.detach().cpu().clone()
                 for name, state in zip(self.bn_names, states, strict=True)
                 for key, value in state.items()}
                for states in self.bn_states]

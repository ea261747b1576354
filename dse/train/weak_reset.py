"""``weak_reset_bnn``: binary networks trained in the loop of weak-RESET HfOx devices.

Majumdar et al., IEEE TED 68(10):4925 (2021), as the code of
``Atreya95/Learning-with-memory-device-imperfections`` does it (``MLP/utils.py``,
``ConvNet/utils_device.py``: ``Adam_with_device``; Majumdar et al., IEEE TED 2021; code
Atreya95/Learning-with-memory-device-imperfections):

* Two devices of the experiment's device card per binary weight, BL and BLb, both starting at
  their LRS R0. The binary weight is sign(R_BL − R_BLb); the latent weight kept in the layer's
  ``weight`` is that resistance difference (kΩ: 10³/G with G in the card's µS), never used as a
  real value.
* Every step, Adam's direction u = −(lr/(1 − β1ᵗ))·m_t/(√v_t/√(1 − β2ᵗ) + eps) of every weight
  becomes npulses = round(clamp(u, −max_pulses, +max_pulses)) weak-RESET pulses, to BL when
  npulses > 0 and to BLb otherwise: pulses only ever raise a resistance (no SET, no refresh: the
  reference's "without_reprog_strategy"). BatchNorm parameters get plain Adam (``bn_lr``).
* The device model is ``from_card(card, overrides)`` with the experiment's ``weak_reset:``
  switches: ``d2d``, ``rtn``, ``pink`` switch the card's imperfections; ``nonlinearity: false``
  removes the knee of the mean (t* → ∞, so ln(R/R0) = c1 + m1·t throughout; our reading of the
  paper's "nonlinearity", whose ablation table is NOT FOUND). One config per ablation.

Pulse tallies (``count_pulses``): every weak-RESET pulse lowers a conductance, so all are ``down``.
Cost: with RTN on, the device model redraws every device's RTN level at every step (as the
reference), so all devices are updated densely; without RTN only the pulsed devices are touched
(:meth:`dse.devices.DeviceModel.apply_pulses_at`). ``kernels: compiled`` runs the device update
as one fused kernel (:meth:`dse.devices.weak_reset.WeakReset.apply_pulses`) and keeps the pulse
tallies on the device until the epoch ends.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from dse import seeds
from dse.config import Experiment
from dse.devices import DeviceModel, from_card
from dse.errors import DseError
from dse.nn import QNet
from dse.train.device_state import pack as pack_devices
from dse.train.loop import Trainer, register_algorithm
from dse.train.settings import WeakResetSettings, experiment_card, settings_from

log = logging.getLogger(__name__)

Tensor = torch.Tensor

# Adam's constants of Adam_with_device (torch.optim.Adam defaults in the reference code).
BETAS = (0.9, 0.999)
EPS = 1e-8
SWITCHES = ("d2d", "rtn", "pink")
NO_KNEE = 1e12  # t* of "nonlinearity: false": far beyond any pulse count


def device_overrides(settings: WeakResetSettings | dict[str, Any]) -> dict[str, Any]:
    """``from_card`` overrides of a ``weak_reset:`` block (null switches keep the card's value)."""
    if isinstance(settings, dict):
        settings = settings_from(WeakResetSettings, settings, "weak_reset")
    out: dict[str, Any] = {k: bool(getattr(settings, k)) for k in SWITCHES
                           if getattr(settings, k) is not None}
    if settings.nonlinearity is False:
        out["t_star"] = {"value": NO_KNEE, "unit": "pulse",
                         "assumption": "ablation: no knee, ln(R/R0) = c1 + m1*t for every t"}
    return out


@dataclass
class DevicePairs:
    """BL (devices [0, N)) and BLb ([N, 2N)) of one layer, with the layer's Adam moments."""

    name: str
    layer: nn.Module
    shape: torch.Size
    n: int
    state: dict[str, Tensor]
    m: Tensor
    v: Tensor


@register_algorithm
class WeakResetTrainer(Trainer):
    """``weak_reset_bnn``: Adam direction → weak-RESET pulses on BL/BLb (module docstring)."""

    name: ClassVar[str] = "weak_reset_bnn"
    settings_block: ClassVar[str | None] = "weak_reset"
    settings_class: ClassVar[type] = WeakResetSettings

    def __init__(self, exp: Experiment, model: QNet, device: torch.device,
                 generator: torch.Generator, cards: dict[str, Any] | None = None) -> None:
        super().__init__(exp, model, device, generator, cards)
        if exp.precision != "binary":
            raise DseError(f"experiments.{exp.name}.precision: weak_reset_bnn trains binary "
                           f"weights, got '{exp.precision}' (set precision: binary)")
        self.settings = settings_from(WeakResetSettings, exp.weak_reset,
                                      f"experiments.{exp.name}.weak_reset")
        card = experiment_card(exp, self.cards, self.name)
        source = f"device card '{exp.device_card}'"
        dev = from_card(card, device_overrides(self.settings), source=source)
        if not isinstance(dev, DeviceModel) or not _pulses_raise_resistance(dev):
            raise DseError(f"experiments.{exp.name}.device_card: '{exp.device_card}' "
                           f"({dev.family}) is not a device whose pulses raise the resistance; "
                           "weak_reset_bnn needs a weak-RESET card (family weak_reset)")
        self.dev = dev.use_kernels(exp.kernels)  # after the eager check above
        self._tally: dict[str, Tensor] = {}  # compiled: pulse tallies kept on the device
        # own stream for the devices: the batch order stays that of a run without devices
        self.dev_gen = seeds.generator(exp.seed, "devices.d2d", device)
        self.lr = float(exp.lr)
        self.max_pulses = float(self.settings.max_pulses)
        self.t = 0
        self.pairs = []
        for name, layer in model.quant_layers():
            w = layer.weight
            state = dev.sample_devices((2 * w.numel(),), self.dev_gen, dtype=w.dtype)
            state = {k: v.to(device) for k, v in state.items()}
            zeros = torch.zeros(w.numel(), dtype=w.dtype, device=device)
            pairs = DevicePairs(name, layer, w.shape, w.numel(), state, zeros, zeros.clone())
            self._read(pairs)
            self.pairs.append(pairs)
        if not any(dev.imperfections.get(k, False) for k in SWITCHES):
            log.warning("%s: identical noise-free devices (d2d, rtn, pink off) start every weight "
                        "at sign(0) = +1 and nothing breaks the symmetry between hidden units; "
                        "expect near-chance accuracy (benchmarks/README.md, weak-RESET ablation)",
                        exp.name)
        log.info("weak_reset_bnn: %s, imperfections %s, lr %g, at most %d pulses per step",
                 dev.describe(), dev.imperfections, self.lr, int(self.max_pulses))

    def device_state(self) -> dict[str, Tensor]:
        """The trained BL/BLb devices (conductances + D2D parameters, float16)."""
        return pack_devices((p.name, p.state, None) for p in self.pairs)

    def _read(self, p: DevicePairs) -> None:
        """Latent weight = R_BL − R_BLb (kΩ for a card in µS), written into the layer."""
        if "r" in p.state:  # kernels: compiled keeps the resistance read by its kernel (Ω)
            r = p.state["r"]
            p.layer.weight.data = torch.sub(r[: p.n], r[p.n:]).mul_(1e-3).view(p.shape)
            return
        r = self.dev.read(p.state).reciprocal().mul_(1e3)
        p.layer.weight.data = torch.sub(r[: p.n], r[p.n:]).view(p.shape)

    def start_task(self, task: int) -> None:
        """Plain Adam for the BatchNorm parameters (the weights live on the devices)."""
        weights = {id(p.layer.weight) for p in self.pairs}
        others = [q for q in self.model.parameters() if id(q) not in weights]
        self.optimizer = torch.optim.Adam(others, lr=float(self.settings.bn_lr),
                                          betas=BETAS, eps=EPS) if others else None

    def pulses_of(self, p: DevicePairs, grad: Tensor) -> Tensor:
        """Adam_with_device.step: the signed pulse counts of a layer (updates its moments)."""
        b1, b2 = BETAS
        g = grad.reshape(-1)
        p.m.mul_(b1).add_(g, alpha=1 - b1)
        p.v.mul_(b2).addcmul_(g, g, value=1 - b2)
        denom = p.v.sqrt().div_(math.sqrt(1 - b2 ** self.t)).add_(EPS)
        u = torch.div(p.m, denom).mul_(-self.lr / (1 - b1 ** self.t))
        return u.clamp_(-self.max_pulses, self.max_pulses).round_()

    def step(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        for p in self.pairs:
            p.layer.weight.grad = None
        if self.optimizer is not None:
            self.optimizer.zero_grad(set_to_none=True)
        logits = self.model(x)
        loss = F.cross_entropy(logits, y)
        loss.backward()
        if self.optimizer is not None:
            self.optimizer.step()
        self.t += 1
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # device updates: gathers and table lookups, no intra-op threads
        try:
            with torch.no_grad():
                for p in self.pairs:
                    if p.layer.weight.grad is not None:
                        self._update(p, p.layer.weight.grad)
        finally:
            torch.set_num_threads(threads)
        return loss.detach(), logits.detach()

    def _update(self, p: DevicePairs, grad: Tensor) -> None:
        """Pulses of one layer onto BL (n > 0) / BLb (n < 0), tallied, and the new weights."""
        n = self.pulses_of(p, grad)
        counts = torch.cat([n.clamp(min=0), n.neg().clamp_(min=0)])  # BL | BLb
        if self.dev.kernels == "compiled":  # tally without waiting for the device
            t = self._tally.setdefault(p.name, torch.zeros((), dtype=torch.float64,
                                                           device=counts.device))
            t.add_(counts.sum(dtype=torch.float64))
        else:
            self.count_pulses(p.name, -counts)  # RESET pulses lower the conductance: "down"
        if self.dev.idle_unchanged:
            idx = torch.nonzero(counts).squeeze(1)
            self.dev.apply_pulses_at(p.state, idx, counts.index_select(0, idx), self.dev_gen)
        else:
            self.dev.apply_pulses(p.state, counts, self.dev_gen)
        self._read(p)

    def end_epoch(self, epoch: int) -> None:
        """Decay the device lr and the BN learning rate (the reference's StepLR on both)."""
        super().end_epoch(epoch)
        self.lr *= self.exp.lr_decay

    def take_pulses(self) -> dict[str, dict[str, int]]:
        """The tallies since the last call (``kernels: compiled`` keeps them in tensors)."""
        for name, t in self._tally.items():
            self.add_pulses(name, down=int(t))
            t.zero_()
        return super().take_pulses()


def _pulses_raise_resistance(dev: DeviceModel) -> bool:
    """The median conductance of 256 devices falls over 1000 pulses (weak-RESET behaviour)."""
    gen = torch.Generator().manual_seed(0)
    try:
        state = dev.sample_devices((256,), gen, dtype=torch.float64)
        dev.apply_pulses(state, torch.zeros(256, dtype=torch.float64), gen)
        before = dev.read(state).median()
        dev.apply_pulses(state, torch.full((256,), 1000.0, dtype=torch.float64), gen)
        return bool(dev.read(state).median() < before)
    except (ValueError, RuntimeError, KeyError):
        return False

"""``mixed_precision``: threshold-gated device updates from a digital accumulator.

Nandakumar et al., Front. Neurosci. 14:406 (2020), and Wu et al., arXiv 2305.14547 (2023, the
bulk-switching seed), in the form of aihwkit's ``MixedPrecisionCompound`` (aihwkit
simulator/configs/compounds.py):

* Every weight of every layer is a differential pair of devices of the experiment's device card,
  W = s·(G⁺ − G⁻), with a per-layer scale s (``weight_range``: a pair at full swing, one device at
  g_max and the other at g_min, holds ``weight_range``/√fan_in).
* Forward and backward passes use the weights read from the devices: the pair's conductances with
  the card's read noise (``read_noise``: ``step`` = a fresh read every mini-batch; ``update`` = a
  read redrawn only when the pair is written, aihwkit's write-noise semantics; ``off``), and in
  training the layers' inputs and outputs pass a DAC/ADC of ``dac_bits``/``adc_bits`` (abs-max
  ranged per sample, aihwkit's ``PresetIOParameters``); the errors δ can be quantized to
  ``error_bits`` with stochastic rounding (aihwkit ``n_d_bins``).
* A digital accumulator per weight: χ ← χ − η·∂L/∂W (= η·δxᵀ summed over the batch, η = the
  experiment's ``lr``); where |χ| ≥ ε, n = trunc(χ/ε) pulses go to the devices and χ ← χ − n·ε.
  ε = ``threshold`` × the device's mean step ``dw_min`` in weight units (s·dw_min; the pair's
  nominal change per pulse, twice that for ``push_pull``).
* ``pulsing``: ``one_sided`` (aihwkit ``OneSidedUnitCell``, the PCM pair of Nandakumar 2020): only
  potentiation pulses, to G⁺ for n > 0 and to G⁻ for n < 0; ``push_pull``: G⁺ gets n and G⁻ gets
  −n signed pulses.
* Refresh (aihwkit ``OneSidedUnitCell``, ``refresh_upper_thres``/``refresh_lower_thres``): when the
  larger device of a pair is above ``refresh_upper`` of its range while the smaller one is above
  ``refresh_lower``, both are reset to their lower bound (one RESET each, counted as a depression
  pulse) and the difference is rewritten open loop onto one device with potentiation pulses
  (their number from the card's nominal mean trajectory; D2D and C2C make the rewrite imperfect,
  as on a chip). The initial weights are written the same way.
* BatchNorm parameters are trained with plain Adam (``bn_lr``).

Speed: only a small fraction of the devices receives pulses in a step, so the pulses, the reads
and the refresh check touch only those devices (:meth:`dse.devices.DeviceModel.apply_pulses_at`
gather/scatter); with ``read_noise: step`` the noise of a pair is one Gaussian per weight
(√2·σ_read, the difference of two independent reads) instead of one per device.

``step: flat`` (default; :mod:`dse.train.mp_flat`): the pairs of all layers are one flat bank,
so a step runs one set of ops for every layer, and the digital parameters one flat Adam
(:mod:`dse.train.flat_adam`); the same rule with another order of random draws. ``step:
reference``: this module's per-layer code. ``kernels: compiled`` (the experiment key): the
transfer as fused ``torch.compile`` kernels (:mod:`dse.train.mp_kernels`).

Pulse tallies (``count_pulses``): signed by the device's conductance direction (potentiation =
up); refresh RESETs are ``down``.
"""

from __future__ import annotations

import logging
import math
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from dse import seeds
from dse.config import Experiment
from dse.devices import DeviceModel, from_card
from dse.errors import DseError
from dse.nn import QNet
from dse.train import chip_read
from dse.train.backward_read import install_backward_reads
from dse.train.converters import indices_above, install_converters
from dse.train.device_state import pack as pack_devices
from dse.train.flat_adam import FlatAdam
from dse.train.loop import Trainer, register_algorithm
from dse.train.mp_flat import FlatBank, PairLayer
from dse.train.mp_kernels import KernelTransfer, TransferFlags
from dse.train.settings import MixedPrecisionSettings, experiment_card, settings_from

log = logging.getLogger(__name__)

Tensor = torch.Tensor


@register_algorithm
class MixedPrecisionTrainer(Trainer):
    """``mixed_precision``: χ accumulator, n = trunc(χ/ε) device pulses (module docstring)."""

    name: ClassVar[str] = "mixed_precision"
    settings_block: ClassVar[str | None] = "mixed_precision"
    settings_class: ClassVar[type] = MixedPrecisionSettings

    def __init__(self, exp: Experiment, model: QNet, device: torch.device,
                 generator: torch.Generator, cards: dict[str, Any] | None = None) -> None:
        super().__init__(exp, model, device, generator, cards)
        if exp.precision != "float":
            raise DseError(f"experiments.{exp.name}.precision: mixed_precision trains analog "
                           f"weights, got '{exp.precision}' (set precision: float)")
        self.settings = s = settings_from(MixedPrecisionSettings, exp.mixed_precision,
                                          f"experiments.{exp.name}.mixed_precision")
        card = experiment_card(exp, self.cards, self.name)
        dev = from_card(card, s.device or None, source=f"device card '{exp.device_card}'")
        if not isinstance(dev, DeviceModel) or not all(
                hasattr(dev, a) for a in ("set_conductance", "trajectory")):
            raise DseError(f"experiments.{exp.name}.device_card: '{exp.device_card}' is a "
                           f"{dev.family} card; mixed_precision needs an analog pulse family whose "
                           "devices can be reset and rewritten (soft_bounds, exp_step, piecewise)")
        if not s.refresh_lower < s.refresh_upper:
            raise DseError(f"experiments.{exp.name}.mixed_precision: refresh_lower "
                           f"({s['refresh_lower']}) must be below refresh_upper "
                           f"({s['refresh_upper']})")
        self.dev = dev
        self.lr = float(exp.lr)
        self.g_min, self.g_max = float(dev.g_min), float(dev.g_max)
        self.read_mode = str(s.read_noise)
        self.read_sigma = dev.read_noise_sigma() if self.read_mode != "off" else 0.0
        if self.read_sigma is None:  # not additive Gaussian: read every device (slow path)
            log.info("%s: read noise of %s is not additive; reading every device each step",
                     exp.name, dev.describe())
        self.push_pull = s.pulsing == "push_pull"
        span = self.g_max - self.g_min
        self._refresh_levels = (self.g_min + s.refresh_upper * span,
                                self.g_min + s.refresh_lower * span)
        # own streams for the devices and the read noise: the batch order stays the float run's
        self.dev_gen = seeds.generator(exp.seed, "devices.d2d", device)
        self.noise_gen = seeds.generator(exp.seed, "devices.c2c", device)
        self._table = self._pulse_table()
        self._table_ends = (float(self._table[0]), float(self._table[-1]))
        self._k = self._kernels(exp, s)
        self.pairs = [self._make_pairs(name, layer) for name, layer in model.quant_layers()]
        self._hooks = self._install_converters()
        flat = s.step == "flat" and self._k is None and self.read_sigma is not None
        self._flat = FlatBank(self, compiled=exp.kernels == "compiled") if flat else None
        log.info("mixed_precision: %s, dw_min %.4g %s, threshold %g, %s pulsing, read noise %s",
                 dev.describe(), dev.dw_min, dev.unit, s.threshold, s.pulsing,
                 self.read_mode)

    # -- setup -------------------------------------------------------------------------------
    def _kernels(self, exp: Experiment, s: dict[str, Any]) -> KernelTransfer | None:
        """The compiled transfer (``kernels: compiled``), or None for the eager reference."""
        if exp.kernels != "compiled":
            return None
        if self.read_sigma is None:
            raise DseError(f"experiments.{exp.name}.kernels: compiled needs a device whose read "
                           f"noise is additive; {self.dev.describe()} is not (use eager)")
        if s.step == "flat" and self.device.type == "cpu":
            return None  # the flat bank's own kernel (dse/train/mp_flat_kernel.py)
        self.dev.use_kernels("compiled")
        g_up, g_lo = self._refresh_levels
        flags = TransferFlags(push_pull=self.push_pull, refresh=bool(s.refresh),
                              read_update=self.read_mode == "update",
                              c2c=self.dev.c2c_on, dense=self.device.type != "cpu",
                              g_up=g_up, g_lo=g_lo, g_min=self.g_min)
        return KernelTransfer(self.dev, flags, self._table, exp.weight_decay, self.lr,
                              self.device, self.dev_gen)

    def _pulse_table(self) -> Tensor:
        """Nominal mean conductance after k potentiation pulses from g_min, k = 0..K (float64)."""
        k = max(1000, min(int(40 * (self.g_max - self.g_min) / self.dev.dw_min), 2_000_000))
        tab = self.dev.trajectory(self.g_min, torch.arange(k + 1, dtype=torch.float64), +1)
        return torch.cummax(tab, 0).values

    def _pulses_between(self, g_from: Tensor, g_to: Tensor) -> Tensor:
        """Potentiation pulses that move a nominal device from ``g_from`` to ``g_to`` (≥ 0)."""
        tab = self._table
        m = g_to.numel()
        # the table coordinates of both ends in one pass (a refresh writes a few pairs per step:
        # the cost here is the number of ops)
        g = torch.cat([g_to, g_from]).to(torch.float64).clamp(*self._table_ends)
        i = torch.searchsorted(tab, g).clamp(1, len(tab) - 1)
        lo, hi = tab[i - 1], tab[i]
        c = (i - 1) + ((g - lo) / (hi - lo).clamp_min(1e-300)).clamp(0, 1)
        n = (c[:m] - c[m:]).round().clamp_min(0)
        return n.to(g_from.dtype)

    def _make_pairs(self, name: str, layer: nn.Module) -> PairLayer:
        w = layer.weight
        shape, n = w.shape, w.numel()
        fan_in = w[0].numel()
        span = self.g_max - self.g_min
        scale = float(self.settings.weight_range) / (math.sqrt(fan_in) * span)
        step = self.dev.dw_min * scale * (2.0 if self.push_pull else 1.0)
        eps = float(self.settings.threshold) * step
        state = self.dev.sample_devices((2 * n,), self.dev_gen, dtype=w.dtype)
        state = {k: v.to(self.device) for k, v in state.items()}
        zeros = torch.zeros(n, dtype=w.dtype, device=self.device)
        pairs = PairLayer(name, layer, shape, n, scale, eps, state, zeros.clone(), zeros,
                          zeros, torch.empty_like(zeros))
        # write the network's initial weights (reset + open-loop write, counted as pulses)
        pairs.apparent = pairs.clean if self.read_mode == "off" else zeros.clone()
        if self._k is not None:
            self._k.write(pairs, torch.arange(n, device=self.device), w.detach().reshape(-1),
                          self.read_sigma)
        else:
            self._write_pairs(pairs, torch.arange(n, device=self.device),
                              w.detach().reshape(-1) / scale)
        with torch.no_grad():
            w.data = pairs.clean.view(shape)
        return pairs

    def _install_converters(self) -> list[Any]:
        s = self.settings
        gen = seeds.generator(self.exp.seed, "train.converters", self.device)
        dac, adc = (None, None) if s.chip else (s.dac_bits, s.adc_bits)  # chip: its own
        hooks = install_converters([p.layer for p in self.pairs], dac, adc, s.error_bits, gen)
        if s.backward == "array":  # the transposed read (dse/train/backward_read.py)
            hooks += install_backward_reads(self.dev, self.pairs, self.read_sigma or 0.0,
                                            s.backward_dac_bits, s.backward_adc_bits,
                                            self.noise_gen)
        return hooks

    # -- device reads --------------------------------------------------------------------------
    def _set_weights(self, p: PairLayer, idx: Tensor, diff: Tensor) -> None:
        """Store the clean weights s·(G⁺ − G⁻) of pairs ``idx`` (``diff`` = G⁺ − G⁻, a fresh
        tensor, scaled in place); with ``read_noise: update`` also their apparent weights, read
        afresh (the pair was just written)."""
        w = diff.mul_(p.scale)
        p.clean.index_copy_(0, idx, w)
        if self.read_mode != "update":
            return
        if self.read_sigma is None:
            g = self.dev.read_at(p.state, torch.cat([idx, idx + p.n]), self.noise_gen)
            w = (g[: idx.numel()] - g[idx.numel():]).mul_(p.scale)
        elif self.read_sigma > 0:
            noise = torch.randn(w.shape, generator=self.noise_gen, dtype=w.dtype,
                                device=w.device)
            w = w.add_(noise, alpha=math.sqrt(2.0) * self.read_sigma * p.scale)
        p.apparent.index_copy_(0, idx, w)

    def _draw_read_noise(self, p: PairLayer) -> None:
        """``read_noise: step``: a fresh read of every pair for this mini-batch."""
        if self._k is not None:
            self._k.read_step(p, self.read_sigma)
        elif self.read_sigma is None:
            g = self.dev.read(p.state, self.noise_gen)
            torch.sub(g[: p.n], g[p.n:], out=p.apparent).mul_(p.scale)
        elif self.read_sigma > 0:
            torch.randn(p.n, generator=self.noise_gen, out=p.apparent)
            p.apparent.mul_(math.sqrt(2.0) * self.read_sigma * p.scale).add_(p.clean)
        else:
            p.apparent.copy_(p.clean)

    # -- programming -----------------------------------------------------------------------------
    def _write_pairs(self, p: PairLayer, idx: Tensor, target: Tensor) -> None:
        """Reset both devices of pairs ``idx`` to their lower bound and write the difference
        ``target`` (conductance units) onto one of them with potentiation pulses (open loop: the
        count comes from the nominal mean trajectory; D2D and C2C make the result imperfect)."""
        k = idx.numel()
        both = torch.cat([idx, idx + p.n])
        sub = self.dev.take(p.state, both, self.dev.pulse_keys(p.state))
        sub = self.dev.set_conductance(sub, torch.full((2 * k,), self.g_min, dtype=target.dtype,
                                                       device=target.device))
        g = self.dev.read(sub)
        rest = target - (g[:k] - g[k:])  # what the two reset levels leave to write
        pos = torch.arange(k, device=idx.device)
        which = torch.where(rest >= 0, pos, pos + k)
        g_from = g.index_select(0, which)
        pulses = torch.zeros_like(g).index_copy_(
            0, which, self._pulses_between(g_from, g_from + rest.abs()))
        # one RESET per device, then potentiation pulses only (per device when recording)
        if self.count_pulses_at(p.name, 2 * p.n, both, pulses, resets=both, nonneg=True):
            sub = self.dev.apply_pulses(sub, pulses, self.dev_gen)
        self.dev.put(p.state, both, sub)
        g = self.dev.read(sub)
        self._set_weights(p, idx, g[:k] - g[k:])

    def _transfer(self, p: PairLayer) -> None:
        """χ ← χ − η·∂L/∂W; n = trunc(χ/ε) pulses where |χ| ≥ ε; χ ← χ − n·ε; refresh.

        After the threshold test everything touches the pulsed pairs only: a gather of the pulsed
        devices, their pulses, a scatter back, a read of the partner devices and aihwkit's
        refresh test on those pairs. Written without ``torch.where`` and with a single
        comparison per test (both are several times slower than arithmetic on this CPU build).
        """
        grad = p.layer.weight.grad
        if grad is None:
            return
        if self._k is not None:
            self._k.step(p, grad, self.read_sigma)
            return
        g = grad.reshape(-1)
        if self.exp.weight_decay:
            g = g.add(p.clean, alpha=self.exp.weight_decay)
        p.chi.add_(g, alpha=-self.lr)
        idx = indices_above(torch.abs(p.chi, out=p.work), p.eps)  # |χ| ≥ ε
        k = idx.numel()
        if k == 0:
            return
        n = torch.div(p.chi.index_select(0, idx), p.eps).trunc_()  # |n| ≥ 1 here
        p.chi.index_add_(0, idx, n, alpha=-p.eps)
        if self.push_pull:
            dev_idx, cnt = torch.cat([idx, idx + p.n]), torch.cat([n, -n])
            self.count_pulses_at(p.name, 2 * p.n, dev_idx, cnt)
        else:  # potentiation only: G⁺ for n > 0, G⁻ for n < 0; the partner is the other one
            neg = n.signbit().to(idx.dtype)  # 1 where n < 0
            dev_idx, cnt = torch.add(idx, neg, alpha=p.n), n.abs()  # idx (G⁺) or idx + N (G⁻)
            other_idx = torch.add(idx, neg, alpha=-p.n).add_(p.n)
            self.count_pulses_at(p.name, 2 * p.n, dev_idx, cnt, nonneg=True)  # potentiation
        sub = self.dev.take(p.state, dev_idx, self.dev.pulse_keys(p.state))
        sub = self.dev.apply_pulses(sub, cnt, self.dev_gen)
        self.dev.put(p.state, dev_idx, sub)
        g_new = self.dev.read(sub)
        if self.push_pull:
            g_a, g_b = g_new[:k], g_new[k:]
            diff = g_a - g_b
        else:
            # g_a: the pulsed device, g_b: its partner; G⁺ − G⁻ = sign(n)·(g_a − g_b) exactly
            g_a, g_b = g_new, self.dev.read_at(p.state, other_idx)
            diff = (g_a - g_b).mul_(n.sign())
        self._set_weights(p, idx, diff)
        if self.settings.refresh:
            # aihwkit OneSidedUnitCell's criterion on these pairs: the larger device above the
            # upper threshold and the smaller above the lower one (symmetric in the two devices:
            # which one is G⁺ does not matter); one test, min(lo − g_lo, hi − g_up) > 0, since
            # a − c > 0 ⟺ a > c in floating point
            g_up, g_lo = self._refresh_levels
            margin = torch.minimum(g_a, g_b).sub_(g_lo)
            margin = torch.minimum(margin, torch.maximum(g_a, g_b).sub_(g_up), out=margin)
            due = indices_above(margin, 0.0, strict=True)
            if due.numel():
                sel = idx.index_select(0, due)
                self._write_pairs(p, sel, p.clean.index_select(0, sel) / p.scale)

    # -- Trainer hooks ---------------------------------------------------------------------------
    def use_readout(self, readouts: dict[str, Any]) -> None:  # ``chip``: dse/train/chip_read.py
        chip_read.attach(self.pairs, readouts, self.g_max - self.g_min)
        self._chip_read = True

    def start_task(self, task: int) -> None:
        """Plain Adam for the BatchNorm parameters (the weights live on the devices)."""
        if self.settings.chip and not getattr(self, "_chip_read", False):
            raise DseError(f"experiments.{self.exp.name}.mixed_precision.chip: the read-out of "
                           f"'{self.settings.chip}' was not passed in (train with `dse train`)")
        weights = {id(p.layer.weight) for p in self.pairs}
        others = [q for q in self.model.parameters() if id(q) not in weights]
        adam = FlatAdam if self._flat is not None else torch.optim.Adam
        self.optimizer = adam(others, lr=float(self.settings.bn_lr)) if others else None

    def step(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        if self.read_mode == "step" and self._flat is not None:
            self._flat.read_step()
        for p in self.pairs:
            if self.read_mode == "step" and self._flat is None:
                self._draw_read_noise(p)
            p.layer.weight.data = p.apparent.view(p.shape)
            p.layer.weight.grad = None
        if self.settings.chip:
            chip_read.set_levels(self.pairs, self.dev, self.g_max - self.g_min)
        if self.optimizer is not None:
            self.optimizer.zero_grad(set_to_none=True)
        logits = self.model(x)
        loss = F.cross_entropy(logits, y)
        loss.backward()
        if self.optimizer is not None:
            self.optimizer.step()
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # the device updates are many small ops: no intra-op threads
        try:
            with torch.no_grad():
                if self._flat is not None:
                    self._flat.transfer()
                for p in self.pairs if self._flat is None else ():
                    self._transfer(p)
        finally:
            torch.set_num_threads(threads)
        return loss.detach(), logits.detach()

    def _deploy(self) -> None:
        for p in self.pairs:
            p.layer.weight.data = p.clean.view(p.shape)

    def end_epoch(self, epoch: int) -> None:
        """Decay η and the BN learning rate; the epoch's test uses the noise-free device weights."""
        super().end_epoch(epoch)
        self.lr *= self.exp.lr_decay
        if self._k is not None:
            self._k.lr.fill_(self.lr)
        self._deploy()

    def take_pulses(self) -> dict[str, dict[str, int]]:
        """The tallies since the last call (the compiled kernels keep theirs in tensors)."""
        for src in (self._k, self._flat):
            for name, (up, down) in (src.flush() if src is not None else {}).items():
                self.add_pulses(name, up=up, down=down)
        return super().take_pulses()

    def device_state(self) -> dict[str, Tensor]:
        """The trained pairs (conductances + D2D parameters, float16) and their scales."""
        return pack_devices((p.name, p.state, p.scale) for p in self.pairs)

    def finalize(self) -> None:
        """``weight`` = the deployed weights read from the devices without noise; no hooks."""
        for src in (self._flat, self.optimizer if self._flat is not None else None):
            if src is not None:
                src.release()  # each layer its own tensors again, not views of one bank
        for p in self.pairs:
            g = self.dev.read(p.state)
            torch.sub(g[: p.n], g[p.n:], out=p.clean).mul_(p.scale)
        self._deploy()
        for h in self._hooks:
            h.remove()
        self._hooks = []
        chip_read.detach(self.pairs)

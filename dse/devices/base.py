"""Device-model protocol: the family registry and the analog-device base (:class:`DeviceModel`).

Parameter specs and D2D distributions are in :mod:`dse.devices.params`, the binary-cell protocol
in :mod:`dse.devices.bit_error`, card checking and building in :mod:`dse.devices.cards`.

A *device card* is data (YAML or JSON)::

    name: hfo2-weak-reset
    family: weak_reset            # a registered family (see REGISTRY)
    description: ...
    source: Majumdar et al., IEEE TED 2021 ...
    params:
      R0: {distribution: norm, mean: 6988, std: 381.7, low: 6252, high: 7897, unit: ohm,
           source: "..."}
      p_high: {value: 8.0e-4, unit: 1/pulse, source: "..."}
    imperfections: {d2d: true, rtn: true, pink: true}
    operating_points: [...]       # binary-cell families only (their default sweep)
    fit: {...}                    # calibrated cards only

Every parameter carries ``source:`` or ``assumption:`` (principle 4). A family is one class
registered with :func:`register`; :func:`dse.devices.cards.from_card` builds an instance, so no
code outside this package ever branches on a family name.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import torch

from dse.devices.params import ParamSpec, TruncDist, is_number
from dse.errors import DseError
from dse.registry import Registry

REGISTRY = Registry("device family", attr="family", key="family")

CARD_KEYS = ("name", "family", "description", "source", "params", "imperfections",
             "operating_points", "operating_range", "fit", "unit", "synthetic", "inference",
             "endurance", "relaxation")


register = REGISTRY.register  # @register("name"): selectable as ``family: <name>`` in a card


def family_class(name: str, source: str | None = None) -> type[DeviceFamily]:
    """The registered class for ``name`` (DseError listing the families otherwise)."""
    return REGISTRY.lookup(name, source)


# ------------------------------------------------------------------------------ families
class DeviceFamily:
    """Base of every family: holds the validated card, its parameter values and switches."""

    family: ClassVar[str] = ""
    kind: ClassVar[str] = ""
    PARAMS: ClassVar[dict[str, ParamSpec]] = {}
    IMPERFECTIONS: ClassVar[tuple[str, ...]] = ()

    def __init__(self, card: Mapping[str, Any], overrides: Mapping[str, Any] | None = None,
                 *, source: str | None = None) -> None:
        card = copy.deepcopy(dict(card))
        if overrides:
            card = _apply_overrides(card, overrides, type(self), source)
        self.card: dict[str, Any] = card
        self.name: str = str(card.get("name", self.family))
        self.source = source
        self.values: dict[str, Any] = {}
        self.units: dict[str, str] = {}
        self._read_params(card.get("params") or {}, source)
        flags = card.get("imperfections") or {}
        self.imperfections: dict[str, bool] = {k: bool(flags.get(k, True))
                                              for k in self.IMPERFECTIONS}
        self._prepare()

    # parameter access ---------------------------------------------------------------
    def _read_params(self, params: Mapping[str, Any], source: str | None) -> None:
        unknown = sorted(set(params) - set(self.PARAMS))
        if unknown:
            raise DseError(f"params: unknown parameter(s) {', '.join(unknown)} for family "
                           f"{self.family} (allowed: {', '.join(self.PARAMS)})", source=source)
        g_unit: str | None = None
        for name, spec in self.PARAMS.items():
            where = f"params.{name}"
            if name not in params:
                if spec.default is None:
                    raise DseError(f"{where}: missing (family {self.family} needs it: "
                                   f"{spec.doc})", source=source)
                self.values[name] = _as_value(spec.default, spec.kind)
                self.units[name] = spec.unit if spec.unit not in (None, "G") else ""
                continue
            entry = params[name]
            if not isinstance(entry, Mapping):
                raise DseError(f"{where}: expected a mapping {{value, unit, source}}",
                               source=source)
            unit = entry.get("unit")
            if not isinstance(unit, str):
                raise DseError(f"{where}.unit: missing (give the unit, '1' if dimensionless)",
                               source=source)
            if spec.unit == "G":
                if g_unit is None:
                    g_unit = unit
                elif unit != g_unit:
                    raise DseError(f"{where}.unit: '{unit}' differs from the card's conductance "
                                   f"unit '{g_unit}' (use one unit for all conductances)",
                                   source=source)
            elif spec.unit is not None and unit != spec.unit:
                raise DseError(f"{where}.unit: '{unit}' but {self.family} expects "
                               f"'{spec.unit}'", source=source)
            self.units[name] = unit
            self.values[name] = self._parse_value(entry, spec, where, source)
        self.g_unit = g_unit or ""

    @staticmethod
    def _parse_value(entry: Mapping[str, Any], spec: ParamSpec, where: str,
                     source: str | None) -> Any:
        if spec.kind == "dist" and "distribution" in entry:
            return TruncDist.from_entry(entry, where, source)
        if "value" not in entry:
            raise DseError(f"{where}.value: missing", source=source)
        v = entry["value"]
        if spec.kind == "table":
            if (not isinstance(v, list) or len(v) < 2
                    or not all(is_number(x) for x in v)):
                raise DseError(f"{where}.value: expected a list of at least 2 numbers",
                               source=source)
            arr = np.asarray(v, dtype=float)
            if spec.low is not None and (arr < spec.low).any():
                raise DseError(f"{where}.value: entries must be >= {spec.low}", source=source)
            return arr
        if not is_number(v):
            raise DseError(f"{where}.value: '{v}' is not a finite number", source=source)
        v = float(v)
        if spec.low is not None and v < spec.low:
            raise DseError(f"{where}.value: {v} is below the allowed minimum {spec.low}",
                           source=source)
        if spec.high is not None and v > spec.high:
            raise DseError(f"{where}.value: {v} is above the allowed maximum {spec.high}",
                           source=source)
        return v

    def _prepare(self) -> None:
        """Hook: derived quantities after the values are set (and after :meth:`replace`)."""

    def replace(self, **values: Any) -> DeviceFamily:
        """A shallow copy with some parameter values replaced (no card validation; for fitting)."""
        new = copy.copy(self)
        new.__dict__.pop("_kernel_cache", None)  # compiled kernels are bound to their model
        new.values = {**self.values, **values}
        new.imperfections = dict(self.imperfections)
        new._prepare()
        return new

    def scalar(self, name: str) -> float:
        """A parameter's scalar value (the median for a distribution)."""
        v = self.values[name]
        return v.median() if isinstance(v, TruncDist) else float(v)

    def describe(self) -> str:
        return f"{self.name} ({self.family})"


def _as_value(default: Any, kind: str) -> Any:
    if kind == "table":
        return np.asarray(default, dtype=float)
    return default if isinstance(default, TruncDist) else float(default)


def _apply_overrides(card: dict[str, Any], overrides: Mapping[str, Any],
                     cls: type[DeviceFamily], source: str | None) -> dict[str, Any]:
    """Switch imperfections / replace parameters: ``{"d2d": False, "c2c_sigma": 0.0}``, or the
    nested form ``{"imperfections": {...}, "params": {name: value | entry}}``."""
    flat: dict[str, Any] = {}
    for k, v in overrides.items():
        if k in ("imperfections", "params") and isinstance(v, Mapping):
            flat.update(v)
        else:
            flat[k] = v
    card.setdefault("params", {})
    card.setdefault("imperfections", {})
    for k, v in flat.items():
        if k in cls.IMPERFECTIONS:
            card["imperfections"][k] = bool(v)
        elif k in cls.PARAMS:
            old = dict(card["params"].get(k) or {})
            if isinstance(v, Mapping):
                entry = dict(v)
                entry.setdefault("unit", old.get("unit", cls.PARAMS[k].unit or "1"))
            else:
                entry = {k2: old[k2] for k2 in ("unit",) if k2 in old}
                entry.setdefault("unit", cls.PARAMS[k].unit or "1")
                entry["value"] = v.tolist() if hasattr(v, "tolist") else v
            entry.setdefault("assumption", "override (ablation)")
            card["params"][k] = entry
        else:
            raise DseError(f"override '{k}': not an imperfection ({', '.join(cls.IMPERFECTIONS)})"
                           f" or parameter of family {cls.family}", source=source)
    return card


class DeviceModel(DeviceFamily):
    """An analog pulse device, vectorised over a state tensor shaped like the weights.

    ``sample_devices(shape, generator) -> state`` draws device-to-device parameters once;
    ``apply_pulses(state, n, generator)`` applies signed integer pulse counts (positive =
    conductance up); ``read(state, generator=None)`` returns conductances in :attr:`unit`
    (with read noise when a generator is given); ``program(target, generator)`` programs
    conductances in one shot. ``g_min``/``g_max`` are the nominal bounds, ``dw_min`` the mean
    |step| per pulse in the middle of the range (the default mixed-precision threshold ε).
    """

    kind: ClassVar[str] = "analog"
    #: ``eager`` (the reference, op by op, draws from the ``torch.Generator``) or ``compiled``
    #: (fused ``torch.compile`` kernels with in-kernel noise, :mod:`dse.devices.kernels`);
    #: set with :meth:`use_kernels`. The two agree in distribution, not in their random streams.
    kernels: str = "eager"

    def use_kernels(self, mode: str) -> DeviceModel:
        """Select the kernel path of :meth:`apply_pulses` (``eager`` | ``compiled``); returns self.

        A family without a compiled kernel raises DseError for ``compiled``.
        """
        from dse.devices.kernels import check_kernels

        check_kernels(mode)
        if mode == "compiled" and not self.has_compiled_kernel:
            raise DseError(f"kernels: compiled: family {self.family} has no compiled kernel "
                           "(use kernels: eager)", source=self.source)
        self.kernels = mode
        return self

    #: True for families that implement the compiled path of :meth:`apply_pulses`.
    has_compiled_kernel: ClassVar[bool] = False

    def kernel(self, name: str, fn: Any) -> Any:
        """The compiled form of ``fn`` (a method of this model), compiled on first use and kept
        per model instance (:func:`dse.devices.kernels.compile_kernel`)."""
        cache = self.__dict__.setdefault("_kernel_cache", {})
        if name not in cache:
            from dse.devices.kernels import compile_kernel

            cache[name] = compile_kernel(fn, f"{self.family}.{name}")
        return cache[name]

    @property
    def unit(self) -> str:
        return self.g_unit

    @property
    def g_min(self) -> float:
        raise NotImplementedError

    @property
    def g_max(self) -> float:
        raise NotImplementedError

    @property
    def dw_min(self) -> float:
        raise NotImplementedError

    def sample_devices(self, shape: Sequence[int], generator: torch.Generator,
                       dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def apply_pulses(self, state: dict[str, torch.Tensor], n: torch.Tensor,
                     generator: torch.Generator) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def read(self, state: dict[str, torch.Tensor],
             generator: torch.Generator | None = None) -> torch.Tensor:
        raise NotImplementedError

    def program(self, target: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        raise NotImplementedError

    def window(self, state: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Each device's own conductance bounds ``(lo, hi)`` (its D2D window), shaped like the
        state's conductances (programming onto the devices: :mod:`dse.chip.programming`)."""
        raise NotImplementedError

    def read_noise_sigma(self) -> float | None:
        """Std of the additive Gaussian read noise of :meth:`read` (0 = none), or ``None`` when
        the family's read noise is not of that form (then call :meth:`read`)."""
        return None

    # sparse access to a flat state (every per-device tensor indexed by its first dimension) ------
    #: state keys ``apply_pulses`` may change (new tensors or in-place writes); the others (D2D
    #: parameters) are read-only and need no scatter after a sparse call.
    STATE_MUTABLE: ClassVar[tuple[str, ...]] = ()

    @property
    def idle_unchanged(self) -> bool:
        """True when a device given n = 0 pulses stays exactly unchanged, so that pulsing only
        the devices with n ≠ 0 (:meth:`apply_pulses_at`) has the statistics of a dense call."""
        return False

    @staticmethod
    def take(state: Mapping[str, torch.Tensor], idx: torch.Tensor,
             keys: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
        """The sub-state of devices ``idx`` of a flat state (0-d tensors are shared as they are);
        only ``keys`` when given (e.g. :meth:`pulse_keys`)."""
        return {k: (t.index_select(0, idx) if t.dim() else t) for k, t in state.items()
                if keys is None or k in keys}

    def pulse_keys(self, state: Mapping[str, torch.Tensor]) -> tuple[str, ...]:
        """The keys of ``state`` that :meth:`apply_pulses`, :meth:`read` and ``set_conductance``
        use: a sub-state :meth:`take` with just these is enough for them (default: all)."""
        return tuple(state)

    def put(self, state: dict[str, torch.Tensor], idx: torch.Tensor,
            sub: Mapping[str, torch.Tensor], keys: Sequence[str] | None = None) -> None:
        """Write a sub-state from :meth:`take` back into ``state`` in place (``keys``: default
        :attr:`STATE_MUTABLE`); shared 0-d entries are replaced."""
        for k in (self.STATE_MUTABLE if keys is None else keys):
            if k not in sub:
                continue
            t = sub[k]
            if t.dim():
                state[k].index_copy_(0, idx, t)
            else:
                state[k] = t

    def read_at(self, state: Mapping[str, torch.Tensor], idx: torch.Tensor,
                generator: torch.Generator | None = None) -> torch.Tensor:
        """:meth:`read` of devices ``idx`` of a flat state only."""
        return self.read(self.take(state, idx), generator)  # type: ignore[arg-type]

    def apply_pulses_at(self, state: dict[str, torch.Tensor], idx: torch.Tensor,
                        n: torch.Tensor, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """Apply ``n[i]`` pulses to device ``idx[i]`` of a flat state (shape ``(M,)``).

        When :attr:`idle_unchanged`, only the pulsed devices are gathered, pulsed and scattered
        back (cost ∝ ``len(idx)``, same statistics as the dense call); otherwise the counts are
        scattered into a dense tensor and :meth:`apply_pulses` runs on every device.
        """
        if not self.idle_unchanged:
            ref = next(t for t in state.values() if t.dim())
            dense = torch.zeros(ref.shape[0], dtype=n.dtype, device=ref.device)
            return self.apply_pulses(state, dense.index_copy_(0, idx, n), generator)
        if idx.numel() == 0:
            return state
        sub = self.apply_pulses(self.take(state, idx), n, generator)
        self.put(state, idx, sub)
        return state

    @staticmethod
    def state_bytes(state: Mapping[str, torch.Tensor]) -> int:
        """Memory held by a state (distinct tensors only)."""
        seen: set[int] = set()
        total = 0
        for t in state.values():
            if isinstance(t, torch.Tensor) and t.data_ptr() not in seen:
                seen.add(t.data_ptr())
                total += t.numel() * t.element_size()
        return total

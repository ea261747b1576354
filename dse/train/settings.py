"""Typed settings of the training algorithms: one dataclass per algorithm, the one home of its
defaults and their sources.

An experiment's algorithm block (``mixed_precision:``, ``weak_reset:``, ``metaplastic:``) is a
plain mapping in the config; the schema checks its shape (keys and types), and the trainer turns
it into its settings class with :func:`settings_from`, which fills the defaults below and refuses
unknown keys. ``tests/test_config.py`` checks that the schema's keys are these fields.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from dse.config import Experiment
from dse.errors import DseError

S = TypeVar("S")


def settings_from(cls: type[S], values: Mapping[str, Any] | None, where: str) -> S:
    """``cls`` with the given values (the rest at their defaults); ``where`` names the config
    block in messages, e.g. ``experiments.lenet.mixed_precision``."""
    values = dict(values or {})
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise DseError(f"{where}: unknown key {unknown[0]!r} (allowed keys: "
                       f"{', '.join(sorted(names))})")
    return cls(**values)


@dataclass(frozen=True)
class MixedPrecisionSettings:
    """Algorithm ``mixed_precision`` (Nandakumar et al. 2020, Front. Neurosci. 14:406; Wu et al.
    2023, arXiv 2305.14547; aihwkit MixedPrecisionCompound).

    threshold: eps in units of the device's mean step per pulse (its dw_min in weight units); 1 =
        the device granularity, aihwkit's default (MixedPrecisionCompound granularity 0 -> dw_min).
    weight_range: weight held by a pair at full swing, in units of the layer's initial-weight
        bound 1/sqrt(fan_in). assumption: 4 puts the initial weights in the lowest quarter of
        the swing (benchmarks/README.md, "Mixed-precision training").
    pulsing: one_sided (potentiation pulses only, aihwkit OneSidedUnitCell, the PCM pair of
        Nandakumar 2020) or push_pull (G+ gets n, G- gets -n signed pulses).
    refresh, refresh_upper, refresh_lower: refresh a pair when its larger device is above
        refresh_upper and its smaller above refresh_lower of the range (aihwkit OneSidedUnitCell
        refresh_upper_thres = 0.75, refresh_lower_thres = 0.25).
    read_noise: update (the read of a pair is redrawn when it is written: aihwkit's
        write_noise_std semantics), step (a fresh read every mini-batch) or off.
    dac_bits, adc_bits: input / output converter resolutions in training, abs-max ranged per
        sample (aihwkit PresetIOParameters: inp_res 1/(2^7 - 2), out_res 1/(2^9 - 2)); None = ideal.
    error_bits: stochastic-rounding quantization of the errors before the outer product;
        None = none (aihwkit MixedPrecisionCompound n_d_bins = 0).
    bn_lr: Adam rate of the (digital) BatchNorm parameters: 0.005, the group's BNN MLP rate.
    device: overrides of the device card (imperfection switches or parameter values).
    backward: digital (autograd's exact δ·W) or array (the transposed read through the array,
        with its own DAC/ADC and the card's per-read noise; dse/train/backward_read.py).
    backward_dac_bits, backward_adc_bits: that read's converters (aihwkit's backward IO
        parameters default to the forward's: inp_res 1/(2^7 - 2), out_res 1/(2^9 - 2)).
    chip: a chip of the config whose read-out the training forward pass goes through (its row
        groups, ADC bits, input rule and pair read, re-ranged on every batch as NeuroSim ranges
        in training: dse/chip/train_readout.py) instead of dac_bits/adc_bits; None = those.
    step: flat (the pairs of every layer in one bank, one set of ops per step; digital parameters
        by one flat Adam: dse/train/mp_flat.py) or reference (the per-layer step of earlier
        releases, bit for bit). The same rule; the random draws come in another order.
    """

    threshold: float = 1.0
    weight_range: float = 4.0
    pulsing: str = "one_sided"
    refresh: bool = True
    refresh_upper: float = 0.75
    refresh_lower: float = 0.25
    read_noise: str = "update"
    dac_bits: int | None = 7
    adc_bits: int | None = 9
    error_bits: int | None = None
    bn_lr: float = 0.005
    device: dict[str, Any] = field(default_factory=dict)
    backward: str = "digital"
    backward_dac_bits: int | None = 7
    backward_adc_bits: int | None = 9
    chip: str | None = None
    step: str = "flat"


@dataclass(frozen=True)
class WeakResetSettings:
    """Algorithm ``weak_reset_bnn`` (Majumdar et al., IEEE TED 2021; the code of
    Atreya95/Learning-with-memory-device-imperfections).

    d2d, rtn, pink, nonlinearity: the imperfection switches of the paper's ablation; None = as
        the device card says, False = switched off (nonlinearity False: no knee).
    max_pulses: largest pulse count per device and step: 14 = pole - 1 with pole = 15
        (Adam_with_device.step, MLP/utils.py).
    bn_lr: Adam rate of the BatchNorm parameters (effective 8e-3 in Adam_with_device).
    """

    d2d: bool | None = None
    rtn: bool | None = None
    pink: bool | None = None
    nonlinearity: bool | None = None
    max_pulses: int = 14
    bn_lr: float = 0.008


@dataclass(frozen=True)
class MetaplasticSettings:
    """Algorithm ``metaplastic`` (Laborieux et al. 2021, Nat. Commun. 12:2549, the Adam_meta rule
    of Laborieux-Axel/SynapticMetaplasticityBNN).

    m: metaplasticity strength, one number or one per weight layer: updates that shrink |W_h|
        are scaled by 1 - tanh^2(m |W_h|). 1.35: the repository README's permuted-MNIST runs.
    lr_gamma: learning rate of task k = lr * lr_gamma^(-k); 1 = the repository's --gamma default.
    init_width: latent weights start uniform in [-w/2, w/2]; 0.1 = --init-width 0.1; None keeps
        dse's default init.
    bn: task (task-specific BatchNorm, --scenario task) or shared (--scenario domain).
    bn_stats: batch (the test batch's statistics, the code since commit 5351570) or running.
    """

    m: float | list[float] = 1.35
    lr_gamma: float = 1.0
    init_width: float | None = 0.1
    bn: str = "task"
    bn_stats: str = "batch"


def experiment_card(exp: Experiment, cards: dict[str, Any], algorithm: str) -> dict[str, Any]:
    """The card dict of ``exp.device_card`` (DseError when it is missing)."""
    if exp.device_card is None:
        raise DseError(f"experiments.{exp.name}.device_card: algorithm {algorithm} needs a device "
                       "card (name one of devices:)")
    if exp.device_card not in cards:
        raise DseError(f"experiments.{exp.name}: device card '{exp.device_card}' was not loaded "
                       "(pass its card file, e.g. `dse train --card FILE`)")
    return cards[exp.device_card]

"""Technology scaling: per-node device data and the rules that carry a component's energy, area
and delay from the node where it was published to a chip's node (130 nm .. 7 nm).

Per-node table (:data:`NODES`), the low-standby-power (LSTP) roadmap that DNN+NeuroSim uses by
default (``Param.cpp`` ``deviceroadmap = 2``), from neurosim/DNN_NeuroSim_V1.4
``Inference_pytorch/NeuroSIM/Technology.cpp`` (``Technology::Initialize``: PTM models
130-22 nm, IRDS 2016/2017 FinFET data 14-7 nm) and ``Param.cpp`` (wire width):

* ``vdd`` — supply voltage (V);
* ``c_gate`` — gate capacitance per transistor width, ``capIdealGate + capFringe`` (F/m; for
  FinFETs ``caplist[i]·1e-18 / effective_width``, capFringe = 0);
* ``i_on`` — NMOS on current per width at 300 K, ``currentOnNmos[0]`` (µA/µm = A/m);
* ``wire_nm`` — minimum wire width (``wireWidth``).

Rules (each a function of the node only; :func:`factor`):

* **area** of a layout given in µm²: ∝ F² (areas given in F² on a card need no scaling);
* **energy** of a CMOS component (adder, register, buffer, decoder, sense amplifier): dynamic
  energy C·V² with the switched capacitance ∝ F (constant-field scaling, R. H. Dennard et al.,
  "Design of ion-implanted MOSFET's with very small physical dimensions", IEEE J. Solid-State
  Circuits 9 (5), 1974, doi 10.1109/JSSC.1974.1050511), V = the node's ``vdd``:
  E(n) = E(n₀) · (n / n₀) · (vdd(n) / vdd(n₀))²;
* **delay** of a gate: the intrinsic delay τ = c_gate · vdd / i_on (per unit width, as CACTI's
  and NeuroSim's horowitz() delays scale): d(n) = d(n₀) · τ(n) / τ(n₀). Not monotone: the
  table's 14 nm FinFET is slower than its 22 nm planar device.
* ADC energy and area per node are their own tables (:mod:`dse.chip.adc`).
* **array lines**: a bit line or word line of a sub-array is a wire of ``n`` cells' pitch with
  :data:`WIRE_CAP_F_PER_M` = 0.2 fF/µm (DNN+NeuroSim V1.4 ``SubArray.cpp``: ``capRow`` and
  ``capCol`` = line length × 0.2e-15/1e-6; the length is the cell count × the cell's height or
  width in F × F); charged once per read to the read voltage (bit lines) or the supply (word
  lines), as its ``readDynamicEnergyArray`` does.

Defaults a chip card inherits when it leaves them out (:data:`DEFAULTS`), published at one node
and carried to the card's node and ``supply_ref`` by the energy rule (the supply part uses the
card's reference supply instead of the table's vdd):

* ``digital.add_energy`` — a 16-bit integer add, interpolated between M. Horowitz, "Computing's
  energy problem (and what we can do about it)", ISSCC 2014, doi 10.1109/ISSCC.2014.6757323,
  p. 12 (45 nm, 0.9 V): 8-bit add 0.03 pJ, 32-bit add 0.1 pJ, linear in width (assumption);
* ``digital.buffer_energy`` — one bit of a 64-bit read of an 8 kB SRAM, same source: 10 pJ / 64.
"""

from __future__ import annotations

from dataclasses import dataclass

from dse.errors import DseError

_TECH = "neurosim/DNN_NeuroSim_V1.4 Inference_pytorch/NeuroSIM/Technology.cpp"


@dataclass(frozen=True)
class Node:
    """Device data of one node (see the module docstring for units and sources)."""

    nm: int
    vdd: float
    c_gate: float
    i_on: float
    wire_nm: float
    source: str

    @property
    def tau_s(self) -> float:
        """Intrinsic gate delay c_gate · vdd / i_on (s)."""
        return self.c_gate * self.vdd / self.i_on


def _planar(nm: int, vdd: float, c_ideal: float, c_fringe: float, i_on: float,
            wire: float) -> Node:
    return Node(nm, vdd, c_ideal + c_fringe, i_on, wire,
                f"{_TECH}, {nm} nm LSTP (PTM {nm}nm_LP.pm): vdd, capIdealGate + capFringe, "
                f"currentOnNmos[0]; Param.cpp wireWidth {wire:g} nm")


def _finfet(nm: int, vdd: float, cap_af: float, width_m: float, i_on: float,
            wire: float, irds: int) -> Node:
    return Node(nm, vdd, cap_af * 1e-18 / width_m, i_on, wire,
                f"{_TECH}, {nm} nm (IRDS {irds}): vdd, caplist / effective_width, "
                f"currentlist; Param.cpp wireWidth {wire:g} nm")


NODES: dict[int, Node] = {n.nm: n for n in (
    _planar(130, 1.3, 1.8574e-9, 9.530642e-10, 300.70, 175),
    _planar(90, 1.2, 1.5413e-9, 9.601334e-10, 346.30, 110),
    _planar(65, 1.1, 1.1926e-9, 9.62148e-10, 400.00, 105),
    _planar(45, 1.0, 8.930709e-10, 8.849901e-10, 500.20, 80),
    _planar(32, 0.9, 8.375279e-10, 6.856677e-10, 600.20, 56),
    _planar(22, 0.85, 5.245e-10, 8.004e-10, 791.90, 40),
    _finfet(14, 0.8, 103.816, 8.0e-9 + 2 * 4.2e-8, 595.045, 32, 2016),
    _finfet(10, 0.75, 97.549, 8.0e-9 + 2 * 4.5e-8, 599.237, 22, 2017),
    _finfet(7, 0.7, 100.497, 107e-9, 562.048, 20, 2017),
)}

WIRE_CAP_F_PER_M = 0.2e-15 / 1e-6  # array line capacitance per length (see the module docstring)
WIRE_CAP_SOURCE = f"{_TECH.rsplit('/', 1)[0]}/SubArray.cpp: capRow, capCol = length x 0.2e-15/1e-6"

_HOROWITZ = ("M. Horowitz, Computing's energy problem (and what we can do about it), ISSCC 2014, "
             "doi 10.1109/ISSCC.2014.6757323, p. 12, 45 nm / 0.9 V")


@dataclass(frozen=True)
class Default:
    """A component energy published at ``node_nm`` / ``supply_v``."""

    fj: float
    node_nm: int
    supply_v: float
    source: str


DEFAULTS: dict[str, Default] = {
    "add_fj": Default(30 + (16 - 8) * (100 - 30) / (32 - 8), 45, 0.9,
                      f"16-bit add interpolated between the 8-bit (0.03 pJ) and 32-bit (0.1 pJ) "
                      f"adds of {_HOROWITZ} (linear in width: assumption)"),
    "buffer_fj": Default(10e3 / 64, 45, 0.9,
                         f"one bit of a 64-bit read of an 8 kB SRAM (10 pJ) of {_HOROWITZ}"),
}
KINDS = ("area", "energy", "delay")


def node(nm: float, what: str = "technology.node") -> Node:
    """The table entry of ``nm`` (one clear line when the node is outside the table)."""
    key = round(nm)
    if key not in NODES or abs(key - nm) > 1e-9:
        known = ", ".join(str(n) for n in sorted(NODES, reverse=True))
        raise DseError(f"{what}: {nm:g} nm is outside the technology-scaling table ({known} "
                       "nm); pick one of them or give every energy and delay of the card at "
                       "its own node")
    return NODES[key]


def factor(kind: str, from_nm: float, to_nm: float) -> float:
    """Multiply a component's ``kind`` (area in µm², energy, delay) published at ``from_nm``
    by this to get it at ``to_nm`` (see the module docstring for the rules)."""
    a, b = node(from_nm, "scaling from"), node(to_nm)
    if kind == "area":
        return (b.nm / a.nm) ** 2
    if kind == "energy":
        return (b.nm / a.nm) * (b.vdd / a.vdd) ** 2
    if kind == "delay":
        return b.tau_s / a.tau_s
    raise DseError(f"unknown scaling kind '{kind}' (known: {', '.join(KINDS)})")


def default_energy_fj(field: str, node_nm: float, supply_v: float) -> tuple[float, str]:
    """A default component energy (fJ) at ``node_nm`` and ``supply_v``, with its provenance:
    the published value × (n / n₀) × (V / V₀)²."""
    d = DEFAULTS[field]
    node(node_nm)
    value = d.fj * (node_nm / d.node_nm) * (supply_v / d.supply_v) ** 2
    return value, (f"default (dse.chip.technology): {d.fj:.4g} fJ at {d.node_nm} nm / "
                   f"{d.supply_v:g} V, {d.source}; scaled x (node / {d.node_nm} nm) x "
                   f"(supply / {d.supply_v:g} V)^2 (Dennard et al., IEEE JSSC 1974)")

"""ADC energy/area models, selectable by name on a chip card (NeuroSim SarADC.cpp; the Accelergy ADC
plug-in).

``neurosim_sar``
    The SAR-ADC model of DNN+NeuroSim V1.4 (``Inference_pytorch/NeuroSIM/SarADC.cpp``,
    ``GetColumnPower``): column power P = (a·log2 L + b) µW for L = 2^bits output levels, latency
    (log2 L + 1) ns, E = P·latency, times (1 + 1.3e-3·(T − 300 K)). Only the ADC's own term is
    used; NeuroSim's second, column-current term c·R_col^-1 is the read current of the cells,
    which this package counts once, as the cell-read energy. (a, b) per node and roadmap (LP/HP)
    are copied from that file. Area: NeuroSim's transistor count
    (269 + 109·(bits−1)) NMOS + (209 + 73·(bits−1)) PMOS (``SarADC::CalculateUnitArea``), each
    a minimum transistor of the bulk-CMOS layout rule of ``formula.cpp``/``constant.h``
    (:data:`UNIT_TRANSISTOR_F2`).

``murmann_survey``
    The Accelergy/CiMLoop ADC plug-in (``Accelergy-Project/accelergy-adc-plug-in``,
    ``model.py::get_energy``/``get_area`` with the coefficients of ``adc_data/model.yaml``), a fit
    to B. Murmann's ADC survey: the Schreier figure of merit is capped by a per-ENOB maximum (so
    energy does not depend on the rate below ~1 GS/s), E = 1/(2·10^((FOMS − SNDR)/10)) with
    SNDR = 6.02·bits + 1.76 dB, corrected by exp(c0 + c1·ln(node) + c2·ln(bits) + residual).
    The plug-in calls itself "optimistic: best possible ADC design" and asserts bits ≥ 4; below 4
    bits this is an extrapolation (logged).

``neurosim_mlsa``
    DNN+NeuroSim V1.4's default converter, the current-mode multilevel sense amplifier
    (:mod:`dse.chip.adc_mlsa`; its references and column current need the card's cell).

The survey model gives ~10–25× the NeuroSim SAR energy at the same node and resolution
(Accelergy-Project/accelergy-adc-plug-in, adc_data/model.yaml); a chip card names the model it uses
and the estimate reports it.
"""

from __future__ import annotations

import logging
import math
from typing import ClassVar

from dse.errors import DseError
from dse.registry import Registry

log = logging.getLogger(__name__)

# NeuroSim bulk-CMOS unit transistor (formula.cpp CalculateGateArea, INV, node >= 22 nm, no
# folding): width 2·CPP·F with CPP = POLY_WIDTH + MIN_GAP_BET_GATE_POLY = 1.0 + 2.8 (constant.h),
# height MAX_TRANSISTOR_HEIGHT·F = 28 F.
UNIT_TRANSISTOR_F2 = 2 * (1.0 + 2.8) * 28.0

# SarADC.cpp GetColumnPower: Column_Power = (a*log2(levelOutput) + b) * 1e-6 W.
_SAR_COEFFS: dict[str, dict[int, tuple[float, float]]] = {
    "lp": {130: (8.4483, 65.243), 90: (5.9869, 37.462), 65: (3.7506, 25.844),
           45: (2.1691, 16.693), 32: (1.1294, 8.8998), 22: (0.538, 4.3753),
           14: (0.3132, 2.5681), 10: (0.1823, 1.5073), 7: (0.1061, 0.8847),
           5: (0.0645, 0.5511), 3: (0.0333, 0.2849), 2: (0.0207, 0.1764),
           1: (0.0101, 0.0843)},
    "hp": {130: (6.4806, 49.047), 90: (4.3474, 31.782), 65: (2.9503, 22.047),
           45: (2.1843, 11.931), 32: (1.0157, 7.6286), 22: (0.7213, 3.3041),
           14: (0.4710, 1.9529), 10: (0.3076, 1.1543), 7: (0.2008, 0.6823)},
}

# accelergy-adc-plug-in adc_data/model.yaml (commit 6851cb8), keys as in that file.
_MURMANN = {
    "foms_freq": -2.8719030399529957,
    "foms_intercept": 213.7806687348118,
    "foms_max_by_enob": [
        128.3068287398817, 131.52734025085925, 134.7478517618368, 137.96836327281437,
        141.18887478379193, 144.4093862947695, 147.62989780574708, 150.85040931672464,
        154.0709208277022, 157.29143233867975, 160.5119438496573, 163.73245536063487,
        166.95296687161243, 170.17347838259, 173.39398989356755, 176.61450140454514,
        179.83501291552267, 183.05552442650026, 186.27603593747781, 189.49654744845537,
        192.71705895943293],
    "tech_intercept": 26.0496215686518,
    "tech_slope": 1.8800369206815004,
    "enob_slope": -2.8291256050594527,
    "energy_residual": -1.4702022133784405,
    "area_tech": 0.9932794744745022,
    "area_freq": 0.18071538424508238,
    "area_energy": 0.29912426192653485,
    "area_intercept": 1.3461916439910742,
}

ADC_MODELS = Registry("ADC model", key="sensing.adc_model")
register_adc = ADC_MODELS.register  # class decorator: ``sensing.adc_model: <cls.name>``


def conversion_rate(bits: int) -> float:
    """Conversions per second of one ADC: 1 / NeuroSim's SAR latency (bits + 1) ns."""
    return 1.0 / ((bits + 1) * 1e-9)


class AdcModel:
    """Energy per conversion (fJ) and area per ADC (µm²) for a resolution and a node."""

    name: ClassVar[str] = ""

    @staticmethod
    def energy_fj(bits: int, node_nm: float, roadmap: str = "lp",
                  temperature_k: float = 300.0) -> float:
        raise NotImplementedError

    @staticmethod
    def area_um2(bits: int, node_nm: float) -> float:
        raise NotImplementedError

    @staticmethod
    def conversion_s(bits: int, node_nm: float) -> float:
        """Duration of one conversion (s): NeuroSim's SAR latency (bits + 1) ns by default."""
        return 1.0 / conversion_rate(bits)


@register_adc
class NeuroSimSar(AdcModel):
    """DNN+NeuroSim V1.4 SAR ADC (SarADC.cpp)."""

    name = "neurosim_sar"

    @staticmethod
    def coefficients(node_nm: float, roadmap: str = "lp") -> tuple[float, float]:
        table = _SAR_COEFFS.get(roadmap)
        if table is None:
            raise DseError(f"sensing.adc_roadmap: unknown roadmap '{roadmap}' (lp, hp)")
        node = round(node_nm)
        if node not in table or abs(node - node_nm) > 1e-9:
            nodes = ", ".join(str(n) for n in sorted(table, reverse=True))
            raise DseError(f"technology.node: {node_nm:g} nm is not a node of NeuroSim's SAR "
                           f"model ({roadmap.upper()}: {nodes} nm); pick one of them or use "
                           "adc_model: murmann_survey")
        return table[node]

    @staticmethod
    def energy_fj(bits: int, node_nm: float, roadmap: str = "lp",
                  temperature_k: float = 300.0) -> float:
        a, b = NeuroSimSar.coefficients(node_nm, roadmap)
        power_uw = a * bits + b                      # log2(levelOutput) = bits
        latency_ns = bits + 1
        return power_uw * latency_ns * (1 + 1.3e-3 * (temperature_k - 300.0))  # µW·ns = fJ

    @staticmethod
    def area_um2(bits: int, node_nm: float) -> float:
        transistors = (269 + 109 * (bits - 1)) + (209 + 73 * (bits - 1))
        return transistors * UNIT_TRANSISTOR_F2 * (node_nm * 1e-3) ** 2


@register_adc
class MurmannSurvey(AdcModel):
    """Accelergy/CiMLoop ADC plug-in (fit to the Murmann ADC survey)."""

    name = "murmann_survey"

    @staticmethod
    def energy_fj(bits: int, node_nm: float, roadmap: str = "lp",
                  temperature_k: float = 300.0, rate: float | None = None) -> float:
        m = _MURMANN
        if bits < 4:
            log.debug("murmann_survey: %d-bit ADC is below the plug-in's 4-bit minimum "
                      "(extrapolated)", bits)
        f = conversion_rate(bits) if rate is None else rate
        foms = m["foms_intercept"] + m["foms_freq"] * math.log(f)
        cap = m["foms_max_by_enob"]
        foms = min(foms, cap[max(min(math.ceil(bits), len(cap) - 1), 0)])
        sndr = bits * 20 * math.log10(2) + 10 * math.log10(1.5)
        energy = 1.0 / ((10 ** ((foms - sndr) / 10)) * 2)
        energy_pj = energy * math.exp(m["tech_intercept"] + m["tech_slope"] * math.log(node_nm)
                                      + m["enob_slope"] * math.log(bits)
                                      + m["energy_residual"])
        return energy_pj * 1e3

    @staticmethod
    def area_um2(bits: int, node_nm: float, rate: float | None = None) -> float:
        m = _MURMANN
        f = conversion_rate(bits) if rate is None else rate
        energy_pj = MurmannSurvey.energy_fj(bits, node_nm, rate=f) * 1e-3
        return math.exp(m["area_tech"] * math.log(node_nm) + m["area_freq"] * math.log(f)
                        + m["area_energy"] * math.log(energy_pj) + m["area_intercept"])


def adc_model(name: str) -> type[AdcModel]:
    """The registered ADC model called ``name``."""
    return ADC_MODELS.lookup(name)

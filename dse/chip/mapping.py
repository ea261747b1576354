"""The ``map`` stage: lay each weight layer out on a chip's arrays and count its operations.

A layer's weight matrix is its im2col matrix: R rows = fan-in (in_channels·kh·kw for a
convolution), C columns = fan-out, applied at P output positions per inference (H_out·W_out for a
convolution, 1 for a fully connected layer). With an array of R_a rows × C_a physical columns and
k cells per weight (side by side on adjacent bit lines), an array holds R_a × floor(C_a/k)
weights, and the layer takes ceil(R/R_a) × ceil(C/floor(C_a/k)) arrays (tiles); every layer gets
its own arrays (weight-stationary, no sharing). Utilisation = R·C·k / (tiles·R_a·C_a).

The per-inference operation counts come from the chip's sensing scheme (:mod:`dse.chip.sensing`).

``results/map/{exp}/{chip}.json`` (:meth:`Mapping.to_dict`)::

    format: dse-mapping/1, chip, encoding, sensing, array {rows, cols}, cells_per_weight,
    parallel_rows, adc_bits, on_off_ratio, experiment, layers: [...], totals: {...}

and per layer:

    name, kind (linear|conv), precision, rows, cols (the im2col weight matrix), positions,
    in_bits, out_bits, tiles_rows, tiles_cols, tiles, rows_used (= rows), cols_used (physical
    columns = cols·k), utilisation, weights, cells, sense_amps, adcs, and per inference:
    cell_reads, sense_ops, adc_conversions, partial_sum_additions, buffer_accesses (bits).

A float layer of a network whose other layers a binary/ternary chip stores (``ecg-cnn`` with
``binarize: classifier``) is not laid out: it runs in digital logic, off the arrays, and is
listed under ``digital_layers`` (name, precision, weights, positions); its energy and area are
not estimated (the estimate covers the arrays), its weights take no bit errors.

Chips with ADC sensing also record how their partial sums are read, for the accuracy model of
the inject stage (:mod:`dse.chip.adc_quant`): ``parallel_rows`` (the rows summed in one read),
``adc_bits`` and ``on_off_ratio`` (R_off/R_on of the card's cell, whose HRS current adds to every
column; null when the card gives no r_on/r_off). All three are null for other sensing schemes.
A chip with bit-sliced weights (:mod:`dse.chip.slicing`) also records ``slicing: {weight_bits,
bits_per_cell, signing}``; its k = cells_per_weight columns per weight are counted like any
other (k conversions per weight column and input bit, one per slice and sign). ADC chips also
record ``pair_subtraction`` (``digital`` | ``analog``, :data:`dse.chip.sensing.PAIR_SUBTRACTION`):
with ``analog`` the two cells of each differential pair are one converted column (k/2
conversions per weight column and input bit), in the counts and in the accuracy path alike.

Activation widths: a binary (sign) activation is 1 bit; other activations and real-valued input
pixels are ``ACTIVATION_BITS`` = 8 bits (DNN+NeuroSim V2.1 ``train.py`` default wl_activate=8;
V1.4 manual Table VII: 8-bit activations); the stochastic-computing input (``input:
stochastic``, first-layer accumulation) is L bits per pixel into the first layer; with ``input:
stochastic_output`` every layer sees 1-bit inputs and runs L times per inference (its
``positions`` count the L passes); the class scores leaving the last layer are taken as 8 bits
(assumption).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from dse.chip.card import ChipCard
from dse.chip.encoding import ENCODINGS
from dse.chip.layer import LayerSpec
from dse.errors import DseError

FORMAT = "dse-mapping/1"
ACTIVATION_BITS = 8
COUNTS = ("cell_reads", "sense_ops", "adc_conversions", "partial_sum_additions",
          "buffer_accesses")


@dataclass(frozen=True)
class LayerMapping:
    """How one layer sits on the arrays, and its operation counts per inference."""

    name: str
    kind: str
    precision: str
    rows: int
    cols: int
    positions: int
    in_bits: int
    out_bits: int
    tiles_rows: int
    tiles_cols: int
    tiles: int
    rows_used: int
    cols_used: int
    utilisation: float
    weights: int
    cells: int
    sense_amps: int
    adcs: int
    cell_reads: int
    sense_ops: int
    adc_conversions: int
    partial_sum_additions: int
    buffer_accesses: int
    dac_conversions: int = 0  # inputs: dac (one per input element and position)


@dataclass(frozen=True)
class Mapping:
    """A model laid out on a chip."""

    chip: str
    encoding: str
    sensing: str
    array_rows: int
    array_cols: int
    cells_per_weight: int
    parallel_rows: int | None
    layers: tuple[LayerMapping, ...]
    experiment: str | None = None
    adc_bits: int | None = None
    on_off_ratio: float | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def layer(self, name: str) -> LayerMapping:
        for lm in self.layers:
            if lm.name == name:
                return lm
        raise KeyError(name)

    def totals(self) -> dict[str, float]:
        """Sums over layers (tiles, weights, cells, counts) and the overall utilisation."""
        keys = ("tiles", "weights", "cells", "sense_amps", "adcs", *COUNTS)
        out: dict[str, float] = {k: sum(getattr(lm, k) for lm in self.layers) for k in keys}
        capacity = out["tiles"] * self.array_rows * self.array_cols
        out["utilisation"] = out["cells"] / capacity if capacity else 0.0
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "chip": self.chip,
            "encoding": self.encoding,
            "sensing": self.sensing,
            "array": {"rows": self.array_rows, "cols": self.array_cols},
            "cells_per_weight": self.cells_per_weight,
            "parallel_rows": self.parallel_rows,
            "adc_bits": self.adc_bits,
            "on_off_ratio": self.on_off_ratio,
            "experiment": self.experiment,
            "layers": [asdict(lm) for lm in self.layers],
            "totals": self.totals(),
            **self.extra,
        }

    @classmethod
    def from_dict(cls, d: Any, source: str = "mapping") -> Mapping:
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise DseError(f"not a dse mapping (expected format {FORMAT}); re-run `dse map`",
                           source=source)
        try:
            layers = tuple(LayerMapping(**lm) for lm in d["layers"])
            known = {"format", "chip", "encoding", "sensing", "array", "cells_per_weight",
                     "parallel_rows", "adc_bits", "on_off_ratio", "experiment", "layers",
                     "totals"}
            if d["sensing"] == "adc" and d.get("adc_bits") is None:
                raise DseError("the mapping of an ADC chip has no adc_bits (made before the "
                               "ADC accuracy model); re-run `dse map`", source=source)
            ratio = d.get("on_off_ratio")
            return cls(chip=d["chip"], encoding=d["encoding"], sensing=d["sensing"],
                       array_rows=int(d["array"]["rows"]), array_cols=int(d["array"]["cols"]),
                       cells_per_weight=int(d["cells_per_weight"]),
                       parallel_rows=d.get("parallel_rows"), layers=layers,
                       experiment=d.get("experiment"),
                       adc_bits=None if d.get("adc_bits") is None else int(d["adc_bits"]),
                       on_off_ratio=None if ratio is None else float(ratio),
                       extra={k: v for k, v in d.items() if k not in known})
        except (KeyError, TypeError, ValueError) as exc:
            raise DseError(f"malformed mapping ({type(exc).__name__}: {exc}); re-run `dse map`",
                           source=source) from None

    def check_chip(self, chip: ChipCard) -> None:
        """Raise if ``chip``'s geometry differs from the one this mapping was made for (the pair
        subtraction included: it halves an ADC chip's conversions)."""
        want = {"rows": chip.rows, "cols": chip.cols, "cells_per_weight": chip.cells_per_weight,
                "sensing": chip.sensing.kind, "encoding": chip.encoding,
                "parallel_rows": chip.sensing.readout()["parallel_rows"],
                "slicing": _slicing_dict(chip),
                "pair_subtraction": _extra(chip).get("pair_subtraction")}
        have = {"rows": self.array_rows, "cols": self.array_cols,
                "cells_per_weight": self.cells_per_weight, "sensing": self.sensing,
                "encoding": self.encoding, "parallel_rows": self.parallel_rows,
                "slicing": self.extra.get("slicing"),
                "pair_subtraction": self.extra.get("pair_subtraction")}
        diff = [f"{k} {have[k]} vs {want[k]}" for k in want if have[k] != want[k]]
        if diff:
            raise DseError(f"the mapping was made for another chip geometry ({'; '.join(diff)} "
                           f"on chip '{chip.name}'); re-run map_model / `dse map` with this chip")


def _slicing_dict(chip: ChipCard) -> dict[str, Any] | None:
    sl = chip.slicing
    return None if sl is None else {"weight_bits": sl.weight_bits,
                                    "bits_per_cell": sl.bits_per_cell, "signing": sl.signing}


def _extra(chip: ChipCard) -> dict[str, Any]:
    """What the accuracy path needs beyond the counts: bit slicing, the input scheme, the pair
    subtraction (ADC chips)."""
    out: dict[str, Any] = {}
    if (sl := _slicing_dict(chip)) is not None:
        out["slicing"] = sl
    if (inputs := getattr(chip.sensing, "inputs", None)) is not None:
        out["inputs"] = inputs
    if (pairs := getattr(chip.sensing, "pair_subtraction", None)) is not None:
        out["pair_subtraction"] = pairs
    return out


def layer_specs(model: Any, activation_bits: int = ACTIVATION_BITS) -> list[LayerSpec]:
    """The weight layers of a :class:`dse.nn.QNet`, with output positions from a dummy pass."""
    import torch

    spec = model.spec
    layers = model.quant_layers()
    shapes: dict[str, tuple[int, ...]] = {}
    hooks = [layer.register_forward_hook(
        lambda m, i, o, n=name: shapes.__setitem__(n, tuple(o.shape)))
        for name, layer in layers]
    was_training = model.training
    try:
        model.eval()
        p = next(model.parameters())
        with torch.no_grad():
            # the input encoders are elementwise, so the body sees the image shape
            model.body(torch.zeros(1, *spec.input_shape, dtype=p.dtype, device=p.device))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    first_bits = {"real": activation_bits, "binary": 1,
                  "stochastic": int(spec.bitstream_length),
                  "stochastic_output": 1}[spec.input]
    # stochastic_output runs the whole binary network once per bit of the stream
    passes = int(spec.bitstream_length) if spec.input == "stochastic_output" else 1

    def act_bits(precision: str) -> int:
        """Width of the activation after a layer of ``precision`` (a network binarised in part,
        ecg-cnn's binarize: classifier, has ReLU after its float layers, sign after the rest)."""
        act = spec.activation if spec.activation != "auto" else \
            ("relu" if precision == "float" else "sign")
        return 1 if act == "sign" else activation_bits

    out: list[LayerSpec] = []
    for i, (name, layer) in enumerate(layers):
        rows, cols = layer.matrix_shape
        shape = shapes[name]
        positions = int(math.prod(shape[2:])) if len(shape) > 2 else 1
        positions *= passes
        in_bits = first_bits if i == 0 else act_bits(layers[i - 1][1].precision)
        out_bits = act_bits(layer.precision) if i < len(layers) - 1 else activation_bits
        kind = "conv" if layer.weight.dim() == 4 else "linear"
        out.append(LayerSpec(name=name, kind=kind, precision=layer.precision, rows=rows,
                             cols=cols, positions=positions, in_bits=in_bits, out_bits=out_bits))
    return out


def map_layer(layer: LayerSpec, chip: ChipCard) -> LayerMapping:
    """Tile one layer onto ``chip``'s arrays."""
    enc = ENCODINGS[chip.encoding]
    if layer.precision not in enc.accepts:
        fits = sorted(n for n, e in ENCODINGS.items() if layer.precision in e.accepts)
        raise DseError(
            f"layer {layer.name} has {layer.precision} weights but chip '{chip.name}' stores "
            f"{'/'.join(enc.accepts)} weights ({chip.encoding} encoding); use a chip with "
            f"encoding {' or '.join(fits)}, or train with precision: {enc.native}")
    k = chip.cells_per_weight
    tr = math.ceil(layer.rows / chip.rows)
    tc = math.ceil(layer.cols / chip.weight_cols)
    tiles = tr * tc
    cells = layer.rows * layer.cols * k
    sensing = chip.sensing
    counts = sensing.counts(layer, chip.rows, k, tr, chip.differential_pairs)
    return LayerMapping(
        name=layer.name, kind=layer.kind, precision=layer.precision, rows=layer.rows,
        cols=layer.cols, positions=layer.positions, in_bits=layer.in_bits,
        out_bits=layer.out_bits, tiles_rows=tr, tiles_cols=tc, tiles=tiles,
        rows_used=layer.rows, cols_used=layer.cols * k,
        utilisation=cells / (tiles * chip.rows * chip.cols), weights=layer.rows * layer.cols,
        cells=cells, sense_amps=tiles * sensing.sense_amps_per_array(chip.cols, k),
        adcs=tiles * sensing.adcs_per_array(chip.cols), **counts)


def map_model(model_or_layers: Any | Sequence[LayerSpec], chip: ChipCard,
              experiment: str | None = None) -> Mapping:
    """Lay a model (a ``QNet``, or its :class:`LayerSpec` list) out on ``chip``."""
    if isinstance(model_or_layers, Sequence):
        specs = list(model_or_layers)
    else:
        specs = layer_specs(model_or_layers)
    if not specs:
        raise DseError("the model has no weight layers to map")
    specs, digital = _digital_split(specs, chip)
    layers = tuple(map_layer(s, chip) for s in specs)
    readout = chip.sensing.readout()
    adc = readout["adc_bits"] is not None
    on_off = chip.r_off_ohm / chip.r_on_ohm if adc and chip.r_on_ohm and chip.r_off_ohm \
        else None
    return Mapping(chip=chip.name, encoding=chip.encoding, sensing=chip.sensing.kind,
                   array_rows=chip.rows, array_cols=chip.cols,
                   cells_per_weight=chip.cells_per_weight,
                   parallel_rows=readout["parallel_rows"], layers=layers, experiment=experiment,
                   adc_bits=readout["adc_bits"], on_off_ratio=on_off,
                   extra={**_extra(chip), **({"digital_layers": digital} if digital else {})})


def _digital_split(specs: list[LayerSpec],
                   chip: ChipCard) -> tuple[list[LayerSpec], list[dict[str, Any]]]:
    """(layers on the arrays, digital layers): the float layers of a network whose other layers
    the chip stores (e.g. the feature extractor of an ``ecg-cnn`` with ``binarize:
    classifier`` on a binary chip) stay in digital logic, off the arrays, and are listed as
    ``digital_layers`` (name, precision, weights, positions). A network of float layers only
    is not split (map_layer says which chip fits it)."""
    accepts = ENCODINGS[chip.encoding].accepts
    stored = [s for s in specs if s.precision in accepts]
    if "float" in accepts or not stored or len(stored) == len(specs):
        return specs, []
    off = [s for s in specs if s.precision not in accepts]
    if any(s.precision != "float" for s in off):
        return specs, []  # a binary layer on a ternary-only chip &c.: map_layer refuses it
    return stored, [{"name": s.name, "precision": s.precision, "weights": s.rows * s.cols,
                     "positions": s.positions} for s in off]

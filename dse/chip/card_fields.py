"""The chip card's fields: where each lives in the YAML, its dimension and unit, whether it is
required (:mod:`dse.chip.card` documents the layout, :mod:`dse.chip.card_parse` reads it)."""

from __future__ import annotations

# field -> (yaml path, dimension, SI factor of the field's unit, required)
NUMBER_FIELDS: dict[str, tuple[str, str, float, bool]] = {
    "node_nm": ("technology.node", "length", 1e-9, True),
    "supply_v": ("technology.supply", "voltage", 1.0, True),
    "supply_ref_v": ("technology.supply_ref", "voltage", 1.0, False),
    "temperature_k": ("technology.temperature", "temperature", 1.0, False),
    "rows": ("array.rows", "count", 1.0, True),
    "cols": ("array.cols", "count", 1.0, True),
    "cells_per_weight": ("cell.cells_per_weight", "count", 1.0, True),
    "cell_area_f2": ("cell.area", "area", 1.0, True),
    "cell_read_energy_fj": ("cell.read_energy", "energy", 1e-15, False),
    "r_on_ohm": ("cell.r_on", "resistance", 1.0, False),
    "r_off_ohm": ("cell.r_off", "resistance", 1.0, False),
    "read_voltage_v": ("cell.read_voltage", "voltage", 1.0, False),
    "read_pulse_s": ("cell.read_pulse", "time", 1.0, False),
    "lrs_fraction": ("cell.lrs_fraction", "count", 1.0, False),
    "input_activity": ("cell.input_activity", "count", 1.0, False),  # dse.chip.array_energy
    "cell_height_f": ("cell.height", "feature", 1.0, False),
    "cell_width_f": ("cell.width", "feature", 1.0, False),
    "speed_up": ("dataflow.speed_up", "count", 1.0, False),          # dse.chip.dataflow
    "weight_bits": ("cell.weight_bits", "count", 1.0, False),      # bit slicing (issue 14)
    "bits_per_cell": ("cell.bits_per_cell", "count", 1.0, False),
    "add_fj": ("digital.add_energy", "energy", 1e-15, False),  # default: dse.chip.technology
    "buffer_fj": ("digital.buffer_energy", "energy", 1e-15, False),
    "periphery_row_f2": ("periphery.row_area", "area", 1.0, True),
    "periphery_col_f2": ("periphery.column_area", "area", 1.0, True),
    "write_pj": ("programming.write_energy", "energy", 1e-12, False),
    "clock_hz": ("digital.clock", "frequency", 1.0, False),  # latency (dse.chip.latency)
    "accumulator_area_f2": ("digital.accumulator_area", "area", 1.0, False),  # per ADC
}
STRING_FIELDS: dict[str, tuple[str, bool]] = {
    "encoding": ("encoding", True),
    "analog_card": ("errors.analog_card", False),
    "signing": ("cell.signing", False),
    "read_energy_model": ("cell.read_energy_model", False),
    "schedule": ("dataflow.schedule", False),
}
INTEGER_FIELDS = ("rows", "cols", "cells_per_weight", "weight_bits", "bits_per_cell", "speed_up")
SECTIONS = {
    "technology": {"node", "supply", "supply_ref", "temperature"},
    "array": {"rows", "cols"},
    "cell": {"cells_per_weight", "area", "read_energy", "r_on", "r_off", "read_voltage",
             "read_pulse", "lrs_fraction", "weight_bits", "bits_per_cell", "signing",
             "read_energy_model", "input_activity", "height", "width"},
    "dataflow": {"schedule", "speed_up"},
    "digital": {"add_energy", "buffer_energy", "clock", "accumulator_area"},
    "periphery": {"row_area", "column_area"},
    "programming": {"write_energy"},
    "errors": {"sources", "operating_point", "analog_card"},
}
TOP_KEYS = {"name", "description", "source", "encoding", "sensing", *SECTIONS}
_FIELD_PATH = {f: spec[0] for f, spec in NUMBER_FIELDS.items()} | {
    f: spec[0] for f, spec in STRING_FIELDS.items()}

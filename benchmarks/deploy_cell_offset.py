"""Issue 12 finding, resolved: the ADC read-out's HRS offset is the deployed cells' own floor.

This script used to patch ``dse.chip.deploy._weights`` to put the device card's floor (g_min =
12.5 uS on a 20 uS span, rho = 0.625) into the deployed cells' levels, while the read-out added
the chip card's rho = 1/(R_off/R_on - 1) = 1/16 (the trained LeNet: 0.947 with the chip's rho,
0.689 with the cells'). The read-out now takes every deployed layer's offset from its cells
(:func:`dse.chip.deploy._readout`: g_min·c/w_max in the layer's level units, so a column current
is Σ x·G of the cells), so the patch is moot; the accuracies are in
benchmarks/in_situ_deployment.md. What is left here is the check: the per-layer offset the
deployed read-out uses next to the chip card's rho. Usage (model: the default
lenet-mixed-precision, trained by ``dse train``):

    PYTHONPATH=$PWD python benchmarks/deploy_cell_offset.py MODEL_DIR
"""

from __future__ import annotations

import sys

import torch

from dse.chip.adc_quant import AdcSpec
from dse.chip.deploy import _readout, _trained_layers
from dse.chip.mapping import map_model
from dse.data import task_stream
from dse.devices import from_card
from dse.devices.inference import inference_physics
from dse.pipeline.artifacts import load_chip, load_model
from dse.train.device_state import unpack


def main() -> int:
    torch.set_num_threads(1)
    tm = load_model(sys.argv[1])
    dev = from_card(tm.device_card)
    phys = inference_physics(dev)
    mapping = map_model(tm.model, load_chip("config/chips/rram-1t1r-adc.yaml"))
    spec = AdcSpec.from_mapping(mapping)
    assert spec is not None
    layers = _trained_layers(tm.model, dev, unpack(tm.device_state), 1)
    cal = task_stream("mnist5k", None, 0)[-1].x_train[:200]
    ro = _readout(tm.model, mapping, layers, phys.g_min, cal, True)
    print(f"chip card rho {spec.offset:.4f}; device card g_min/span "
          f"{phys.g_min / (phys.g_max - phys.g_min):.4f}")
    for ly in layers:
        print(f"{ly.name}: read-out offset {ro.layers[ly.name].offset:.4f} "
              f"(= g_min c / w_max, c = {ly.c:.4g}, w_max = {ly.w_max:.4g})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

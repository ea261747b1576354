"""Issue 12 finding: the ADC read-out's HRS offset from the chip card vs the device card's g_min.

``dse.chip.adc_quant`` adds rho = 1/(R_off/R_on - 1) of the *chip card* (1/16 for NeuroSim's
100 kOhm / 1.7 MOhm) to every cell level; the deployed cells are the *device card's* devices,
whose floor is g_min = 12.5 uS on a 20 uS span (rho = 0.625). ``card`` replaces the chip's
offset by the device card's in the deployed cells' levels (the trained array's ADC calibration
sees it too; the fresh chip's clean-model calibration does not, so its ``card`` row is not a
fair measurement). Usage (model: the default lenet-mixed-precision, trained by ``dse train``):

    PYTHONPATH=$PWD python benchmarks/deploy_cell_offset.py MODEL_DIR chip|card
"""

from __future__ import annotations

import sys

import torch

import dse.chip.deploy as deploy_module
from dse.chip.adc_quant import AdcSpec
from dse.chip.mapping import map_model
from dse.data import task_stream
from dse.devices import from_card
from dse.devices.inference import inference_physics
from dse.pipeline.artifacts import load_chip, load_model
from dse.train.device_state import unpack


def main() -> int:
    torch.set_num_threads(1)
    model_dir, mode = sys.argv[1], sys.argv[2]
    tm = load_model(model_dir)
    dev = from_card(tm.device_card)
    phys = inference_physics(dev)
    mapping = map_model(tm.model, load_chip("config/chips/rram-1t1r-adc.yaml"))
    rho = AdcSpec.from_mapping(mapping).offset
    print(f"chip rho {rho}, card g_min/span {phys.g_min / (phys.g_max - phys.g_min)}")
    orig = deploy_module._weights

    def card_offset(ly, g, r, g_min):  # the column current G·c/w_max once the read-out adds rho
        w, lv = orig(ly, g, r, g_min)
        return w, lv + (g_min * ly.c / ly.w_max - rho)

    if mode == "card":
        deploy_module._weights = card_offset
    d = task_stream("mnist5k", None, 0)[-1]
    table, _ = deploy_module.deploy(
        tm.model, mapping, d.x_test, d.y_test, dev, phys, 10, torch.Generator().manual_seed(0),
        deploy_module.DeploySettings(times=()), trained=unpack(tm.device_state),
        calibration=d.x_train[:1000])
    print(mode, table.groupby("devices")["accuracy"].agg(["mean", "std"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

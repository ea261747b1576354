"""The analog deployment inside the inject recipe: the network on its trained devices or a fresh
chip (:func:`dse.chip.deploy.deploy`), its t = 0 rows added to the inject table and the whole
deployment and per-layer programming tables in the table's ``attrs``."""

from __future__ import annotations

from typing import Any

import pandas as pd

from dse.chip.inject import AnalogNoise
from dse.chip.mapping import Mapping as ChipMapping
from dse.pipeline.artifacts import TrainedModel
from dse.pipeline.settings import InjectSettings


def deployed(table: pd.DataFrame, trained: TrainedModel, mapping: ChipMapping,
              analog: AnalogNoise | None, settings: InjectSettings, data: Any,
              generator: Any, asked_clean: bool) -> pd.DataFrame:
    """``table`` with the analog deployment's rows (only those when no clean row was asked);
    its draws continue ``generator`` after the fault maps."""
    assert analog is not None
    n = settings.max_images or len(data.x_test)
    table = with_deployment(table, trained, mapping, analog.model, settings, generator,
                            data.x_test[:n], data.y_test[:n], data.x_train[:1000])
    if not asked_clean:  # only the deployment was asked for (a co-design trial)
        attrs = table.attrs
        table = table[table["noise"] != "none"].reset_index(drop=True)
        table.attrs.update(attrs)
    return table


def with_deployment(table: pd.DataFrame, trained: TrainedModel, mapping: ChipMapping,
                    dev: Any, settings: InjectSettings, generator: Any, x: Any, y: Any,
                    calibration: Any) -> pd.DataFrame:
    """``table`` plus the analog deployment (:func:`dse.chip.deploy.deploy`): its t = 0 rows
    (noise ``"<devices>: <programming>"``, one per devices option) appended, the whole
    deployment table in ``attrs["deployment"]`` and the per-layer programming in
    ``attrs["programming"]``."""
    from dse.chip.deploy import deploy
    from dse.devices.inference import inference_physics
    from dse.train.device_state import unpack

    state = unpack(trained.device_state) if trained.device_state else None
    dep, prog = deploy(trained.model, mapping, x, y, dev, inference_physics(dev),
                       settings.repeats, generator, settings.deploy, trained=state,
                       calibration=calibration)
    now = dep[(dep["time_s"] == 0) & ~dep["compensated"].astype(bool)]
    bits = table["adc_bits"].iloc[0] if "adc_bits" in table and len(table) else None
    extra = pd.DataFrame({
        "ber": 0.0, "stuck_sa0": 0.0, "stuck_sa1": 0.0,
        "noise": now["devices"] + ": " + now["programming"],
        **({"adc_bits": bits} if "adc_bits" in table else {}),
        "repeat": now["repeat"], "accuracy": now["accuracy"]})
    out = pd.concat([table, extra[[c for c in table.columns if c in extra]]],
                    ignore_index=True)
    out.attrs.update(table.attrs)
    out.attrs["deployment"] = dep
    out.attrs["programming"] = prog
    out.attrs["cell_conductance"] = dict(dep.attrs.get("cell_conductance") or {})
    return out

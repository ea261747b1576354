"""Every read and write of a contract file: trained models, mappings, cards, tables, trials.

Writes are atomic (:mod:`dse.pipeline.files`); reads check the content and raise a one-line
:class:`~dse.errors.DseError` naming the file and the fix. The stages never touch files: they
take and return the values these functions read and write.

Train stage (``Layout.train_dir``): ``model.pt`` (state dict, loaded with ``weights_only``),
``devices.pt`` (device-in-the-loop trainers: the trained devices, float16, ``weights_only``),
``model.json`` (everything needed to rebuild the model, the experiment, and the sha256 of
``model.pt``, checked on load), ``history.csv`` (per epoch), ``pulses.csv`` (per epoch, layer
and direction), ``tasks.csv`` (test accuracy on every task after each task) and ``writes.csv``
(``layer, writes, devices``: how many devices were programmed k times, :mod:`dse.train.writes`;
empty when the run's trainer tallies only totals).
Each layer's weight precision and bits are in ``model.json``. The ``model.pt`` of a task stream
with task-specific state (metaplastic ``bn: task``) also holds each task's entries under
``task.{k}.`` (:data:`TASK_PREFIX`), split off on load into ``TrainedModel.task_states``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import yaml

from dse import __version__
from dse.chip.card_parse import chip_from_dict
from dse.chip.mapping import Mapping as ChipMapping
from dse.config import load_yaml
from dse.devices import from_card, validate_card
from dse.errors import DseError
from dse.nn import ModelSpec, QNet, build_model
from dse.nn.memory import weight_bits
from dse.pipeline.files import (
    atomic_dir,
    atomic_outputs,
    json_text,
    write_csv,
    write_if_changed,
    write_json,
)
from dse.pipeline.model_state import (
    DEVICES_FILE,
    TASK_PREFIX,
    load_devices,
    sha256,
    split_task_states,
)

MODEL_FORMAT = "dse-model/1"
WRITE_HISTOGRAM = "write_histogram"  # TrainResult.extra key of the writes.csv table


# ---------------------------------------------------------------------------------- cards
def load_card(path: str | Path) -> dict[str, Any]:
    """Read and validate a YAML/JSON device card (DseError naming the file on a bad card)."""
    p = Path(path)
    data = load_yaml(p, "device card")  # YAML or JSON: UTF-8, no duplicate keys
    return validate_card(data, source=str(p))


def read_measurements(path: str | Path, fmt: str = "auto", direction: str = "auto",
                      **kw: Any) -> Any:
    """Read and parse a measurement file (:func:`dse.devices.parse_measurements`)."""
    from dse.devices import parse_measurements

    p = Path(path)
    if not p.is_file():
        raise DseError("measurement file not found; check the path", source=str(p))
    return parse_measurements(p.read_bytes(), str(p), fmt, direction=direction, **kw)


def read_measurement_pair(set_path: str | Path, reset_path: str | Path,
                          fmt: str = "auto") -> Any:
    """A SET file and a RESET file as one device's measurements
    (:func:`dse.devices.pair_measurements`)."""
    from dse.devices import pair_measurements

    return pair_measurements(read_measurements(set_path, fmt, "up"),
                             read_measurements(reset_path, fmt, "down"))


def load_chip(path: str | Path) -> Any:
    """Read and validate a chip card file (YAML or JSON) into a :class:`ChipCard`."""
    p = Path(path)
    return chip_from_dict(load_yaml(p, "chip card"), source=str(p), name=p.stem)


def load_device_models(paths: Iterable[str | Path]) -> dict[str, Any]:
    """Device models by card name (and by file stem), from card files."""
    models: dict[str, Any] = {}
    for path in paths:
        p = Path(path)
        card = load_card(p)
        model = from_card(card, source=str(p))
        models[str(card.get("name", p.stem))] = model
        models.setdefault(p.stem, model)
    return models


# -------------------------------------------------------------------------------- models
@dataclass
class TrainedModel:
    """A model read back from a train-stage directory."""

    model: QNet
    spec: ModelSpec
    meta: dict[str, Any]
    directory: Path
    # the devices a device-in-the-loop trainer left (dse.train.device_state layout), or None
    device_state: dict[str, torch.Tensor] | None = None
    task_states: list[dict[str, torch.Tensor]] = field(default_factory=list)

    @property
    def experiment(self) -> dict[str, Any]:
        return self.meta["experiment"]

    @property
    def device_card(self) -> dict[str, Any] | None:
        """The device card the model was trained with (device-in-the-loop algorithms)."""
        return self.meta.get("device_card")


def save_model(result: Any, out_dir: str | Path, card: dict[str, Any] | None = None) -> Path:
    """Write the train stage's files (a :class:`dse.train.TrainResult`) as one atomic folder."""
    out = Path(out_dir)
    with atomic_dir(out) as tmp:
        state = dict(result.model.state_dict())
        for k, entries in enumerate(getattr(result, "task_states", None) or []):
            state.update({f"{TASK_PREFIX}{k}.{key}": v for key, v in entries.items()})
        torch.save(state, tmp / "model.pt")
        meta = {
            "format": MODEL_FORMAT,
            "dse_version": __version__,
            "experiment": result.experiment.to_dict(),
            "spec": result.spec.to_dict(),
            "layers": [{"name": n, "kind": type(m).__name__, "shape": list(m.weight.shape),
                        "precision": m.precision, "weight_bits": weight_bits(m)}
                       for n, m in result.model.quant_layers()],
            "test_accuracy": result.test_accuracy,
            "device_card": card,
            "model_sha256": sha256(tmp / "model.pt"),
            **{k: v for k, v in result.extra.items() if k != WRITE_HISTOGRAM},
        }
        devices = getattr(result, "device_state", None)
        if devices:
            torch.save(devices, tmp / DEVICES_FILE)
            meta["device_state"] = {"file": DEVICES_FILE, "sha256": sha256(tmp / DEVICES_FILE),
                                    "dtype": sorted({str(t.dtype).removeprefix("torch.")
                                                     for t in devices.values()})}
        (tmp / "model.json").write_text(json.dumps(meta, indent=2, default=str) + "\n")
        result.history.to_csv(tmp / "history.csv", index=False)
        result.pulses.to_csv(tmp / "pulses.csv", index=False)
        result.tasks.to_csv(tmp / "tasks.csv", index=False)
        writes = result.extra.get(WRITE_HISTOGRAM)  # per-device writes (dse.train.writes)
        if writes is None:
            writes = pd.DataFrame(columns=["layer", "writes", "devices"])
        writes.to_csv(tmp / "writes.csv", index=False)
    return out


def _read_meta(meta_path: Path) -> dict[str, Any]:
    try:
        meta = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        line = getattr(exc, "lineno", "?")
        raise DseError(f"not valid JSON (line {line}); re-run `dse train`",
                       source=str(meta_path)) from None
    if not isinstance(meta, dict) or meta.get("format") != MODEL_FORMAT:
        raise DseError(f"not a dse model description (expected format {MODEL_FORMAT}); re-run "
                       "`dse train`", source=str(meta_path))
    return meta


def load_model(model_dir: str | Path, device: torch.device | str = "cpu") -> TrainedModel:
    """Rebuild the model of a train-stage directory (``weights_only`` checkpoint loading; the
    weights must be the ones ``model.json`` was written with)."""
    d = Path(model_dir)
    meta_path, pt_path = d / "model.json", d / "model.pt"
    for p in (meta_path, pt_path):
        if not p.is_file():
            raise DseError("missing; point --model at a directory written by `dse train`",
                           source=str(p))
    meta = _read_meta(meta_path)
    want = meta.get("model_sha256")
    if want is not None and sha256(pt_path) != want:
        raise DseError("does not match model.json (its sha256 differs from the one recorded "
                       "at training); re-run `dse train`", source=str(pt_path))
    try:
        spec = ModelSpec.from_dict(meta["spec"])
        model = build_model(spec)
    except (KeyError, TypeError, ValueError) as exc:
        raise DseError(f"bad 'spec' entry ({exc}); re-run `dse train`",
                       source=str(meta_path)) from None
    try:
        state = torch.load(pt_path, map_location=device, weights_only=True)
        tasks = split_task_states(state)
        model.load_state_dict(state)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "weights_only" in first or "Weights only" in first:
            first = "it holds objects other than tensors, which are not loaded"
        raise DseError(f"cannot load the weights ({first}); the file is corrupt or does not "
                       "match model.json, re-run `dse train`", source=str(pt_path)) from None
    model.to(device).eval()
    return TrainedModel(model=model, spec=spec, meta=meta, directory=d,
                        device_state=load_devices(d, meta, device), task_states=tasks)


def read_table(path: str | Path, what: str, fix: str) -> pd.DataFrame:
    """A CSV contract file (DseError naming the file when it is missing or unreadable)."""
    p = Path(path)
    if not p.is_file():
        raise DseError(f"{what} not found; {fix}", source=str(p))
    try:
        return pd.read_csv(p)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DseError(f"cannot read the {what} ({type(exc).__name__}); {fix}",
                       source=str(p)) from None


def read_history(model_dir: str | Path) -> pd.DataFrame:
    """The per-epoch history of a train-stage directory."""
    return read_table(Path(model_dir) / "history.csv", "history",
                      "point at a directory written by `dse train`")


def load_pulses(history: str | Path) -> pd.DataFrame:
    """Training pulse counts: ``pulses.csv`` beside ``history.csv`` (per layer) or the history."""
    h = Path(history)
    fix = "point --history at a `dse train` history.csv"
    table = read_table(h, "history", fix)
    pulses = h.with_name("pulses.csv")
    if pulses.is_file():
        per_layer = read_table(pulses, "pulse table", fix)
        if {"layer", "pulses"} <= set(per_layer.columns):
            return per_layer
    return table


# ------------------------------------------------------------------------------ mappings
def load_mapping(path: str | Path) -> ChipMapping:
    """Read a ``dse map`` output."""
    p = Path(path)
    if not p.is_file():
        raise DseError("mapping not found; run `dse map` first", source=str(p))
    try:
        data = json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        line = getattr(exc, "lineno", "?")
        raise DseError(f"not valid JSON (line {line}); re-run `dse map`", source=str(p)) \
            from None
    return ChipMapping.from_dict(data, source=str(p))


def deployment_paths(inject_csv: str | Path) -> tuple[Path, Path]:
    """The deployment tables beside an inject table ``{chip}.csv``: ``{chip}.deploy.csv``
    (per devices, programming, time and compensation: mean and 95 % CI over the maps) and
    ``{chip}.programming.csv`` (per devices option and layer: residual, unreachable, cost)."""
    p = Path(inject_csv)
    return p.with_suffix(".deploy.csv"), p.with_suffix(".programming.csv")


def inject_tables(inject_csv: str | Path, summary_csv: str | Path,
                  table: pd.DataFrame) -> dict[Path, pd.DataFrame]:
    """The inject stage's tables to write: the per-map table, its summary and, on an analog
    chip that deployed the network (``table.attrs["deployment"]``), the deployment tables of
    :func:`deployment_paths`."""
    from dse.chip.inject import summarize

    out = {Path(inject_csv): table, Path(summary_csv): summarize(table)}
    dep = table.attrs.get("deployment")
    if dep is not None and len(dep):
        dep_path, prog_path = deployment_paths(inject_csv)
        summary = summarize(dep, table.attrs.get("clean_accuracy"))
        summary["adc_accuracy"] = table.attrs.get("adc_accuracy", float("nan"))
        out[dep_path] = summary
        prog = table.attrs.get("programming")
        if prog is not None and len(prog):
            out[prog_path] = prog
    return out


def write_mapping(path: str | Path, mapping: ChipMapping, chip: Any | None = None) -> None:
    """Write a mapping (with the chip card it was made for, as provenance)."""
    data = mapping.to_dict()
    if chip is not None:
        data["chip_card"] = chip.to_dict()
    write_json(path, data)


def write_tables(tables: Mapping[str | Path, pd.DataFrame]) -> None:
    """Write CSV tables that belong together: all appear, or none (e.g. inject + summary)."""
    with atomic_outputs(list(tables)) as tmps:
        for tmp, frame in zip(tmps, tables.values(), strict=True):
            frame.to_csv(tmp, index=False)


def write_card_and_figure(card_path: str | Path, text: str, figure_path: str | Path,
                          fig: Any, dpi: int = 130) -> None:
    """A calibrated card and its fit figure: both files appear, or neither."""
    import matplotlib.pyplot as plt

    try:
        with atomic_outputs([card_path, figure_path]) as (card_tmp, fig_tmp):
            card_tmp.write_text(text)
            fig.savefig(fig_tmp, dpi=dpi, format="png")
    finally:
        plt.close(fig)


# ------------------------------------------------------------------------------ configs
def write_effective_config(config: Mapping[str, Any], path: str | Path) -> Path:
    """Write a validated config (defaults filled) to ``path`` unless the file already holds
    exactly it, so its mtime stays and nothing that reads it reruns."""
    text = "# effective configuration written by the Snakefile (validated, defaults filled)\n"
    text += yaml.safe_dump(json.loads(json.dumps(dict(config), default=str)), sort_keys=False)
    return write_if_changed(path, text)


def write_settings(path: str | Path, settings: Any) -> Path:
    """A stage's resolved settings as sorted JSON, rewritten only when they change: a rule that
    takes this file as an input reruns exactly when its settings do."""
    return write_if_changed(path, json.dumps(settings, sort_keys=True, indent=1,
                                             default=str) + "\n")


# -------------------------------------------------------------------------------- trials
def write_trial(folder: Path, record: dict[str, Any], mapping: ChipMapping,
                inject: pd.DataFrame, estimate: pd.DataFrame) -> None:
    """One trial's files: ``trial.json`` (params, metrics, training key, seed), the mapping,
    the injection and the estimate tables."""
    write_json(folder / "mapping.json", mapping.to_dict())
    write_csv(folder / "inject.csv", inject)
    write_csv(folder / "estimate.csv", estimate)
    write_json(folder / "trial.json", record)  # last: a trial.json means the folder is whole


def read_json(path: str | Path, what: str) -> Any:
    p = Path(path)
    if not p.is_file():
        raise DseError(f"{what} not found", source=str(p))
    try:
        return json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise DseError(f"{what} is not valid JSON; delete it and re-run", source=str(p)) \
            from None


__all__ = [
    "MODEL_FORMAT",
    "TrainedModel",
    "json_text",
    "load_card",
    "load_chip",
    "load_device_models",
    "load_mapping",
    "load_model",
    "load_pulses",
    "read_history",
    "read_json",
    "read_table",
    "save_model",
    "write_card_and_figure",
    "write_effective_config",
    "write_mapping",
    "write_settings",
    "write_tables",
    "write_trial",
]

"""Write and read the train stage's contract files.

``{out}/model.pt`` (state dict), ``model.json`` (everything needed to rebuild the model),
``history.csv`` (per epoch), ``pulses.csv`` (per epoch, layer and direction) and ``tasks.csv``
(test accuracy on every task after each task; one row for a single-dataset run).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from dse import __version__
from dse.errors import DseError
from dse.ioutil import usual_mode
from dse.nn import ModelSpec, QNet, build_model
from dse.train.loop import TrainResult

FORMAT = "dse-model/1"


def save(result: TrainResult, out_dir: str | Path, card: dict[str, Any] | None = None) -> Path:
    """Write the contract files atomically: a failure leaves no half-written directory."""
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    usual_mode(tmp)
    try:
        torch.save(result.model.state_dict(), tmp / "model.pt")
        meta = {
            "format": FORMAT,
            "dse_version": __version__,
            "experiment": result.experiment.to_dict(),
            "spec": result.spec.to_dict(),
            "layers": [{"name": n, "kind": type(m).__name__, "shape": list(m.weight.shape)}
                       for n, m in result.model.quant_layers()],
            "test_accuracy": result.test_accuracy,
            "device_card": card,
            **result.extra,
        }
        (tmp / "model.json").write_text(json.dumps(meta, indent=2, default=str) + "\n")
        result.history.to_csv(tmp / "history.csv", index=False)
        result.pulses.to_csv(tmp / "pulses.csv", index=False)
        result.tasks.to_csv(tmp / "tasks.csv", index=False)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


@dataclass
class TrainedModel:
    """A model read back from a train-stage directory."""

    model: QNet
    spec: ModelSpec
    meta: dict[str, Any]
    directory: Path

    @property
    def experiment(self) -> dict[str, Any]:
        return self.meta["experiment"]


def load(model_dir: str | Path, device: torch.device | str = "cpu") -> TrainedModel:
    """Rebuild the model of a train-stage directory (``weights_only`` checkpoint loading)."""
    d = Path(model_dir)
    meta_path, pt_path = d / "model.json", d / "model.pt"
    for p in (meta_path, pt_path):
        if not p.is_file():
            raise DseError("missing; point --model at a directory written by `dse train`",
                           source=str(p))
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as exc:
        raise DseError(f"not valid JSON (line {exc.lineno}); re-run `dse train`",
                       source=str(meta_path)) from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise DseError(f"not a dse model description (expected format {FORMAT}); re-run "
                       "`dse train`", source=str(meta_path))
    try:
        spec = ModelSpec.from_dict(meta["spec"])
        model = build_model(spec)
    except (KeyError, TypeError, ValueError) as exc:
        raise DseError(f"bad 'spec' entry ({exc}); re-run `dse train`",
                       source=str(meta_path)) from None
    try:
        state = torch.load(pt_path, map_location=device, weights_only=True)
        model.load_state_dict(state)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DseError(f"cannot load the weights ({first}); the file is corrupt or does not "
                       "match model.json, re-run `dse train`", source=str(pt_path)) from None
    model.to(device).eval()
    return TrainedModel(model=model, spec=spec, meta=meta, directory=d)


def read_history(model_dir: str | Path) -> pd.DataFrame:
    """The per-epoch history of a train-stage directory."""
    p = Path(model_dir) / "history.csv"
    if not p.is_file():
        raise DseError("missing; point at a directory written by `dse train`", source=str(p))
    return pd.read_csv(p)

"""The state files beside a model checkpoint: the trained devices of device-in-the-loop trainers
(``devices.pt``, float16, loaded with ``weights_only``) and the per-task state of a task stream
(``task.{k}.`` entries of ``model.pt``), plus the file hash ``model.json`` records."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch

from dse.errors import DseError

DEVICES_FILE = "devices.pt"  # the trained devices of device-in-the-loop trainers
TASK_PREFIX = "task."  # model.pt keys of the per-task state: task.{k}.<state-dict key>


def sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_devices(d: Path, meta: dict[str, Any], device: torch.device | str
                  ) -> dict[str, torch.Tensor] | None:
    """The trained devices of ``model.json``'s ``device_state`` entry (None without one)."""
    entry = meta.get("device_state")
    if not entry:
        return None
    path = d / str(entry.get("file", DEVICES_FILE))
    if not path.is_file() or sha256(path) != entry.get("sha256"):
        raise DseError("missing or does not match model.json (sha256); re-run `dse train`",
                       source=str(path))
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception:
        raise DseError("cannot load the trained devices (not a tensor file); re-run "
                       "`dse train`", source=str(path)) from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor)
                                              for v in state.values()):
        raise DseError("not a mapping of tensors; re-run `dse train`", source=str(path))
    return state


def split_task_states(state: dict[str, Any]) -> list[dict[str, torch.Tensor]]:
    """Remove the ``task.{k}.`` entries from a loaded state dict; return them per task."""
    keys = [k for k in state if k.startswith(TASK_PREFIX)]
    tasks: dict[int, dict[str, torch.Tensor]] = {}
    for key in keys:
        k, _, rest = key[len(TASK_PREFIX):].partition(".")
        tasks.setdefault(int(k), {})[rest] = state.pop(key)
    return [tasks[k] for k in sorted(tasks)]

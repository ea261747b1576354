"""Small file helpers for the CLI layer: atomic outputs and tidy JSON/YAML writing."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def usual_mode(path: Path) -> None:
    """Give a temporary file or folder (``mkstemp``/``mkdtemp`` make them private: 0600/0700)
    the permissions a plain ``open``/``mkdir`` would have, so outputs stay readable by
    colleagues on a shared machine."""
    path.chmod((0o777 if path.is_dir() else 0o666) & ~_umask())


@contextlib.contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it into place only if the block succeeds.

    A failing stage therefore leaves nothing half-written under the output name.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=target.suffix, dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    usual_mode(tmp_path)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    finally:
        tmp_path.unlink(missing_ok=True)


def write_json(path: str | Path, data: Any) -> None:
    """Write ``data`` as indented JSON, atomically."""
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, default=_jsonable) + "\n")


def write_yaml(path: str | Path, data: Any) -> None:
    """Write ``data`` as block-style YAML, atomically."""
    with atomic_output(path) as tmp:
        tmp.write_text(yaml.safe_dump(json.loads(json.dumps(data, default=_jsonable)),
                                      sort_keys=False))


def write_csv(path: str | Path, frame: Any) -> None:
    """Write a pandas DataFrame as CSV without its index, atomically."""
    with atomic_output(path) as tmp:
        frame.to_csv(tmp, index=False)


def _jsonable(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "__dataclass_fields__"):
        from dataclasses import asdict

        return asdict(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")

"""Atomic file output: a stage's file appears whole or not at all, and a write fault is one line.

Every contract file is written through :func:`atomic_output` (a temporary file beside the target,
renamed into place when the block succeeds), :func:`atomic_dir` for a folder of files, or the
helpers built on them. An ``OSError`` (read-only location, no space, permission, a directory in
the way) becomes a :class:`~dse.errors.DseError` naming the path and the fix.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml

from dse.errors import DseError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def usual_mode(path: Path) -> None:
    """Give a temporary file or folder (``mkstemp``/``mkdtemp`` make them private: 0600/0700)
    the permissions a plain ``open``/``mkdir`` would have, so outputs stay readable by
    colleagues on a shared machine."""
    path.chmod((0o777 if path.is_dir() else 0o666) & ~_umask())


def write_error(path: str | Path, exc: OSError) -> DseError:
    """The one-line error of a failed write of ``path``."""
    reason = exc.strerror or type(exc).__name__
    return DseError(f"cannot write ({reason}); choose another output location or free the "
                    "space / permissions", source=str(path))


def check_writable(path: str | Path) -> None:
    """Fail now, not after a long computation, when ``path`` cannot be written (its folder
    cannot be created or written, or a directory stands at the file's place)."""
    target = Path(path)
    if target.is_dir():
        raise DseError("is a directory; give a file name", source=str(target))
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        raise write_error(target, exc) from None


@contextlib.contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it into place only if the block succeeds.

    A failing stage therefore leaves nothing half-written under the output name.
    """
    with atomic_outputs([path]) as (tmp,):
        yield tmp


@contextlib.contextmanager
def atomic_outputs(paths: Sequence[str | Path]) -> Iterator[list[Path]]:
    """Temporary paths for several files that belong together (e.g. a table and its summary):
    all are renamed into place once every one was written, or none is."""
    for p in paths:
        if Path(p).is_dir():
            raise DseError("is a directory; give a file name", source=str(p))
    with contextlib.ExitStack() as stack:
        tmps = [stack.enter_context(_pending(Path(p))) for p in paths]
        yield [t for t, _ in tmps]
        for tmp, target in tmps:
            try:
                os.replace(tmp, target)
            except OSError as exc:
                raise write_error(target, exc) from None


@contextlib.contextmanager
def _pending(target: Path) -> Iterator[tuple[Path, Path]]:
    """A temporary file beside ``target`` that the caller renames; removed if left behind."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=target.suffix,
                                   dir=target.parent)
        os.close(fd)
    except OSError as exc:
        raise write_error(target, exc) from None
    tmp_path = Path(tmp)
    try:
        usual_mode(tmp_path)
        yield tmp_path, target
    except OSError as exc:
        raise write_error(target, exc) from None
    finally:
        tmp_path.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; it replaces ``path`` only if the block
    succeeds (an old folder of the same name is removed then, not before)."""
    out = Path(path)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
        usual_mode(tmp)
    except OSError as exc:
        raise write_error(out, exc) from None
    try:
        yield tmp
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except OSError as exc:
        raise write_error(out, exc) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def jsonable(obj: Any) -> Any:
    """``json.dumps`` default: tensors/arrays, paths and dataclasses as plain values."""
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "__dataclass_fields__"):
        from dataclasses import asdict

        return asdict(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def json_text(data: Any) -> str:
    return json.dumps(data, indent=2, default=jsonable) + "\n"


def write_json(path: str | Path, data: Any) -> None:
    """Write ``data`` as indented JSON, atomically."""
    with atomic_output(path) as tmp:
        tmp.write_text(json_text(data))


def yaml_text(data: Any) -> str:
    return yaml.safe_dump(json.loads(json.dumps(data, default=jsonable)), sort_keys=False)


def write_yaml(path: str | Path, data: Any) -> None:
    """Write ``data`` as block-style YAML, atomically."""
    with atomic_output(path) as tmp:
        tmp.write_text(yaml_text(data))


def write_csv(path: str | Path, frame: Any) -> None:
    """Write a pandas DataFrame as CSV without its index, atomically."""
    with atomic_output(path) as tmp:
        frame.to_csv(tmp, index=False)


def write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8), atomically."""
    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_figure(path: str | Path, fig: Any, dpi: int = 120) -> None:
    """Render a matplotlib figure to PNG, atomically, and close it."""
    import matplotlib.pyplot as plt

    try:
        with atomic_output(path) as tmp:
            fig.savefig(tmp, dpi=dpi, format="png")
    finally:
        plt.close(fig)


def write_if_changed(path: str | Path, text: str) -> Path:
    """Write ``text`` unless the file already holds exactly it (its mtime then stays, so a
    Snakemake rule depending on it does not rerun)."""
    p = Path(path)
    if not p.is_file() or p.read_text() != text:
        write_text(p, text)
    return p

"""Durability of a study's journal file (Optuna's ``JournalFileBackend``: one JSON record a line).

* :func:`mend_torn_record`: a short write (disk full, quota, a kill during a write) leaves a
  last line without its newline; appending after it would corrupt every later record, so the
  torn tail is cut off (with a warning naming the byte offset) before the study is opened. The
  trial it belonged to was not recorded; its worker reruns it.
* :func:`check_records`: every line must be one JSON record; otherwise the journal is refused
  with the line number and the fix (``dse search --repair``).
* :func:`rebuild`: a study made afresh from the trials' own files (``trials/*/trial.json``, each
  written once its trial was evaluated), for a journal that cannot be read at all.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from dse.errors import DseError

log = logging.getLogger(__name__)


def mend_torn_record(journal: Path) -> int | None:
    """Cut a torn last record off ``journal``; returns the byte offset cut at (None: intact)."""
    if not journal.is_file():
        return None
    size = journal.stat().st_size
    if size == 0:
        return None
    with journal.open("rb") as fh:
        fh.seek(size - 1)
        if fh.read(1) == b"\n":
            return None
        block = 1 << 16
        pos = size
        cut = 0
        while pos > 0:  # the last newline, read backwards in blocks
            start = max(0, pos - block)
            fh.seek(start)
            chunk = fh.read(pos - start)
            i = chunk.rfind(b"\n")
            if i >= 0:
                cut = start + i + 1
                break
            pos = start
    try:
        with journal.open("r+b") as fh:
            fh.truncate(cut)
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        raise DseError(f"the last record is torn (a short write at byte {cut}) and the file "
                       f"cannot be mended ({exc.strerror}); free the space or permissions and "
                       "rerun", source=str(journal)) from None
    log.warning("%s: the last record was torn (a short write); cut it off at byte %d of %d "
                "(its trial was not recorded and will run again)", journal, cut, size)
    return cut


def check_records(journal: Path) -> None:
    """Refuse a journal with a line that is not one JSON record (line number and the fix)."""
    if not journal.is_file():
        return
    with journal.open("rb") as fh:
        for n, line in enumerate(fh, 1):
            try:
                json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError):
                raise DseError(f"line {n} is not a journal record; rebuild the study from its "
                               "trials with `dse search --config ... --study NAME --repair`",
                               source=str(journal)) from None


def rebuild(study: Any, spec: Any, records: Iterable[Mapping[str, Any]]) -> int:
    """Add the complete trials of ``records`` (``trial.json`` contents, in trial order) to a
    fresh ``study``; returns how many. Values and constraints are recomputed from the recorded
    metrics with the study's objectives and constraints."""
    import optuna

    dists = spec.distributions
    n = 0
    for rec in records:
        metrics = rec["metrics"]
        params = {k: v for k, v in rec["params"].items() if k in dists}
        if set(params) != set(dists):
            log.warning("trial record with parameters %s does not fit the study's space; "
                        "left out", sorted(rec["params"]))
            continue
        constraints = {k: v for c in spec.constraints for k, v in c.violations(metrics).items()}
        trial = optuna.trial.create_trial(
            params=params, distributions={k: dists[k] for k in params},
            values=[float(metrics[m]) for m in spec.objectives],
            user_attrs={"metrics": metrics, "trained": bool(rec.get("trained_now")),
                        "training_key": rec.get("training_key"), "worker": rec.get("worker"),
                        "repaired_from": rec.get("number")},
            constraints=constraints or None)
        study.add_trial(trial)
        n += 1
    return n

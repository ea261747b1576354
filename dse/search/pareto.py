"""Pareto fronts of a study: the non-dominated feasible trials, hypervolume, figures."""

from __future__ import annotations

from typing import Any

import moocore
import numpy as np
import pandas as pd


def _loss_matrix(df: pd.DataFrame, objectives: dict[str, str]) -> np.ndarray:
    """Objective values as losses (maximized ones negated), one row per trial."""
    cols = [df[m].to_numpy(float) * (-1.0 if d == "maximize" else 1.0)
            for m, d in objectives.items()]
    return np.stack(cols, axis=1)


RTOL = 1e-9  # objective values this close (relative) are equal: float noise is no trade-off


def non_dominated(losses: np.ndarray, rtol: float = RTOL) -> np.ndarray:
    """Boolean mask of the rows no other row dominates (all <= and one <), values within
    ``rtol`` of each other counting as equal: a design whose accuracy differs by float noise
    (1e-16) but costs more energy is dominated, not a point of the front. Of rows equal in every
    objective, the first is kept."""
    a, b = losses[:, None, :], losses[None, :, :]
    close = np.isclose(a, b, rtol=rtol, atol=0.0)
    le = ((a <= b) | close).all(-1)
    lt = ((a < b) & ~close).any(-1)
    equal = close.all(-1)
    earlier = np.tri(len(losses), k=-1, dtype=bool).T  # row i before row j
    dominated = ((le & lt) | (equal & earlier)).any(0)
    return ~dominated


def pareto_front(trials: pd.DataFrame, objectives: dict[str, str]) -> pd.DataFrame:
    """The feasible, complete, non-dominated trials, best first in the first objective."""
    ok = trials[(trials["state"] == "COMPLETE") & trials["feasible"].astype(bool)]
    if ok.empty:
        return ok
    front = ok[non_dominated(_loss_matrix(ok, objectives))]
    first, direction = next(iter(objectives.items()))
    return front.sort_values(first, ascending=direction == "minimize").reset_index(drop=True)


def knee(front: pd.DataFrame, objectives: dict[str, str]) -> int:
    """Index (label) of the knee of a front: the design closest (Euclidean) to the ideal point
    after min-max normalising every objective over the front — the balanced compromise, where
    improving one objective further costs most in the others (Das, Struct. Optim. 18, 1999,
    normal-boundary knee; here its simplest distance-to-utopia form)."""
    losses = _loss_matrix(front, objectives)
    lo, hi = losses.min(0), losses.max(0)
    norm = (losses - lo) / np.where(hi > lo, hi - lo, 1.0)
    return front.index[int(np.argmin(np.linalg.norm(norm, axis=1)))]


def hypervolume_history(trials: pd.DataFrame, objectives: dict[str, str]) -> pd.DataFrame:
    """Hypervolume of the feasible trials completed so far, after each trial (by number).

    Losses are min-max normalised over all feasible trials and the reference point is 1.1 in
    every normalised objective, so the curve is monotone and comparable between objectives of
    different units (``moocore.hypervolume``, exact).
    """
    ok = trials[(trials["state"] == "COMPLETE") & trials["feasible"].astype(bool)]
    ok = ok.sort_values("number")
    if ok.empty:
        return pd.DataFrame(columns=["number", "hypervolume"])
    losses = _loss_matrix(ok, objectives)
    lo, hi = losses.min(0), losses.max(0)
    norm = (losses - lo) / np.where(hi > lo, hi - lo, 1.0)
    ref = np.full(losses.shape[1], 1.1)
    hv = [float(moocore.hypervolume(norm[:i + 1], ref=ref)) for i in range(len(norm))]
    return pd.DataFrame({"number": ok["number"].to_numpy(), "hypervolume": hv})


def summary(trials: pd.DataFrame, front: pd.DataFrame, spec: Any) -> dict[str, Any]:
    """Study-level figures for the closing note and the report."""
    done = trials[trials["state"] == "COMPLETE"]
    trained = int(done["trained"].fillna(False).astype(bool).sum()) if "trained" in done else 0
    return {"study": spec.name, "trials_complete": len(done),
            "trials_failed": int((trials["state"] == "FAIL").sum()),
            "trainings": trained,
            "trainings_per_trial": trained / len(done) if len(done) else None,
            "pareto_size": len(front), "objectives": spec.objectives,
            "wall_seconds_sum": float(done["seconds"].sum()) if "seconds" in done else None}

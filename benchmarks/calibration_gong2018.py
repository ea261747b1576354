"""Calibration on measured data (issue 18): the Gong et al. 2018 pulse response shipped in
config/measurements/, fitted by dse calibrate (piecewise, exp_step, soft_bounds) and compared
with aihwkit's published fit of the same data (ReRamESPresetDevice,
config/devices/reram-es-gong2018.yaml) as a second method.

For each card: R² of its mean trajectory (from each series' measured start) against the measured
one smoothed over 50 pulses, the trajectory's end vs the measured end, and for the fitted cards
the noise terms and the pulse-to-pulse step σ of a simulation from the card vs the measured one.

    PYTHONPATH=. python benchmarks/calibration_gong2018.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from dse.devices import calibrate, from_card
from dse.devices.fitting import smooth
from dse.pipeline.artifacts import load_card, read_measurements

REPO = Path(__file__).resolve().parents[1]


def trajectory_r2(model, data) -> tuple[float, str]:
    num = den = 0.0
    ends = []
    for s in data.series:
        sm = smooth(s.conductance, 50)
        x0 = float(np.mean(s.conductance[:20]))
        traj = model.trajectory(x0, s.pulses - s.pulses[0], s.direction).numpy()
        num += float(np.sum((sm - traj) ** 2))
        den += float(np.sum((sm - sm.mean()) ** 2))
        ends.append(f"{'up' if s.direction > 0 else 'down'} end {traj[-1]:.3f} "
                    f"(measured {sm[-1]:.3f})")
    return 1 - num / den, "; ".join(ends)


def main() -> None:
    torch.set_num_threads(1)
    data = read_measurements(REPO / "config/measurements/gong2018-reram.updown.csv")
    preset = from_card(load_card(REPO / "config/devices/reram-es-gong2018.yaml"))
    r2, ends = trajectory_r2(preset, data)
    print(f"| aihwkit ReRamESPresetDevice (card reram-es-gong2018) | {r2:.3f} | {ends} | | | |")
    for family in ("piecewise", "exp_step", "soft_bounds"):
        result = calibrate(data, family)
        fit = result.fit
        r2, ends = trajectory_r2(from_card(result.card), data)
        print(f"| dse calibrate {family} | {r2:.3f} | {ends} | {fit['read_sigma']:.4f} / "
              f"{fit['c2c_sigma']:.4f} / {fit['c2c_memory']:.3f} | "
              f"{fit['step_sigma_measured']:.4f} / {fit['step_sigma_simulated']:.4f} | "
              f"{len(fit['warnings'])} |")


if __name__ == "__main__":
    main()

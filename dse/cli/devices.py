"""`dse calibrate` and `dse synthesize`: parsers and handlers."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from dse.errors import DseError

log = logging.getLogger("dse")


# ----------------------------------------------------------------------- calibrate / synthesize
def add_calibrate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("calibrate", help="fit a device family to a measurement file -> card")
    p.add_argument("data", type=Path, help="measurement file (CSV/TSV)")
    p.add_argument("--family", required=True, help="device family (e.g. soft_bounds, rram_2t2r)")
    p.add_argument("--format", default="auto",
                   choices=["auto", "updown", "long", "ramps", "ber", "relaxation"],
                   help="file format (default: detected)")
    p.add_argument("--out", required=True, type=Path, help="card to write (.json or .yaml)")
    p.add_argument("--figure", type=Path, default=None, help="fit figure to write (.png)")
    p.add_argument("--name", default=None, help="card name (default: the output file's stem)")
    p.add_argument("--base", type=Path, default=None,
                   help="card whose values are kept for parameters the file cannot determine")
    p.add_argument("--seed", type=int, default=0, help="seed of the simulated response")
    p.add_argument("--direction", default="auto", choices=["auto", "up", "down", "alternating"],
                   help="pulse direction of the ramps: up/down = single-direction ramps (for "
                        "updown/long files: keep only that direction), alternating = set, "
                        "reset, ...; default: read from the data (docs/measurements.md)")
    p.add_argument("--reset", type=Path, default=None, metavar="FILE",
                   help="a file of RESET (down) ramps fitted with DATA's SET (up) ramps")
    p.add_argument("--fit", action="append", default=[], metavar="KEY=VALUE",
                   help="fit limit (min_r2, warn_r2, bound_margin, max_noise_ratio, "
                        "max_rel_stderr, strict); repeatable")
    p.set_defaults(func=_cmd_calibrate)


def _fit_limits(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise DseError(f"--fit {item}: write KEY=VALUE (e.g. --fit min_r2=0.9)")
        out[key.strip()] = value.strip()
    return out


def _cmd_calibrate(args: argparse.Namespace) -> int:
    from dse.devices import calibrate, fit_figure
    from dse.pipeline import artifacts, files

    outs = [args.out] + ([args.figure] if args.figure is not None else [])
    for out in outs:
        files.check_writable(out)
    if args.reset is not None:
        if args.direction != "auto":
            raise DseError("--reset pairs DATA (SET ramps) with FILE (RESET ramps); drop "
                           f"--direction {args.direction}")
        data = artifacts.read_measurement_pair(args.data, args.reset, args.format)
    else:
        data = artifacts.read_measurements(args.data, args.format, direction=args.direction)
    base = artifacts.load_card(args.base) if args.base is not None else None
    result = calibrate(data, args.family, name=args.name or args.out.stem, base=base,
                       seed=args.seed, limits=_fit_limits(args.fit))
    text = files.yaml_text(result.card) if args.out.suffix in (".yaml", ".yml") \
        else files.json_text(result.card)
    if args.figure is not None:
        artifacts.write_card_and_figure(args.out, text, args.figure, fit_figure(result))
    else:
        files.write_text(args.out, text)
    fit = result.fit
    log.info("calibrated %s (%s) from %s: R2 %.4f, residual sigma %.4g -> %s",
             result.card["name"], args.family, data.path, fit["r2"], fit["residual_sigma"],
             args.out)
    for w in fit.get("warnings", []):
        log.warning("%s: %s", args.out, w)
    return 0


def add_synthesize(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("synthesize",
                       help="simulate a synthetic measurement file from a device card")
    p.add_argument("--card", required=True, type=Path, help="reference device card")
    p.add_argument("--format", required=True, choices=["long", "updown", "ramps", "ber"])
    p.add_argument("--out", required=True, type=Path, help="measurement file to write")
    p.add_argument("--devices", type=int, default=4, help="devices (long format)")
    p.add_argument("--cycles", type=int, default=1, help="up/down cycles per device")
    p.add_argument("--pulses", type=int, default=200, help="pulses per ramp")
    p.add_argument("--every", type=int, default=1, help="weak_reset: pulses between reads")
    p.add_argument("--trials", type=int, default=100_000, help="ber: trials per point")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_synthesize)


def _cmd_synthesize(args: argparse.Namespace) -> int:
    from dse.devices import synthesize
    from dse.pipeline import artifacts, files

    for k in ("devices", "cycles", "pulses", "every", "trials"):
        if getattr(args, k) < 1:
            raise DseError(f"--{k} must be at least 1")
    command = (f"dse synthesize --card {args.card} --format {args.format} --devices "
               f"{args.devices} --cycles {args.cycles} --pulses {args.pulses} --every "
               f"{args.every} --trials {args.trials} --seed {args.seed} --out {args.out}")
    files.check_writable(args.out)
    text = synthesize(artifacts.load_card(args.card), args.format, devices=args.devices,
                      cycles=args.cycles, pulses=args.pulses, every=args.every,
                      trials=args.trials, seed=args.seed, command=command)
    files.write_text(args.out, text)
    log.info("synthetic %s measurements from %s -> %s", args.format, args.card, args.out)
    return 0

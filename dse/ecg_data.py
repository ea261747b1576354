"""ECG beat data sets: the MIT-BIH Arrhythmia Database from its WFDB files, and a synthetic
stand-in that ships with dse.

* ``mitbih``: the 48 half-hour two-lead records of the MIT-BIH Arrhythmia Database (Moody &
  Mark, IEEE Eng. Med. Biol. 20(3):45-50, 2001, doi 10.1109/51.932724), in their native WFDB
  files (``{record}.hea``, ``.dat`` format 212, ``.atr`` reference annotations) under
  ``data_root/mitdb/`` (PhysioNet's ``mitdb``, https://physionet.org/content/mitdb/). Beats are
  cut from the first signal (MLII in the records used) around each annotated R peak
  (``BEFORE`` samples before it, ``AFTER`` from it on: 0.25 s + 0.46 s at 360 Hz, assumption:
  the P wave to the end of the T wave), standardised per beat (zero mean, unit variance;
  assumption), labelled by the AAMI EC57 classes of de Chazal et al. (IEEE Trans. Biomed. Eng.
  51(7):1196-1206, 2004, doi 10.1109/TBME.2004.827359; Table I) and split inter-patient: the
  22 records of DS1 train, the 22 of DS2 test (their Section II-A; the paced records 102, 104,
  107 and 217 are in neither). Annotations of other types (rhythm, noise, ...) are not beats.
* ``ecg-synthetic``: SYNTHETIC beats, NOT real ECG: sums of Gaussian P, Q, R, S and T waves
  whose shapes differ by AAMI class (assumption: textbook morphology, premature ventricular
  beats wide and without P wave, paced beats with a pacing spike, fusion beats between normal
  and ventricular), with jitter, baseline wander and noise, drawn once from a fixed seed. No
  data set of real ECG beats ships with a dependency on the registries dse installs from
  (checked: scipy.datasets.electrocardiogram and neurokit2's examples are fetched over the
  network by pooch/urllib at first use; the ``wfdb`` package ships no records), so this is the
  embedded default that lets an ECG experiment run with nothing downloaded.

Beats are ``(N, 1, 1, L)`` float32 (a 1-D signal as an image of height 1), labels int64 in
``CLASSES`` order.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from dse.errors import DseError
from dse.wfdb import parse_annotations, parse_header, read_signals

CLASSES = ("N", "S", "V", "F", "Q")
AAMI = {**dict.fromkeys("NLRej", 0), **dict.fromkeys("AaJS", 1), **dict.fromkeys("VE", 2),
        "F": 3, **dict.fromkeys("/fQ", 4)}
DS1 = ("101", "106", "108", "109", "112", "114", "115", "116", "118", "119", "122", "124",
       "201", "203", "205", "207", "208", "209", "215", "220", "223", "230")
DS2 = ("100", "103", "105", "111", "113", "117", "121", "123", "200", "202", "210", "212",
       "213", "214", "219", "221", "222", "228", "231", "232", "233", "234")
FOLDER = "mitdb"
BEFORE, AFTER = 90, 166  # samples around the R peak at 360 Hz (256 in all)
SUFFIXES = (".hea", ".dat", ".atr")


def record_files(root: str | Path, records: Sequence[str] = DS1 + DS2) -> list[Path]:
    """The files of ``records`` under ``root/mitdb``."""
    folder = Path(root) / FOLDER
    return [folder / f"{r}{s}" for r in records for s in SUFFIXES]


def segment_beats(signal: np.ndarray, samples: np.ndarray, symbols: Sequence[str],
                  before: int = BEFORE, after: int = AFTER) -> tuple[np.ndarray, np.ndarray]:
    """(beats (k, before + after), AAMI labels (k,)): a window around every beat annotation
    whose window lies inside the signal; non-beat annotations are left out."""
    labels = np.array([AAMI.get(s, -1) for s in symbols], dtype=np.int64)
    keep = (labels >= 0) & (samples - before >= 0) & (samples + after <= len(signal))
    idx = samples[keep][:, None] + np.arange(-before, after)[None, :]
    return signal[idx].astype(np.float32), labels[keep]


def standardise(beats: np.ndarray) -> np.ndarray:
    """Zero mean and unit variance per beat (a flat beat stays zero)."""
    centred = beats - beats.mean(axis=1, keepdims=True)
    std = centred.std(axis=1, keepdims=True)
    return centred / np.where(std > 0, std, 1.0)


def _read(path: Path) -> bytes:
    if not path.is_file():
        raise DseError(f"MIT-BIH file missing; put the records of PhysioNet's mitdb (.hea, "
                       f".dat, .atr) in {path.parent}", source=str(path))
    return path.read_bytes()


def read_record(folder: Path, record: str, before: int = BEFORE,
                after: int = AFTER) -> tuple[np.ndarray, np.ndarray]:
    """The standardised beats and AAMI labels of one record's first signal."""
    hea = folder / f"{record}.hea"
    header = parse_header(_read(hea), str(hea))
    dat = folder / header.signals[0].file
    signal = read_signals(header, _read(dat), str(dat))[:, 0]
    atr = folder / f"{record}.atr"
    samples, symbols = parse_annotations(_read(atr), str(atr))
    beats, labels = segment_beats(signal, samples, symbols, before, after)
    return standardise(beats), labels


def _stack(folder: Path, records: Sequence[str], before: int,
           after: int) -> tuple[np.ndarray, np.ndarray]:
    parts = [read_record(folder, r, before, after) for r in records]
    x = np.concatenate([p[0] for p in parts]).reshape(-1, 1, 1, before + after)
    return x, np.concatenate([p[1] for p in parts])


def load_mitbih(root: str | Path, train: Sequence[str] = DS1, test: Sequence[str] = DS2,
                before: int = BEFORE, after: int = AFTER) -> tuple[np.ndarray, ...]:
    """(x_train, y_train, x_test, y_test) of the inter-patient split (records ``train`` and
    ``test`` under ``root/mitdb``)."""
    folder = Path(root) / FOLDER
    overlap = sorted(set(train) & set(test))
    if overlap:
        raise DseError(f"records {overlap} are in both the train and the test split: the "
                       "inter-patient split keeps every patient on one side")
    x_tr, y_tr = _stack(folder, train, before, after)
    x_te, y_te = _stack(folder, test, before, after)
    if len(y_tr) == 0 or len(y_te) == 0:
        raise DseError("no beat annotations found in the MIT-BIH records; check the .atr files",
                       source=str(folder))
    return x_tr, y_tr, x_te, y_te


# ---------------------------------------------------------------------------- synthetic
FS = 360.0
# class -> waves (amplitude mV, centre ms from the R peak, width ms); assumption (module doc)
_NORMAL = [(0.15, -200, 25), (-0.10, -30, 10), (1.00, 0, 12), (-0.25, 30, 10), (0.30, 250, 50)]
_VENTRICULAR = [(0.0, -200, 25), (0.0, -30, 10), (0.80, 20, 40), (-0.50, 90, 40),
                (-0.40, 300, 70)]
_TEMPLATES = np.array([
    _NORMAL,
    [(-0.10, -150, 20), (-0.10, -30, 10), (0.95, 0, 12), (-0.25, 30, 10), (0.20, 230, 45)],
    _VENTRICULAR,
    [tuple((a + b) / 2 for a, b in zip(n, v, strict=True))
     for n, v in zip(_NORMAL, _VENTRICULAR, strict=True)],
    [(1.50, -40, 2), (0.0, -30, 10), (0.70, 20, 35), (-0.30, 80, 35), (-0.20, 300, 60)],
], dtype=np.float64)  # (class, wave, [amplitude, centre, width])
PRIORS = (0.6, 0.1, 0.15, 0.05, 0.1)  # assumption: N-dominated, as in real recordings


def synthetic_beats(n: int, seed: int, before: int = BEFORE,
                    after: int = AFTER) -> tuple[np.ndarray, np.ndarray]:
    """``n`` SYNTHETIC standardised beats (n, 1, 1, L) and their AAMI labels."""
    rng = np.random.default_rng(seed)
    y = rng.choice(len(CLASSES), size=n, p=PRIORS)
    waves = _TEMPLATES[y]  # (n, 5, 3)
    amp = waves[..., 0] * rng.normal(1.0, 0.3, size=waves.shape[:2])
    centre = waves[..., 1] + rng.normal(0.0, 20.0, size=waves.shape[:2])
    width = waves[..., 2] * rng.uniform(0.7, 1.3, size=waves.shape[:2])
    t = (np.arange(-before, after) / FS * 1000.0)[None, None, :]  # ms
    x = (amp[..., None] * np.exp(-0.5 * ((t - centre[..., None]) / width[..., None]) ** 2))
    x = x.sum(axis=1)
    phase = rng.uniform(0, 2 * np.pi, size=(n, 1))
    x += 0.1 * np.sin(2 * np.pi * 0.3 * t[0] / 1000.0 + phase)  # baseline wander, 0.3 Hz
    x += rng.normal(0.0, 0.15, size=x.shape)
    return standardise(x).astype(np.float32).reshape(n, 1, 1, -1), y.astype(np.int64)

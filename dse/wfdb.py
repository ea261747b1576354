"""Reading PhysioNet WFDB records from bytes, with numpy: headers, format-212 signals and
MIT-format annotations (the MIT-BIH Arrhythmia Database's ``.hea``, ``.dat`` and ``.atr``).

The formats are those of the WFDB Software Package documentation (G. B. Moody, "WFDB
Applications Guide" / the ``header(5)``, ``signal(5)`` and ``annot(5)`` manual pages,
PhysioNet; Goldberger et al., Circulation 101(23):e215-e220, 2000, doi
10.1161/01.CIR.101.23.e215):

* header: a record line ``name[/segments] n_signals [fs[/counter][(base)] [n_samples ...]]`` and
  one line per signal ``file format[xN][:skew][+offset] [gain[(baseline)][/units] [resolution
  [adc_zero [initial [checksum [block_size [description]]]]]]]``; ``#`` starts a comment.
* format 212: two 12-bit two's-complement samples in three bytes, the first in byte 0 and the
  low nibble of byte 1, the second in byte 2 and the high nibble of byte 1; the samples of the
  signals of one file are interleaved frame by frame.
* MIT annotations: 16-bit little-endian words, type code A = word >> 10 and I = word & 1023;
  A = 59 (SKIP): the next two words are a 32-bit time increment (high word first); A = 60, 61,
  62 (NUM, SUB, CHN) set fields of the annotation; A = 63 (AUX): I bytes of text follow (padded
  to an even count); otherwise I is the time increment of an annotation of type A; the word 0
  ends the file.

The PyPI package ``wfdb`` (the PhysioNet reader) installs here too; dse does not depend on it:
these readers are all the MIT-BIH loader needs. Every reader raises a one-line DseError naming
the source on malformed input.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dse.errors import DseError

# MIT annotation codes (ecgcodes.h of the WFDB library) -> symbol; codes not listed are non-beat
SYMBOLS = {1: "N", 2: "L", 3: "R", 4: "a", 5: "V", 6: "F", 7: "J", 8: "A", 9: "S", 10: "E",
           11: "j", 12: "/", 13: "Q", 14: "~", 16: "|", 18: "s", 19: "T", 20: "*", 21: "D",
           22: '"', 23: "=", 24: "p", 25: "B", 26: "^", 27: "t", 28: "+", 29: "u", 30: "?",
           31: "!", 32: "[", 33: "]", 34: "e", 35: "n", 36: "@", 37: "x", 38: "f", 39: "(",
           40: ")", 41: "r"}
CODES = {s: c for c, s in SYMBOLS.items()}
SKIP, NUM, SUB, CHN, AUX = 59, 60, 61, 62, 63


@dataclass(frozen=True)
class SignalSpec:
    """One signal line of a header."""

    file: str
    fmt: int
    gain: float
    baseline: int
    units: str
    adc_zero: int
    description: str


@dataclass(frozen=True)
class Header:
    """A WFDB record header."""

    record: str
    fs: float
    n_samples: int
    signals: tuple[SignalSpec, ...]


def _num(text: str, what: str, source: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise DseError(f"header: {what} '{text}' is not a number; is this a WFDB .hea file?",
                       source=source) from None


def _signal(fields: list[str], source: str) -> SignalSpec:
    """One signal line (fields split on whitespace)."""
    if len(fields) < 2:
        raise DseError("header: a signal line needs at least a file name and a format",
                       source=source)
    fmt_text = fields[1].split("x")[0].split(":")[0].split("+")[0]
    fmt = int(_num(fmt_text, "signal format", source))
    gain, baseline, units = 200.0, None, "mV"  # WFDB defaults (DEFGAIN 200 adu/mV)
    if len(fields) > 2:
        g = fields[2]
        if "/" in g:
            g, units = g.split("/", 1)
        if "(" in g:
            g, b = g.rstrip(")").split("(", 1)
            baseline = int(_num(b, "baseline", source))
        gain = _num(g, "gain", source) or 200.0  # a gain of 0 means uncalibrated: the default
    adc_zero = int(_num(fields[4], "ADC zero", source)) if len(fields) > 4 else 0
    description = " ".join(fields[8:]) if len(fields) > 8 else ""
    return SignalSpec(file=fields[0], fmt=fmt, gain=gain,
                      baseline=adc_zero if baseline is None else baseline, units=units,
                      adc_zero=adc_zero, description=description)


def parse_header(raw: bytes, source: str = "header") -> Header:
    """A ``.hea`` file's record line and signal lines."""
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        raise DseError("header: not ASCII text; is this a WFDB .hea file?", source=source) \
            from None
    lines = [ln.split("#", 1)[0].strip() for ln in text.splitlines()]
    lines = [ln for ln in lines if ln]
    if not lines:
        raise DseError("header: empty file", source=source)
    rec = lines[0].split()
    if len(rec) < 2:
        raise DseError("header: the record line needs a name and a signal count", source=source)
    n_sig = int(_num(rec[1], "signal count", source))
    fs = _num(rec[2].split("/")[0].split("(")[0], "sampling frequency", source) \
        if len(rec) > 2 else 250.0
    n_samples = int(_num(rec[3], "sample count", source)) if len(rec) > 3 else 0
    if len(lines) - 1 < n_sig:
        raise DseError(f"header: {n_sig} signals announced, {len(lines) - 1} signal lines found",
                       source=source)
    signals = tuple(_signal(ln.split(), source) for ln in lines[1:1 + n_sig])
    return Header(record=rec[0].split("/")[0], fs=fs, n_samples=n_samples, signals=signals)


def decode_212(raw: bytes, n_signals: int, source: str = "signal file") -> np.ndarray:
    """Digital samples of a format-212 file, shape (n_samples, n_signals), int16."""
    b = np.frombuffer(raw, dtype=np.uint8)
    b = b[: len(b) - len(b) % 3].reshape(-1, 3).astype(np.int16)
    first = b[:, 0] | ((b[:, 1] & 0x0F) << 8)
    second = b[:, 2] | ((b[:, 1] & 0xF0) << 4)
    s = np.stack([first, second], axis=1).reshape(-1)
    s = np.where(s > 2047, s - 4096, s).astype(np.int16)  # 12-bit two's complement
    n = len(s) // n_signals
    if n == 0:
        raise DseError("signal file holds no complete frame", source=source)
    return s[: n * n_signals].reshape(n, n_signals)


def read_signals(header: Header, raw: bytes, source: str = "signal file") -> np.ndarray:
    """Physical values (digital − baseline)/gain of every signal, (n_samples, n_signals),
    float32. All signals must be in one format-212 file (the MIT-BIH layout)."""
    files = {s.file for s in header.signals}
    fmts = {s.fmt for s in header.signals}
    if len(files) != 1 or fmts != {212}:
        raise DseError(f"signal formats {sorted(fmts)} in {len(files)} files: only format 212 "
                       "in one file per record is read (the MIT-BIH layout)", source=source)
    digital = decode_212(raw, len(header.signals), source)
    if header.n_samples and len(digital) < header.n_samples:
        raise DseError(f"signal file is truncated: {len(digital)} of {header.n_samples} "
                       "samples; re-fetch the record", source=source)
    if header.n_samples:
        digital = digital[: header.n_samples]
    base = np.array([s.baseline for s in header.signals], dtype=np.float32)
    gain = np.array([s.gain for s in header.signals], dtype=np.float32)
    return (digital.astype(np.float32) - base) / gain


def parse_annotations(raw: bytes, source: str = "annotation file") -> tuple[np.ndarray, list[str]]:
    """(sample index, symbol) of every annotation of an MIT-format file (``.atr``)."""
    if len(raw) % 2:
        raw = raw[:-1]
    words = np.frombuffer(raw, dtype="<u2")
    samples: list[int] = []
    symbols: list[str] = []
    t, i, n = 0, 0, len(words)
    while i < n:
        w = int(words[i])
        a, v = w >> 10, w & 0x3FF
        i += 1
        if w == 0:
            break
        if a == SKIP:
            if i + 2 > n:
                raise DseError("annotation file ends inside a SKIP", source=source)
            t += (int(words[i]) << 16) | int(words[i + 1])  # PDP-11 long: high word first
            if t >= 1 << 31:
                t -= 1 << 32
            i += 2
        elif a == AUX:
            i += (v + 1) // 2
        elif a in (NUM, SUB, CHN):
            pass
        else:
            t += v
            samples.append(t)
            symbols.append(SYMBOLS.get(a, "?"))
    return np.asarray(samples, dtype=np.int64), symbols

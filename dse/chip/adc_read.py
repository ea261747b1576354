"""The read steps of :mod:`dse.chip.adc_quant` for bit-sliced weights and quantized inputs.

``read_sliced``: the partial sums of every slice column of a bit-sliced layer
(:mod:`dse.chip.slicing`) converted on their own with the row group's range, shift-added, the
pair subtracted or, for offset signing, the reference column (the last one: Σx, read exactly —
assumption: the map stage counts no conversion of it) removed together with every cell's HRS
current (with ``pair_subtraction: analog`` one column per slice and pair, the difference of
its two cells, combined by place value). ``quantized_inputs``: inputs quantized to the layer's
``in_bits`` over [0, x_max] (x_max calibrated with the ADC ranges; negative inputs, if
calibration saw any, in a second pass of −x), read once (``inputs: dac``) or one bit plane at
a time (``inputs: bit_serial``, DNN+NeuroSim's bit-serial inputs: each plane's partial sums
converted, then shift-added).
The only Python loops are over bit planes (at most ``in_bits``) and signs.
"""

from __future__ import annotations

from typing import Any

import torch

# Smallest ADC step: a group whose calibration partial sums are all equal (e.g. rows that only
# see always-black border pixels) gets a zero range; its step must stay invertible in float32.
STEP_FLOOR = 1e-30


def quantize_uniform(p: torch.Tensor, lo: torch.Tensor | float, hi: torch.Tensor | float,
                     bits: int) -> torch.Tensor:
    """An N-bit uniform converter: 2^N codes from ``lo`` to ``hi`` (round to nearest, values
    outside the range clipped to its ends)."""
    top = float(2 ** int(bits) - 1)
    lo_t = torch.as_tensor(lo, dtype=p.dtype, device=p.device)
    hi_t = torch.as_tensor(hi, dtype=p.dtype, device=p.device)
    step = ((hi_t - lo_t) / top).clamp(min=STEP_FLOOR)
    return lo_t + step * torch.round((p - lo_t) / step).clamp(0.0, top)


def read_sliced(ro: Any, p: torch.Tensor, g: int, dim: int) -> torch.Tensor:
    """``LayerReadout.read`` of bit-sliced weights (see the module docstring)."""
    sl = ro.spec.slicing
    assert sl is not None
    ref = None
    if sl.signing == "offset":
        n = p.shape[dim] - 1
        ref, p = p.narrow(dim, n, 1), p.narrow(dim, 0, n)
    if ro._calib is not None:
        lo, hi = ro._calib
        lo[g] = min(lo[g], float(p.min()))
        hi[g] = max(hi[g], float(p.max()))
    elif ro.quantize:
        p = quantize_uniform(p, ro.lo[g], ro.hi[g], ro.spec.bits)
    if ro.spec.analog_pairs:  # one column per slice: its pair's difference, already signed
        v = p.unflatten(dim, (sl.slices, -1)).movedim(dim - 1, -1)
        code = v @ sl.place_values(v)
    else:
        code = sl.combine(p.unflatten(dim, (sl.cells, -1)), dim=dim - 1)
    if ref is not None:
        place = float(sl.place_values(p).sum())
        code = code - (sl.offset + ro.offset * place) * ref
    return code * (ro.w_max / sl.q_max)


def quantized_inputs(ro: Any, run: Any, x: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """``run(inputs, cols)`` over the quantized inputs (see the module docstring)."""
    top = float(2 ** ro.in_bits - 1)
    if ro._calib is not None:
        ro._x_calib = max(ro._x_calib, float(x.abs().max()))
        ro.signed = ro.signed or bool(x.min() < 0)
        x_max = ro._x_calib
    else:
        x_max = ro.x_max
    scale = max(x_max, STEP_FLOOR) / top
    if ro.spec.inputs == "dac":
        lo = -top if ro.signed else 0.0
        return run(torch.round(x / scale).clamp(lo, top) * scale, cols)
    out = None
    for sign in ((1.0, -1.0) if ro.signed else (1.0,)):
        code = torch.round((sign * x).clamp(min=0) / scale).clamp(0.0, top)
        for t in range(ro.in_bits):
            plane = torch.remainder(torch.floor(code / 2 ** t), 2.0)
            y = run(plane, cols) * (sign * scale * 2 ** t)
            out = y if out is None else out + y
    assert out is not None
    return out

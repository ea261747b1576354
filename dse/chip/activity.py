"""Input activity measured from data: the fraction of 1s in the bit planes a layer's rows see.

An ADC chip applies a b-bit input bit-serially, one bit plane per read cycle; a row whose bit is
0 is not driven, so the cells' read current and the word-line charging scale with the share of
1s (DNN+NeuroSim's ``activityRowRead``, counted from the real input vectors in
``ProcessingUnit.cpp``; :mod:`dse.chip.array_energy`). Each layer's input is quantized to its
``in_bits`` over [0, max |x|] of the batch, as the accuracy path does
(:func:`dse.chip.adc_read.quantized_inputs`), and the activity is the mean of its bits over
elements, bit planes and images. Negative inputs count by magnitude (the accuracy path applies
them in a second, negated pass). For a convolution the input elements stand for the im2col rows
(padding zeros are not counted).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch


def bit_plane_activity(x: torch.Tensor, bits: int) -> float:
    """Fraction of 1s in the ``bits`` bit planes of ``|x|`` quantized to 2^bits − 1 levels over
    [0, max |x|] (0 for an all-zero tensor)."""
    mag = x.detach().abs()
    top = 2 ** int(bits) - 1
    x_max = float(mag.max()) if mag.numel() else 0.0
    if x_max <= 0:
        return 0.0
    code = torch.round(mag / (x_max / top)).clamp(0, top).to(torch.int64)
    shifts = torch.arange(int(bits), device=code.device)
    ones = (code.unsqueeze(-1) >> shifts) & 1
    return float(ones.float().mean())


def input_bit_activity(model: Any, x: torch.Tensor,
                       bits: int | Mapping[str, int] = 8) -> dict[str, float]:
    """{layer name: input activity} of a :class:`dse.nn.QNet`'s weight layers on images ``x``
    (``bits``: the input width, one number or {layer: in_bits}, e.g. from the mapping)."""
    acts: dict[str, float] = {}

    def hook(name: str) -> Any:
        def record(_m: Any, args: tuple[torch.Tensor, ...]) -> None:
            b = bits.get(name, 8) if isinstance(bits, Mapping) else bits
            acts[name] = bit_plane_activity(args[0], b)
        return record

    handles = [layer.register_forward_pre_hook(hook(name))
               for name, layer in model.quant_layers()]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return acts


MAX_IMAGES = 256  # images the activity is measured on (a mean over bits: a small sample does)


def mapping_activity(model: Any, mapping: Any, chip: Any,
                     x: torch.Tensor) -> dict[str, float] | None:
    """{layer: input activity} of a mapped model on images ``x`` (at most :data:`MAX_IMAGES`),
    each layer's inputs at the mapping's ``in_bits``; None for chips whose cell energy does not
    depend on it (:func:`dse.chip.array_energy.sensed`)."""
    from dse.chip.array_energy import sensed

    if chip is None or not sensed(chip) or not len(x):
        return None
    return input_bit_activity(model, x[:MAX_IMAGES], {lm.name: lm.in_bits for lm in mapping.layers})

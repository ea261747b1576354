"""Test accuracy of many fault maps at once: M weight sets stacked along a leading dimension,
evaluated with ``torch.vmap(torch.func.functional_call(...))`` over image chunks (the inject
stage's inner loop, :mod:`dse.chip.inject`).

A fully connected first layer sees the same input in every map, so it is computed once clean
plus one sparse product over the changed weights of all maps (when few changed). Layers read
through ADCs (:mod:`dse.chip.adc_quant`) get their maps' column matrices. No Python loop runs
over weights or maps (only over layers, row groups and chunks of images).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch.func import functional_call, vmap


def _activation_size(model: Any) -> int:
    """Largest per-sample activation (elements) in the body, from a one-sample pass."""
    sizes = [int(math.prod(model.spec.input_shape))]
    hooks = [c.register_forward_hook(lambda mod, i, o: sizes.append(o[0].numel()))
             for c in model.body.children()]
    p = next(model.parameters())
    try:
        with torch.no_grad():
            model.body(torch.zeros(1, *model.spec.input_shape, dtype=p.dtype, device=p.device))
    finally:
        for h in hooks:
            h.remove()
    return max(sizes)


SPARSE_FIRST_LAYER = 0.02  # changed-weight fraction below which layer 1 uses the sparse path


class _FirstLinear:
    """Layer 1 of M fault maps when it is fully connected: its input is the same for every map,
    so ``z @ W_m.T = z @ W.T + z @ (W_m − W).T`` — one clean product plus one sparse product
    over the changed weights (all maps at once). Dense when many weights changed."""

    def __init__(self, w_clean: torch.Tensor, w_maps: torch.Tensor,
                 changed: float | None = None) -> None:
        self.w = w_clean
        self.m, self.out = int(w_maps.shape[0]), int(w_maps.shape[1])
        self.dense: torch.Tensor | None = w_maps.reshape(self.m * self.out, -1)
        self.delta = None
        if changed is None or changed <= SPARSE_FIRST_LAYER:
            delta = self.dense - w_clean.repeat(self.m, 1)
            if int(torch.count_nonzero(delta)) <= SPARSE_FIRST_LAYER * delta.numel():
                self.delta, self.dense = delta.to_sparse(), None

    def __call__(self, z: torch.Tensor) -> torch.Tensor:  # z: (B, in) -> (M, B, out)
        if self.dense is not None:  # one GEMM for all maps: (B, in) x (in, M*out)
            return (z @ self.dense.T).view(len(z), self.m, self.out).transpose(0, 1)
        base = z @ self.w.T
        corr = torch.sparse.mm(self.delta, z.T).view(self.m, self.out, -1).transpose(1, 2)
        return base.unsqueeze(0) + corr


class _FirstLinearAdc:
    """:class:`_FirstLinear` on a chip with ADCs: the same shortcut per row group (the group's
    clean partial sums plus one sparse product over its changed cells for all maps, or one dense
    product), then each group's partial sums are converted and added (:mod:`dse.chip.adc_quant`).
    """

    def __init__(self, readout: Any, w_clean: torch.Tensor, w_maps: torch.Tensor,
                 levels: torch.Tensor | None = None, changed: float | None = None,
                 gain: torch.Tensor | None = None) -> None:
        self.readout, self.gain = readout, gain  # gain: (M,) digital gain after the ADCs
        self.m = int(w_maps.shape[0])
        self.clean = readout.columns(w_clean)  # (k*C, R)
        cols = readout.columns(w_maps, levels)  # (M, k*C, R)
        self.kc = int(cols.shape[1])
        self.dense: torch.Tensor | None = cols.reshape(self.m * self.kc, -1)
        self.deltas: list[torch.Tensor] = []
        if changed is None or changed <= SPARSE_FIRST_LAYER:
            delta = self.dense - self.clean.repeat(self.m, 1)
            if int(torch.count_nonzero(delta)) <= SPARSE_FIRST_LAYER * delta.numel():
                sp = delta.to_sparse().coalesce()
                idx, val = sp.indices(), sp.values()
                for a, b in readout.groups:  # the changed cells of each row group
                    keep = (idx[1] >= a) & (idx[1] < b)
                    self.deltas.append(torch.sparse_coo_tensor(
                        torch.stack([idx[0][keep], idx[1][keep] - a]), val[keep],
                        (self.m * self.kc, b - a), check_invariants=False, is_coalesced=True))
                self.dense = None

    def __call__(self, z: torch.Tensor) -> torch.Tensor:  # z: (B, in) -> (M, B, out)
        out = None
        for g, (a, b) in enumerate(self.readout.groups):
            zt = z[:, a:b].T  # partial sums laid out (M, k*C, B): contiguous for the ADC passes
            if self.dense is not None:
                p = (self.dense[:, a:b] @ zt).view(self.m, self.kc, -1)
            else:
                p = torch.sparse.mm(self.deltas[g], zt).view(self.m, self.kc, -1)
                p += self.clean[:, a:b] @ zt
            y = self.readout.read(p, g, -2)  # (M, C, B)
            out = y if out is None else out.add_(y)
        assert out is not None
        if self.gain is not None:
            out.mul_(self.gain.view(-1, 1, 1))
        return out.transpose(1, 2)


def split_first_layer(model: Any, weights: dict[str, torch.Tensor],
                      changed: float | None) -> tuple[Any, Any, Any, dict[str, torch.Tensor]]:
    """(prefix, head, rest, params): the layers before the first weight layer, the first layer
    as one shared product when it is fully connected (else None), the layers after it and the
    stacked weights ``rest`` takes."""
    from collections import OrderedDict

    from torch import nn

    children = list(model.body.named_children())
    first = next(i for i, (_, c) in enumerate(children) if hasattr(c, "quantized_weight"))
    name, layer = children[first]
    prefix = nn.Sequential(OrderedDict(children[:first]))
    serial = getattr(getattr(layer, "readout", None), "serial", False)
    if not (isinstance(layer, nn.Linear) and f"{name}.weight" in weights) or serial:
        return prefix, None, nn.Sequential(OrderedDict(children[first:])), dict(weights)
    with torch.no_grad():
        if layer.readout is not None:
            head: Any = _FirstLinearAdc(layer.readout, layer.quantized_weight().detach(),
                                        weights[f"{name}.weight"],
                                        weights.get(f"{name}.cell_levels"), changed,
                                        weights.get(f"{name}.cell_gain"))
        else:
            head = _FirstLinear(layer.quantized_weight().detach(), weights[f"{name}.weight"],
                                changed)
    params = {k: v for k, v in weights.items()
              if k not in (f"{name}.weight", f"{name}.cell_levels", f"{name}.cell_gain")}
    return prefix, head, nn.Sequential(OrderedDict(children[first + 1:])), params


def map_accuracies(model: Any, weights: dict[str, torch.Tensor], x: torch.Tensor,
                   y: torch.Tensor, max_elements: float = 8e6,
                   changed: float | None = None, split: tuple | None = None) -> torch.Tensor:
    """Test accuracy of each of the M stacked weight sets in ``weights`` (vmapped passes over
    image chunks; a chunk is sized so one activation tensor holds <= ``max_elements``).

    ``changed``: the expected fraction of changed weights, if known (skips measuring it when
    it is too large for the sparse first-layer product). Layers with an ADC read-out attached
    (:meth:`dse.chip.adc_quant.AdcReadout.attached`) are read through it, from their cells'
    levels when ``weights`` holds ``"<layer>.cell_levels"``. ``split``: the
    :func:`split_first_layer` of these weights, reused (tasks that share their weights)."""
    m = next(iter(weights.values())).shape[0]
    size = _activation_size(model)
    if hasattr(model.encoder, "fold"):  # several binary passes per image (stochastic_output)
        size *= int(model.encoder.length)
    readouts = [ly.readout for _, ly in model.quant_layers() if ly.readout is not None]
    if readouts:  # the read-out holds k (+1) partial-sum tensors of an output's size per group
        size *= 1 + max(r.spec.cells_per_weight for r in readouts)
    chunk = int(max(1, min(len(x), max_elements // (m * size))))
    prefix, head, rest, params = split if split is not None else \
        split_first_layer(model, weights, changed)
    params = dict(params)  # a reused split stays whole
    # layers read through ADCs get their maps' column matrices, built once for all image chunks
    for lname, ly in model.quant_layers():
        if ly.readout is not None and f"{lname}.weight" in params:
            with torch.no_grad():
                params[f"{lname}.cell_columns"] = ly.readout.columns(
                    params.pop(f"{lname}.weight"), params.pop(f"{lname}.cell_levels", None))
    params = {k: v for k, v in params.items() if not k.endswith(".cell_levels")}
    # a digital gain after the ADCs (``cell_gain``) stays for the layers read through them
    adc = {lname for lname, ly in model.quant_layers() if ly.readout is not None}
    params = {k: v for k, v in params.items()
              if not k.endswith(".cell_gain") or k.rsplit(".", 1)[0] in adc}

    def run(p: dict[str, torch.Tensor], h: torch.Tensor) -> torch.Tensor:
        return functional_call(rest, p, (h,))

    correct = torch.zeros(m, dtype=torch.long, device=x.device)
    with torch.no_grad():
        for i in range(0, len(x), chunk):
            z = prefix(model.encoder(x[i:i + chunk]))
            if head is not None:
                logits = vmap(run, in_dims=(0, 0))(params, head(z))
            else:
                logits = vmap(run, in_dims=(0, None))(params, z)
            fold = getattr(model.encoder, "fold", None)  # several passes per image
            if fold is not None:
                logits = fold(logits, min(chunk, len(x) - i))
            correct += (logits.argmax(-1) == y[i:i + chunk]).sum(1)
    return correct.double() / max(len(x), 1)

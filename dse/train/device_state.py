"""The device state a device-in-the-loop trainer leaves behind, as the checkpoint stores it.

``mixed_precision`` and ``weak_reset_bnn`` train on devices: at the end of training each weight
layer is a flat state of 2N devices (G⁺/BL = devices [0, N), G⁻/BLb = [N, 2N)) of the device
model's ``sample_devices`` layout — the conductance ``x`` and every device-to-device parameter
(``lo``/``hi`` bounds, ``up``/``down`` gains, ...). Deploying the network on *those* devices (the
in-situ scenario of Wu et al., arXiv 2305.14547, 2023: "map directly to CIM inference chips
without additional re-training") needs that state, so it is saved with the model
(:func:`dse.pipeline.artifacts.save_model`, ``devices.pt``, loaded with ``weights_only=True``).

Stored as **float16** (:data:`DTYPE`): its relative resolution 2⁻¹¹ ≈ 4.9·10⁻⁴ is 0.016 µS at
the 32.5 µS g_max of the Gong 2018 card, 20× below the card's per-read noise (0.325 µS) and
12× below the write-verify tolerance (0.2 µS); bfloat16 (2⁻⁸, 0.13 µS there) is not exact
enough. The deployed-accuracy difference between the float16 and the float32 state is measured
in benchmarks/in_situ_deployment.md. Tensors of ±inf or above float16's range keep float32.

Layout (plain tensors, flat keys so ``torch.load(weights_only=True)`` reads them)::

    "<layer>/<key>"  -> (2N,) tensor (float16)
    "<layer>:scale"  -> () float64 tensor: weight units per conductance unit (W = s·(G⁺ − G⁻);
                        absent for weak_reset_bnn, whose weight is sign(R_BL − R_BLb))
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch

Tensor = torch.Tensor

DTYPE = torch.float16
_F16_MAX = float(torch.finfo(torch.float16).max)


def _compact(t: Tensor) -> Tensor:
    t = t.detach().cpu()
    if not t.is_floating_point():
        return t.clone()
    finite = t[torch.isfinite(t)]
    if t.numel() and (not bool(torch.isfinite(t).all())
                      or (finite.numel() and float(finite.abs().max()) > _F16_MAX)):
        return t.to(torch.float32)
    return t.to(DTYPE)


def pack(layers: Iterable[tuple[str, Mapping[str, Tensor], float | None]]) -> dict[str, Tensor]:
    """The checkpoint tensors of ``(layer name, device state, scale or None)`` triples."""
    out: dict[str, Tensor] = {}
    for name, state, scale in layers:
        for key, t in state.items():
            out[f"{name}/{key}"] = _compact(t)
        if scale is not None:
            out[f"{name}:scale"] = torch.tensor(float(scale), dtype=torch.float64)
    return out


def unpack(tensors: Mapping[str, Tensor], dtype: torch.dtype = torch.float32
           ) -> dict[str, dict[str, Any]]:
    """``{layer: {"state": {key: tensor (dtype)}, "scale": float | None}}`` of :func:`pack`."""
    out: dict[str, dict[str, Any]] = {}
    for key, t in tensors.items():
        if ":" in key:
            name, _ = key.rsplit(":", 1)
            out.setdefault(name, {"state": {}, "scale": None})["scale"] = float(t)
        else:
            name, k = key.rsplit("/", 1)
            entry = out.setdefault(name, {"state": {}, "scale": None})
            entry["state"][k] = t.to(dtype) if t.is_floating_point() else t
    return out

"""``ecg-cnn``: a 1-D convolutional network for ECG beats, with precision per part.

A beat is a ``(1, 1, L)`` "image" of height 1, so a 1-D convolution of kernel k is a
:class:`~dse.nn.layers.QConv2d` with a 1×k kernel and (0, k // 2) padding: the map, inject and
estimate stages see an ordinary convolution (im2col rows = in_channels·k). The feature extractor
is four blocks conv(1×``KERNEL``) → max-pool(1×2) → BatchNorm → activation with F, F, 2F, 2F
channels (F = ``width``), the classifier is fully connected (``hidden`` widths, then the
classes), BatchNorm after every weight layer as in the rest of the zoo. assumption: the shape of
the ECG networks of Penkovsky et al. (DATE 2020, doi 10.23919/DATE48585.2020.9116439, arXiv
2006.11595), a convolutional feature extractor followed by a fully connected classifier; their
layer sizes are NOT FOUND in the available text, so the sizes here are ours.

``binarize`` sets which part gets the experiment's ``precision`` (the memory–accuracy trade-off
of that paper: "binarizing whole network and binarizing solely the classifier part"):

* ``whole``: every weight layer at ``precision``;
* ``classifier``: the convolutions in float (32-bit weights), the fully connected layers at
  ``precision``;
* ``none``: every layer in float.

With ``activation: auto`` a float part uses ReLU and a binary/ternary part sign activations, so
a classifier-only network feeds real-valued features into its binary classifier (as a BNN's
first layer sees real pixels). On a binary or ternary chip only the layers at ``precision`` are
laid out on the arrays; the float feature extractor is digital (:func:`dse.chip.mapping.map_model`
lists it under ``digital_layers``).
"""

from __future__ import annotations

from collections import OrderedDict
from itertools import pairwise
from typing import Any

from torch import nn

from dse.nn.layers import QConv2d, QLinear, SignActivation

BINARIZE = ("whole", "classifier", "none")
KERNEL = 7  # assumption: ~19 ms at 360 Hz, the width of a narrow QRS complex
POOLS = 4


def part_precision(spec: Any, part: str) -> str:
    """The weight precision of ``part`` (``features`` or ``classifier``) under ``binarize``."""
    if spec.binarize == "whole" or (spec.binarize == "classifier" and part == "classifier"):
        return spec.precision
    return "float"


def _act(spec: Any, precision: str) -> nn.Module:
    kind = spec.activation
    if kind == "auto":
        kind = "relu" if precision == "float" else "sign"
    return {"sign": SignActivation, "relu": nn.ReLU, "hardtanh": nn.Hardtanh,
            "sigmoid": nn.Sigmoid}[kind]()


def ecg_cnn(spec: Any) -> OrderedDict[str, nn.Module]:
    """The layers of ``ecg-cnn`` (see the module docstring)."""
    c, h, length = spec.input_shape
    if h != 1:
        raise ValueError(f"ecg-cnn takes 1-D signals of shape (C, 1, L), got {spec.input_shape}")
    if length < 2 ** POOLS:
        raise ValueError(f"ecg-cnn needs signals of at least {2 ** POOLS} samples, got {length}")
    f = spec.width
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    p = part_precision(spec, "features")
    cin = c
    for i, cout in enumerate([f, f, 2 * f, 2 * f], start=1):
        layers[f"conv{i}"] = QConv2d(cin, cout, (1, KERNEL), padding=(0, KERNEL // 2),  # type: ignore[arg-type]
                                     precision=p, ternary_threshold=spec.ternary_threshold)
        layers[f"pool{i}"] = nn.MaxPool2d((1, 2))
        layers[f"bn{i}"] = nn.BatchNorm2d(cout)
        layers[f"act{i}"] = _act(spec, p)
        cin, length = cout, length // 2
    layers["flatten"] = nn.Flatten()
    q = part_precision(spec, "classifier")
    sizes = [cin * length, *spec.hidden, spec.classes]
    for j, (a, b) in enumerate(pairwise(sizes)):
        i = POOLS + 1 + j
        layers[f"fc{i}"] = QLinear(a, b, q, spec.ternary_threshold)
        layers[f"bn{i}"] = nn.BatchNorm1d(b)
        if j < len(sizes) - 2:
            layers[f"act{i}"] = _act(spec, q)
    return layers

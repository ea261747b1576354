"""Quantized networks: quantizers with straight-through gradients, layers, model zoo."""

from dse.nn.layers import PRECISIONS, QConv2d, QLinear, QuantLayer, SignActivation
from dse.nn.models import MODELS, ModelSpec, QNet, build_model, evaluate, init_weights
from dse.nn.quant import binarize_weight, quantize_weight, sign_activation, ternarize_weight

__all__ = [
    "MODELS",
    "PRECISIONS",
    "ModelSpec",
    "QConv2d",
    "QLinear",
    "QNet",
    "QuantLayer",
    "SignActivation",
    "binarize_weight",
    "build_model",
    "evaluate",
    "init_weights",
    "quantize_weight",
    "sign_activation",
    "ternarize_weight",
]

"""The model zoo: ``mlp``, ``lenet``, ``vgg-small`` and ``ecg-cnn`` (1-D, :mod:`dse.nn.ecg`),
with named layers.

Every weight layer is a ``QLinear``/``QConv2d`` followed by BatchNorm (also after the output layer,
as in the C2N code) and, for hidden layers, the activation. ``batchnorm: false`` (``mlp`` only)
replaces each BatchNorm by a digital bias (:class:`DigitalBias`, named ``bias1``, ``bias2``, ...),
e.g. aihwkit's 784-256-10 sigmoid MLP with digital biases. The first layer sees the encoded input
(real pixels by default). Layer names (``fc1``, ``conv2``, ...) are what the map, inject and
estimate tables call them.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import torch
from torch import nn

from dse.nn.layers import BinaryInput, QConv2d, QLinear, QuantLayer, SignActivation

MODELS = ("mlp", "lenet", "vgg-small", "ecg-cnn")


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to rebuild a network (recorded in ``model.json``)."""

    model: str
    input_shape: tuple[int, int, int]
    classes: int
    precision: str = "binary"
    ternary_threshold: float = 0.05
    activation: str = "auto"
    input: str = "real"
    hidden: list[int] = field(default_factory=lambda: [512, 512])
    width: int = 32
    bitstream_length: int = 8
    batchnorm: bool = True
    binarize: str = "whole"  # ecg-cnn: which part gets `precision` (dse.nn.ecg)

    @property
    def act(self) -> str:
        """The resolved hidden activation."""
        if self.activation != "auto":
            return self.activation
        return "relu" if self.precision == "float" else "sign"

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        d = asdict(self)
        d["input_shape"] = list(self.input_shape)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelSpec:
        known = {f for f in cls.__dataclass_fields__}
        kw = {k: v for k, v in d.items() if k in known}
        kw["input_shape"] = tuple(kw["input_shape"])
        return cls(**kw)


def _activation(kind: str) -> nn.Module:
    return {"sign": SignActivation, "relu": nn.ReLU, "hardtanh": nn.Hardtanh,
            "sigmoid": nn.Sigmoid}[kind]()


class DigitalBias(nn.Module):
    """A per-output bias added digitally after a weight layer (``batchnorm: false``); kept out of
    the weight layer so that a chip read-out of the layer's product stays the array's."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.bias


def input_encoder(spec: ModelSpec) -> nn.Module:
    """The module applied to images before the first layer."""
    if spec.input == "real":
        return nn.Identity()
    if spec.input == "binary":
        return BinaryInput()
    if spec.input == "stochastic":
        from dse.nn.stochastic import StochasticInput

        return StochasticInput(spec.bitstream_length)
    if spec.input == "stochastic_output":  # L full binary passes (dse.nn.stochastic)
        from dse.nn.stochastic import StochasticPasses

        return StochasticPasses(spec.bitstream_length)
    raise ValueError(f"unknown input encoding {spec.input!r}")


class QNet(nn.Module):
    """A sequential quantized network: ``encoder`` then the named ``body`` layers."""

    def __init__(self, spec: ModelSpec, body: OrderedDict[str, nn.Module]) -> None:
        super().__init__()
        self.spec = spec
        self.encoder = input_encoder(spec)
        self.body = nn.Sequential(body)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(self.encoder(x))
        fold = getattr(self.encoder, "fold", None)  # several passes per image: average them
        return out if fold is None else fold(out, x.shape[0])

    def quant_layers(self) -> list[tuple[str, QuantLayer]]:
        """(name, layer) of every weight layer, input to output."""
        return [(n, m) for n, m in self.body.named_children() if isinstance(m, QuantLayer)]


def _mlp(spec: ModelSpec) -> OrderedDict[str, nn.Module]:
    layers: OrderedDict[str, nn.Module] = OrderedDict(flatten=nn.Flatten())
    sizes = [int(torch.tensor(spec.input_shape).prod()), *spec.hidden, spec.classes]
    for i, (a, b) in enumerate(pairwise(sizes), start=1):
        layers[f"fc{i}"] = QLinear(a, b, spec.precision, spec.ternary_threshold)
        if spec.batchnorm:
            layers[f"bn{i}"] = nn.BatchNorm1d(b)
        else:
            layers[f"bias{i}"] = DigitalBias(b)
        if i < len(sizes) - 1:
            layers[f"act{i}"] = _activation(spec.act)
    return layers


def _conv_block(layers: OrderedDict, i: int, cin: int, cout: int, k: int, pad: int,
                pool: bool, spec: ModelSpec) -> None:
    layers[f"conv{i}"] = QConv2d(cin, cout, k, padding=pad, precision=spec.precision,
                                 ternary_threshold=spec.ternary_threshold)
    if pool:  # pool before BN and sign, as in BinaryNet
        layers[f"pool{i}"] = nn.MaxPool2d(2)
    layers[f"bn{i}"] = nn.BatchNorm2d(cout)
    layers[f"act{i}"] = _activation(spec.act)


def _classifier(layers: OrderedDict, first: int, n_in: int, widths: list[int],
                spec: ModelSpec) -> None:
    layers["flatten"] = nn.Flatten()
    sizes = [n_in, *widths, spec.classes]
    for j, (a, b) in enumerate(pairwise(sizes)):
        i = first + j
        layers[f"fc{i}"] = QLinear(a, b, spec.precision, spec.ternary_threshold)
        layers[f"bn{i}"] = nn.BatchNorm1d(b)
        if j < len(sizes) - 2:
            layers[f"act{i}"] = _activation(spec.act)


def _lenet(spec: ModelSpec) -> OrderedDict[str, nn.Module]:
    """LeNet-5: conv5(6)-pool-conv5(16)-pool-fc120-fc84-fc(classes).

    28x28 inputs give the classic 16x5x5 feature map (conv1 padded by 2, conv2 unpadded);
    smaller images (8x8 digits) pad conv2 too so the maps stay non-empty.
    """
    c, h, _ = spec.input_shape
    pad2 = 0 if h >= 20 else 2
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    _conv_block(layers, 1, c, 6, 5, 2, True, spec)
    _conv_block(layers, 2, 6, 16, 5, pad2, True, spec)
    side = ((h // 2) + 2 * pad2 - 4) // 2
    _classifier(layers, 3, 16 * side * side, [120, 84], spec)
    return layers


def _vgg_small(spec: ModelSpec) -> OrderedDict[str, nn.Module]:
    """Binary VGG of Laborieux et al. 2020 / Courbariaux et al.: [F,F,M,2F,2F,M,4F,4F,M] + FC."""
    c, h, _ = spec.input_shape
    f = spec.width
    plan = [(f, False), (f, True), (2 * f, False), (2 * f, True), (4 * f, False), (4 * f, True)]
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    cin, side = c, h
    for i, (cout, pool) in enumerate(plan, start=1):
        _conv_block(layers, i, cin, cout, 3, 1, pool, spec)
        cin, side = cout, side // 2 if pool else side
    if side < 1:
        raise ValueError(f"vgg-small needs images of at least 8x8 pixels, got {h}x{h}")
    _classifier(layers, len(plan) + 1, cin * side * side, list(spec.hidden), spec)
    return layers


def _ecg_cnn(spec: ModelSpec) -> OrderedDict[str, nn.Module]:
    from dse.nn.ecg import ecg_cnn

    return ecg_cnn(spec)


_BUILDERS = {"mlp": _mlp, "lenet": _lenet, "vgg-small": _vgg_small, "ecg-cnn": _ecg_cnn}


def build_model(spec: ModelSpec, generator: torch.Generator | None = None) -> QNet:
    """Build a network; weights initialised from ``generator`` (PyTorch's default scheme)."""
    if spec.model not in _BUILDERS:
        raise ValueError(f"unknown model {spec.model!r} ({', '.join(MODELS)})")
    if not spec.batchnorm and spec.model != "mlp":
        raise ValueError(f"batchnorm: false is supported by model mlp only, not {spec.model}")
    if spec.binarize != "whole" and spec.model != "ecg-cnn":
        raise ValueError(f"binarize: {spec.binarize} is supported by model ecg-cnn only, not "
                         f"{spec.model}")
    net = QNet(spec, _BUILDERS[spec.model](spec))
    if generator is not None:
        init_weights(net, generator)
    return net


def init_weights(net: QNet, generator: torch.Generator) -> None:
    """Uniform latent weights drawn from ``generator``.

    The bound is PyTorch's Linear/Conv default, 1/sqrt(fan_in), also for the digital biases
    of ``batchnorm: false`` (the fan-in of the layer before them). Ternary layers use at least
    2Δ, so that half of the weights start non-zero: with Δ = 0.05 and a 784-input layer the
    default bound (0.036) would start every weight at 0, which trained to 86 % instead of 94 %
    on mnist5k in 10 epochs (784-512-512-10, Adam 0.005; see benchmarks/README.md).
    """
    with torch.no_grad():
        for _, layer in net.quant_layers():
            w = layer.weight
            bound = 1.0 / float(w[0].numel()) ** 0.5
            if layer.precision == "ternary":
                bound = max(bound, 2.0 * layer.ternary_threshold)
            w.copy_(torch.rand(w.shape, generator=generator) * 2 * bound - bound)
        layers = dict(net.body.named_children())
        for name, mod in layers.items():
            if isinstance(mod, DigitalBias):
                fan_in = layers["fc" + name[len("bias"):]].weight[0].numel()
                bound = 1.0 / float(fan_in) ** 0.5
                mod.bias.copy_(torch.rand(mod.bias.shape, generator=generator) * 2 * bound
                               - bound)


@torch.no_grad()
def evaluate(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
             batch_size: int = 1000) -> float:
    """Top-1 accuracy of ``model`` in eval mode (restores the previous mode)."""
    was_training = model.training
    model.eval()
    correct = torch.zeros((), dtype=torch.long, device=x.device)  # one host sync, at the end
    for i in range(0, len(x), batch_size):
        correct += (model(x[i:i + batch_size]).argmax(1) == y[i:i + batch_size]).sum()
    model.train(was_training)
    return int(correct) / max(len(x), 1)

"""Layer shapes of reference networks, for estimates that need no data set (issue 14).

``vgg8_cifar10`` is the VGG-8 that DNN+NeuroSim benchmarks on CIFAR-10: the rows of
``Inference_pytorch/NeuroSIM/NetWork_VGG8.csv`` (neurosim/DNN_NeuroSim_V1.4; columns IFM height,
width, channels, kernel height, width, OFM channels, pooling, stride), 3x3 convolutions with
padding 1 (output = input size) and two fully connected layers 8192 -> 1024 -> 10. Its 615.9 M
multiply-accumulates are the 1.23184e9 operations NeuroSim reports for it
(``Data/1.4_Release_test.csv``, numComputation).
"""

from __future__ import annotations

from dse.chip.layer import LayerSpec
from dse.errors import DseError

# (IFM size, IFM channels, kernel, OFM channels), NetWork_VGG8.csv
_VGG8 = ((32, 3, 3, 128), (32, 128, 3, 128), (16, 128, 3, 256), (16, 256, 3, 256),
         (8, 256, 3, 512), (8, 512, 3, 512), (1, 8192, 1, 1024), (1, 1024, 1, 10))


def vgg8_cifar10(precision: str = "float", activation_bits: int = 8) -> list[LayerSpec]:
    """VGG-8 / CIFAR-10 as NeuroSim maps it: conv layers at stride 1 (pooling after layers 2,
    4 and 6 shrinks the next input), ``activation_bits`` per input and output element."""
    if activation_bits < 1:
        raise DseError(f"activation_bits: {activation_bits} must be >= 1")
    out = []
    n_conv = sum(1 for s in _VGG8 if s[2] > 1)
    for i, (size, c_in, k, c_out) in enumerate(_VGG8):
        conv = k > 1
        name = f"conv{i + 1}" if conv else f"fc{i - n_conv + 1}"
        out.append(LayerSpec(name=name, kind="conv" if conv else "linear", precision=precision,
                             rows=c_in * k * k, cols=c_out, positions=size * size,
                             in_bits=activation_bits, out_bits=activation_bits))
    return out


NETWORKS = {"vgg8-cifar10": vgg8_cifar10}

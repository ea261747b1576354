"""Layer shapes of reference networks, for estimates that need no data set (issue 14).

``vgg8_cifar10`` is the VGG-8 that DNN+NeuroSim benchmarks on CIFAR-10: the rows of
``Inference_pytorch/NeuroSIM/NetWork_VGG8.csv`` (neurosim/DNN_NeuroSim_V1.4; columns IFM height,
width, channels, kernel height, width, OFM channels, pooling, stride), 3x3 convolutions with
padding 1 (output = input size) and two fully connected layers 8192 -> 1024 -> 10. Its 615.9 M
multiply-accumulates are the 1.23184e9 operations NeuroSim reports for it
(``Data/1.4_Release_test.csv``, numComputation). The trainable network of these shapes is the
model zoo's ``model: vgg-small, width: 128, hidden: [1024]`` (tests/test_validation.py).

``resnet18_imagenet`` is ResNet-18 on 224x224 ImageNet images as NeuroSim lists it
(``Inference_pytorch/NeuroSIM/NetWork_ResNet18.csv`` of neurosim/DNN_NeuroSim_V1.3: the 7x7
stride-2 stem, four stages of two basic blocks with 1x1 stride-2 projection shortcuts, the
512 -> 1000 classifier; He et al., CVPR 2016, doi 10.1109/CVPR.2016.90), 1.81 G MACs.
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


# (IFM size, IFM channels, kernel, OFM channels, stride), NetWork_ResNet18.csv
_RESNET18 = ((224, 3, 7, 64, 2), *[(56, 64, 3, 64, 1)] * 4, (56, 64, 3, 128, 2),
             (28, 128, 3, 128, 1), (56, 64, 1, 128, 2), (28, 128, 3, 128, 1),
             (28, 128, 3, 128, 1), (28, 128, 3, 256, 2), (14, 256, 3, 256, 1),
             (28, 128, 1, 256, 2), (14, 256, 3, 256, 1), (14, 256, 3, 256, 1),
             (14, 256, 3, 512, 2), (7, 512, 3, 512, 1), (14, 256, 1, 512, 2),
             (7, 512, 3, 512, 1), (7, 512, 3, 512, 1), (1, 512, 1, 1000, 1))


def resnet18_imagenet(precision: str = "float", activation_bits: int = 8) -> list[LayerSpec]:
    """ResNet-18 / ImageNet as NeuroSim maps it: output positions (size / stride)^2."""
    if activation_bits < 1:
        raise DseError(f"activation_bits: {activation_bits} must be >= 1")
    out = []
    for i, (size, c_in, k, c_out, stride) in enumerate(_RESNET18):
        fc = i == len(_RESNET18) - 1
        out.append(LayerSpec(name="fc" if fc else f"conv{i + 1}", kind="linear" if fc else "conv",
                             precision=precision, rows=c_in * k * k, cols=c_out,
                             positions=(size // stride) ** 2, in_bits=activation_bits,
                             out_bits=activation_bits))
    return out


NETWORKS = {"vgg8-cifar10": vgg8_cifar10, "resnet18-imagenet": resnet18_imagenet}

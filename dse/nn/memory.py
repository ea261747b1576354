"""Weight memory of a network: the bits its weight layers store.

A float weight is stored as ``FLOAT_BITS`` = 32 bits (IEEE single precision, what dse trains and
deploys in software), a binary weight as 1 bit, a ternary weight as 2 bits (the two cells of a
2T2R ternary synapse, Laborieux et al., arXiv 2005.01973, 2020: one bit per cell). BatchNorm
parameters and digital biases are counted apart (``other_bits``: four float32 numbers per BN
channel, γ, β and the two running statistics; a chip folds them into one threshold per neuron,
which is not modelled here).
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from torch import nn

FLOAT_BITS = 32
BITS = {"float": FLOAT_BITS, "binary": 1, "ternary": 2}


def weight_bits(layer: Any) -> int:
    """Bits of one weight layer's stored weights (``QuantLayer``: precision x weight count)."""
    return BITS[layer.precision] * int(layer.weight.numel())


def memory_table(model: Any) -> pd.DataFrame:
    """One row per weight layer: name, precision, weights, bits; then a ``total`` row whose
    ``other_bits`` column holds the BatchNorm/bias parameters (float32)."""
    rows = [{"layer": n, "precision": m.precision, "weights": int(m.weight.numel()),
             "bits": weight_bits(m)} for n, m in model.quant_layers()]
    other = 0
    for mod in model.modules():
        if isinstance(mod, nn.modules.batchnorm._BatchNorm):
            other += 4 * int(mod.num_features) * FLOAT_BITS
        elif type(mod).__name__ == "DigitalBias":
            other += int(mod.bias.numel()) * FLOAT_BITS
    table = pd.DataFrame(rows, columns=["layer", "precision", "weights", "bits"])
    total = {"layer": "total", "precision": "/".join(sorted(set(table["precision"]))),
             "weights": int(table["weights"].sum()), "bits": int(table["bits"].sum()),
             "other_bits": other}
    return pd.concat([table.assign(other_bits=0), pd.DataFrame([total])], ignore_index=True)

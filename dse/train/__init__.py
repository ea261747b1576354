"""Training: the shared loop, the algorithms (registered by name) and the contract files."""

from dse.train.checkpoint import TrainedModel, load, read_history, save
from dse.train.loop import (
    ALGORITHMS,
    Trainer,
    TrainResult,
    evaluate,
    register_algorithm,
    resolve_device,
    train,
)
from dse.train.metaplastic import AdamMeta, MetaplasticTrainer  # registers `metaplastic`
from dse.train.mixed_precision import MixedPrecisionTrainer  # registers `mixed_precision`
from dse.train.weak_reset import WeakResetTrainer  # registers `weak_reset_bnn`

__all__ = [
    "ALGORITHMS",
    "AdamMeta",
    "MetaplasticTrainer",
    "MixedPrecisionTrainer",
    "TrainResult",
    "TrainedModel",
    "Trainer",
    "WeakResetTrainer",
    "evaluate",
    "load",
    "read_history",
    "register_algorithm",
    "resolve_device",
    "save",
    "train",
]

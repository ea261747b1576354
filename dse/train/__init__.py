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

__all__ = [
    "ALGORITHMS",
    "AdamMeta",
    "MetaplasticTrainer",
    "TrainResult",
    "TrainedModel",
    "Trainer",
    "evaluate",
    "load",
    "read_history",
    "register_algorithm",
    "resolve_device",
    "save",
    "train",
]

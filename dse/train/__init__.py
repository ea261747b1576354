"""Training: the shared loop and the algorithms (registered by name); the train stage's files
are written and read by the wiring (:mod:`dse.pipeline.artifacts`)."""

from dse.train.loop import (
    ALGORITHMS,
    Trainer,
    TrainResult,
    register_algorithm,
    resolve_device,
    train,
    training_settings,
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
    "Trainer",
    "WeakResetTrainer",
    "register_algorithm",
    "resolve_device",
    "train",
    "training_settings",
]

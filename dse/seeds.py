"""The seed plan: every random stream of a run is derived from one seed by its name.

A stream's seed is ``numpy.random.SeedSequence(seed, spawn_key=key(name))``'s first 63-bit word,
where ``key`` hashes the stream's name (sha256): streams of one seed are independent, a new
stream never shifts an old one, and the same seed and name always give the same numbers. The
seed is the experiment's (training streams), ``inject.seed`` (fault maps; default the global
seed) or a study's (trials). Names with a ``{...}`` part take the value shown (layer index,
worker number, ...).

==========================  ================  =====================================================
stream                      seed              draws
==========================  ================  =====================================================
``train``                   experiment        initial weights, then the mini-batch order (one
                                              generator, in that order)
``data.tasks``              experiment        permutations of a permuted continual-learning stream
``input.bits``              experiment        stochastic-computing input bitstreams in training
``train.faults.{i}``        experiment        error-aware training bit flips of weight layer i
``devices.d2d``             experiment        device-to-device draws of device-in-the-loop training
``devices.c2c``             experiment        cycle-to-cycle and read noise of those devices
``train.converters``        experiment        stochastic rounding of the mixed-precision converters
``inject``                  inject.seed       fault maps of the inject stage (every point and map,
                                              in order), then the stochastic input bits
``trial``                   study             one trial's fault maps: the stream is keyed by the
                                              trial's parameters (``trial_seed``)
``sampler.{worker}.{run}``  study             Optuna sampler of worker k, its r-th start on it
==========================  ================  =====================================================
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import numpy as np

STREAMS: dict[str, str] = {
    "train": "initial weights, then the mini-batch order",
    "data.tasks": "permutations of a permuted continual-learning stream",
    "input.bits": "stochastic-computing input bitstreams in training",
    "train.faults.{i}": "error-aware training bit flips of weight layer i",
    "devices.d2d": "device-to-device draws of device-in-the-loop training",
    "devices.c2c": "cycle-to-cycle and read noise of those devices",
    "train.converters": "stochastic rounding of the mixed-precision converters",
    "inject": "fault maps of the inject stage, then the stochastic input bits",
    "trial": "one trial's fault maps, keyed by the trial's parameters",
    "sampler.{worker}.{run}": "Optuna sampler of worker k, its r-th start on the study",
}


def _key(name: str) -> tuple[int, ...]:
    digest = hashlib.sha256(name.encode()).digest()
    return tuple(int.from_bytes(digest[i:i + 4], "little") for i in range(0, 16, 4))


def seed_for(seed: int, name: str) -> int:
    """The seed of stream ``name`` of ``seed`` (a non-negative 63-bit integer)."""
    state = np.random.SeedSequence(int(seed), spawn_key=_key(name)).generate_state(2, np.uint64)
    return int(state[0] >> np.uint64(1))


def generator(seed: int, name: str, device: Any = "cpu") -> Any:
    """A ``torch.Generator`` on ``device`` seeded for stream ``name`` of ``seed``."""
    import torch

    return torch.Generator(device=device).manual_seed(seed_for(seed, name))


def trial_seed(seed: int, params: Mapping[str, Any]) -> int:
    """Seed of a trial's fault maps: a function of the study seed and the trial's parameters,
    so equal designs get equal fault maps whichever worker runs them."""
    return seed_for(seed, "trial:" + json.dumps(dict(params), sort_keys=True, default=str))

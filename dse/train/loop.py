"""The training loop shared by every algorithm, and the ``standard`` algorithm itself.

An algorithm is a :class:`Trainer` subclass registered under its config name; the loop owns
batching, evaluation, history rows, progress bars and divergence checks, so every algorithm writes
the same ``history.csv`` / ``pulses.csv`` / ``model.pt`` / ``model.json``.
"""

from __future__ import annotations

import logging
import math
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pandas as pd
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from dse import seeds
from dse.config import Experiment
from dse.data import Dataset, batches
from dse.errors import DseError
from dse.nn import ModelSpec, QNet, build_model, evaluate, quantize_weight
from dse.nn.stochastic import StochasticInput
from dse.registry import Registry
from dse.train.error_aware import resolve_train_ber
from dse.train.writes import add_level_changes, current_tally

log = logging.getLogger(__name__)

ALGORITHMS = Registry("algorithm", key="algorithm")
register_algorithm = ALGORITHMS.register  # class decorator: ``algorithm: <cls.name>``


def training_settings(exp: Experiment) -> dict[str, Any]:
    """The settings that determine a trained model: the experiment without its name and
    without the settings blocks of other algorithms (editing those retrains nothing)."""
    settings = exp.to_dict()
    settings.pop("name")
    if settings.get("binarize") == "whole":  # the default of a key added later: models trained
        settings.pop("binarize")              # before it existed stay valid (no retraining)
    own = ALGORITHMS.lookup(exp.algorithm).settings_block
    for cls in ALGORITHMS.values():
        if cls.settings_block is not None and cls.settings_block != own:
            settings.pop(cls.settings_block, None)
    return settings


def resolve_device(name: str) -> torch.device:
    """``auto`` → CUDA when available, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise DseError("device: cuda requested but no CUDA device is available; use auto or cpu")
    return torch.device(name)


def set_train_ber(model: QNet, ber: float, seed: int) -> None:
    """Error-aware training: bit errors at ``ber`` on every training forward pass of each layer."""
    for i, (_, layer) in enumerate(model.quant_layers()):
        layer.train_ber = float(ber)
        layer.fault_generator = seeds.generator(seed, f"train.faults.{i}", layer.weight.device)


@register_algorithm
class Trainer:
    """``standard``: Adam on the latent weights, the quantized weights in the forward pass."""

    name: ClassVar[str] = "standard"
    settings_block: ClassVar[str | None] = None  # the experiment key holding its settings
    settings_class: ClassVar[type | None] = None  # their dataclass (dse.train.settings)

    def __init__(self, exp: Experiment, model: QNet, device: torch.device,
                 generator: torch.Generator, cards: dict[str, Any] | None = None) -> None:
        self.exp = exp
        self.model = model
        self.device = device
        self.generator = generator
        self.cards = cards or {}
        self.pulses: dict[str, dict[str, int]] = defaultdict(lambda: {"up": 0, "down": 0})
        self.optimizer: torch.optim.Optimizer | None = None
        self._levels: dict[str, tuple[torch.Tensor, float]] = {}  # quantized weight, its sum

    # -- hooks an algorithm overrides ------------------------------------------------------
    def device_state(self) -> dict[str, torch.Tensor] | None:
        """The trained devices to save with the model (device-in-the-loop trainers; the
        :mod:`dse.train.device_state` layout), None for trainers without devices."""
        return None

    def start_task(self, task: int) -> None:
        """Called before the first epoch of each task (task 0 included): build the optimizer."""
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=self.exp.lr,
                                          weight_decay=self.exp.weight_decay)

    def step(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One mini-batch update; returns (loss, logits)."""
        assert self.optimizer is not None
        self.optimizer.zero_grad(set_to_none=True)
        layers = [(n, q) for n, q in self.model.quant_layers() if q.precision != "float"]
        for _, layer in layers:
            layer.record_levels = True
        try:
            logits = self.model(x)
        finally:
            for _, layer in layers:
                layer.record_levels = False
        # the forward pass quantized the weights left by the previous update: tally its level
        # changes from them (the last update of an epoch is tallied by take_pulses)
        for name, layer in layers:
            if layer.recorded_levels is not None:
                self._tally_levels(name, layer.recorded_levels, layer.precision == "binary")
                layer.recorded_levels = None
        loss = F.cross_entropy(logits, y)
        loss.backward()
        self.optimizer.step()
        return loss.detach(), logits.detach()

    @torch.no_grad()
    def count_level_changes(self) -> None:
        """Binary/ternary nets: tally each change of a quantized weight as one programming event
        (up = towards +1). These are the writes a chip would make if the quantized weights lived
        in its memory cells during training, the latent weights in digital memory; the estimate
        stage turns them into training energy. Float layers are skipped. :meth:`step` tallies
        from its forward pass; this quantizes the current weights explicitly."""
        for name, layer in self.model.quant_layers():
            if layer.precision != "float":
                q = quantize_weight(layer.weight, layer.precision, layer.ternary_threshold)
                self._tally_levels(name, q, layer.precision == "binary")

    @torch.no_grad()
    def _tally_levels(self, name: str, q: torch.Tensor, binary: bool) -> None:
        """Tally the level changes of layer ``name`` from its recorded levels to ``q`` (the
        current quantized weight), then record ``q``."""
        prev = self._levels.get(name)
        tally = current_tally()  # writes per device, inside dse.train.writes.recording_writes
        if tally is not None and prev is not None:
            add_level_changes(tally, name, q, prev[0], binary)
        total = float(q.sum(dtype=torch.float64))
        if prev is not None:
            last, last_total = prev
            if binary and q.numel() < 2**24:  # float32-exact reductions
                # ±1 levels: q·last = -1 where a weight flipped, so two reductions count the
                # flips and their balance (comparison ops are slow on this CPU build)
                changed = round((q.numel() - float(torch.dot(q.flatten(), last.flatten()))) / 2)
                net = round((total - last_total) / 2)
            else:  # s = +1 up, -1 down, 0 unchanged
                s = torch.sign(q - last)
                changed, net = int(torch.count_nonzero(s)), int(s.sum())
            self.add_pulses(name, up=(changed + net) // 2, down=(changed - net) // 2)
        self._levels[name] = (q, total)

    def end_epoch(self, epoch: int) -> None:
        """Called after every epoch (e.g. to decay the learning rate)."""
        if self.exp.lr_decay != 1.0 and self.optimizer is not None:
            for group in self.optimizer.param_groups:
                group["lr"] *= self.exp.lr_decay

    def end_task(self, task: int) -> None:
        """Called after the last epoch of each task."""

    def use_task(self, task: int) -> None:
        """Prepare the model to be evaluated on ``task`` (e.g. load its BatchNorm state)."""

    def use_readout(self, readouts: dict[str, Any]) -> None:
        """Read the weight layers through a chip's read-out in training (per layer name)."""
        raise DseError(f"experiments.{self.exp.name}: algorithm {self.name} does not train "
                       "through a chip's read-out (mixed_precision.chip)")

    def finalize(self) -> None:
        """Called once after training: leave in ``model`` the weights to deploy."""

    def task_states(self) -> list[dict[str, torch.Tensor]]:
        """Per task, the model entries that differ between tasks (e.g. task-specific BatchNorm),
        keyed as in the model's state dict; loading entry k evaluates task k. Empty when every
        task uses the deployed model as it is."""
        return []

    # -- helpers ---------------------------------------------------------------------------
    def count_pulses(self, layer: str, n: torch.Tensor) -> None:
        """Add the device-programming pulses of a signed pulse-count tensor to the tallies."""
        tally = current_tally()
        if tally is not None:
            tally.add(layer, n.detach().abs().round(), "pulses")
        self.add_pulses(layer, up=int(n.clamp(min=0).sum()), down=int((-n).clamp(min=0).sum()))

    def count_pulses_at(self, layer: str, size: int, idx: torch.Tensor, n: torch.Tensor,
                        resets: torch.Tensor | None = None, nonneg: bool = False) -> int:
        """Signed pulses ``n`` to devices ``idx`` of a layer of ``size`` devices (sparse), plus
        one RESET (a ``down`` pulse) to each of the devices ``resets``; ``nonneg``: the caller
        knows ``n`` ≥ 0 (one sum instead of two). Returns the ``up`` pulses counted."""
        tally = current_tally()
        if tally is not None:
            tally.add_at(layer, size, idx, n.detach().abs().round())
            if resets is not None:
                tally.add_at(layer, size, resets, torch.ones_like(resets, dtype=n.dtype))
        up = int(n.sum()) if nonneg else int(n.clamp(min=0).sum())
        down = 0 if nonneg else int((-n).clamp(min=0).sum())
        self.add_pulses(layer, up=up, down=down + (0 if resets is None else resets.numel()))
        return up

    def add_pulses(self, layer: str, up: int = 0, down: int = 0) -> None:
        """Add counted pulses to the tallies (when the counts are known without a tensor)."""
        self.pulses[layer]["up"] += up
        self.pulses[layer]["down"] += down

    def take_pulses(self) -> dict[str, dict[str, int]]:
        """The pulse tallies since the last call (and reset them)."""
        if self._levels:  # step() tracks level changes: add those of the last update
            self.count_level_changes()
        out = {k: dict(v) for k, v in self.pulses.items()}
        self.pulses.clear()
        return out


@dataclass
class TrainResult:
    """What a training run produces; written to disk by :func:`dse.train.checkpoint.save`."""

    experiment: Experiment
    spec: ModelSpec
    model: QNet
    history: pd.DataFrame
    pulses: pd.DataFrame
    tasks: pd.DataFrame
    extra: dict[str, Any] = field(default_factory=dict)
    # device-in-the-loop trainers: the trained devices (dse.train.device_state.pack layout)
    device_state: dict[str, torch.Tensor] | None = None
    task_states: list[dict[str, torch.Tensor]] = field(default_factory=list)

    @property
    def test_accuracy(self) -> float:
        return float(self.history["test_acc"].iloc[-1])


def _task_matrix(trainer: Trainer, tasks: list[Dataset], after: int) -> list[dict[str, Any]]:
    rows = []
    for j, task in enumerate(tasks):
        trainer.use_task(j)
        rows.append({"after_task": after, "task": j, "name": task.name,
                     "test_acc": evaluate(trainer.model, task.x_test, task.y_test)})
    trainer.use_task(after)
    return rows


def _check_finite(model: QNet, exp: Experiment, epoch: int) -> None:
    """Binary activations map NaN to -1, so a diverged run can keep a finite loss: check the
    weights and BatchNorm statistics themselves."""
    for name, t in [*model.named_parameters(), *model.named_buffers()]:
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise DseError(f"experiment '{exp.name}' diverged: non-finite values in {name} after "
                           f"epoch {epoch}; lower lr (now {exp.lr}) or check the input data")


def _check_model_keys(exp: Experiment) -> None:
    """Keys that only some model families take."""
    if not exp.batchnorm and exp.model != "mlp":
        raise DseError(f"experiments.{exp.name}.batchnorm: false is supported by model mlp only "
                       f"(got model {exp.model}); remove the key or use model: mlp")
    if exp.binarize != "whole" and exp.model != "ecg-cnn":
        raise DseError(f"experiments.{exp.name}.binarize: {exp.binarize} is supported by model "
                       f"ecg-cnn only (got model {exp.model}); remove the key or use ecg-cnn")


def _build(exp: Experiment, first: Dataset, device: torch.device, gen: torch.Generator,
           cards: dict[str, Any] | None) -> tuple[ModelSpec, QNet, Trainer, str | None]:
    """The model of ``exp`` (initial weights from ``gen``), its training BER and its trainer."""
    _check_model_keys(exp)
    spec = ModelSpec(model=exp.model, input_shape=first.input_shape, classes=first.classes,
                     precision=exp.precision, ternary_threshold=exp.ternary_threshold,
                     activation=exp.activation, input=exp.input, hidden=list(exp.hidden),
                     width=exp.width, bitstream_length=exp.bitstream_length,
                     batchnorm=exp.batchnorm, binarize=exp.binarize)
    model = build_model(spec, gen).to(device)
    train_ber, ber_source = resolve_train_ber(exp, cards)  # a number or a card's operating point
    if train_ber > 0:
        set_train_ber(model, train_ber, exp.seed)
    if isinstance(model.encoder, StochasticInput):  # its input bits follow the experiment seed
        model.encoder.reseed(seeds.seed_for(exp.seed, "input.bits"))
    trainer = ALGORITHMS[exp.algorithm](exp, model, device, gen, cards)
    return spec, model, trainer, ber_source


def _run_epoch(trainer: Trainer, task: Dataset, exp: Experiment, gen: torch.Generator,
               desc: str, epoch: int, progress: bool) -> tuple[float, float]:
    """One pass over ``task``'s training set; returns (mean loss, training accuracy).

    The loss and the correct count are summed on the model's device, so a step does not wait
    for the device (no host synchronisation); a non-finite loss is caught after every step on
    the CPU, where that check is free, and at the end of the epoch elsewhere (naming the batch).
    """
    n_batches = math.ceil(len(task.x_train) / exp.batch_size)
    bar = tqdm(total=n_batches, desc=f"{desc}epoch {epoch}/{exp.epochs}",
               disable=not progress, leave=False, unit="batch")
    on_cpu = task.x_train.device.type == "cpu"
    losses: list[torch.Tensor] = []
    sizes: list[int] = []
    correct = torch.zeros((), dtype=torch.long, device=task.x_train.device)
    seen = 0
    for xb, yb in batches(task.x_train, task.y_train, exp.batch_size, gen):
        loss, logits = trainer.step(xb, yb)
        losses.append(loss.detach())
        sizes.append(len(yb))
        correct += (logits.argmax(1) == yb).sum()
        seen += len(yb)
        bar.update()
        if on_cpu and not torch.isfinite(loss):
            break
    bar.close()
    per_batch = torch.stack(losses).double()
    bad = torch.nonzero(~torch.isfinite(per_batch)).flatten()
    if len(bad):
        b = int(bad[0])
        raise DseError(f"experiment '{exp.name}' diverged (loss {float(per_batch[b])}) at epoch "
                       f"{epoch}, batch {b + 1}; lower lr (now {exp.lr}) or check the device card")
    weights = torch.tensor(sizes, dtype=torch.float64, device=per_batch.device)
    return float(per_batch @ weights) / seen, int(correct) / seen


def _pulse_rows(epoch: int, tallies: dict[str, dict[str, int]]) -> list[dict[str, Any]]:
    return [{"epoch": epoch, "layer": layer, "direction": d, "pulses": v[d]}
            for layer, v in tallies.items() for d in ("up", "down")]


def _deterministic(device: torch.device) -> None:
    """Deterministic algorithms where the choice exists: on CUDA (atomics in scatter and
    index_add) ``torch.use_deterministic_algorithms(True, warn_only=True)``. On the CPU the
    kernels dse uses are deterministic for a given thread count without it (the same models
    bit for bit with and without the flag, checked on a binary and a mixed-precision run), and
    the public setter imports Inductor (~1.8 s of CPU in every training process)."""
    if device.type != "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)


def train(exp: Experiment, tasks: list[Dataset], device: torch.device | str = "cpu",
          cards: dict[str, Any] | None = None, progress: bool = True,
          on_epoch: Callable[[dict[str, Any]], None] | None = None,
          readout: Callable[[QNet], dict[str, Any]] | None = None) -> TrainResult:
    """Train ``exp`` on one dataset (``tasks`` of length 1) or a continual-learning stream.

    ``readout``: builds a chip's training read-out of the model's weight layers
    (``mixed_precision.chip``; the pipeline passes it, :mod:`dse.chip.train_readout`).

    Deterministic on the CPU for a given seed: the initial weights, the batch order and every
    other draw come from one generator seeded with ``exp.seed``.
    """
    ALGORITHMS.lookup(exp.algorithm)
    device = torch.device(device)
    _deterministic(device)
    gen = seeds.generator(exp.seed, "train")
    spec, model, trainer, ber_source = _build(exp, tasks[0], device, gen, cards)
    if readout is not None:
        trainer.use_readout(readout(model))
    tasks = [t.to(device) for t in tasks]
    history: list[dict[str, Any]] = []
    pulses: list[dict[str, Any]] = []
    matrix: list[dict[str, Any]] = []
    global_epoch = 0
    for k, task in enumerate(tasks):
        trainer.start_task(k)
        desc = f"{exp.name} " + (f"task {k + 1}/{len(tasks)} " if len(tasks) > 1 else "")
        for epoch in range(1, exp.epochs + 1):
            global_epoch += 1
            model.train()
            t0 = time.perf_counter()
            loss, train_acc = _run_epoch(trainer, task, exp, gen, desc, epoch, progress)
            _check_finite(model, exp, epoch)
            trainer.end_epoch(epoch)
            seconds = time.perf_counter() - t0
            test_acc = evaluate(model, task.x_test, task.y_test)
            tallies = trainer.take_pulses()
            row = {"epoch": global_epoch, "task": k, "task_epoch": epoch, "loss": loss,
                   "train_acc": train_acc, "test_acc": test_acc, "seconds": seconds,
                   "pulses_up": sum(v["up"] for v in tallies.values()),
                   "pulses_down": sum(v["down"] for v in tallies.values())}
            history.append(row)
            pulses += _pulse_rows(global_epoch, tallies)
            log.info("%s epoch %d: loss %.4f train %.4f test %.4f (%.1f s)", desc, epoch,
                     loss, train_acc, test_acc, seconds)
            if on_epoch is not None:
                on_epoch(row)
        trainer.end_task(k)
        matrix += _task_matrix(trainer, tasks, k)
    trainer.finalize()
    return TrainResult(
        experiment=exp, spec=spec, model=model, history=pd.DataFrame(history),
        pulses=pd.DataFrame(pulses, columns=["epoch", "layer", "direction", "pulses"]),
        tasks=pd.DataFrame(matrix),
        extra={"train_ber_resolved": ber_source} if ber_source else {},
        device_state=trainer.device_state(),
        task_states=trainer.task_states(),
    )

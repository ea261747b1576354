"""Fused device kernels: ``torch.compile`` (Inductor) plumbing and an in-kernel random generator.

``kernels: compiled`` (an experiment key, see ``config/schema.yaml``) runs the pulse updates of the
device families and the mixed-precision transfer as functions compiled by ``torch.compile``:
Inductor fuses each into one or a few loops (C++/OpenMP on the CPU, Triton on the GPU, from the
same Python). ``kernels: eager`` is the reference path, op by op, with ``torch.Generator`` draws.

Compile cache. Inductor keeps what it compiled on disk, keyed by the traced graph, so a second
process (a Snakemake job, the next test session) loads the kernels instead of compiling them
again. :func:`configure_cache` points it at ``$DSE_KERNEL_CACHE`` when set, else at an already set
``$TORCHINDUCTOR_CACHE_DIR``, else at ``$XDG_CACHE_HOME/dse/inductor`` (``~/.cache/dse/inductor``);
it runs before the first compile (:func:`compile_kernel`).

Random numbers inside the kernel. A compiled function cannot take a ``torch.Generator``, and a
separate ``torch.randn`` costs a full memory pass, so the compiled kernels draw their noise from a
counter-based generator: the 32-bit integer hash ``lowbias32`` (C. Wellons, "Prospecting for hash
functions", 2018: bias 0.17, the best two-multiply 32-bit hash found there), keyed with two
32-bit keys per call, of the element's counter (its position in the call), i.e.
``u = H(H(counter ^ k0) ^ k1)``, and a second uniform ``H(u ^ k2)``. The keys are drawn from the
caller's ``torch.Generator`` (:func:`draw_keys`), so a seeded run is reproducible and its noise
follows the experiment seed, but the streams differ from the eager path's: the two paths agree in
distribution, not bit for bit (``tests/test_kernels.py``). Uniforms carry 24 bits
(``(bits >> 8 + ½)·2⁻²⁴``, in (0, 1)), Gaussians are Box–Muller of two such uniforms (|ξ| ≤ 5.9)
(:func:`normal`) or, for the pulse kernels' write noise, :func:`normal_moments` (Gaussian in its
first four moments, no transcendental function, |ξ| ≤ 4.04).
The hash is written in int32 arithmetic with wrap-around multiplies (the same results in eager
PyTorch, C++ and Triton; a test checks compiled against eager bit for bit).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from dse.errors import DseError

log = logging.getLogger(__name__)

Tensor = torch.Tensor

KERNELS = ("eager", "compiled")

_C1 = 0x7FEB352D
_C2 = 0x846CA68B - (1 << 32)  # int32 two's complement of 0x846ca68b
_INV24 = 1.0 / 16777216.0
_TWO_PI = 6.283185307179586

_lock = threading.Lock()
_configured: str | None = None
STATS: dict[str, float] = {"compiled_calls": 0, "first_call_seconds": 0.0}


def default_cache_dir() -> Path:
    """Where the Inductor cache goes when nothing else is said (see the module docstring)."""
    if os.environ.get("DSE_KERNEL_CACHE"):
        return Path(os.environ["DSE_KERNEL_CACHE"]).expanduser()
    if os.environ.get("TORCHINDUCTOR_CACHE_DIR"):
        return Path(os.environ["TORCHINDUCTOR_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "dse" / "inductor"


def configure_cache(path: str | Path | None = None) -> Path:
    """Point Inductor's on-disk cache at ``path`` (default :func:`default_cache_dir`).

    Must run before the process compiles its first kernel (Inductor reads the location then);
    :func:`compile_kernel` calls it. Calling it again with another path after a compile has no
    effect on kernels already loaded and logs a warning.
    """
    global _configured
    target = Path(path).expanduser() if path is not None else default_cache_dir()
    with _lock:
        if _configured is not None and _configured != str(target):
            log.warning("kernel cache already at %s; %s applies to later compiles only",
                        _configured, target)
        target.mkdir(parents=True, exist_ok=True)
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(target)
        import torch._inductor.config as inductor_config

        inductor_config.fx_graph_cache = True  # on by default; say it
        _configured = str(target)
    return target


def check_kernels(mode: str, where: str = "kernels") -> str:
    """``mode`` if it is a known kernel mode, else DseError naming the key."""
    if mode not in KERNELS:
        raise DseError(f"{where}: '{mode}' is not a kernel mode (allowed: {', '.join(KERNELS)})")
    return mode


def compile_kernel(fn: Callable[..., Any], name: str) -> Callable[..., Any]:
    """``torch.compile(fn, dynamic=True, fullgraph=True)`` behind the configured disk cache.

    ``dynamic=True``: sizes are symbolic from the first call, so one graph serves every layer
    and every number of pulsed devices (sizes 0 and 1 are specialised by torch: callers skip
    empty calls). ``fullgraph=True``: a graph break is a bug here, not a silent slow path.
    The first call's wall time (compile or cache load) is logged and added to :data:`STATS`.
    """
    configure_cache(None if _configured is None else _configured)
    compiled = torch.compile(fn, dynamic=True, fullgraph=True)
    first = [True]

    def run(*args: Any, **kwargs: Any) -> Any:
        if not first[0]:
            with _dynamo_settings():
                return compiled(*args, **kwargs)
        t0 = time.perf_counter()
        with _dynamo_settings():
            out = compiled(*args, **kwargs)
        dt = time.perf_counter() - t0
        first[0] = False
        STATS["compiled_calls"] += 1
        STATS["first_call_seconds"] += dt
        log.info("kernel %s: first call %.1f s (compile or cache load, %s)", name, dt,
                 _configured)
        return out

    run.__name__ = f"kernel_{name}"
    run.__doc__ = fn.__doc__
    return run


class _dynamo_settings:
    """Settings around every kernel call (compile and run).

    * ``specialize_float``: the models' Python floats (card parameters) are constants of the
      kernel (unspecialised, Dynamo would make them symbolic and restart the analysis, and the
      restarted graph misses the disk cache).
    * Gradient mode off (the kernels update state in place and are never differentiated; a
      call under grad mode would otherwise be a second graph).
    * Deterministic-algorithm mode off for the call: under it Inductor replaces every scatter
      (``index_put_``) by ATen's sort-based deterministic one, ~10× slower. The kernels'
      scatters write distinct indices (one value per device) and their sums are of integer
      pulse counts in float64, so they are deterministic without it.
    """

    _patch: Any = None  # one reusable config patch (building one costs ~50 µs a call)

    def __enter__(self) -> None:
        if _dynamo_settings._patch is None:
            from torch import _dynamo

            # one graph per model configuration, not per model instance or layer: the default
            # limit of 8 cache entries would silently fall back to eager in long sessions
            _dynamo_settings._patch = _dynamo.config.patch(
                specialize_float=True, recompile_limit=64, accumulated_recompile_limit=512)
        _dynamo_settings._patch.__enter__()
        self._no_grad = torch.no_grad()  # kernels never need autograd: one grad mode, one graph
        self._no_grad.__enter__()
        self._det = torch.are_deterministic_algorithms_enabled()
        if self._det:
            self._warn = torch.is_deterministic_algorithms_warn_only_enabled()
            torch.use_deterministic_algorithms(False)

    def __exit__(self, *exc: Any) -> None:
        if self._det:
            torch.use_deterministic_algorithms(True, warn_only=self._warn)
        self._no_grad.__exit__(*exc)
        _dynamo_settings._patch.__exit__(*exc)


def recompiles() -> int:
    """Graphs Dynamo compiled in this process so far (a recompile per batch size or layer
    would show here)."""
    from torch._dynamo.utils import counters

    return int(counters["stats"].get("unique_graphs", 0))


# ------------------------------------------------------------------------------ random numbers
def draw_keys(generator: torch.Generator, count: int = 3) -> Tensor:
    """``count`` int32 keys for one kernel call, from ``generator`` (on its device; no sync)."""
    return torch.randint(-(2 ** 31), 2 ** 31 - 1, (count,), generator=generator,
                         dtype=torch.int32, device=generator.device)


def _srl(x: Tensor, s: int) -> Tensor:
    """Logical right shift of int32 bit patterns."""
    return (x >> s) & ((1 << (32 - s)) - 1)


shift_right = _srl


def hash32(x: Tensor) -> Tensor:
    """lowbias32 on int32 bit patterns (wrap-around multiplies)."""
    x = x ^ _srl(x, 16)
    x = x * _C1
    x = x ^ _srl(x, 15)
    x = x * _C2
    return x ^ _srl(x, 16)


def random_bits(keys: Tensor, counter: Tensor) -> Tensor:
    """Keyed 32-bit random words (int32) of ``counter`` (int32): H(H(c ^ k0) ^ k1)."""
    return hash32(hash32(counter ^ keys[0]) ^ keys[1])


def to_uniform(bits: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
    """The top 24 bits as a uniform in (0, 1): (b + ½)·2⁻²⁴."""
    return (_srl(bits, 8).to(dtype) + 0.5) * _INV24


def uniform(keys: Tensor, counter: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
    """U(0, 1) per counter value."""
    return to_uniform(random_bits(keys, counter), dtype)


def normal(keys: Tensor, counter: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
    """N(0, 1) per counter value (Box–Muller of two keyed uniforms)."""
    a = random_bits(keys, counter)
    b = hash32(a ^ keys[2])
    r = torch.sqrt(-2.0 * torch.log(to_uniform(a, dtype)))
    return r * torch.cos(_TWO_PI * to_uniform(b, dtype))


# z·(α + β·z²) of the standardised sum z of four 8-bit uniforms has variance 1 and kurtosis 3
# (solved from the exact distribution of the sum; benchmarks/README.md, "Fused device kernels,
# part 3")
_NM_SCALE = 1.0 / 147.80392416712097  # 1/sqrt(4·(256² − 1)/12)
_NM_ALPHA = 0.9490332780957843
_NM_BETA = 0.018642382500609334


def normal_moments(keys: Tensor, counter: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
    """A Gaussian in its first four moments, with no transcendental function: the write noise of
    the compiled pulse kernels (:meth:`dse.devices.analog.PulseDevice.pulse_values`).

    One keyed word per counter value (``keys[0:2]``); its four bytes summed (Irwin–Hall of four
    discrete uniforms, centred and scaled to variance 1: z, kurtosis 2.7, |z| ≤ 3.45), then the
    odd cubic z·(α + β·z²) that makes the kurtosis 3 and keeps the variance 1 exactly. Mean 0,
    skewness 0 (symmetric), sixth moment 14.46 (Gaussian 15), |ξ| ≤ 4.04, Kolmogorov–Smirnov
    distance to N(0, 1) 0.0032 (1021 levels), P(|ξ| > 3) = 0.0024 (Gaussian 0.0027). About a
    third of :func:`normal`'s cost in a fused kernel (no log, sqrt, cos, one hash fewer).
    """
    a = random_bits(keys, counter)
    t = (a & 0x00FF00FF) + (_srl(a, 8) & 0x00FF00FF)  # two 16-bit sums of two bytes each
    z = ((t & 0xFFFF) + _srl(t, 16)).to(dtype).sub(510.0).mul(_NM_SCALE)
    return z * (_NM_ALPHA + _NM_BETA * (z * z))


def counter_like(x: Tensor, offset: int = 0) -> Tensor:
    """int32 counters 0..numel−1 (+ ``offset``) shaped like ``x``."""
    c = torch.arange(x.numel(), dtype=torch.int32, device=x.device)
    if offset:
        c = c + offset
    return c.view(x.shape)

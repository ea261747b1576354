"""Programming analog weights onto a chip's devices: ``open_loop`` and ``write_verify``.

A layer's weights are differential pairs, W ∝ D = G⁺ − G⁻. The inputs of a scheme are a device
model (an analog pulse family, :class:`dse.devices.DeviceModel`), a flat state of 2N devices
(G⁺ = devices [0, N), G⁻ = [N, 2N), the mixed-precision trainer's layout; fresh from
``sample_devices`` or the devices a network was trained on), the target differences D (N,) in
conductance units, the card's :class:`~dse.devices.inference.InferencePhysics` and a generator.
Every device has its own window [lo, hi] (its D2D bounds, :meth:`DeviceModel.window`).

``open_loop`` — one shot, no read-back. Both cells are RESET to their floor (a RESET saturates
at the device's own lower bound: the off cell sits at its *own* floor, not at the nominal
g_min — clamping an off cell to the nominal g_min moved half of them upward on a fresh chip and
flipped 17–29 % of the weight signs, issue 12 defect 1); the on cell (G⁺ for D > 0, G⁻ for
D < 0) is programmed once to g_min + |D| (the programmer knows only the nominal floor) with the
card's one-shot programming noise σ_prog(G), clipped to its own window.

``write_verify`` — program and verify the pair difference. The common mode is free: the
targets are t⁺ = c + D/2, t⁻ = c − D/2 with c the lowest value that keeps both inside their own
windows, so one cell of each pair sits at its floor (RESET) and the other (the *active* cell) at
its floor's partner value. D is reachable iff lo⁺ − hi⁻ ≤ D ≤ hi⁺ − lo⁻; an unreachable D is
programmed to the nearest reachable one (half a tolerance inside) and reported. The active cell
gets one one-shot programming (as in open loop), then each iteration reads both cells of every
pending pair (the card's read noise), accepts the pairs whose read difference is within
``tolerance`` of the goal and gives every other active cell n = round(ΔG/step) pulses of the
device model (its D2D gain, nonlinearity and cycle-to-cycle noise), ΔG the correction the read
asks for, |n| ≤ ``max_pulses``; step = the nominal mean step per pulse at the read conductance
until the loop has seen the cell respond (pulses the same way that moved it by more than three
times the read noise of two reads), then the measured step
(the secant of the last iteration: each device's own gain and nonlinearity, as a chip's verify
loop can learn them).
Vectorised over all pairs: the loop runs over verify iterations only (≤ ``max_iterations``).

Both return a :class:`ProgrammingResult`; :func:`summarize` gives the per-layer figures:
residual (achieved − target D) on reachable pairs and overall, its mean (a sign-dependent bias
would show here), unreachable and unconverged fractions, pulses, verify reads, energy and time
(card ``inference.cost``; time = cell by cell unless ``parallel`` cells are written at once).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch

from dse.devices.inference import InferencePhysics
from dse.errors import DseError

Tensor = torch.Tensor


@dataclass
class ProgrammingResult:
    """The devices after programming and what it took (per pair, N = len(target))."""

    scheme: str
    state: dict[str, Tensor]  # the 2N devices
    target: Tensor  # (N,) requested D = G⁺ − G⁻
    achieved: Tensor  # (N,) D of the programmed devices (noise-free read)
    unreachable: Tensor  # (N,) bool: D outside the pair's own window
    converged: Tensor  # (N,) bool: accepted by a verify read (open loop: all False)
    pulses: Tensor  # (N,) programming pulses (RESETs, one-shot SETs, verify pulses)
    reads: Tensor  # (N,) cell reads of the verify loop
    iterations: int


@dataclass(frozen=True)
class ProgrammingReport:
    """Per-layer summary of a :class:`ProgrammingResult` (conductance units, J, s)."""

    scheme: str
    pairs: int
    residual_rms: float  # reachable pairs
    residual_rms_all: float
    residual_max: float  # reachable pairs
    residual_mean: float  # reachable pairs (bias)
    unreachable: float  # fraction of pairs
    unconverged: float  # fraction of pairs (write_verify)
    pulses: int
    reads: int
    iterations: int
    energy_j: float
    time_s: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def pair_targets(d: Tensor, lo_p: Tensor, hi_p: Tensor, lo_n: Tensor, hi_n: Tensor,
                 margin: float = 0.0) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Lowest-common-mode targets ``(t⁺, t⁻, unreachable, positive_active)`` for differences
    ``d`` in pairs with windows [lo⁺, hi⁺], [lo⁻, hi⁻]. An unreachable ``d`` is replaced by the
    nearest reachable one, ``margin`` inside the edge (at most half the reachable span)."""
    d_lo, d_hi = lo_p - hi_n, hi_p - lo_n
    unreachable = (d < d_lo) | (d > d_hi)
    m = torch.minimum(torch.full_like(d, margin), (d_hi - d_lo) / 2)
    dc = torch.where(unreachable, torch.minimum(torch.maximum(d, d_lo + m), d_hi - m), d)
    pos = dc >= lo_p - lo_n  # G⁻ at its floor, G⁺ above it (else the reverse)
    t_p = torch.where(pos, lo_n + dc, lo_p)
    t_n = torch.where(pos, lo_n, lo_p - dc)
    return t_p, t_n, unreachable, pos


def _one_shot(t: Tensor, lo: Tensor, hi: Tensor, phys: InferencePhysics,
              generator: torch.Generator) -> Tensor:
    xi = torch.randn(t.shape, generator=generator, dtype=t.dtype, device=t.device)
    return torch.minimum(torch.maximum(t + phys.program_sigma(t) * xi, lo), hi)


def _check(dev: Any, state: dict[str, Tensor], target: Tensor) -> tuple[int, Tensor, Tensor]:
    if not hasattr(dev, "set_conductance") or not hasattr(dev, "trajectory"):
        raise DseError(f"{dev.describe()}: programming needs an analog pulse family "
                       "(soft_bounds, exp_step, piecewise)")
    n = int(target.numel())
    lo, hi = dev.window(state)
    if lo.dim() != 1 or lo.shape[0] != 2 * n:
        raise DseError(f"programming: a flat state of 2N = {2 * n} devices is needed for "
                       f"{n} pairs, got {tuple(lo.shape)}")
    return n, lo.to(target.dtype), hi.to(target.dtype)


def _finish(scheme: str, dev: Any, state: dict[str, Tensor], target: Tensor,
            unreachable: Tensor, converged: Tensor, pulses: Tensor, reads: Tensor,
            iterations: int) -> ProgrammingResult:
    g = dev.read(state).to(target.dtype)
    n = target.numel()
    return ProgrammingResult(scheme, state, target, g[:n] - g[n:], unreachable, converged,
                             pulses, reads, iterations)


def program_open_loop(dev: Any, state: dict[str, Tensor], target: Tensor,
                      phys: InferencePhysics, generator: torch.Generator) -> ProgrammingResult:
    """One-shot programming (module docstring); ``state`` is changed in place and returned."""
    n, lo, hi = _check(dev, state, target)
    ar = torch.arange(n, device=target.device)
    pos = target >= 0
    on = torch.where(pos, ar, ar + n)
    g = lo.clone()  # RESET: every cell at its own floor
    t_on = phys.g_min + target.abs()
    g[on] = _one_shot(t_on, lo[on], hi[on], phys, generator)
    dev.set_conductance(state, g)
    _, _, unreachable, _ = pair_targets(target, lo[:n], hi[:n], lo[n:], hi[n:])
    pulses = 2 + (target != 0).to(torch.long)  # two RESETs, one SET where D ≠ 0
    zeros = torch.zeros(n, dtype=torch.long, device=target.device)
    return _finish("open_loop", dev, state, target, unreachable,
                   torch.zeros(n, dtype=torch.bool, device=target.device), pulses, zeros, 0)


def _nominal_steps(dev: Any, g: Tensor) -> tuple[Tensor, Tensor]:
    """Mean |ΔG| of one up and one down pulse of a nominal device at conductances ``g``
    (clamped into the nominal window, where the nominal trajectory is defined)."""
    g64 = g.to(torch.float64).clamp(float(dev.g_min), float(dev.g_max))
    one = torch.ones_like(g64)
    up = dev.trajectory(g64, one, +1) - g64
    down = g64 - dev.trajectory(g64, one, -1)
    dw = float(dev.dw_min)  # at a nominal bound one direction's step vanishes: keep it finite
    return (up.clamp(0.1 * dw, 10 * dw).to(g.dtype), down.clamp(0.1 * dw, 10 * dw).to(g.dtype))


def program_write_verify(dev: Any, state: dict[str, Tensor], target: Tensor,
                         phys: InferencePhysics, generator: torch.Generator
                         ) -> ProgrammingResult:
    """Program-and-verify of the pair differences (module docstring); ``state`` in place."""
    n, lo, hi = _check(dev, state, target)
    wv = phys.write_verify
    tol = wv.tolerance
    t_p, t_n, unreachable, pos = pair_targets(target, lo[:n], hi[:n], lo[n:], hi[n:], tol / 2)
    goal = t_p - t_n
    ar = torch.arange(n, device=target.device)
    act = torch.where(pos, ar, ar + n)  # the active cell of each pair
    sgn = torch.where(pos, 1.0, -1.0).to(target.dtype)  # dD/dG of the active cell
    g = lo.clone()
    g[act] = _one_shot(torch.where(pos, t_p, t_n), lo[act], hi[act], phys, generator)
    dev.set_conductance(state, g)
    pulses = torch.full((n,), 3, dtype=torch.long, device=target.device)  # 2 RESETs, 1 SET
    reads = torch.zeros(n, dtype=torch.long, device=target.device)
    done = torch.zeros(n, dtype=torch.bool, device=target.device)
    # per active cell: its step per pulse as the verify loop learns it (secant of the last
    # pulses; the nominal step until then), the last read and pulse count
    learned = torch.zeros(n, dtype=target.dtype, device=target.device)
    last_g = torch.zeros_like(learned)
    last_n = torch.zeros_like(learned)
    dw = float(dev.dw_min)
    it = 0
    for it in range(wv.max_iterations + 1):
        todo = torch.nonzero(~done).squeeze(1)
        if todo.numel() == 0:
            break
        g_p = phys.read(dev.read_at(state, todo).to(target.dtype), generator)
        g_n = phys.read(dev.read_at(state, todo + n).to(target.dtype), generator)
        reads.index_add_(0, todo, torch.full_like(todo, 2))
        err = (g_p - g_n) - goal[todo]
        ok = err.abs() <= tol
        done[todo[ok]] = True
        if it == wv.max_iterations:
            break
        keep = ~ok
        pend, err = todo[keep], err[keep]
        want = -sgn[pend] * err  # the change of the active cell that cancels the error
        g_a = torch.where(pos[pend], g_p[keep], g_n[keep])
        up, down = _nominal_steps(dev, g_a)
        step = torch.where(want > 0, up, down)
        # secant of the previous iteration's pulses, where they moved the cell well beyond the
        # read noise of two reads and in the same direction as now (the device's own gain and
        # its position on the nonlinearity)
        k_prev = last_n[pend]
        seen = (g_a - last_g[pend]) / k_prev.abs().clamp(min=1.0) * torch.sign(k_prev)
        resolved = k_prev.abs() * step >= 3 * math.sqrt(2.0) * phys.read_sigma(g_a)
        use = resolved & (torch.sign(k_prev) == torch.sign(want)) & (seen > 0)
        learned[pend] = torch.where(use, seen.clamp(0.05 * dw, 20 * dw), learned[pend])
        step = torch.where(learned[pend] > 0, learned[pend], step)
        cnt = (want / step).round().clamp(-wv.max_pulses, wv.max_pulses)
        cnt = torch.where(cnt == 0, torch.sign(want), cnt)
        dev.apply_pulses_at(state, act[pend], cnt, generator)
        pulses.index_add_(0, pend, cnt.abs().to(torch.long))
        last_g[pend], last_n[pend] = g_a, cnt
    return _finish("write_verify", dev, state, target, unreachable, done, pulses, reads, it)


SCHEMES: dict[str, Callable[..., ProgrammingResult]] = {
    "open_loop": program_open_loop, "write_verify": program_write_verify}


def program(scheme: str, dev: Any, state: dict[str, Tensor], target: Tensor,
            phys: InferencePhysics, generator: torch.Generator) -> ProgrammingResult:
    """Program ``target`` differences with ``scheme`` (``open_loop`` | ``write_verify``)."""
    if scheme not in SCHEMES:
        raise DseError(f"programming scheme '{scheme}' (allowed: {', '.join(SCHEMES)})")
    return SCHEMES[scheme](dev, state, target, phys, generator)


def summarize(result: ProgrammingResult, phys: InferencePhysics,
              parallel: int = 1) -> ProgrammingReport:
    """Per-layer figures of a programming result (module docstring)."""
    if parallel < 1:
        raise DseError(f"programming: parallel = {parallel} must be >= 1")
    res = (result.achieved - result.target).to(torch.float64)
    ok = ~result.unreachable
    r_ok = res[ok]
    c = phys.cost
    pulses = int(result.pulses.sum())
    reads = int(result.reads.sum())
    n = int(result.target.numel())

    def rms(x: Tensor) -> float:
        return float(x.square().mean().sqrt()) if x.numel() else math.nan

    return ProgrammingReport(
        scheme=result.scheme, pairs=n, residual_rms=rms(r_ok), residual_rms_all=rms(res),
        residual_max=float(r_ok.abs().max()) if r_ok.numel() else math.nan,
        residual_mean=float(r_ok.mean()) if r_ok.numel() else math.nan,
        unreachable=float(result.unreachable.double().mean()) if n else 0.0,
        unconverged=(float((~result.converged).double().mean())
                     if result.scheme == "write_verify" and n else 0.0),
        pulses=pulses, reads=reads, iterations=result.iterations,
        energy_j=pulses * c.pulse_energy + reads * c.read_energy,
        time_s=(pulses * c.pulse_time + reads * c.read_time) / parallel)

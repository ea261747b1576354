"""Programming analog weights onto each device's own window: open loop and write-verify."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import pytest
import torch

from dse.chip.programming import pair_targets, program, summarize
from dse.devices import from_card
from dse.devices.inference import Polynomial, inference_physics
from dse.errors import DseError
from dse.pipeline.artifacts import load_card

CARD = load_card(Path(__file__).resolve().parents[1] / "config" / "devices"
                 / "reram-sb-gong2018.yaml")
N = 3000


def setup(seed: int = 0, read_sigma: float | None = None):
    dev = from_card(CARD)
    phys = inference_physics(dev)
    if read_sigma is not None:
        phys = dataclasses.replace(phys, read_noise=Polynomial((read_sigma,), phys.g_max))
    gen = torch.Generator().manual_seed(seed)
    state = dev.sample_devices((2 * N,), gen)
    return dev, phys, state, gen


def inside_targets(dev, state, margin: float, gen) -> torch.Tensor:
    lo, hi = dev.window(state)
    d_lo, d_hi = lo[:N] - hi[N:], hi[:N] - lo[N:]
    u = torch.rand(N, generator=gen)
    return d_lo + margin + u * (d_hi - d_lo - 2 * margin)


def test_pair_targets_keep_both_cells_in_their_windows() -> None:
    dev, _, state, gen = setup()
    lo, hi = dev.window(state)
    d = 30 * (2 * torch.rand(N, generator=gen) - 1)
    t_p, t_n, unreachable, _pos = pair_targets(d, lo[:N], hi[:N], lo[N:], hi[N:])
    ok = ~unreachable
    assert torch.allclose((t_p - t_n)[ok], d[ok], atol=1e-5)
    eps = 1e-5
    for t, a, b in ((t_p, lo[:N], hi[:N]), (t_n, lo[N:], hi[N:])):
        assert bool(((t >= a - eps) & (t <= b + eps)).all())
    # one cell of each pair at its own floor (the lowest common mode)
    assert bool(((t_p == lo[:N]) | (t_n == lo[N:])).all())
    assert bool((unreachable == ((d < lo[:N] - hi[N:]) | (d > hi[:N] - lo[N:]))).all())


def test_write_verify_reaches_targets_inside_both_windows_without_sign_bias() -> None:
    dev, phys, state, gen = setup(read_sigma=0.01)  # (nearly) exact verify reads
    tol = phys.write_verify.tolerance
    d = inside_targets(dev, state, tol, gen)
    res = program("write_verify", dev, state, d, phys, gen)
    assert not bool(res.unreachable.any())
    assert float(res.converged.double().mean()) >= 0.995
    r = (res.achieved - d)[res.converged]
    assert float(r.abs().max()) <= tol + 5 * 2 ** 0.5 * 0.01
    se = tol / 3 ** 0.5 / (r.numel() / 2) ** 0.5  # residual ~ uniform in ±tol at worst
    dc = d[res.converged]
    r_pos, r_neg = r[dc > 0], r[dc < 0]
    assert abs(float(r_pos.mean())) < 4 * se and abs(float(r_neg.mean())) < 4 * se
    assert abs(float(r_pos.mean() - r_neg.mean())) < 4 * se * 2 ** 0.5
    rep = summarize(res, phys)
    assert rep.unreachable == 0.0 and rep.residual_rms <= tol
    assert rep.iterations <= phys.write_verify.max_iterations


def test_write_verify_residual_with_the_cards_read_noise() -> None:
    """Accepted on noisy reads: the true residual is the accepted one minus the read noise of
    the difference (σ√2), so rms ≤ sqrt(tol²/3 + 2σ²) (uniform acceptance at worst)."""
    dev, phys, state, gen = setup(seed=1)
    tol = phys.write_verify.tolerance
    sigma = float(phys.read_sigma(torch.tensor([20.0]))[0])
    d = inside_targets(dev, state, tol, gen)
    rep = summarize(program("write_verify", dev, state, d, phys, gen), phys)
    bound = (tol ** 2 / 3 + 2 * sigma ** 2) ** 0.5
    assert rep.residual_rms <= 1.1 * bound and abs(rep.residual_mean) < 0.05
    # the read noise of the difference (0.46 uS) exceeds the tolerance (0.4 uS): a few pairs
    # are still unaccepted after 20 iterations
    assert rep.unconverged < 0.03


def test_unreachable_targets_are_reported_and_clipped_to_the_window() -> None:
    dev, phys, state, gen = setup(read_sigma=0.01)
    lo, hi = dev.window(state)
    tol = phys.write_verify.tolerance
    d_hi, d_lo = hi[:N] - lo[N:], lo[:N] - hi[N:]
    d = torch.where(torch.arange(N) % 2 == 0, d_hi + 2.0, d_lo - 2.0)
    d[::3] = 0.0  # reachable ones in between
    res = program("write_verify", dev, state, d, phys, gen)
    expect = (d > d_hi) | (d < d_lo)
    assert bool((res.unreachable == expect).all())
    edge = torch.where(d > 0, d_hi - tol / 2, d_lo + tol / 2)
    ok = res.unreachable & res.converged
    assert float((res.achieved - edge)[ok].abs().max()) <= tol + 0.1
    assert summarize(res, phys).unreachable == pytest.approx(float(expect.double().mean()))


def test_open_loop_puts_the_off_cell_at_its_own_floor_and_has_no_sign_bias() -> None:
    dev, phys, state, gen = setup(seed=2)
    lo, hi = dev.window(state)
    lo, hi = lo.clone(), hi.clone()
    mag = 1 + 15 * torch.rand(N, generator=gen)
    d = torch.where(torch.arange(N) % 2 == 0, mag, -mag)
    res = program("open_loop", dev, copy.deepcopy(state), d, phys, gen)
    x = res.state["x"]
    off = torch.where(d > 0, torch.arange(N) + N, torch.arange(N))
    assert torch.equal(x[off], lo[off])  # the off cell at ITS floor, not the nominal g_min
    on = torch.where(d > 0, torch.arange(N), torch.arange(N) + N)
    assert bool(((x[on] >= lo[on]) & (x[on] <= hi[on])).all())
    signed = (res.achieved - d) * torch.sign(d)  # mirror-symmetric for ±D
    a, b = signed[d > 0], signed[d < 0]
    se = float(torch.cat([a, b]).std()) / (N / 2) ** 0.5
    assert abs(float(a.mean() - b.mean())) < 4 * se * 2 ** 0.5
    flips = float((torch.sign(res.achieved) != torch.sign(d)).double().mean())
    assert flips < 0.1
    rep = summarize(res, phys)
    assert rep.pulses == 3 * N and rep.reads == 0 and rep.unconverged == 0.0


def test_costs_follow_the_card() -> None:
    dev, phys, state, gen = setup(seed=3)
    d = inside_targets(dev, state, 1.0, gen)
    res = program("write_verify", dev, state, d, phys, gen)
    rep = summarize(res, phys, parallel=8)
    c = phys.cost
    assert rep.pulses == int(res.pulses.sum()) and rep.reads == int(res.reads.sum())
    assert rep.reads % 2 == 0 and rep.reads >= 2 * N
    assert rep.energy_j == pytest.approx(rep.pulses * c.pulse_energy + rep.reads * c.read_energy)
    assert rep.time_s == pytest.approx((rep.pulses * c.pulse_time + rep.reads * c.read_time) / 8)


def test_bad_calls_raise() -> None:
    dev, phys, state, gen = setup()
    with pytest.raises(DseError, match="programming scheme 'closed_loop'"):
        program("closed_loop", dev, state, torch.zeros(N), phys, gen)
    with pytest.raises(DseError, match="2N = 20 devices"):
        program("open_loop", dev, state, torch.zeros(10), phys, gen)
    with pytest.raises(DseError, match="parallel"):
        summarize(program("open_loop", dev, state, torch.zeros(N), phys, gen), phys, parallel=0)

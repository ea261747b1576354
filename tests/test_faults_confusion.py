"""Per-stored-value fault injection (dse.nn.faults.apply_confusion, issue 13)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dse.errors import DseError
from dse.nn.faults import apply_confusion, apply_weight_confusion, ternary_errors


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _rates(w: torch.Tensor, r: torch.Tensor, values: tuple[float, ...], maps: int):
    """Measured P(read | stored) per map and the number of stored weights of each value."""
    k = len(values)
    rate = np.zeros((maps, k, k))
    count = np.zeros((maps, k))
    for i, s in enumerate(values):
        stored = w == s
        n = stored.reshape(maps, -1).sum(1).double()
        count[:, i] = n.numpy()
        for j, v in enumerate(values):
            hit = (stored & (r == v)).reshape(maps, -1).sum(1).double()
            rate[:, i, j] = (hit / n).numpy()
    return rate, count


def _random_matrices(maps: int, k: int, seed: int) -> np.ndarray:
    """Random rows per map; the first stored value gets small rates, so tails are checked too."""
    m = np.random.default_rng(seed).dirichlet(np.ones(k) * 0.6, size=(maps, k))
    m[:, 0] = [0.998, 0.002] if k == 2 else [0.997, 0.002, 0.001]
    return m


@pytest.mark.parametrize("k", [2, 3])
def test_measured_rates_equal_the_requested_ones(k: int) -> None:
    maps = 4
    values = (-1.0, 1.0) if k == 2 else (-1.0, 0.0, 1.0)
    base = torch.tensor(values).repeat_interleave(60_000)
    w = base[torch.randperm(base.numel(), generator=gen(1))].reshape(300, -1)
    w = w.expand(maps, *w.shape).contiguous()           # (maps, 300, 200·k) stacked fault maps
    m = _random_matrices(maps, k, seed=k)
    r = apply_confusion(w, torch.tensor(m), gen(2))
    assert r.shape == w.shape and set(torch.unique(r).tolist()) <= set(values)
    rate, count = _rates(w, r, values, maps)
    sigma = np.sqrt(m * (1 - m) / count[..., None])
    assert np.all(np.abs(rate - m) <= 3 * sigma + 1e-12), np.abs(rate - m) / (sigma + 1e-300)


def test_one_matrix_broadcasts_over_maps_and_is_seeded() -> None:
    m = torch.tensor([[0.9, 0.1, 0.0], [0.05, 0.9, 0.05], [0.0, 0.1, 0.9]])
    w = torch.randint(-1, 2, (3, 50, 40), generator=gen(4)).float()
    a, b = apply_confusion(w, m, gen(7)), apply_confusion(w, m, gen(7))
    assert torch.equal(a, b) and not torch.equal(a, apply_confusion(w, m, gen(8)))
    assert not torch.equal(a[0], a[1])                     # maps get independent draws
    # rows with probability 0 are never produced: +1 never reads -1 here and vice versa
    assert not bool(((w == 1) & (a == -1)).any() or ((w == -1) & (a == 1)).any())
    assert torch.equal(apply_confusion(w, torch.eye(3), gen(0)), w)


def test_the_groups_ternary_model_is_a_special_case() -> None:
    # Hirtzlin et al., AICAS 2019, arXiv 1904.03652; code Laborieux-Axel/Quantized_VGG: q =
    # 2·BER/(1+p0); 0 -> ±1 with q/2 each, ±1 -> 0 with q/2
    ber = 0.04
    w = torch.randint(-1, 2, (400, 500), generator=gen(11)).float()
    p0 = float((w == 0).float().mean())
    q = 2 * ber / (1 + p0)
    m = torch.tensor([[1 - q / 2, q / 2, 0.0], [q / 2, 1 - q, q / 2], [0.0, q / 2, 1 - q / 2]],
                     dtype=torch.float64)
    a = apply_confusion(w, m, gen(12))
    b = ternary_errors(w, ber, 2, gen(13))
    n = w.numel()
    ra, rb = float((a != w).float().mean()), float((b != w).float().mean())
    sigma = np.sqrt(ber * (1 - ber) / n)
    assert abs(ra - ber) < 3 * sigma and abs(rb - ber) < 3 * sigma


def test_binary_weights_on_a_ternary_chip_can_read_zero() -> None:
    m = torch.tensor([[0.8, 0.2, 0.0], [0.0, 1.0, 0.0], [0.0, 0.2, 0.8]])
    w = torch.where(torch.rand(200, 300, generator=gen(5)) < 0.5, -1.0, 1.0)
    r = apply_weight_confusion(w, "binary", m, gen(6))
    assert abs(float((r == 0).float().mean()) - 0.2) < 3 * np.sqrt(0.16 / w.numel())
    f = torch.randn(5, 5)
    assert apply_weight_confusion(f, "float", m, gen(6)) is f


@pytest.mark.parametrize("matrix, w, match", [
    ([[0.9, 0.2], [0.1, 0.9]], torch.ones(4, 4), "summing to 1"),
    ([[1.1, -0.1], [0.0, 1.0]], torch.ones(4, 4), "non-negative"),
    (torch.eye(4), torch.ones(4, 4), "expected"),
    ([[1.0, 0.0], [0.0, 1.0]], torch.zeros(4, 4), "contain zeros"),
    (torch.eye(3).expand(5, 3, 3), torch.zeros(4, 4, 4), "broadcast"),
])
def test_bad_matrices_are_rejected(matrix, w, match) -> None:
    with pytest.raises(DseError, match=match):
        apply_confusion(w, torch.as_tensor(matrix, dtype=torch.float32), gen(0))

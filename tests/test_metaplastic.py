"""Algorithm ``metaplastic`` (Laborieux et al. 2021): the Adam_meta rule, task-specific BN,
the continual-learning contract files and the task-matrix figure."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pandas as pd
import pytest
import torch
from matplotlib.figure import Figure

from dse.config import Experiment
from dse.data import load_dataset, permuted_tasks
from dse.errors import DseError
from dse.nn import ModelSpec, build_model, evaluate
from dse.pipeline.artifacts import load_model as load
from dse.pipeline.artifacts import save_model as save
from dse.report.figures import task_matrix_figure
from dse.train import AdamMeta, MetaplasticTrainer, train
from dse.train.metaplastic import metaplastic_settings


@pytest.fixture(scope="module")
def digit_tasks():
    return permuted_tasks(load_dataset("digits"), 2, seed=3)


def _params(dtype: torch.dtype, seed: int) -> list[torch.nn.Parameter]:
    g = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(40, 30, generator=g, dtype=dtype) * 0.1),
            torch.nn.Parameter(torch.randn(30, generator=g, dtype=dtype))]


def _run(opt_cls, params, grads, **kw) -> list[torch.Tensor]:
    opt = opt_cls(params, **kw)
    for gs in grads:
        for p, g in zip(params, gs, strict=True):
            p.grad = g.clone()
        opt.step()
    return [p.detach().clone() for p in params]


@pytest.mark.parametrize(("dtype", "eps", "tol"), [(torch.float64, 0.0, 1e-12),
                                                   (torch.float32, 1e-8, 1e-5)])
def test_m_zero_is_plain_adam(dtype: torch.dtype, eps: float, tol: float) -> None:
    # m = 0 everywhere: AdamMeta must be torch.optim.Adam (coupled L2 included). With eps = 0 the
    # two are the same algebra; with eps = 1e-8 they differ only by where eps enters (the
    # Adam_meta code of Laborieux-Axel/SynapticMetaplasticityBNN adds it to sqrt(v_t) before the
    # bias correction, like PyTorch <= 1.4).
    g = torch.Generator().manual_seed(1)
    grads = [[torch.randn(40, 30, generator=g, dtype=dtype),
              torch.randn(30, generator=g, dtype=dtype)] for _ in range(25)]
    ours = _run(AdamMeta, _params(dtype, 0), grads, lr=0.005, eps=eps, weight_decay=1e-3,
                meta=0.0)
    ref = _run(torch.optim.Adam, _params(dtype, 0), grads, lr=0.005, eps=eps,
               weight_decay=1e-3)
    start = _params(dtype, 0)
    for a, b, s in zip(ours, ref, start, strict=True):
        assert not torch.equal(a, s)  # the parameters did move
        torch.testing.assert_close(a, b, rtol=tol, atol=tol)


def test_only_updates_that_shrink_abs_w_are_attenuated() -> None:
    # Two copies of the same weights, same gradients, m = 3 and m = 0. The moments depend only
    # on the gradients (no decay), so both optimizers hold the same m_t, v_t; before every step
    # both copies are reset to the same W. The steps must then be equal where sign(W)·m_t <= 0
    # (|W| grows) and scaled by exactly 1 − tanh²(3|W|) where sign(W)·m_t > 0 (|W| shrinks,
    # including steps that cross zero, which are attenuated as a whole).
    m = 3.0
    g = torch.Generator().manual_seed(2)
    w_meta = torch.nn.Parameter(torch.zeros(50, 40, dtype=torch.float64))
    w_adam = torch.nn.Parameter(torch.zeros(50, 40, dtype=torch.float64))
    b_meta = torch.nn.Parameter(torch.zeros(40, dtype=torch.float64))  # 1-D: plain Adam
    b_adam = torch.nn.Parameter(torch.zeros(40, dtype=torch.float64))
    opt_meta = AdamMeta([w_meta, b_meta], lr=0.05, meta=m)
    opt_adam = AdamMeta([w_adam, b_adam], lr=0.05, meta=0.0)
    crossed = 0
    for _ in range(6):
        w0 = torch.randn(50, 40, generator=g, dtype=torch.float64) * 0.3
        w0[:5] *= 1e-3  # tiny weights: these steps cross zero
        b0 = torch.randn(40, generator=g, dtype=torch.float64)
        grad = torch.randn(50, 40, generator=g, dtype=torch.float64)
        gb = torch.randn(40, generator=g, dtype=torch.float64)
        with torch.no_grad():
            for p, v in ((w_meta, w0), (w_adam, w0), (b_meta, b0), (b_adam, b0)):
                p.copy_(v)
        w_meta.grad, w_adam.grad, b_meta.grad, b_adam.grad = grad, grad.clone(), gb, gb.clone()
        opt_meta.step()
        opt_adam.step()
        exp_avg = opt_meta.state[w_meta]["exp_avg"]
        assert torch.equal(exp_avg, opt_adam.state[w_adam]["exp_avg"])
        shrinks = torch.sign(w0) * exp_avg > 0
        assert 0.2 < shrinks.double().mean() < 0.8
        d_meta, d_adam = w_meta.detach() - w0, w_adam.detach() - w0
        f_meta = 1 - torch.tanh(m * w0.abs()) ** 2
        torch.testing.assert_close(d_meta[shrinks], (f_meta * d_adam)[shrinks],
                                   rtol=1e-12, atol=1e-15)
        assert torch.equal(d_meta[~shrinks], d_adam[~shrinks])
        assert (f_meta[shrinks] < 1).all()
        crossed += int((torch.sign(w0 + d_adam) != torch.sign(w0))[shrinks].sum())
        assert torch.equal(b_meta.detach(), b_adam.detach())
    assert crossed > 0


def _exp(name: str = "meta", **kw) -> Experiment:
    entry = {"dataset": "digits", "hidden": [64, 64], "algorithm": "metaplastic", "epochs": 3,
             "tasks": {"kind": "permuted", "count": 2}, "seed": 4}
    entry.update(kw)
    return Experiment.from_dict(name, entry)


def _trainer(exp: Experiment, tasks) -> MetaplasticTrainer:
    spec = ModelSpec(model="mlp", input_shape=tasks[0].input_shape, classes=10,
                     hidden=list(exp.hidden))
    gen = torch.Generator().manual_seed(exp.seed)
    return MetaplasticTrainer(exp, build_model(spec, gen), torch.device("cpu"), gen)


def test_settings_have_one_home_of_their_defaults() -> None:
    direct = Experiment(name="d", algorithm="metaplastic")  # not validated: metaplastic == {}
    assert metaplastic_settings(direct) == metaplastic_settings(_exp())
    assert metaplastic_settings(direct).m == 1.35  # Laborieux et al. 2021 README, Fig. 2
    with pytest.raises(DseError, match="metaplastic: unknown key 'mm'"):
        metaplastic_settings(Experiment(name="d", metaplastic={"mm": 1}))


def test_per_layer_m_and_init(digit_tasks) -> None:
    tr = _trainer(_exp(metaplastic={"m": [1.0, 2.0, 3.0]}), digit_tasks)
    tr.start_task(0)
    assert [g["meta"] for g in tr.optimizer.param_groups] == [1.0, 2.0, 3.0, 0.0]
    assert all(p.dim() == 1 for p in tr.optimizer.param_groups[-1]["params"])
    for _, layer in tr.model.quant_layers():  # U(-0.05, 0.05): --init-width 0.1
        w = layer.weight
        assert w.abs().max() <= 0.05 and w.abs().max() > 0.045
    tr.start_task(2)  # lr_gamma 1: same lr on every task
    assert tr.optimizer.param_groups[0]["lr"] == 0.005
    gamma = _trainer(_exp(metaplastic={"lr_gamma": 2.0}), digit_tasks)
    gamma.start_task(2)
    assert gamma.optimizer.param_groups[0]["lr"] == pytest.approx(0.005 / 4)
    with pytest.raises(DseError, match=r"metaplastic\.m: 2 values for 3 weight layers"):
        _trainer(_exp(metaplastic={"m": [1.0, 2.0]}), digit_tasks)


def test_huge_m_freezes_every_binary_weight(digit_tasks) -> None:
    # m = 1e4: f_meta <= 4·exp(−20) for |W| > 1e-3, so no update can bring a weight back to
    # zero, no binary weight flips, and |W_h| only grows; the network learns through BN alone.
    exp = _exp(epochs=2, metaplastic={"m": 1e4})
    tr = _trainer(exp, digit_tasks)
    w0 = {n: layer.weight.detach().clone() for n, layer in tr.model.quant_layers()}
    tr.start_task(0)
    for xb, yb in zip(digit_tasks[0].x_train.split(100), digit_tasks[0].y_train.split(100),
                      strict=True):
        tr.step(xb, yb)
    for n, layer in tr.model.quant_layers():
        big = w0[n].abs() > 1e-3
        w = layer.weight.detach()
        assert torch.equal(torch.sign(w[big]), torch.sign(w0[n][big]))
        assert (w[big].abs() >= w0[n][big].abs() - 1e-7).all()
        assert (w.abs() > w0[n].abs() + 1e-4).float().mean() > 0.3  # the others still grow


def test_task_specific_batchnorm(digit_tasks) -> None:
    tr = _trainer(_exp(), digit_tasks)
    bn1 = tr.model.body.bn1
    states = []
    for k, task in enumerate(digit_tasks):
        tr.start_task(k)
        for xb, yb in zip(task.x_train.split(100), task.y_train.split(100), strict=True):
            tr.step(xb, yb)
        tr.end_task(k)
        states.append({n: t.clone() for n, t in bn1.state_dict().items()})
    assert not torch.equal(states[0]["weight"], states[1]["weight"])
    tr.use_task(0)
    assert all(torch.equal(bn1.state_dict()[n], t) for n, t in states[0].items())
    tr.use_task(5)  # not trained yet: the latest BN
    assert all(torch.equal(bn1.state_dict()[n], t) for n, t in states[1].items())

    # bn_stats: batch -> eval uses the batch's statistics (= train mode without stat updates).
    x = digit_tasks[1].x_test[:200]
    ref = copy.deepcopy(tr.model)
    for bn in tr.bns:
        bn.momentum = 0.0
    tr.model.eval()
    batch_logits = tr.model(x)
    ref_train = copy.deepcopy(tr.model).train()
    torch.testing.assert_close(batch_logits, ref_train(x))
    tr.use_task(0)
    tr.finalize()  # hooks removed, the last task's BN (running statistics) deployed
    assert all(torch.equal(bn1.state_dict()[n], t) for n, t in states[1].items())
    ref.eval()
    for bn in ref.modules():
        bn._forward_hooks.clear()
    torch.testing.assert_close(tr.model.eval()(x), ref(x))
    assert not torch.allclose(tr.model(x), batch_logits)


def test_continual_run_learns_and_writes_the_contract(digit_tasks, tmp_path: Path) -> None:
    exp = _exp(metaplastic={"m": 4.0})
    res = train(exp, digit_tasks, progress=False)
    m = res.tasks
    assert list(m.columns) == ["after_task", "task", "name", "test_acc"]
    assert len(m) == 4 and list(m["after_task"]) == [0, 0, 1, 1]
    diag = m[m["after_task"] == m["task"]]["test_acc"]
    assert (diag > 0.6).all()  # chance is 0.1
    assert len(res.history) == 2 * exp.epochs and list(res.history["task"].unique()) == [0, 1]
    out = save(res, tmp_path / "meta")
    for f in ("model.pt", "model.json", "history.csv", "pulses.csv", "tasks.csv"):
        assert (out / f).is_file()
    pd.testing.assert_frame_equal(pd.read_csv(out / "tasks.csv"), m, check_dtype=False)
    meta = json.loads((out / "model.json").read_text())
    assert meta["experiment"]["metaplastic"]["m"] == 4.0
    # model.pt holds the last task's BN with running statistics: the deployed network
    back = load(out)
    assert evaluate(back.model, digit_tasks[1].x_test, digit_tasks[1].y_test) > 0.6
    x = digit_tasks[1].x_test
    torch.testing.assert_close(back.model(x), res.model.eval()(x))


def test_task_matrix_figure(tmp_path: Path) -> None:
    rows = [{"after_task": a, "task": t, "name": f"perm{t}", "test_acc": 0.9 - 0.2 * (a - t)}
            for a in range(3) for t in range(3)]
    df = pd.DataFrame(rows)
    fig = task_matrix_figure(df)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    values = ax.collections[0].get_array().reshape(3, 3)
    expected = 100 * df.pivot(index="after_task", columns="task", values="test_acc").to_numpy()
    assert abs(values - expected).max() < 1e-9
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0: perm0", "1: perm1", "2: perm2"]
    fig.savefig(tmp_path / "m.png")
    assert (tmp_path / "m.png").read_bytes()[:4] == b"\x89PNG"
    one = task_matrix_figure(df[df["after_task"] == 0].iloc[:1])  # a single-task run
    assert one.axes[0].collections[0].get_array().size == 1
    with pytest.raises(DseError, match="missing column"):
        task_matrix_figure(df.drop(columns="test_acc"))

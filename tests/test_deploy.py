"""In-situ deployment (issue 12 item 4): the trained devices saved with the model (float16,
weights_only) and the deployment on trained vs fresh devices, over time, compensated or not."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pandas as pd
import pytest
import torch

from dse.chip.deploy import DeploySettings, _readout, _trained_layers, _weights, deploy
from dse.chip.mapping import map_model
from dse.config import Experiment
from dse.data import load_dataset
from dse.devices import from_card
from dse.devices.inference import Polynomial, inference_physics
from dse.errors import DseError
from dse.nn import evaluate
from dse.pipeline.artifacts import inject_tables, load_card, load_chip, load_model, save_model
from dse.train import train
from dse.train.device_state import pack, unpack

REPO = Path(__file__).resolve().parents[1]
CARD = load_card(REPO / "config" / "devices" / "reram-sb-gong2018.yaml")
CHIP = load_chip(REPO / "config" / "chips" / "rram-1t1r-adc.yaml")
# the pair's currents subtracted on the bit line: the cells' floor cancels before the ADC
CHIP_ANALOG = load_chip(REPO / "config" / "chips" / "rram-1t1r-adc-analog-sub.yaml")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A small mixed-precision MLP on digits, saved and loaded back (module-wide: one run)."""
    torch.set_num_threads(1)
    ds = load_dataset("digits")
    exp = Experiment.from_dict("mp", {
        "dataset": "digits", "model": "mlp", "hidden": [32], "precision": "float",
        "algorithm": "mixed_precision", "device_card": "reram-sb-gong2018", "epochs": 2,
        "lr": 0.1}, devices={"reram-sb-gong2018": {"card": "x.yaml"}})
    res = train(exp, [ds], cards={"reram-sb-gong2018": CARD}, progress=False)
    out = save_model(res, tmp_path_factory.mktemp("mp") / "mp", card=CARD)
    return load_model(out), ds


def test_pack_keeps_float16_except_out_of_range() -> None:
    state = {"x": torch.tensor([1.0, 32.5]), "lo": torch.tensor([-math.inf, 0.0]),
             "big": torch.tensor([1e6, 1.0])}
    packed = pack([("fc1", state, 0.25)])
    assert packed["fc1/x"].dtype == torch.float16
    assert packed["fc1/lo"].dtype == torch.float32 and packed["fc1/big"].dtype == torch.float32
    back = unpack(packed)
    assert back["fc1"]["scale"] == 0.25
    assert torch.allclose(back["fc1"]["state"]["x"], state["x"], rtol=5e-4)
    assert unpack(pack([("b", state, None)]))["b"]["scale"] is None


def test_the_trained_devices_are_saved_and_reloaded_weights_only(trained) -> None:
    tm, _ = trained
    assert tm.meta["device_state"]["file"] == "devices.pt"
    assert "float16" in tm.meta["device_state"]["dtype"]
    state = unpack(tm.device_state)
    assert set(state) == {"fc1", "fc2"}
    dev = from_card(CARD)
    fc1 = dict(tm.model.quant_layers())["fc1"]
    g = dev.read(state["fc1"]["state"])
    n = fc1.weight.numel()
    w = ((g[:n] - g[n:]) * state["fc1"]["scale"]).view_as(fc1.weight)
    # float16 conductances: the weights within 2^-11 of the span
    span = float(dev.g_max - dev.g_min) * state["fc1"]["scale"]
    assert (w - fc1.weight).abs().max() < 2 * 2.0 ** -11 * span * 2


def test_a_corrupt_device_file_is_one_clear_line(trained, tmp_path: Path) -> None:
    tm, _ = trained
    import shutil

    d = tmp_path / "copy"
    shutil.copytree(tm.directory, d)
    (d / "devices.pt").write_bytes(b"not a tensor file")
    with pytest.raises(DseError, match="devices.pt"):
        load_model(d)


def _run(tm, ds, devices, phys=None, times=(), adc=False, repeats=3, chip=CHIP):
    dev = from_card(CARD)
    phys = phys or inference_physics(dev)
    mapping = map_model(tm.model, chip)
    s = DeploySettings(devices=devices, times=times)
    return deploy(tm.model, mapping, ds.x_test, ds.y_test, dev, phys, repeats,
                  torch.Generator().manual_seed(0), s, trained=unpack(tm.device_state),
                  calibration=ds.x_train[:200], adc=adc)


def test_trained_devices_without_noise_are_the_in_situ_network(trained) -> None:
    tm, ds = trained
    dev = from_card(CARD)
    phys = inference_physics(dev)
    quiet = dataclasses.replace(phys, read_noise=Polynomial((0.0,), phys.g_max))
    table, prog = _run(tm, ds, ("trained",), quiet)
    in_situ = evaluate(tm.model, ds.x_test, ds.y_test)
    assert list(table.columns) == ["devices", "programming", "time_s", "compensated",
                                   "repeat", "accuracy"]
    assert (table["programming"] == "in_situ").all() and prog.empty
    assert table["accuracy"].to_numpy() == pytest.approx(in_situ, abs=2 / len(ds.x_test))


def test_fresh_and_trained_stay_close_and_time_rows_are_complete(trained) -> None:
    tm, ds = trained
    table, prog = _run(tm, ds, ("trained", "fresh"), times=(1.0, 3.156e8), adc=True,
                       chip=CHIP_ANALOG)
    in_situ = evaluate(tm.model, ds.x_test, ds.y_test)
    now = table[table["time_s"] == 0].groupby("devices")["accuracy"].mean()
    assert now["trained"] > in_situ - 0.05 and now["fresh"] > in_situ - 0.05
    keys = table.groupby(["devices", "time_s", "compensated"]).size()
    assert len(keys) == 2 * (1 + 2 * 2) and (keys == 3).all()  # t=0 once, each time twice
    assert set(prog["layer"]) == {"fc1", "fc2"} and (prog["devices"] == "fresh").all()
    assert (prog["unreachable"] < 0.05).all()
    out = inject_tables("x/chip.csv", "x/chip.summary.csv", pd.DataFrame(
        {"ber": [0.0], "noise": ["none"], "repeat": [0], "accuracy": [1.0]}).pipe(
        lambda t: t.attrs.update(deployment=table, programming=prog) or t))
    assert {p.name for p in out} == {"chip.csv", "chip.summary.csv", "chip.deploy.csv",
                                     "chip.programming.csv"}


def test_the_deployed_cells_mean_conductance_is_recorded_for_the_estimate(trained) -> None:
    tm, ds = trained
    table, _ = _run(tm, ds, ("fresh", "trained"))
    g = table.attrs["cell_conductance"]
    phys = inference_physics(from_card(CARD))
    assert set(g) == {n for n, _ in tm.model.quant_layers()}
    # in siemens, between the card's floor and top (uS): the fresh chip, deployed first
    assert all(phys.g_min * 1e-6 <= v <= phys.g_max * 1e-6 for v in g.values())


def test_the_t0_rows_do_not_depend_on_the_times_asked(trained) -> None:
    tm, ds = trained
    alone, _ = _run(tm, ds, ("trained", "fresh"), times=())
    timed, _ = _run(tm, ds, ("trained", "fresh"), times=(1.0, 3.156e8))
    now = timed[timed["time_s"] == 0].reset_index(drop=True)
    assert now["accuracy"].tolist() == alone["accuracy"].tolist()


def test_the_read_out_sees_the_deployed_cells_own_conductances(trained) -> None:
    """Column currents are sum x*G of the trained cells (their floor included), in the layer's
    level units G*c/w_max: the offset is the device card's g_min, not the chip card's 1/16."""
    tm, ds = trained
    dev = from_card(CARD)
    phys = inference_physics(dev)
    layers = _trained_layers(tm.model, dev, unpack(tm.device_state), 1)
    ro = _readout(tm.model, map_model(tm.model, CHIP), layers, phys.g_min, ds.x_train[:50], True)
    for ly in layers:
        lr = ro.layers[ly.name]
        assert lr.offset == pytest.approx(phys.g_min * ly.c / ly.w_max)
        assert lr.offset > 4 / 16  # the card's floor, 12.5 uS on a 20 uS span
        w, lv = _weights(ly, ly.g, 1, phys.g_min)
        n = ly.shape.numel()
        cells = torch.cat([ly.g[:n].view(ly.shape), ly.g[n:].view(ly.shape)]) * (ly.c / ly.w_max)
        assert lr.columns(w[0], lv[0]) == pytest.approx(cells, abs=1e-5)


@pytest.mark.parametrize("chip", [CHIP, CHIP_ANALOG], ids=["digital", "analog"])
def test_sixteen_bits_read_the_trained_cells_as_the_ideal_read_out(trained, chip) -> None:
    tm, ds = trained
    dev = from_card(CARD)
    phys = inference_physics(dev)
    quiet = dataclasses.replace(phys, read_noise=Polynomial((0.0,), phys.g_max))
    ideal, _ = _run(tm, ds, ("trained",), quiet, repeats=1)
    adc, _ = _run(tm, ds, ("trained",), quiet, adc=True, repeats=1,
                  chip=chip.replace(adc_bits=16))
    assert abs(adc["accuracy"][0] - ideal["accuracy"][0]) <= 2 / len(ds.x_test)


def test_bad_deploy_settings_are_one_line() -> None:
    with pytest.raises(DseError, match="inject.devices"):
        DeploySettings(devices=("old",))
    with pytest.raises(DseError, match="inject.programming"):
        DeploySettings(programming="magic")
    with pytest.raises(DseError, match="inject.times"):
        DeploySettings(times=(0.0,))


def test_the_report_shows_time_curves_side_by_side_and_programming() -> None:
    from dse.report.data import ReportData
    from dse.report.deployment import deployment_section

    rows = []
    for devices, scheme in (("trained", "in_situ"), ("fresh", "write_verify")):
        for t, comp in ((0.0, False), (1.0, False), (1.0, True)):
            rows.append({"devices": devices, "programming": scheme, "time_s": t,
                         "compensated": comp, "n": 3, "mean": 0.9 - 0.1 * t,
                         "ci95_low": 0.85 - 0.1 * t, "ci95_high": 0.95 - 0.1 * t,
                         "clean_accuracy": 0.95, "adc_accuracy": 0.94})
    data = ReportData(config={})
    data.deployment[("mp", "rram-1t1r-adc")] = pd.DataFrame(rows)
    data.programming[("mp", "rram-1t1r-adc")] = pd.DataFrame([{
        "devices": "fresh", "scheme": "write_verify", "layer": "fc1", "pairs": 10,
        "residual_rms": 0.1, "residual_mean": 0.0, "unreachable": 0.01, "unconverged": 0.0,
        "pulses": 40, "energy_j": 1e-10, "time_s": 1e-6}])
    data.models["mp"] = {"test_accuracy": 0.95}
    section = deployment_section(data, 40)
    kinds = [(i.kind, i.title) for i in section.items]
    assert kinds == [("figure", "rram-1t1r-adc"), ("table", "In situ vs deployed (t = 0)"),
                     ("table", "Programming per layer (fresh devices)")]
    side = section.items[1].content
    assert "t = 0, trained (in_situ)" in side and "t = 0, fresh (write_verify)" in side
    assert deployment_section(ReportData(config={}), 40) is None


def test_a_stuck_exp_step_device_stays_finite_under_pulses() -> None:
    dev = from_card(load_card(REPO / "config" / "devices" / "reram-es-gong2018.yaml"))
    st = dev.sample_devices((4,), torch.Generator().manual_seed(0))
    st["hi"][0] = st["lo"][0]  # a device whose bounds crossed: stuck in the middle
    st["x"][0] = st["lo"][0]
    out = dev.apply_pulses(st, torch.tensor([5.0, 5.0, -5.0, 0.0]), torch.Generator())
    g = dev.read(out)
    assert torch.isfinite(g).all() and float(g[0]) == pytest.approx(float(st["lo"][0]))

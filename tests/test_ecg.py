"""ECG (issue 17 item 1): the WFDB readers on files the test writes (signals, annotations,
segmentation counts), the MIT-BIH loader and its errors, the synthetic default, and ecg-cnn's
precision per part (classifier-only binarisation leaves the feature extractor in float)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from dse import ecg_data
from dse.chip.inject import perturbed_weights
from dse.chip.mapping import map_model
from dse.config import Experiment
from dse.data import load_dataset, missing_files
from dse.errors import DseError
from dse.nn import ModelSpec, build_model
from dse.nn.memory import memory_table
from dse.pipeline.artifacts import load_chip
from dse.train import train
from dse.wfdb import CODES, decode_212, parse_annotations, parse_header, read_signals

FS = 360


def encode_212(digital: np.ndarray) -> bytes:
    """(n, 2) int samples in [-2048, 2047] -> format-212 bytes (an independent writer)."""
    flat = (digital.reshape(-1).astype(np.int64) & 0xFFF)
    a, b = flat[0::2], flat[1::2]
    out = np.stack([a & 0xFF, ((a >> 8) & 0x0F) | ((b >> 4) & 0xF0), b & 0xFF], axis=1)
    return out.astype(np.uint8).tobytes()


def encode_atr(samples: list[int], symbols: list[str], aux_at: int | None = None) -> bytes:
    """MIT annotations: a SKIP for the first (large) time, an AUX string, a NUM field."""
    words: list[int] = []
    t = 0
    for j, (s, sym) in enumerate(zip(samples, symbols, strict=True)):
        d = s - t
        if d > 1023:  # SKIP: 32-bit increment, high word first; then the annotation at I = 0
            words += [59 << 10, (d >> 16) & 0xFFFF, d & 0xFFFF]
            d = 0
        words.append((CODES[sym] << 10) | d)
        if j == aux_at:
            text = b"(N\x00"
            words.append((63 << 10) | len(text))
            padded = text + b"\x00" * (len(text) % 2)
            words += list(np.frombuffer(padded, dtype="<u2"))
            words.append((60 << 10) | 1)  # NUM field
        t = s
    words.append(0)
    return np.asarray(words, dtype="<u2").tobytes()


def write_record(folder: Path, name: str, seed: int, n: int = 4000) -> dict:
    """A two-signal record with beats every 300 samples (N, V, A, F, /, non-beat '+' and '~')."""
    rng = np.random.default_rng(seed)
    digital = rng.integers(-2048, 2048, size=(n, 2))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.dat").write_bytes(encode_212(digital))
    (folder / f"{name}.hea").write_text(
        f"{name} 2 {FS} {n}\n"
        f"{name}.dat 212 200 11 1024 {digital[0, 0]} 0 0 MLII\n"
        f"{name}.dat 212 100(5)/mV 11 1024 {digital[0, 1]} 0 0 V1\n# a comment\n")
    samples = [50, 1200, 1500, 1800, 2100, 2400, 2700, 3000, 3300, 3950]
    symbols = ["N", "N", "V", "+", "A", "F", "/", "~", "R", "N"]
    (folder / f"{name}.atr").write_bytes(encode_atr(samples, symbols, aux_at=3))
    return {"digital": digital, "samples": samples, "symbols": symbols}


def test_wfdb_readers_on_written_files(tmp_path: Path) -> None:
    rec = write_record(tmp_path, "900", seed=0)
    header = parse_header((tmp_path / "900.hea").read_bytes())
    assert (header.record, header.fs, header.n_samples) == ("900", 360.0, 4000)
    assert [s.gain for s in header.signals] == [200.0, 100.0]
    assert [s.baseline for s in header.signals] == [1024, 5]
    raw = (tmp_path / "900.dat").read_bytes()
    assert np.array_equal(decode_212(raw, 2), rec["digital"])
    phys = read_signals(header, raw)
    want = (rec["digital"] - np.array([1024, 5])) / np.array([200.0, 100.0])
    np.testing.assert_allclose(phys, want, rtol=0, atol=1e-6)
    samples, symbols = parse_annotations((tmp_path / "900.atr").read_bytes())
    assert samples.tolist() == rec["samples"] and symbols == rec["symbols"]


def test_beats_are_cut_around_r_peaks_in_aami_classes(tmp_path: Path) -> None:
    rec = write_record(tmp_path, "900", seed=1)
    signal = rec["digital"][:, 0].astype(np.float32)
    beats, labels = ecg_data.segment_beats(signal, np.asarray(rec["samples"]), rec["symbols"])
    # 10 annotations: '+' and '~' are not beats, 50 and 3950 are too near the edges (90 / 166)
    assert len(beats) == 6 and beats.shape[1] == ecg_data.BEFORE + ecg_data.AFTER
    assert labels.tolist() == [0, 2, 1, 3, 4, 0]  # N V A->S F /->Q R->N
    assert np.array_equal(beats[1], signal[1500 - 90:1500 + 166])


def test_mitbih_loader_splits_by_record(tmp_path: Path) -> None:
    folder = tmp_path / "mitdb"
    write_record(folder, "901", seed=2)
    write_record(folder, "902", seed=3)
    write_record(folder, "903", seed=4)
    x_tr, y_tr, x_te, y_te = ecg_data.load_mitbih(tmp_path, train=["901", "902"], test=["903"])
    assert x_tr.shape == (12, 1, 1, 256) and x_te.shape == (6, 1, 1, 256)
    assert y_tr.tolist() == [0, 2, 1, 3, 4, 0] * 2 and y_te.tolist() == [0, 2, 1, 3, 4, 0]
    np.testing.assert_allclose(x_tr.mean(axis=-1), 0, atol=1e-5)  # standardised per beat
    np.testing.assert_allclose(x_tr.std(axis=-1), 1, atol=1e-4)
    with pytest.raises(DseError, match="both the train and the test"):
        ecg_data.load_mitbih(tmp_path, train=["901"], test=["901"])


def test_bad_or_missing_ecg_files_get_one_line(tmp_path: Path) -> None:
    with pytest.raises(DseError) as err:
        load_dataset("mitbih", tmp_path)
    assert "mitdb" in str(err.value) and "\n" not in str(err.value)
    assert len(missing_files("mitbih", tmp_path)) == 44 * 3
    folder = tmp_path / "mitdb"
    write_record(folder, "904", seed=5)
    dat = folder / "904.dat"
    dat.write_bytes(dat.read_bytes()[:3000])
    with pytest.raises(DseError, match="truncated") as err:
        ecg_data.read_record(folder, "904")
    assert "904.dat" in str(err.value) and "\n" not in str(err.value)
    (folder / "904.hea").write_text("904 two 360\n")
    with pytest.raises(DseError, match="signal count"):
        ecg_data.read_record(folder, "904")
    (folder / "904.hea").write_text("904 1 360 10\n904.dat 16 200 16 0 0 0 0 x\n")
    with pytest.raises(DseError, match="format 212"):
        ecg_data.read_record(folder, "904")


def test_synthetic_default_is_labelled_and_fixed() -> None:
    a, b = load_dataset("ecg-synthetic"), load_dataset("ecg-synthetic")
    assert torch.equal(a.x_train, b.x_train) and a.classes == 5
    assert a.input_shape == (1, 1, 256) and len(a.x_train) == 4000 and len(a.x_test) == 1000
    assert set(a.y_train.tolist()) == {0, 1, 2, 3, 4}
    assert "SYNTHETIC" in (ecg_data.__doc__ or "")


@pytest.mark.parametrize(("binarize", "features", "classifier"),
                         [("whole", "binary", "binary"), ("classifier", "float", "binary"),
                          ("none", "float", "float")])
def test_precision_per_part(binarize: str, features: str, classifier: str) -> None:
    spec = ModelSpec(model="ecg-cnn", input_shape=(1, 1, 256), classes=5, width=8, hidden=[16],
                     precision="binary", binarize=binarize)
    net = build_model(spec, torch.Generator().manual_seed(0))
    for name, layer in net.quant_layers():
        want = features if name.startswith("conv") else classifier
        assert layer.precision == want, name
        wq = layer.quantized_weight()
        if want == "float":
            assert torch.equal(wq, layer.weight)  # left in float
        else:
            assert set(wq.unique().tolist()) == {-1.0, 1.0}
    table = memory_table(net).set_index("layer")
    for name, layer in net.quant_layers():
        bits = 32 if layer.precision == "float" else 1
        assert table.loc[name, "bits"] == bits * layer.weight.numel()
    assert net(torch.randn(3, 1, 1, 256)).shape == (3, 5)


def test_classifier_only_on_a_binary_chip(repo: Path) -> None:
    spec = ModelSpec(model="ecg-cnn", input_shape=(1, 1, 256), classes=5, width=8, hidden=[16],
                     precision="binary", binarize="classifier")
    net = build_model(spec, torch.Generator().manual_seed(0)).eval()
    chip = load_chip(repo / "config/chips/rram-2t2r-pcsa-130nm.yaml")
    mapping = map_model(net, chip)
    assert [lm.name for lm in mapping.layers] == ["fc5", "fc6"]
    assert mapping.layer("fc5").in_bits == 8  # real-valued (ReLU) features from the float part
    assert mapping.layer("fc6").in_bits == 1  # sign activations inside the binary classifier
    digital = [d["name"] for d in mapping.extra["digital_layers"]]
    assert digital == ["conv1", "conv2", "conv3", "conv4"]
    weights = perturbed_weights(net, mapping, torch.tensor([0.1, 0.1]),
                                torch.Generator().manual_seed(1))
    assert sorted(weights) == ["fc5.weight", "fc6.weight"]  # bit errors on the arrays only
    flat = build_model(ModelSpec(model="ecg-cnn", input_shape=(1, 1, 256), classes=5, width=8,
                                 hidden=[16], precision="float"))
    with pytest.raises(DseError, match="float weights"):
        map_model(flat, chip)


def test_binarize_needs_ecg_cnn() -> None:
    exp = Experiment.from_dict("x", {"dataset": "digits", "binarize": "classifier"})
    with pytest.raises(DseError, match="binarize"):
        train(exp, [load_dataset("digits")], progress=False)


def test_vectorised_fault_maps_match_a_loop_over_maps(repo: Path) -> None:
    """Second method for the ECG bit-error tolerance: the vmapped accuracy of M fault maps of a
    whole-binarised ecg-cnn equals evaluating each map's weights one by one."""
    import copy

    from dse.chip.fault_eval import map_accuracies
    from dse.nn import evaluate

    spec = ModelSpec(model="ecg-cnn", input_shape=(1, 1, 256), classes=5, width=8, hidden=[16],
                     precision="binary")
    net = build_model(spec, torch.Generator().manual_seed(0)).eval()
    data = load_dataset("ecg-synthetic")
    x, y = data.x_test[:200], data.y_test[:200]
    chip = load_chip(repo / "config/chips/rram-2t2r-pcsa-130nm.yaml")
    weights = perturbed_weights(net, map_model(net, chip), torch.full((3,), 0.05),
                                torch.Generator().manual_seed(2))
    fast = map_accuracies(net, weights, x, y)
    for i in range(3):
        one = copy.deepcopy(net)
        for key, w in weights.items():
            layer = getattr(one.body, key.split(".")[0])
            layer.precision = "float"  # compute with the faulty ±1 weights as they are
            layer.weight.data.copy_(w[i])
        assert abs(float(fast[i]) - evaluate(one, x, y)) < 1e-12


def test_ecg_study_config_validates(repo: Path) -> None:
    """config/ecg.yaml: three ecg-cnn experiments one binarize apart, on the embedded data."""
    from dse.config import load_config

    config = load_config(repo / "config" / "ecg.yaml")
    exps = [Experiment.from_config(config, e) for e in config["experiments"]]
    assert sorted(e.binarize for e in exps) == ["classifier", "none", "whole"]
    assert {e.dataset for e in exps} == {"ecg-synthetic"} and {e.model for e in exps} == {"ecg-cnn"}


@pytest.mark.parametrize("damage", ["missing", "truncated", "bad-header"])
def test_bad_ecg_files_through_the_cli(damage: str, tmp_path: Path,
                                       capsys: pytest.CaptureFixture) -> None:
    """`dse train` on MIT-BIH files that are missing or broken: one `dse:` line, exit 2."""
    import yaml

    from dse.cli import main

    folder = tmp_path / "data" / "mitdb"
    if damage != "missing":
        for r in ecg_data.DS1 + ecg_data.DS2:
            write_record(folder, r, seed=int(r), n=1000)
        if damage == "truncated":
            (folder / "203.dat").write_bytes(b"\x00" * 30)
        else:
            (folder / "100.hea").write_text("100 2 360 1000\n")
    cfg = {"seed": 0, "device": "cpu", "data_root": str(tmp_path / "data"),
           "experiments": {"e": {"dataset": "mitbih", "model": "ecg-cnn", "width": 4,
                                 "hidden": [8], "epochs": 1}}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    capsys.readouterr()
    assert main(["-q", "train", "--config", str(tmp_path / "c.yaml"), "--experiment", "e",
                 "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("dse: ") and "\n" not in err and "Traceback" not in err, err
    want = {"missing": "101.hea", "truncated": "203.dat", "bad-header": "100.hea"}[damage]
    assert want in err, err
    assert not (tmp_path / "out" / "model.json").exists()  # nothing half-written

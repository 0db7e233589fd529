"""tradewire.ml: training, ONNX export, and Rust (signal-bridge) inference parity."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort  # type: ignore[import-untyped]  # ships no stubs or py.typed
import pytest

from tradewire import features as tf
from tradewire.ml import (
    CLASSES,
    INPUT_NAME,
    OUTPUT_NAME,
    ModelRegistry,
    TradingModel,
    export_onnx,
    labelled_dataset,
    to_onnx,
)
from tradewire.ml.data import LabelledData
from tradewire.ml.export import META_CLASSES, META_FEATURES
from tradewire.ml.registry import FeatureMismatchError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def trained() -> TradingModel:
    data = labelled_dataset(n_series=3, length=4000, seed=1)
    model = TradingModel.init(1)
    model.fit(data.x, data.y, epochs=4, seed=1)
    return model


@pytest.fixture(scope="module")
def bridge() -> Path:
    if shutil.which("cargo") is None:
        pytest.fail("cargo is needed to build signal-bridge")
    subprocess.run(
        ["cargo", "build", "--release", "--locked", "-p", "signal-bridge"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    return ROOT / "target" / "release" / "signal-bridge"


def realistic_rows(rng: np.random.Generator, n: int) -> np.ndarray[Any, np.dtype[np.float32]]:
    """Random rows on the features' scales (rsi ~ 50 +- 20, macd ~ 1e-3, ...)."""
    scale = np.array([20, 1e-3, 0.3, 0.01, 0.02, 1, 0.01], dtype=np.float64)
    centre = np.array([50, 0, 0.5, 0, 0, 1, 0], dtype=np.float64)
    return (rng.normal(size=(n, 7)) * scale + centre).astype(np.float32)


def session(path: Path) -> Any:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def assert_contract(proto: onnx.ModelProto) -> None:
    """The graph contract every tradewire export honours."""
    (inp,) = proto.graph.input
    (out,) = proto.graph.output  # the converter's `label` output is gone
    assert inp.name == INPUT_NAME and out.name == OUTPUT_NAME
    for vi, width in ((inp, 7), (out, 3)):
        assert vi.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
        dims = [d.dim_param or d.dim_value for d in vi.type.tensor_type.shape.dim]
        assert dims == ["batch_size", width], vi.name
    meta = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(meta[META_FEATURES]) == list(tf.FEATURE_NAMES)
    assert json.loads(meta[META_CLASSES]) == list(CLASSES)
    assert not any(n.op_type == "ZipMap" for n in proto.graph.node)


def test_dataset_is_labelled_from_the_features() -> None:
    d = labelled_dataset(n_series=2, length=1000, horizon=10, seed=3)
    assert d.feature_names == tf.FEATURE_NAMES
    assert d.x.dtype == np.float32 and d.x.shape == (2 * (1000 - 10 - 49), 7)
    assert np.isfinite(d.x).all()
    assert set(np.unique(d.y)) == {0, 1, 2}  # every class present


def test_training_learns() -> None:
    data = labelled_dataset(n_series=3, length=4000, seed=2)
    split = int(0.8 * len(data.y))
    model = TradingModel.init(0)
    hist = model.fit(data.x[:split], data.y[:split], epochs=6, seed=0)
    assert hist[-1] < hist[0] * 0.95
    majority = np.bincount(data.y[split:]).max() / len(data.y[split:])
    assert model.accuracy(data.x[split:], data.y[split:]) > majority + 0.02
    with pytest.raises(ValueError, match="NaN"):
        model.fit(np.full((4, 7), np.nan), np.zeros(4, dtype=np.int64))


def test_onnx_graph_contract(trained: TradingModel, tmp_path: Path) -> None:
    proto = to_onnx(trained)
    assert_contract(proto)
    (inp,) = proto.graph.input
    (out,) = proto.graph.output
    assert inp.name == INPUT_NAME and out.name == OUTPUT_NAME
    dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
    assert dims == ["batch_size", 7]
    meta = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(meta[META_FEATURES]) == list(tf.FEATURE_NAMES)
    assert json.loads(meta["tradewire.classes"]) == list(CLASSES)
    path = export_onnx(trained, tmp_path / "m.onnx")
    onnx.checker.check_model(str(path))


@pytest.mark.parametrize("batch", [1, 5, 1000])
def test_onnxruntime_matches_numpy_model(trained: TradingModel, tmp_path: Path, batch: int) -> None:
    path = export_onnx(trained, tmp_path / "m.onnx")
    x = realistic_rows(np.random.default_rng(batch), batch)
    (got,) = session(path).run([OUTPUT_NAME], {INPUT_NAME: x})
    assert got.shape == (batch, 3)
    np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(got, trained.predict_proba(x), atol=1e-5)


def test_torch_export_matches_helper_export(trained: TradingModel, tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from tradewire.ml.export import export_torch_onnx

    a = export_onnx(trained, tmp_path / "a.onnx")
    b = export_torch_onnx(trained, tmp_path / "b.onnx")
    # same contract as the helper export: names, dtype, dynamic batch, metadata
    assert_contract(onnx.load(str(b)))
    sa, sb = session(a), session(b)
    rng = np.random.default_rng(0)
    for batch in (1, 5, 1000):  # dynamic batch survives the export, at run time too
        x = realistic_rows(rng, batch)
        (ra,) = sa.run([OUTPUT_NAME], {INPUT_NAME: x})
        (rb,) = sb.run([OUTPUT_NAME], {INPUT_NAME: x})
        assert rb.shape == (batch, 3)
        np.testing.assert_allclose(ra, rb, atol=1e-5)
        np.testing.assert_allclose(rb, trained.predict_proba(x), atol=1e-5)
    # the registry accepts it and checks the embedded feature names
    reg = ModelRegistry(tmp_path / "models")
    entry = reg.register(b, metadata={"model_type": "torch-mlp"})
    assert [i.name for i in reg.session(entry.version).get_inputs()] == [INPUT_NAME]


# ---- XGBoost -> ONNX (optional extra `xgboost`) ----


@pytest.fixture(scope="module")
def xgb_data() -> LabelledData:
    return labelled_dataset(n_series=3, length=4000, seed=4)


@pytest.fixture(scope="module")
def xgb_model(xgb_data: LabelledData) -> Any:
    pytest.importorskip("xgboost")
    pytest.importorskip("onnxmltools")
    from tradewire.ml import train_xgboost

    return train_xgboost(xgb_data, n_estimators=40, max_depth=4, seed=4)


def test_xgboost_export_contract_and_parity(
    xgb_model: Any, xgb_data: LabelledData, tmp_path: Path
) -> None:
    from tradewire.ml import export_xgboost_onnx

    assert xgb_model.n_classes_ == 3
    path = export_xgboost_onnx(tmp_path / "xgb.onnx", xgb_model)
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto)
    assert_contract(proto)
    sess = session(path)
    assert [o.name for o in sess.get_outputs()] == [OUTPUT_NAME]
    rng = np.random.default_rng(5)
    for x in (xgb_data.x[:1], xgb_data.x[:5], xgb_data.x, realistic_rows(rng, 1000)):
        (got,) = sess.run([OUTPUT_NAME], {INPUT_NAME: x})
        want = xgb_model.predict_proba(x)
        assert got.shape == (len(x), 3) and got.dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
        np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-5)
    # the model is not constant: it separates the classes on its own training data
    (train_probs,) = sess.run([OUTPUT_NAME], {INPUT_NAME: xgb_data.x})
    assert (train_probs.argmax(axis=1) == xgb_data.y).mean() > np.bincount(xgb_data.y).max() / len(
        xgb_data.y
    )


def test_xgboost_export_refuses_a_foreign_classifier(xgb_data: LabelledData) -> None:
    xgb = pytest.importorskip("xgboost")
    pytest.importorskip("onnxmltools")
    from tradewire.ml import train_xgboost, xgboost_to_onnx

    binary = xgb.XGBClassifier(n_estimators=2, max_depth=2, n_jobs=1)
    binary.fit(xgb_data.x, (xgb_data.y == 0).astype(np.int64))
    with pytest.raises(ValueError, match="2 classes, want 3"):
        xgboost_to_onnx(binary)
    narrow = xgb.XGBClassifier(n_estimators=2, max_depth=2, n_jobs=1)
    narrow.fit(xgb_data.x[:, :5], xgb_data.y)
    with pytest.raises(ValueError, match="5 inputs, want 7"):
        xgboost_to_onnx(narrow)
    no_sell = LabelledData(xgb_data.x[xgb_data.y < 2], xgb_data.y[xgb_data.y < 2], tf.FEATURE_NAMES)
    with pytest.raises(ValueError, match=r"classes \[2\] absent"):
        train_xgboost(no_sell, n_estimators=2)


def test_xgboost_model_through_the_registry(
    xgb_model: Any, xgb_data: LabelledData, tmp_path: Path
) -> None:
    from tradewire.ml import export_xgboost_onnx

    reg = ModelRegistry(tmp_path / "models")
    src = export_xgboost_onnx(tmp_path / "xgb.onnx", xgb_model)
    entry = reg.register(src, name="xgb", metadata={"model_type": "xgboost"})
    loaded = reg.load("latest")
    assert loaded == entry and loaded.feature_names == tf.FEATURE_NAMES
    sess = reg.session(entry.version)
    (got,) = sess.run([OUTPUT_NAME], {INPUT_NAME: xgb_data.x[:100]})
    np.testing.assert_allclose(got, xgb_model.predict_proba(xgb_data.x[:100]), atol=1e-5)
    # the embedded names are checked too, not only the registry's
    with pytest.raises(FeatureMismatchError, match="trained on features"):
        reg.session(expected_features=tuple(reversed(tf.FEATURE_NAMES)))


def test_train_cli_xgboost(tmp_path: Path) -> None:
    pytest.importorskip("xgboost")
    pytest.importorskip("onnxmltools")
    from tradewire.ml.__main__ import main

    assert main(["train", "--registry", str(tmp_path), "--model-type", "xgboost"]) == 0
    (entry,) = ModelRegistry(tmp_path).entries()
    assert entry.metadata["model_type"] == "xgboost"
    assert 0.0 < entry.metadata["val_accuracy"] <= 1.0
    assert_contract(onnx.load(str(ModelRegistry(tmp_path).load().path)))


# ---- Rust inference (signal-bridge) ----


def test_bridge_test_inference_matches_python(
    bridge: Path, trained: TradingModel, tmp_path: Path
) -> None:
    reg = ModelRegistry(tmp_path / "models")
    entry = reg.register(export_onnx(trained, tmp_path / "m.onnx"))
    for args in (["--model", str(entry.path)], ["--registry", str(reg.root)]):
        res = subprocess.run(
            [str(bridge), *args, "--test-inference"], capture_output=True, text=True, check=False
        )
        assert res.returncode == 0, res.stderr
        doc = json.loads(res.stdout)
        assert doc["feature_names"] == list(tf.FEATURE_NAMES)
        x = np.array(doc["input"], dtype=np.float32)
        assert x.shape == (4, 7) and np.isfinite(x).all()
        (want,) = session(entry.path).run([OUTPUT_NAME], {INPUT_NAME: x})
        np.testing.assert_allclose(np.array(doc["output"]), want, rtol=1e-5, atol=1e-6)
        assert len(doc["signals"]) == 4


def test_bridge_registry_version_and_pins(
    bridge: Path, trained: TradingModel, tmp_path: Path
) -> None:
    """`--registry R --version SPEC` picks latest, a version number or a pin, like Python."""
    reg = ModelRegistry(tmp_path / "models")
    v1 = reg.register(export_onnx(trained, tmp_path / "a.onnx"))
    v2 = reg.register(export_onnx(TradingModel.init(9), tmp_path / "b.onnx"))
    reg.pin("production", 1)

    def run(*version: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(bridge), "--registry", str(reg.root), *version, "--test-inference"],
            capture_output=True,
            text=True,
            check=False,
        )

    outputs = {}
    for spec, want in [(None, v2), ("latest", v2), ("1", v1), ("v2", v2), ("production", v1)]:
        res = run(*(["--version", spec] if spec else []))
        assert res.returncode == 0, (spec, res.stderr)
        doc = json.loads(res.stdout)
        assert Path(doc["model"]) == want.path, spec
        x = np.array(doc["input"], dtype=np.float32)
        (py,) = reg.session(spec or "latest").run([OUTPUT_NAME], {INPUT_NAME: x})
        np.testing.assert_allclose(np.array(doc["output"]), py, rtol=1e-5, atol=1e-6)
        outputs[spec] = np.array(doc["output"])
    assert not np.allclose(outputs["production"], outputs["latest"])  # really another model

    res = run("--version", "staging")
    assert res.returncode == 1 and 'no pin or version "staging"' in res.stderr
    res = run("--version", "7")
    assert res.returncode == 1 and "no model version 7" in res.stderr


def test_bridge_parity_on_10k_random_rows(
    bridge: Path, trained: TradingModel, tmp_path: Path
) -> None:
    path = export_onnx(trained, tmp_path / "m.onnx")
    rng = np.random.default_rng(7)
    x = realistic_rows(rng, 10_000)
    np.save(tmp_path / "x.npy", x)
    res = subprocess.run(
        [str(bridge), "--model", str(path), "--test-inference-file", str(tmp_path / "x.npy")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    got = np.array(doc["output"])
    (want,) = session(path).run([OUTPUT_NAME], {INPUT_NAME: x})
    assert got.shape == (10_000, 3) and doc["rows"] == 10_000
    assert np.abs(got - want).max() <= 1e-5


def test_bridge_refuses_wrong_features_and_tampered_models(
    bridge: Path, trained: TradingModel, tmp_path: Path
) -> None:
    # Model whose embedded feature order differs from the Rust crate's.
    swapped = TradingModel(
        weights=trained.weights,
        biases=trained.biases,
        mean=trained.mean,
        scale=trained.scale,
        feature_names=tuple(reversed(tf.FEATURE_NAMES)),
    )
    bad = export_onnx(swapped, tmp_path / "swapped.onnx")
    res = subprocess.run(
        [str(bridge), "--model", str(bad), "--test-inference"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert res.returncode == 1 and "trained on features" in res.stderr

    reg = ModelRegistry(tmp_path / "models")
    entry = reg.register(export_onnx(trained, tmp_path / "m.onnx"))
    with entry.path.open("ab") as f:
        f.write(b"\0")
    res = subprocess.run(
        [str(bridge), "--registry", str(reg.root), "--test-inference"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert res.returncode == 1 and "sha256" in res.stderr

    res = subprocess.run(
        [str(bridge), "--model", str(bad)], capture_output=True, text=True, check=False
    )
    assert res.returncode == 2


def test_bridge_runs_xgboost_model(bridge: Path, xgb_model: Any, tmp_path: Path) -> None:
    """The TreeEnsembleClassifier (ai.onnx.ml) graph runs in Rust through the same
    libonnxruntime; outputs match Python onnxruntime and xgboost."""
    from tradewire.ml import export_xgboost_onnx

    reg = ModelRegistry(tmp_path / "models")
    entry = reg.register(export_xgboost_onnx(tmp_path / "xgb.onnx", xgb_model), name="xgb")
    res = subprocess.run(
        [str(bridge), "--registry", str(reg.root), "--test-inference"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    x = np.array(doc["input"], dtype=np.float32)
    (want,) = session(entry.path).run([OUTPUT_NAME], {INPUT_NAME: x})
    np.testing.assert_allclose(np.array(doc["output"]), want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.array(doc["output"]), xgb_model.predict_proba(x), atol=1e-5)

    x = realistic_rows(np.random.default_rng(11), 10_000)
    np.save(tmp_path / "x.npy", x)
    res = subprocess.run(
        [str(bridge), "--model", str(entry.path), "--test-inference-file", str(tmp_path / "x.npy")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert res.returncode == 0, res.stderr
    got = np.array(json.loads(res.stdout)["output"])
    (want,) = session(entry.path).run([OUTPUT_NAME], {INPUT_NAME: x})
    assert got.shape == (10_000, 3)
    assert np.abs(got - want).max() <= 1e-5

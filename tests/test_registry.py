"""ModelRegistry: versions, latest, pins, sha256 and feature-order checks, atomic writes."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from tradewire import features as tf
from tradewire.ml import (
    FeatureMismatchError,
    IntegrityError,
    ModelRegistry,
    RegistryError,
    TradingModel,
    export_onnx,
)


@pytest.fixture
def onnx_file(tmp_path: Path) -> Path:
    return export_onnx(TradingModel.init(0), tmp_path / "src.onnx")


def test_register_latest_versions_and_pins(tmp_path: Path, onnx_file: Path) -> None:
    reg = ModelRegistry(tmp_path / "models")
    with pytest.raises(RegistryError, match="no model registered"):
        reg.resolve()
    e1 = reg.register(onnx_file, metadata={"accuracy": 0.7})
    e2 = reg.register(onnx_file)
    assert (e1.version, e2.version) == (1, 2)
    assert e1.path.name == "strategy-v1.onnx" and e1.path.read_bytes() == onnx_file.read_bytes()
    assert reg.resolve().version == 2
    assert reg.resolve(1) == reg.resolve("1") == reg.resolve("v1") == e1
    reg.pin("production", 1)
    assert reg.load("production").version == 1
    reg.set_latest(1)
    assert reg.resolve("latest").version == 1
    e3 = reg.register(onnx_file, make_latest=False)
    assert e3.version == 3 and reg.resolve().version == 1
    with pytest.raises(RegistryError, match="no model version 9"):
        reg.resolve(9)
    with pytest.raises(RegistryError, match="no pin"):
        reg.resolve("staging")
    with pytest.raises(RegistryError, match="shadow"):
        reg.pin("v2", 1)
    assert reg.pins() == {"production": 1}
    assert reg.entries()[0].metadata == {"accuracy": 0.7}


def test_file_format_is_what_rust_reads(tmp_path: Path, onnx_file: Path) -> None:
    reg = ModelRegistry(tmp_path)
    entry = reg.register(onnx_file)
    raw = json.loads((tmp_path / "registry.json").read_text())
    assert raw["format"] == "tradewire.model-registry/1" and raw["latest"] == 1
    (m,) = raw["models"]
    assert m["file"] == "strategy-v1.onnx"  # relative: the directory can move
    assert m["feature_names"] == list(tf.FEATURE_NAMES)
    assert m["sha256"] == entry.sha256 and len(m["sha256"]) == 64
    assert m["input"] == "features" and m["output"] == "signal_probabilities"
    assert not list(tmp_path.glob("*.tmp"))  # no leftovers from atomic writes


def test_sha256_checked_on_load(tmp_path: Path, onnx_file: Path) -> None:
    reg = ModelRegistry(tmp_path)
    entry = reg.register(onnx_file)
    assert reg.load().sha256 == entry.sha256
    data = bytearray(entry.path.read_bytes())
    data[-1] ^= 1
    entry.path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="refusing to load"):
        reg.load()
    entry.path.unlink()
    with pytest.raises(RegistryError, match="missing"):
        reg.load()


def test_feature_names_checked_before_inference(tmp_path: Path, onnx_file: Path) -> None:
    reg = ModelRegistry(tmp_path)
    swapped = list(tf.FEATURE_NAMES)
    swapped[0], swapped[1] = swapped[1], swapped[0]
    reg.register(onnx_file, feature_names=swapped)
    with pytest.raises(FeatureMismatchError, match="trained on features"):
        reg.load()
    with pytest.raises(FeatureMismatchError):
        reg.session()
    assert reg.load(expected_features=swapped).version == 1
    reg.register(onnx_file)
    sess = reg.session()
    assert [i.name for i in sess.get_inputs()] == ["features"]


def test_corrupt_or_foreign_registry_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "registry.json").write_text("{not json")
    with pytest.raises(RegistryError, match="not valid JSON"):
        ModelRegistry(tmp_path).entries()
    (tmp_path / "registry.json").write_text(json.dumps({"models": []}))
    with pytest.raises(RegistryError, match="unknown registry format"):
        ModelRegistry(tmp_path).entries()


def test_concurrent_registrations_lose_nothing(tmp_path: Path, onnx_file: Path) -> None:
    reg = ModelRegistry(tmp_path)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(5):
                ModelRegistry(tmp_path).register(onnx_file)
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(e.version for e in reg.entries()) == list(range(1, 21))

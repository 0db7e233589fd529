"""Indicators: Rust (tradewire.features) vs numpy vs pure Python.

`make bench`. Goals (issue 5): RSI and MACD on 1M points <= 5 ms in Rust and >= 100x pure
Python. Pure Python runs on 100k points (x10 to compare); the numpy RSI is Cutler's
(SMA-smoothed, fully vectorised) because Wilder's recursion has no numpy vectorisation.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from tradewire import features as tf

N = 1_000_000
N_PY = 100_000
ROOT = Path(__file__).resolve().parents[1]
rng = np.random.default_rng(0)
PRICES = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.001, N)))
VOLUMES = rng.integers(0, 5000, N).astype(np.float64)
PY_PRICES = PRICES[:N_PY].tolist()


def py_rsi(p: list[float], n: int = 14) -> list[float]:
    out = [float("nan")] * len(p)
    g = lo = 0.0
    for i in range(1, len(p)):
        d = p[i] - p[i - 1]
        gain, loss = (d, 0.0) if d > 0 else (0.0, -d)
        if i <= n:
            g += gain / n
            lo += loss / n
            if i < n:
                continue
        else:
            g = (g * (n - 1) + gain) / n
            lo = (lo * (n - 1) + loss) / n
        out[i] = 100.0 if lo == 0 else 100 - 100 / (1 + g / lo)
    return out


def py_ema(x: list[float], n: int) -> list[float]:
    a = 2.0 / (n + 1)
    out = [float("nan")] * len(x)
    v = sum(x[:n]) / n
    out[n - 1] = v
    for i in range(n, len(x)):
        v += a * (x[i] - v)
        out[i] = v
    return out


def py_macd(p: list[float]) -> tuple[list[float], list[float]]:
    line = [f - s for f, s in zip(py_ema(p, 12), py_ema(p, 26), strict=True)]
    sig = py_ema(line[25:], 9)
    return line, sig


def np_rsi_cutler(p: npt.NDArray[np.float64], n: int = 14) -> npt.NDArray[np.float64]:
    d = np.diff(p)
    up = np.convolve(np.clip(d, 0, None), np.ones(n) / n, "valid")
    down = np.convolve(np.clip(-d, 0, None), np.ones(n) / n, "valid")
    with np.errstate(divide="ignore", invalid="ignore"):
        out: npt.NDArray[np.float64] = 100 * up / (up + down)
    return out


def test_rsi_rust_1m(benchmark: Any) -> None:
    out = benchmark(tf.rsi, PRICES)
    assert out.shape == (N,) and np.isfinite(out[14:]).all()


def test_rsi_numpy_cutler_1m(benchmark: Any) -> None:
    assert benchmark(np_rsi_cutler, PRICES).shape == (N - 14,)


def test_rsi_pure_python_100k(benchmark: Any) -> None:
    out = benchmark.pedantic(py_rsi, (PY_PRICES,), rounds=3, iterations=1)
    assert abs(out[-1] - float(tf.rsi(PRICES[:N_PY])[-1])) < 1e-9


def test_macd_rust_1m(benchmark: Any) -> None:
    _line, sig, _ = benchmark(tf.macd, PRICES)
    assert np.isfinite(sig[33:]).all()


def test_macd_pure_python_100k(benchmark: Any) -> None:
    _line, sig = benchmark.pedantic(py_macd, (PY_PRICES,), rounds=3, iterations=1)
    assert abs(sig[-1] - float(tf.macd(PRICES[:N_PY])[1][-1])) < 1e-9


def test_features_rust_1m(benchmark: Any) -> None:
    out = benchmark.pedantic(tf.features, (PRICES, VOLUMES), rounds=5, iterations=1)
    assert out.shape == (N, 7)


def test_signal_bridge_per_tick_features_plus_inference(benchmark: Any, tmp_path: Path) -> None:
    """Per tick in Rust: FeatureState::update + single-row ONNX inference (p50/p99 in
    extra_info; goal p50 <= 15 us, p99 <= 40 us)."""
    from tradewire.ml import TradingModel, export_onnx

    subprocess.run(
        ["cargo", "build", "--release", "--locked", "-p", "signal-bridge"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    model = export_onnx(TradingModel.init(0), tmp_path / "m.onnx")
    cmd = [
        str(ROOT / "target/release/signal-bridge"),
        "--model",
        str(model),
        "--bench-tick",
        "50000",
    ]

    def run() -> dict[str, Any]:
        res = subprocess.run(cmd, check=True, capture_output=True, text=True)
        doc: dict[str, Any] = json.loads(res.stdout)
        return doc

    doc = benchmark.pedantic(run, rounds=1, iterations=1)
    benchmark.extra_info.update(doc)
    print(f"\nsignal-bridge per tick: {doc}")
    assert doc["ticks"] > 49_000

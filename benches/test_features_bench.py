"""Indicators: Rust (tradewire.features) vs numpy vs pure Python, all on 1M points.

`make bench`. Goals (issue 5): RSI and MACD on 1M points <= 5 ms in Rust and >= 100x pure
Python. The numpy versions are vectorised by blocks (`np_smooth`: a linear recursion
solved in closed form inside 512-value blocks, one carry per block) and compute the same
definitions as the Rust crate (Wilder RSI, EMA-seeded MACD), checked within 1e-9; Cutler's
RSI (SMA-smoothed, one convolution) is kept as the simplest numpy RSI.
The Rust-only figures: `cargo run --release -p tradewire-features --example bench_features`.
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
ROOT = Path(__file__).resolve().parents[1]
rng = np.random.default_rng(0)
PRICES = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.001, N)))
VOLUMES = rng.integers(0, 5000, N).astype(np.float64)
PY_PRICES = PRICES.tolist()
BLOCK = 512


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


def np_smooth(x: npt.NDArray[np.float64], n: int, alpha: float) -> npt.NDArray[np.float64]:
    """y[n-1] = mean(x[:n]), y[t] = y[t-1] + alpha * (x[t] - y[t-1]); NaN before n-1.
    Inside a block of B values, y[k] = d^(k+1) y[-1] + alpha * d^k * cumsum(x[j] d^-j)
    with d = 1 - alpha (d^-B stays far from overflow for the periods used here)."""
    d = 1.0 - alpha
    out = np.full(len(x), np.nan)
    if len(x) < n:
        return out
    out[n - 1] = x[:n].mean()
    rest = x[n:]
    m = len(rest)
    blocks = np.zeros(-(-m // BLOCK) * BLOCK)
    blocks[:m] = rest
    xb = blocks.reshape(-1, BLOCK)
    k = np.arange(BLOCK)
    z = alpha * d**k * np.cumsum(xb * d ** (-k), axis=1)  # each block from y[-1] = 0
    carry = np.empty(len(xb))
    c, d_block = out[n - 1], d**BLOCK
    for b, last in enumerate(z[:, -1].tolist()):  # one carry per block
        carry[b] = c
        c = last + d_block * c
    out[n:] = (z + d ** (k + 1) * carry[:, None]).ravel()[:m]
    return out


def np_rsi_wilder(p: npt.NDArray[np.float64], n: int = 14) -> npt.NDArray[np.float64]:
    d = np.diff(p)
    g = np_smooth(np.clip(d, 0, None), n, 1.0 / n)
    lo = np_smooth(np.clip(-d, 0, None), n, 1.0 / n)
    out = np.full(len(p), np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        out[1:] = np.where(lo == 0, np.where(g == 0, 50.0, 100.0), 100.0 * g / (g + lo))
    return out


def np_macd(
    p: npt.NDArray[np.float64], fast: int = 12, slow: int = 26, signal: int = 9
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    line = np_smooth(p, fast, 2.0 / (fast + 1)) - np_smooth(p, slow, 2.0 / (slow + 1))
    sig = np.full(len(p), np.nan)
    sig[slow - 1 :] = np_smooth(line[slow - 1 :], signal, 2.0 / (signal + 1))
    return line, sig, line - sig


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


def test_rsi_numpy_1m(benchmark: Any) -> None:
    out = benchmark(np_rsi_wilder, PRICES)
    np.testing.assert_allclose(out[14:], tf.rsi(PRICES)[14:], rtol=0, atol=1e-9)


def test_rsi_numpy_cutler_1m(benchmark: Any) -> None:
    assert benchmark(np_rsi_cutler, PRICES).shape == (N - 14,)


def test_rsi_pure_python_1m(benchmark: Any) -> None:
    out = benchmark.pedantic(py_rsi, (PY_PRICES,), rounds=3, iterations=1)
    np.testing.assert_allclose(out[14:], tf.rsi(PRICES)[14:], rtol=0, atol=1e-9)


def test_macd_rust_1m(benchmark: Any) -> None:
    _line, sig, _ = benchmark(tf.macd, PRICES)
    assert np.isfinite(sig[33:]).all()


def test_macd_numpy_1m(benchmark: Any) -> None:
    line, sig, hist = benchmark(np_macd, PRICES)
    for got, want in zip((line, sig, hist), tf.macd(PRICES), strict=True):
        np.testing.assert_allclose(got[33:], want[33:], rtol=0, atol=1e-9)


def test_macd_pure_python_1m(benchmark: Any) -> None:
    _line, sig = benchmark.pedantic(py_macd, (PY_PRICES,), rounds=3, iterations=1)
    np.testing.assert_allclose(sig[8:], tf.macd(PRICES)[1][33:], rtol=0, atol=1e-9)


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

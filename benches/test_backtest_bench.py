"""Backtest on 1M ticks: Rust vs numpy (vectorised) vs a pure Python loop.
Goal (issue 5): <= 5 ms in Rust; seed claims 150 ms."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from tradewire import features as tf

N = 1_000_000
rng = np.random.default_rng(0)
PRICES = 100.0 + np.cumsum(rng.normal(0.0, 0.1, N))
SIGNALS = rng.choice(np.array([-1, 0, 1], dtype=np.int64), size=N)


def np_backtest(
    p: npt.NDArray[np.float64], s: npt.NDArray[np.int64], c: float
) -> tuple[float, int, npt.NDArray[np.float64]]:
    pos_prev = np.concatenate(([0], s[:-1]))
    dpos = s - pos_prev
    step = np.concatenate(([0.0], pos_prev[1:] * np.diff(p))) - c * np.abs(dpos) * p
    eq = np.cumsum(step)
    return float(eq[-1]), int(np.count_nonzero(dpos)), eq


def py_backtest(p: list[float], s: list[int], c: float) -> float:
    pos, eq = 0, 0.0
    for t in range(len(p)):
        if t:
            eq += pos * (p[t] - p[t - 1])
        if s[t] != pos:
            eq -= c * abs(s[t] - pos) * p[t]
            pos = s[t]
    return eq


def test_backtest_rust_1m(benchmark: Any) -> None:
    r = benchmark(tf.backtest, PRICES, SIGNALS, 0.001)
    pnl, trades, _ = np_backtest(PRICES, SIGNALS, 0.001)
    assert r.trades == trades and abs(r.pnl - pnl) < 1e-6 * max(1.0, abs(pnl))


def test_backtest_numpy_1m(benchmark: Any) -> None:
    pnl, trades, eq = benchmark(np_backtest, PRICES, SIGNALS, 0.001)
    r = tf.backtest(PRICES, SIGNALS, 0.001)
    assert trades == r.trades
    np.testing.assert_allclose(eq, r.equity, rtol=0, atol=1e-6 * max(1.0, abs(pnl)))


def test_backtest_pure_python_1m(benchmark: Any) -> None:
    p, s = PRICES.tolist(), SIGNALS.tolist()
    pnl = benchmark.pedantic(py_backtest, (p, s, 0.001), rounds=3, iterations=1)
    assert abs(pnl - tf.backtest(PRICES, SIGNALS, 0.001).pnl) < 1e-6 * max(1.0, abs(pnl))

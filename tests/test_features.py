"""tradewire.features (Rust through PyO3) against an independent numpy/Python reference."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from tradewire import features as tf

F = npt.NDArray[np.float64]


def walk(n: int, seed: int = 0) -> tuple[F, F]:
    rng = np.random.default_rng(seed)
    prices = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, n)))
    volumes = rng.integers(0, 5000, n).astype(np.float64)
    return prices, volumes


# ---- independent reference (textbook definitions, written without the Rust code) ----


def ref_ema(x: F, n: int) -> F:
    out = np.full(len(x), np.nan)
    if len(x) < n:
        return out
    alpha = 2.0 / (n + 1)
    v = float(np.mean(x[:n]))
    out[n - 1] = v
    for i in range(n, len(x)):
        v = alpha * x[i] + (1 - alpha) * v
        out[i] = v
    return out


def ref_rsi(p: F, n: int = 14) -> F:
    out = np.full(len(p), np.nan)
    d = np.diff(p)
    gains, losses = np.clip(d, 0, None), np.clip(-d, 0, None)
    if len(d) < n:
        return out
    g, lo = gains[:n].mean(), losses[:n].mean()
    for i in range(n, len(p)):
        if i > n:
            g = (g * (n - 1) + gains[i - 1]) / n
            lo = (lo * (n - 1) + losses[i - 1]) / n
        out[i] = 50.0 if g == 0 and lo == 0 else 100.0 if lo == 0 else 100 - 100 / (1 + g / lo)
    return out


def ref_macd(p: F, fast: int = 12, slow: int = 26, sig: int = 9) -> tuple[F, F, F]:
    line = ref_ema(p, fast) - ref_ema(p, slow)
    signal = np.full(len(p), np.nan)
    start = slow - 1
    if len(p) > start:
        signal[start:] = ref_ema(line[start:], sig)
    return line, signal, line - signal


def ref_features(p: F, v: F) -> F:
    n = len(p)
    out = np.full((n, 7), np.nan)
    if n < 50:
        return out
    t = np.arange(49, n)
    w20 = sliding_window_view(p, 20)[t - 19]
    mid, sd = w20.mean(axis=1), w20.std(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        pb = np.where(sd <= 1e-12 * np.abs(mid), 0.5, (p[t] - (mid - 2 * sd)) / (4 * sd))
    ma50 = sliding_window_view(p, 50)[t - 49].mean(axis=1)
    vm = sliding_window_view(v, 20)[t - 19].mean(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        vr = np.where(vm > 0, v[t] / vm, 1.0)
    out[t, 0] = ref_rsi(p)[t]
    out[t, 1] = ref_macd(p)[2][t] / p[t]
    out[t, 2] = pb
    out[t, 3] = p[t] / mid - 1
    out[t, 4] = p[t] / ma50 - 1
    out[t, 5] = vr
    out[t, 6] = p[t] / p[t - 10] - 1
    return out


def assert_close(a: F, b: F, tol: float = 1e-9) -> None:
    assert a.shape == b.shape
    np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
    np.testing.assert_allclose(a, b, rtol=tol, atol=tol, equal_nan=True)


# ---- numerics ----


def test_feature_names_order() -> None:
    assert tf.FEATURE_NAMES == (
        "rsi",
        "macd",
        "bollinger_bands",
        "moving_average_20",
        "moving_average_50",
        "volume_ratio",
        "price_momentum",
    )
    assert tf.N_FEATURES == 7 and tf.WARMUP == 50


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rsi_macd_ema_match_reference(seed: int) -> None:
    p, _ = walk(3000, seed)
    assert_close(tf.rsi(p), ref_rsi(p))
    assert_close(tf.rsi(p, 5), ref_rsi(p, 5))
    assert_close(tf.ema(p, 10), ref_ema(p, 10))
    for got, want in zip(tf.macd(p), ref_macd(p), strict=True):
        assert_close(got, want)
    for got, want in zip(tf.macd(p, 5, 13, 4), ref_macd(p, 5, 13, 4), strict=True):
        assert_close(got, want)


@pytest.mark.parametrize("seed", [0, 3])
def test_features_match_reference(seed: int) -> None:
    p, v = walk(4000, seed)
    got = tf.features(p, v)
    assert got.shape == (4000, 7)
    assert np.isnan(got[:49]).all() and np.isfinite(got[49:]).all()
    assert_close(got, ref_features(p, v))


def test_incremental_equals_batch_exactly() -> None:
    p, v = walk(1500, 9)
    batch = tf.features(p, v)
    st = tf.FeatureState()
    for i in range(len(p)):
        row = st.update(float(p[i]), float(v[i]))
        if i < tf.WARMUP - 1:
            assert row is None
        else:
            assert row is not None
            assert np.array_equal(np.array(row), batch[i])  # bit for bit
    assert st.ticks == len(p)


def test_non_contiguous_and_list_input() -> None:
    p, v = walk(400, 4)
    pp = np.repeat(p, 2)[::2]  # strided view
    assert not pp.flags.c_contiguous
    assert_close(tf.features(pp, v), tf.features(p, v), 0.0)
    assert_close(tf.rsi(list(p)), tf.rsi(p), 0.0)


# ---- edge cases ----


def test_short_series() -> None:
    p, v = walk(49)
    assert np.isnan(tf.features(p, v)).all()
    assert tf.features(np.array([]), np.array([])).shape == (0, 7)
    assert np.isnan(tf.rsi(p[:14])).all()
    assert not np.isnan(tf.rsi(p[:15])[14])
    line, sig, _ = tf.macd(p[:33])
    assert np.isnan(sig).all() and not np.isnan(line[25])


def test_constant_prices() -> None:
    row = tf.features(np.full(80, 0.1), np.full(80, 7.0))[-1]
    assert row[0] == 50.0 and row[2] == 0.5 and row[6] == 0.0
    assert abs(row[1]) < 1e-12 and abs(row[3]) < 1e-12 and abs(row[4]) < 1e-12
    assert row[5] == pytest.approx(1.0, abs=1e-12)
    assert (tf.rsi(np.full(30, 3.0))[14:] == 50.0).all()


@pytest.mark.parametrize(
    ("price", "volume", "message"),
    [
        (math.nan, 1.0, r"prices\[60\] is not finite \(NaN\)"),
        (math.inf, 1.0, r"prices\[60\] is not finite"),
        (0.0, 1.0, r"prices\[60\] must be > 0"),
        (10.0, math.nan, r"volumes\[60\] is not finite"),
        (10.0, -1.0, r"volumes\[60\] must be >= 0"),
    ],
)
def test_bad_input_is_a_clear_value_error(price: float, volume: float, message: str) -> None:
    p, v = walk(100)
    p[60], v[60] = price, volume
    with pytest.raises(ValueError, match=message):
        tf.features(p, v)
    st = tf.FeatureState()
    for i in range(60):
        st.update(float(p[i]), float(v[i]))
    with pytest.raises(ValueError, match=r"not finite|must be"):
        st.update(price, volume)
    assert st.ticks == 60  # rejected tick left the state unchanged


def test_other_errors() -> None:
    with pytest.raises(ValueError, match="length mismatch"):
        tf.features(np.ones(5), np.ones(4))
    with pytest.raises(ValueError, match="prices\\[1\\] is not finite"):
        tf.rsi(np.array([1.0, np.nan]))
    with pytest.raises(ValueError, match="period"):
        tf.rsi(np.ones(5), 0)
    with pytest.raises(ValueError, match="1-D"):
        tf.features(np.ones((3, 2)), np.ones(3))


# ---- backtest ----


def py_backtest(
    prices: list[float], signals: list[int], commission: float
) -> tuple[float, int, list[float]]:
    """Plain Python loop, straight from the documented rules."""
    pos, eq, trades, curve = 0, 0.0, 0, []
    for t, (p, s) in enumerate(zip(prices, signals, strict=True)):
        if t > 0:
            eq += pos * (p - prices[t - 1])
        if s != pos:
            eq -= commission * abs(s - pos) * p
            trades += 1
            pos = s
        curve.append(eq)
    return (curve[-1] if curve else 0.0), trades, curve


@pytest.mark.parametrize("commission", [0.0, 0.001, 0.05])
def test_backtest_matches_python_loop(commission: float) -> None:
    p, _ = walk(20_000, 5)
    rng = np.random.default_rng(1)
    s = rng.choice([-1, 0, 1], size=len(p), p=[0.1, 0.8, 0.1])
    s = np.repeat(s[::10], 10)  # hold positions for a while
    got = tf.backtest(p, s, commission)
    pnl, trades, curve = py_backtest(p.tolist(), s.tolist(), commission)
    assert got.trades == trades > 100
    np.testing.assert_allclose(got.equity, curve, rtol=0, atol=1e-9)
    assert got.pnl == pytest.approx(pnl, abs=1e-9)


def test_backtest_hand_example_and_dtypes() -> None:
    prices = [10.0, 12.0, 12.0, 11.0, 11.0]
    for sig in (
        [1, 1, -1, 0, 0],
        np.array([1, 1, -1, 0, 0], dtype=np.int8),
        np.array([1.0, 1.0, -1.0, 0.0, 0.0]),
    ):
        r = tf.backtest(prices, sig, 0.01)
        assert r.trades == 3
        np.testing.assert_allclose(r.equity, [-0.1, 1.9, 1.66, 2.55, 2.55], atol=1e-12)
    empty = tf.backtest([], np.array([], dtype=np.int64))
    assert (empty.pnl, empty.trades, len(empty.equity)) == (0.0, 0, 0)


def test_backtest_errors() -> None:
    with pytest.raises(ValueError, match=r"signals\[1\] must be -1, 0 or 1 \(got 2\)"):
        tf.backtest([1.0, 2.0], [0, 2])
    with pytest.raises(ValueError, match="integers"):
        tf.backtest([1.0, 2.0], [0, 0.5])
    with pytest.raises(ValueError, match="length mismatch"):
        tf.backtest([1.0], [0, 0])
    with pytest.raises(ValueError, match="commission"):
        tf.backtest([1.0], [0], -1.0)
    with pytest.raises(ValueError, match="not finite"):
        tf.backtest([1.0, np.nan], [0, 0])

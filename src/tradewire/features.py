"""The model features and a fast backtest, computed in Rust (crates/features).

The same Rust code computes features for training (here) and for live inference
(`signal-bridge`), so training and serving cannot disagree on definitions or order.
Definitions, warm-up and NaN policy: crates/features/src/lib.rs (also
crates/features/README.md). In short:

* :data:`FEATURE_NAMES` is the model-input order; rows of :func:`features` follow it.
* :func:`features` returns shape ``(len, 7)``; rows ``0 .. WARMUP-2`` are NaN (warm-up),
  every later row is finite.
* NaN/inf input, prices ``<= 0`` or volumes ``< 0`` raise :class:`ValueError` naming the
  element; nothing is computed for a bad series.

Inputs are passed to Rust without copying when they are C-contiguous float64 (int64 for
signals); anything else is converted once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from tradewire import _features

__all__ = [
    "FEATURE_NAMES",
    "N_FEATURES",
    "WARMUP",
    "BacktestResult",
    "FeatureState",
    "backtest",
    "ema",
    "features",
    "macd",
    "rsi",
]

FEATURE_NAMES: Final[tuple[str, ...]] = _features.FEATURE_NAMES
N_FEATURES: Final[int] = _features.N_FEATURES
WARMUP: Final[int] = _features.WARMUP

FloatArray = npt.NDArray[np.float64]
ArrayLike = npt.ArrayLike

FeatureState = _features.FeatureState
"""Per-tick features: ``FeatureState().update(price, volume)`` returns a 7-tuple (same
numbers as :func:`features`, bit for bit) or None during warm-up; raises ValueError on a
bad tick and leaves the state unchanged."""


def _f64(name: str, x: ArrayLike) -> FloatArray:
    a = np.ascontiguousarray(x, dtype=np.float64)
    if a.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {a.shape}")
    return a


def rsi(prices: ArrayLike, period: int = 14) -> FloatArray:
    """Wilder RSI; NaN for indices ``< period``."""
    return _features.rsi(_f64("prices", prices), period)


def ema(prices: ArrayLike, period: int) -> FloatArray:
    """EMA (alpha = 2/(period+1)) seeded with the mean of the first ``period`` values."""
    return _features.ema(_f64("prices", prices), period)


def macd(
    prices: ArrayLike, fast: int = 12, slow: int = 26, signal: int = 9
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """``(macd_line, signal_line, histogram)``, NaN during warm-up."""
    return _features.macd(_f64("prices", prices), fast, slow, signal)


def features(prices: ArrayLike, volumes: ArrayLike) -> FloatArray:
    """The 7 features, shape ``(len, 7)`` in :data:`FEATURE_NAMES` order."""
    return _features.features(_f64("prices", prices), _f64("volumes", volumes))


@dataclass(frozen=True)
class BacktestResult:
    pnl: float
    trades: int
    equity: FloatArray


def backtest(prices: ArrayLike, signals: ArrayLike, commission: float = 0.001) -> BacktestResult:
    """Target-position backtest: ``signals[t]`` in {-1, 0, 1} is the position held from
    tick ``t`` to ``t+1``; each position change pays ``commission * |Δposition| * price``.
    Exact accounting: crates/features/src/backtest.rs."""
    sig = np.asarray(signals)
    if sig.ndim != 1:
        raise ValueError(f"signals must be 1-D, got shape {sig.shape}")
    if sig.dtype != np.int64:
        if sig.dtype.kind == "f" and not np.array_equal(sig, np.round(sig)):
            raise ValueError("signals must be integers -1, 0 or 1")
        if sig.dtype.kind not in "iubf":
            raise ValueError(f"signals must be integers, got dtype {sig.dtype}")
        if sig.dtype.kind == "f" and not np.isfinite(sig).all():
            raise ValueError("signals must be integers -1, 0 or 1")
        sig = sig.astype(np.int64)
    pnl, trades, equity = _features.backtest(
        _f64("prices", prices), np.ascontiguousarray(sig), float(commission)
    )
    return BacktestResult(pnl=pnl, trades=trades, equity=equity)

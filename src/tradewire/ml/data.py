"""Synthetic labelled data built from the real features (tradewire.features)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from tradewire import features as tf

#: Model output classes, in `signal_probabilities` column order (as in the seed's
#: probabilities_to_signal: 0 = buy, 1 = hold, 2 = sell).
CLASSES: Final[tuple[str, str, str]] = ("buy", "hold", "sell")
BUY, HOLD, SELL = 0, 1, 2


@dataclass(frozen=True)
class LabelledData:
    x: npt.NDArray[np.float32]  # (n, 7), FEATURE_NAMES order
    y: npt.NDArray[np.int64]  # (n,), class index into CLASSES
    feature_names: tuple[str, ...]

    def split(self, at: int) -> tuple[LabelledData, LabelledData]:
        """Rows [:at] and [at:] (e.g. train / validation)."""
        return (
            LabelledData(self.x[:at], self.y[:at], self.feature_names),
            LabelledData(self.x[at:], self.y[at:], self.feature_names),
        )


def synthetic_market(
    n: int, seed: int = 0
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """A price/volume series with regime-switching drift and momentum, so that the
    features carry some information about future returns."""
    rng = np.random.default_rng(seed)
    regime = np.repeat(rng.choice([-1.0, 0.0, 1.0], size=n // 200 + 1), 200)[:n]
    shocks = rng.normal(0.0, 0.004, n)
    rets = np.empty(n)
    prev = 0.0
    for i in range(n):  # AR(1) returns around the regime drift
        prev = 0.3 * prev + 0.0006 * regime[i] + shocks[i]
        rets[i] = prev
    prices = 100.0 * np.exp(np.cumsum(rets))
    volumes = np.round(1000.0 * (1.0 + np.abs(rets) * 200.0) * rng.lognormal(0.0, 0.3, n))
    return prices, volumes


def labelled_dataset(
    n_series: int = 4,
    length: int = 5000,
    horizon: int = 10,
    threshold: float = 0.008,
    seed: int = 0,
) -> LabelledData:
    """Features of several synthetic series, labelled by the forward return over
    `horizon` ticks: > threshold -> buy, < -threshold -> sell, else hold. Warm-up rows and
    the last `horizon` rows (no label) are dropped."""
    xs, ys = [], []
    for k in range(n_series):
        p, v = synthetic_market(length, seed * 1000 + k)
        f = tf.features(p, v)
        fwd = p[horizon:] / p[:-horizon] - 1.0
        rows = slice(tf.WARMUP - 1, length - horizon)
        y = np.full(length - horizon, HOLD, dtype=np.int64)
        y[fwd > threshold] = BUY
        y[fwd < -threshold] = SELL
        xs.append(f[rows])
        ys.append(y[rows])
    return LabelledData(
        x=np.concatenate(xs).astype(np.float32),
        y=np.concatenate(ys),
        feature_names=tf.FEATURE_NAMES,
    )

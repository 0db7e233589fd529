# Stub for the PyO3 extension built from crates/features-py (see tradewire.features).
from typing import Final

import numpy as np
import numpy.typing as npt

FEATURE_NAMES: Final[tuple[str, str, str, str, str, str, str]]
N_FEATURES: Final[int]
WARMUP: Final[int]

_F64 = npt.NDArray[np.float64]

def rsi(prices: _F64, period: int = 14) -> _F64: ...
def ema(prices: _F64, period: int) -> _F64: ...
def macd(
    prices: _F64, fast: int = 12, slow: int = 26, signal: int = 9
) -> tuple[_F64, _F64, _F64]: ...
def features(prices: _F64, volumes: _F64) -> _F64: ...
def backtest(
    prices: _F64, signals: npt.NDArray[np.int64], commission: float
) -> tuple[float, int, _F64]: ...

class FeatureState:
    def __init__(self) -> None: ...
    def update(
        self, price: float, volume: float
    ) -> tuple[float, float, float, float, float, float, float] | None: ...
    @property
    def ticks(self) -> int: ...

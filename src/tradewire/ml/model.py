"""The seed's TradingModel (Linear 7->64, ReLU, Dropout 0.2, Linear 64->32, ReLU,
Dropout 0.2, Linear 32->3), trained in numpy with Adam on softmax cross-entropy.

Inputs are standardised with the training mean/scale, which are part of the model (and of
the exported ONNX graph), so callers always feed raw features in FEATURE_NAMES order.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from tradewire import features as tf

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
LAYERS = (7, 64, 32, 3)
DROPOUT = 0.2


def _softmax(z: F64) -> F64:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    out: F64 = e / e.sum(axis=1, keepdims=True)
    return out


@dataclass
class TradingModel:
    weights: list[F64]  # (in, out) per layer
    biases: list[F64]
    mean: F64 = field(default_factory=lambda: np.zeros(LAYERS[0]))
    scale: F64 = field(default_factory=lambda: np.ones(LAYERS[0]))
    feature_names: tuple[str, ...] = tf.FEATURE_NAMES

    @classmethod
    def init(cls, seed: int = 0) -> TradingModel:
        rng = np.random.default_rng(seed)
        ws, bs = [], []
        for fan_in, fan_out in itertools.pairwise(LAYERS):
            ws.append(rng.normal(0.0, np.sqrt(2.0 / fan_in), (fan_in, fan_out)))
            bs.append(np.zeros(fan_out))
        return cls(weights=ws, biases=bs)

    def _forward(
        self, x: F64, rng: np.random.Generator | None = None
    ) -> tuple[F64, list[F64], list[F64 | None]]:
        """Logits, the activations entering each layer, and dropout masks (training)."""
        h = (x - self.mean) / self.scale
        acts: list[F64] = []
        masks: list[F64 | None] = []
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            acts.append(h)
            h = h @ w + b
            if i < last:
                h = np.maximum(h, 0.0)
                mask = None
                if rng is not None:
                    mask = (rng.random(h.shape) >= DROPOUT) / (1.0 - DROPOUT)
                    h = h * mask
                masks.append(mask)
        return h, acts, masks

    def predict_proba(self, x: npt.ArrayLike) -> F64:
        """`signal_probabilities` for raw feature rows (n, 7): softmax over buy/hold/sell."""
        logits, _, _ = self._forward(np.asarray(x, dtype=np.float64))
        return _softmax(logits)

    def fit(
        self,
        x: npt.ArrayLike,
        y: npt.ArrayLike,
        *,
        epochs: int = 10,
        batch_size: int = 256,
        lr: float = 1e-3,
        seed: int = 0,
    ) -> list[float]:
        """Adam on mean cross-entropy with dropout; returns the mean loss of each epoch."""
        xa = np.asarray(x, dtype=np.float64)
        ya = np.asarray(y, dtype=np.int64)
        if xa.ndim != 2 or xa.shape[1] != LAYERS[0] or len(xa) != len(ya):
            raise ValueError(f"x must be (n, {LAYERS[0]}) aligned with y")
        if not np.isfinite(xa).all():
            raise ValueError("x contains NaN/inf (drop the feature warm-up rows)")
        self.mean = xa.mean(axis=0)
        sd = xa.std(axis=0)
        self.scale = np.where(sd > 1e-12, sd, 1.0)
        rng = np.random.default_rng(seed)
        params = [*self.weights, *self.biases]
        m = [np.zeros_like(p) for p in params]
        v = [np.zeros_like(p) for p in params]
        b1, b2, eps, step = 0.9, 0.999, 1e-8, 0
        history = []
        nl = len(self.weights)
        for _ in range(epochs):
            order = rng.permutation(len(xa))
            total = 0.0
            for start in range(0, len(xa), batch_size):
                idx = order[start : start + batch_size]
                xb, yb = xa[idx], ya[idx]
                logits, acts, masks = self._forward(xb, rng)
                probs = _softmax(logits)
                total += float(-np.log(probs[np.arange(len(yb)), yb] + 1e-12).sum())
                grad = probs
                grad[np.arange(len(yb)), yb] -= 1.0
                grad /= len(yb)
                gw: list[F64] = [np.empty(0)] * nl
                gb: list[F64] = [np.empty(0)] * nl
                for i in range(nl - 1, -1, -1):
                    gw[i] = acts[i].T @ grad
                    gb[i] = grad.sum(axis=0)
                    if i > 0:
                        grad = grad @ self.weights[i].T
                        mask = masks[i - 1]
                        if mask is not None:
                            grad = grad * mask
                        grad = grad * (acts[i] > 0)
                step += 1
                for j, (p, g) in enumerate(zip(params, [*gw, *gb], strict=True)):
                    m[j] = b1 * m[j] + (1 - b1) * g
                    v[j] = b2 * v[j] + (1 - b2) * g * g
                    mhat = m[j] / (1 - b1**step)
                    vhat = v[j] / (1 - b2**step)
                    p -= lr * mhat / (np.sqrt(vhat) + eps)
            history.append(total / len(xa))
        return history

    def accuracy(self, x: npt.ArrayLike, y: npt.ArrayLike) -> float:
        return float((self.predict_proba(x).argmax(axis=1) == np.asarray(y)).mean())

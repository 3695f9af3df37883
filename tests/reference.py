"""Plain float64 references the tests compare against (no acbmse_rs code)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def reference_stats(pred: Any, target: Any) -> tuple[int, int, float, float]:
    """(n_zero, n_nonzero, sse_zero, sse_nonzero), squared errors summed exactly with fsum."""
    p = np.asarray(pred, dtype=np.float64).ravel()
    t = np.asarray(target, dtype=np.float64).ravel()
    sq = (p - t) ** 2
    zero = t == 0
    return (
        int(zero.sum()),
        int((~zero).sum()),
        math.fsum(sq[zero].tolist()),
        math.fsum(sq[~zero].tolist()),
    )


def reference_loss(pred: Any, target: Any, w0: float = 1.0, w1: float = 1.0) -> float:
    """ACB-MSE from the definition, in float64; an empty class contributes 0."""
    n0, n1, s0, s1 = reference_stats(pred, target)
    loss = 0.0
    if n0:
        loss += w0 * s0 / n0
    if n1:
        loss += w1 * s1 / n1
    return loss


def reference_grad(pred: Any, target: Any, w0: float = 1.0, w1: float = 1.0) -> np.ndarray:
    """d loss / d pred = 2 w_c (pred - target) / n_c, in float64."""
    p = np.asarray(pred, dtype=np.float64)
    t = np.asarray(target, dtype=np.float64)
    zero = t == 0
    n0, n1 = int(zero.sum()), int((~zero).sum())
    coef = np.where(zero, 2 * w0 / max(n0, 1), 2 * w1 / max(n1, 1))
    return coef * (p - t)


def sparse_pair(
    rng: np.random.Generator, shape: tuple[int, ...], hit_rate: float, dtype: Any = np.float32
) -> tuple[np.ndarray, np.ndarray]:
    """A sparse target (about hit_rate nonzero) and a noisy prediction of it."""
    hits = rng.random(shape) < hit_rate
    target = np.where(hits, rng.uniform(0.5, 2.0, shape), 0.0).astype(dtype)
    pred = (target + rng.normal(0.0, 0.3, shape)).astype(dtype)
    return pred, target

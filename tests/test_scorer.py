"""Tests of the streaming Scorer and its result object."""

from __future__ import annotations

import doctest
import pickle
from typing import Any

import acbmse_rs
import numpy as np
import pytest
from acbmse_rs import Scorer, ScoreResult


def _data(
    n: int = 37, shape: tuple[int, ...] = (6, 11), seed: int = 0, dtype: Any = np.float32
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    rng = np.random.default_rng(seed)
    hit = rng.random((n, *shape)) < 0.08
    target = np.where(hit, rng.uniform(0.2, 1.0, (n, *shape)), 0.0)
    pred = target + rng.normal(0.0, 0.1, (n, *shape))
    return pred.astype(dtype), target.astype(dtype)


def _reference(pred: Any, target: Any, a: float, b: float) -> float:
    """An independent float64 NumPy reference of the global ACB-MSE."""
    p, t = np.asarray(pred, np.float64), np.asarray(target, np.float64)
    zero = t == 0
    d2 = (p - t) ** 2
    m0 = d2[zero].mean() if zero.any() else 0.0
    m1 = d2[~zero].mean() if (~zero).any() else 0.0
    return float(a * m0 + b * m1)


def _score(pred: Any, target: Any, chunk: int, a: float = 1.0, b: float = 1.0) -> ScoreResult:
    s = Scorer(a, b)
    for i in range(0, len(pred), chunk):
        s.update(pred[i : i + chunk], target[i : i + chunk])
    return s.compute()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("weights", [(1.0, 1.0), (0.5, 3.0), (0.0, 1.0)])
def test_matches_in_memory_functions(dtype: Any, weights: tuple[float, float]) -> None:
    pred, target = _data(dtype=dtype)
    r = _score(pred, target, chunk=5, a=weights[0], b=weights[1])
    assert r.loss == pytest.approx(acbmse_rs.acb_mse(pred, target, *weights), rel=1e-12)
    assert r.loss == pytest.approx(_reference(pred, target, *weights), rel=1e-6)
    np.testing.assert_array_equal(
        r.per_sample, acbmse_rs.acb_mse_per_sample(pred, target, *weights)
    )
    stats = acbmse_rs.class_stats(pred, target)
    assert (r.n_zero, r.n_nonzero, r.n_elements) == (stats.n_zero, stats.n_nonzero, pred.size)
    assert r.mse_zero == pytest.approx(stats.mse_zero, rel=1e-12)
    assert r.mse_nonzero == pytest.approx(stats.mse_nonzero, rel=1e-12)
    assert r.nonzero_fraction == pytest.approx(np.count_nonzero(target) / target.size)
    assert r.n_samples == len(pred)
    assert r.per_sample.dtype == np.float64 and r.per_sample.shape == (len(pred),)


def test_result_does_not_depend_on_chunking() -> None:
    pred, target = _data(n=64)
    results = [_score(pred, target, chunk) for chunk in (1, 5, 8, 64, 1000)]
    for r in results[1:]:
        assert r.loss == results[0].loss  # bit for bit: the sums are exact
        assert r.stats == results[0].stats
        np.testing.assert_array_equal(r.per_sample, results[0].per_sample)


def test_merge_and_pickle_combine_exactly() -> None:
    pred, target = _data(n=60)
    whole = _score(pred, target, chunk=60)
    parts = []
    for lo, hi in ((0, 13), (13, 40), (40, 60)):
        s = Scorer()
        s.update(pred[lo:hi], target[lo:hi])
        parts.append(pickle.loads(pickle.dumps(s)))
    merged = Scorer().merge(parts[0]).merge(parts[1]).merge(parts[2])
    r = merged.compute()
    assert r.loss == whole.loss
    assert r.stats == whole.stats
    np.testing.assert_array_equal(r.per_sample, whole.per_sample)
    # A different merge order gives the same global loss (samples reordered).
    other = Scorer().merge(parts[2]).merge(parts[0]).merge(parts[1]).compute()
    assert other.loss == whole.loss
    assert other.stats == whole.stats
    # The merged-from scorers are unchanged.
    assert parts[0].n_samples == 13


def test_pickled_result_round_trip() -> None:
    pred, target = _data()
    r = _score(pred, target, chunk=10)
    r2 = pickle.loads(pickle.dumps(r))
    assert r2.loss == r.loss and r2.stats == r.stats
    np.testing.assert_array_equal(r2.per_sample, r.per_sample)


def test_reset_keeps_weights() -> None:
    pred, target = _data()
    s = Scorer(2.0, 0.5)
    s.update(pred, target)
    s.reset()
    assert s.n_samples == 0 and s.sample_shape is None
    s.update(pred[:3], target[:3])
    r = s.compute()
    assert r.n_samples == 3
    assert r.loss == pytest.approx(acbmse_rs.acb_mse(pred[:3], target[:3], 2.0, 0.5), rel=1e-12)


def test_nan_propagates_and_is_worst() -> None:
    pred, target = _data(n=10)
    pred = pred.copy()
    pred[4, 0, 0] = np.nan
    r = _score(pred, target, chunk=3)
    assert np.isnan(r.loss)
    assert np.isnan(r.per_sample[4])
    assert r.worst(1)[0][0] == 4
    assert r.to_dict()["acb_mse"] is None  # JSON-safe


def test_worst_orders_by_loss() -> None:
    s = Scorer()
    target = np.zeros((4, 2))
    pred = np.array([[0.1, 0.0], [3.0, 0.0], [1.0, 0.0], [3.0, 0.0]])
    s.update(pred, target)
    r = s.compute()
    assert [i for i, _ in r.worst(3)] == [1, 3, 2]
    assert r.worst(10)[-1][0] == 0
    assert r.worst(0) == []


def test_summary_table_and_dict() -> None:
    pred, target = _data()
    r = _score(pred, target, chunk=7)
    table = r.format_table(top=3)
    assert "ACB-MSE" in table and "worst 3 samples" in table
    assert f"{r.loss:.6g}" in table
    d = r.to_dict(top=2)
    assert d["acb_mse"] == r.loss and d["n_samples"] == r.n_samples
    assert [w["index"] for w in d["worst"]] == [i for i, _ in r.worst(2)]


def test_integer_and_mixed_dtypes() -> None:
    target = np.array([[0, 0, 2], [1, 0, 0]], dtype=np.int64)
    pred = np.array([[0.5, 0.0, 1.0], [1.0, 0.0, 0.0]], dtype=np.float32)
    s = Scorer()
    s.update(pred, target)
    assert s.compute().loss == pytest.approx(acbmse_rs.acb_mse(pred, target), rel=1e-15)


def test_one_dimensional_samples() -> None:
    pred, target = np.array([1.0, 0.0, 2.0]), np.array([0.0, 0.0, 2.0])
    s = Scorer()
    s.update(pred, target)
    np.testing.assert_array_equal(s.compute().per_sample, [1.0, 0.0, 0.0])


def test_bad_input() -> None:
    s = Scorer()
    with pytest.raises(ValueError, match="same shape"):
        s.update(np.zeros((2, 3)), np.zeros((2, 4)))
    with pytest.raises(TypeError, match="complex"):
        s.update(np.zeros((2, 3), complex), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="0-d"):
        s.update(np.float64(1.0), np.float64(1.0))
    with pytest.raises(ValueError, match="at least one update"):
        s.compute()
    s.update(np.zeros((2, 3)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"shape \(4,\) but earlier batches had \(3,\)"):
        s.update(np.zeros((2, 4)), np.zeros((2, 4)))
    assert s.n_samples == 2  # a rejected batch changes nothing


def test_bad_weights_and_merges() -> None:
    with pytest.raises(ValueError, match="zero_weighting"):
        Scorer(-1.0)
    with pytest.raises(ValueError, match="nonzero_weighting"):
        Scorer(1.0, float("nan"))
    with pytest.raises(TypeError, match="real number"):
        Scorer("1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="different weights"):
        Scorer(1.0, 2.0).merge(Scorer(1.0, 1.0))
    with pytest.raises(TypeError, match="another Scorer"):
        Scorer().merge(object())  # type: ignore[arg-type]
    a, b = Scorer(), Scorer()
    a.update(np.zeros((1, 2)), np.zeros((1, 2)))
    b.update(np.zeros((1, 3)), np.zeros((1, 3)))
    with pytest.raises(ValueError, match="different sample shapes"):
        a.merge(b)


def test_docstring_examples() -> None:
    import acbmse_rs.scorer

    result = doctest.testmod(acbmse_rs.scorer, extraglobs={"acbmse_rs": acbmse_rs})
    assert result.attempted > 0 and result.failed == 0


def test_exact_sum_is_correctly_rounded_whatever_the_split() -> None:
    import math

    from acbmse_rs.scorer import _ExactSum

    rng = np.random.default_rng(7)
    cases = [
        rng.random(1000),
        rng.random(500) * 10.0 ** rng.integers(-300, 300, 500),  # wide exponent range
        np.concatenate([rng.normal(size=300) * 1e16, [5e-324, 1e-310, 0.0, -0.0, 1.0]]),
        rng.random(800) ** 30,
    ]
    for values in cases:
        expected = math.fsum(values.tolist())
        for cuts in ([], [1], [10, 11, 400], list(range(0, len(values), 7))):
            total = _ExactSum()
            for part in np.split(values, cuts):
                total.add_array(part)
            assert total.value == expected
        halves = _ExactSum(), _ExactSum()
        halves[0].add_array(values[::2])
        halves[1].add_array(values[1::2])
        halves[1].merge(halves[0])
        assert halves[1].value == expected
    special = _ExactSum()
    special.add_array(np.array([1.0, np.inf]))
    assert special.value == np.inf
    special.add_array(np.array([np.nan]))
    assert np.isnan(special.value)
    overflow = _ExactSum()
    overflow.add_array(np.array([1e308, 1e308]))
    assert overflow.value == np.inf

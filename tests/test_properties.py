"""Property tests (hypothesis) of the NumPy API against the float64 reference."""

from __future__ import annotations

import numpy as np
import pytest
from acbmse_rs import acb_mse, acb_mse_grad, acb_mse_per_sample, class_stats
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from reference import reference_grad, reference_loss

finite = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False, width=32)
# Targets: many exact zeros (both signs), some hits.
target_values = st.one_of(st.just(0.0), st.just(-0.0), finite)
dtypes = st.sampled_from([np.float32, np.float64])
weights = st.floats(0.0, 10.0)


@st.composite
def pairs(draw, min_dims=0):
    dtype = draw(dtypes)
    shape = draw(hnp.array_shapes(min_dims=min_dims, max_dims=4, min_side=1, max_side=6))
    pred = draw(hnp.arrays(dtype, shape, elements=finite))
    target = draw(hnp.arrays(dtype, shape, elements=target_values))
    return pred, target


@settings(max_examples=200, deadline=None)
@given(pairs(), weights, weights)
def test_loss_matches_reference(pair, w0, w1):
    pred, target = pair
    want = reference_loss(pred, target, w0, w1)
    assert acb_mse(pred, target, w0, w1) == pytest.approx(want, rel=1e-6, abs=1e-9)


@settings(max_examples=100, deadline=None)
@given(pairs(), weights, weights)
def test_gradient_matches_reference(pair, w0, w1):
    pred, target = pair
    loss, grad = acb_mse_grad(pred, target, w0, w1)
    assert loss == acb_mse(pred, target, w0, w1)
    np.testing.assert_allclose(
        grad,
        reference_grad(pred, target, w0, w1),
        rtol=1e-6,
        # Values below the dtype's smallest normal number round to (almost) zero.
        atol=1e-6 * (w0 + w1) + float(np.finfo(grad.dtype).tiny),
    )


@settings(max_examples=100, deadline=None)
@given(pairs(min_dims=1), st.data())
def test_stats_merge_over_any_split(pair, data):
    pred, target = pair
    cut = data.draw(st.integers(0, pred.shape[0]))
    whole = class_stats(pred, target)
    parts = [
        class_stats(pred[a:b], target[a:b]) for a, b in [(0, cut), (cut, pred.shape[0])] if b > a
    ]
    merged = sum(parts)
    assert (merged.n_zero, merged.n_nonzero) == (whole.n_zero, whole.n_nonzero)
    assert merged.sse_zero == pytest.approx(whole.sse_zero, rel=1e-12, abs=1e-12)
    assert merged.sse_nonzero == pytest.approx(whole.sse_nonzero, rel=1e-12, abs=1e-12)


@settings(max_examples=100, deadline=None)
@given(pairs(min_dims=1), weights, weights)
def test_per_sample_is_each_sample_alone(pair, w0, w1):
    pred, target = pair
    per = acb_mse_per_sample(pred, target, w0, w1)
    assert per.tolist() == [acb_mse(p, t, w0, w1) for p, t in zip(pred, target)]


@settings(max_examples=100, deadline=None)
@given(pairs(min_dims=2), st.data())
def test_any_view_equals_its_copy(pair, data):
    pred, target = pair
    axes = data.draw(st.permutations(range(pred.ndim)))
    step = data.draw(st.sampled_from([1, -1, 2, -2]))
    p = pred.transpose(axes)[::step]
    t = target.transpose(axes)[::step]
    pc, tc = np.ascontiguousarray(p), np.ascontiguousarray(t)
    assert acb_mse(p, t) == pytest.approx(acb_mse(pc, tc), rel=1e-13, abs=0)
    np.testing.assert_array_equal(acb_mse_grad(p, t)[1], acb_mse_grad(pc, tc)[1])
    np.testing.assert_array_equal(acb_mse_per_sample(p, t), acb_mse_per_sample(pc, tc))

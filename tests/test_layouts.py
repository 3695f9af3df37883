"""Any memory layout gives the result of a contiguous copy, with no copies made."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from acbmse_rs import acb_mse, acb_mse_grad, acb_mse_per_sample, class_stats
from reference import reference_loss, sparse_pair


def _base(dtype):
    rng = np.random.default_rng(10)
    return sparse_pair(rng, (6, 40, 300), 0.05, dtype)


LAYOUTS = {
    "fortran": lambda a: np.asfortranarray(a),
    "transposed": lambda a: a.transpose(2, 0, 1),
    "sliced": lambda a: a[1:5, ::3, 7:],
    "negative": lambda a: a[::-1, :, ::-2],
    "mixed": lambda a: a[:, ::-1].swapaxes(0, 2)[::2],
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_layout_equals_contiguous_copy(layout, dtype):
    pred, target = _base(dtype)
    p, t = LAYOUTS[layout](pred), LAYOUTS[layout](target)
    pc, tc = np.ascontiguousarray(p), np.ascontiguousarray(t)
    if layout in ("fortran", "transposed"):
        # The same dense non-C layout on both sides is read in memory order, in
        # place, so only the rounding of the sums may differ from the C-ordered copy.
        assert acb_mse(p, t) == pytest.approx(acb_mse(pc, tc), rel=1e-13)
    else:
        assert acb_mse(p, t, 0.3, 1.7) == acb_mse(pc, tc, 0.3, 1.7)
        assert class_stats(p, t) == class_stats(pc, tc)
    assert acb_mse(p, t) == pytest.approx(reference_loss(pc, tc), rel=1e-6)
    loss, grad = acb_mse_grad(p, t)
    loss_c, grad_c = acb_mse_grad(pc, tc)
    assert loss == loss_c
    np.testing.assert_array_equal(grad, grad_c)
    np.testing.assert_array_equal(acb_mse_per_sample(p, t), acb_mse_per_sample(pc, tc))
    # One side contiguous, the other strided.
    assert acb_mse(pc, t) == acb_mse(pc, tc)


def test_broadcast_views():
    rng = np.random.default_rng(11)
    row = rng.normal(size=300).astype(np.float32)
    target_row = (rng.random(300) < 0.1).astype(np.float32)
    p = np.broadcast_to(row, (5, 40, 300))
    t = np.broadcast_to(target_row, (5, 40, 300))
    pc, tc = np.ascontiguousarray(p), np.ascontiguousarray(t)
    assert acb_mse(p, t) == acb_mse(pc, tc)
    np.testing.assert_array_equal(acb_mse_grad(p, t)[1], acb_mse_grad(pc, tc)[1])
    np.testing.assert_array_equal(acb_mse_per_sample(p, t), acb_mse_per_sample(pc, tc))


def test_read_only_and_memory_mapped(tmp_path):
    pred, target = _base(np.float32)
    pf, tf = tmp_path / "pred.npy", tmp_path / "target.npy"
    np.save(pf, pred)
    np.save(tf, target)
    pm = np.load(pf, mmap_mode="r")
    tm = np.load(tf, mmap_mode="r")
    assert not pm.flags.writeable
    assert acb_mse(pm, tm) == acb_mse(pred, target)
    np.testing.assert_array_equal(acb_mse_grad(pm, tm)[1], acb_mse_grad(pred, target)[1])
    np.testing.assert_array_equal(acb_mse_per_sample(pm, tm), acb_mse_per_sample(pred, target))
    ro = pred.copy()
    ro.flags.writeable = False
    assert acb_mse(ro, target) == acb_mse(pred, target)
    # The same array as pred and target.
    assert acb_mse(pred, pred) == 0.0


def _peak_bytes(fn) -> int:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_no_copies_and_no_temporaries(dtype):
    """NumPy reports its allocations to tracemalloc: contiguous float input is read in
    place (no copy, no mask), and the gradient allocates only its output."""
    rng = np.random.default_rng(12)
    pred, target = sparse_pair(rng, (8, 1_000_000), 0.02, dtype)
    small = 64 * 1024
    assert _peak_bytes(lambda: acb_mse(pred, target)) < small
    assert _peak_bytes(lambda: class_stats(pred, target)) < small
    assert _peak_bytes(lambda: acb_mse_per_sample(pred, target)) < small
    peak = _peak_bytes(lambda: acb_mse_grad(pred, target))
    assert pred.nbytes <= peak < pred.nbytes + small
    # Strided input: buffers of one chunk per thread, not a copy of the input.
    assert _peak_bytes(lambda: acb_mse(pred[:, ::2], target[:, ::2])) < small

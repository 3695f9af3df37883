"""The NumPy API against float64 references and the original acb_mse package."""

from __future__ import annotations

import math
import pickle
import re
import subprocess
import sys
import threading

import acbmse_rs
import numpy as np
import pytest
from acbmse_rs import ClassStats, acb_mse, acb_mse_grad, acb_mse_per_sample, class_stats
from reference import reference_grad, reference_loss, reference_stats, sparse_pair

SHAPES = [(1,), (7,), (3, 5), (10, 3, 16, 16), (2, 70_000), (4, 1, 3, 2, 5)]
HIT_RATES = [0.0, 0.02, 0.5, 1.0]


def rtol_for(dtype: type) -> float:
    return 1e-6 if dtype == np.float32 else 1e-12


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("hit_rate", HIT_RATES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matches_float64_reference(shape, hit_rate, dtype):
    rng = np.random.default_rng(hash((shape, hit_rate)) % 2**32)
    pred, target = sparse_pair(rng, shape, hit_rate, dtype)
    for w0, w1 in [(1.0, 1.0), (0.3, 2.5), (0.0, 1.0)]:
        want = reference_loss(pred, target, w0, w1)
        assert acb_mse(pred, target, w0, w1) == pytest.approx(want, rel=rtol_for(dtype), abs=0)
    n0, n1, s0, s1 = reference_stats(pred, target)
    st = class_stats(pred, target)
    assert (st.n_zero, st.n_nonzero) == (n0, n1)
    assert st.sse_zero == pytest.approx(s0, rel=rtol_for(dtype), abs=0)
    assert st.sse_nonzero == pytest.approx(s1, rel=rtol_for(dtype), abs=0)
    assert st.loss() == acb_mse(pred, target)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matches_original_package(dtype):
    torch = pytest.importorskip("torch")
    acb_original = pytest.importorskip("acb_mse")
    rng = np.random.default_rng(0)
    pred, target = sparse_pair(rng, (10, 3, 32, 32), 0.02, dtype)
    for w0, w1 in [(1.0, 1.0), (0.5, 3.0)]:
        original = acb_original.ACBLoss(w0, w1)
        want = float(original(torch.from_numpy(pred), torch.from_numpy(target)))
        got = acb_mse(pred, target, w0, w1)
        assert got == pytest.approx(want, rel=1e-5 if dtype == np.float32 else 1e-12)
        p = torch.from_numpy(pred.copy()).requires_grad_(True)
        original(p, torch.from_numpy(target)).backward()
        _, grad = acb_mse_grad(pred, target, w0, w1)
        np.testing.assert_allclose(
            grad, p.grad.numpy(), rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-12
        )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("hit_rate", [0.0, 0.05, 1.0])
def test_gradient(dtype, hit_rate):
    rng = np.random.default_rng(1)
    pred, target = sparse_pair(rng, (4, 100, 50), hit_rate, dtype)
    loss, grad = acb_mse_grad(pred, target, 0.7, 1.3)
    assert grad.dtype == dtype and grad.shape == pred.shape and grad.flags.c_contiguous
    assert loss == acb_mse(pred, target, 0.7, 1.3)
    np.testing.assert_allclose(
        grad, reference_grad(pred, target, 0.7, 1.3), rtol=rtol_for(dtype), atol=0
    )


def test_gradient_against_finite_differences():
    rng = np.random.default_rng(2)
    pred, target = sparse_pair(rng, (6, 9), 0.3, np.float64)
    _, grad = acb_mse_grad(pred, target, 0.4, 1.7)
    h = 1e-6
    for i in np.ndindex(pred.shape):
        up, down = pred.copy(), pred.copy()
        up[i] += h
        down[i] -= h
        fd = (acb_mse(up, target, 0.4, 1.7) - acb_mse(down, target, 0.4, 1.7)) / (2 * h)
        assert fd == pytest.approx(grad[i], rel=1e-6, abs=1e-9)


@pytest.mark.parametrize("shape", [(5,), (3, 4), (8, 3, 20, 20), (2, 3 * 65536 + 11)])
def test_per_sample_equals_each_sample_alone(shape):
    rng = np.random.default_rng(3)
    pred, target = sparse_pair(rng, shape, 0.1)
    target[0] = 0  # one sample with an empty nonzero class
    per = acb_mse_per_sample(pred, target, 0.5, 2.0)
    assert per.dtype == np.float64 and per.shape == (shape[0],)
    for k in range(shape[0]):
        assert per[k] == acb_mse(pred[k], target[k], 0.5, 2.0)
        assert per[k] == pytest.approx(reference_loss(pred[k], target[k], 0.5, 2.0), rel=1e-6)


def test_zero_class_is_exact_zero_and_nan_target_is_nonzero():
    target = np.array([0.0, -0.0, np.nan, 1e-300, 5.0])
    pred = np.zeros(5)
    st = class_stats(pred, target)
    assert (st.n_zero, st.n_nonzero) == (2, 3)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_values_propagate(bad):
    pred = np.array([0.0, 1.0, 2.0, 0.5])
    target = np.array([0.0, 0.0, 1.0, 1.0])
    for where in [0, 2]:
        p = pred.copy()
        p[where] = bad
        got = acb_mse(p, target)
        assert math.isnan(got) if np.isnan(bad) else got == math.inf
        loss, grad = acb_mse_grad(p, target)
        assert not np.isfinite(grad[where])
        assert np.isnan(acb_mse_per_sample(p[None], target[None])[0]) == np.isnan(bad)
    # A NaN target is a hit whose error is NaN: the nonzero term is NaN, not silently 0.
    t = target.copy()
    t[3] = np.nan
    assert math.isnan(acb_mse(pred, t))
    assert math.isnan(class_stats(pred, t).sse_nonzero)
    assert not math.isnan(class_stats(pred, t).sse_zero)


def test_empty_class_contributes_zero():
    pred = np.array([1.0, 2.0])
    assert acb_mse(pred, np.zeros(2), 3.0, 5.0) == 3.0 * 2.5
    assert acb_mse(pred, np.array([1.0, 1.0]), 3.0, 5.0) == 5.0 * 0.5
    loss, grad = acb_mse_grad(pred, np.zeros(2), 3.0, 5.0)
    np.testing.assert_allclose(grad, [3.0, 6.0])


def test_zero_dim_and_lists():
    assert acb_mse(np.float32(2.0), np.float32(0.0)) == 4.0
    assert acb_mse(3.0, 1.0) == 4.0
    assert acb_mse([[1, 2], [3, 4]], [[0, 2], [0, 0]]) == pytest.approx((1 + 9 + 16) / 3)
    loss, grad = acb_mse_grad(2.0, 0.0)
    assert grad.shape == () and grad == 4.0
    with pytest.raises(ValueError, match="at least 1 dimension"):
        acb_mse_per_sample(np.float64(1.0), np.float64(0.0))


@pytest.mark.parametrize(
    "pred_dtype,target_dtype,compute",
    [
        (np.float32, np.bool_, np.float32),
        (np.float32, np.uint8, np.float32),
        (np.float32, np.int16, np.float32),
        (np.float32, np.int32, np.float64),
        (np.float16, np.float16, np.float32),
        (np.float64, np.float32, np.float64),
        (np.int64, np.int64, np.float64),
        (np.bool_, np.bool_, np.float64),
        (np.float32, np.dtype(">f4"), np.float32),
    ],
)
def test_dtype_conversion_rule(pred_dtype, target_dtype, compute):
    rng = np.random.default_rng(4)
    pred = (rng.random((5, 40)) * 3).astype(pred_dtype)
    target = (rng.random((5, 40)) < 0.2).astype(target_dtype)
    want = reference_loss(pred.astype(compute), target.astype(compute))
    assert acb_mse(pred, target) == pytest.approx(want, rel=1e-6)
    _, grad = acb_mse_grad(pred, target)
    assert grad.dtype == compute
    per = acb_mse_per_sample(pred, target)
    assert per[1] == acb_mse(pred[1], target[1])


@pytest.mark.parametrize(
    "bad",
    [
        np.array([1 + 2j, 3j]),
        np.array([1, "a"], dtype=object),
        np.array(["a", "b"]),
        np.array(["2020-01-01", "2020-01-02"], dtype="datetime64[D]"),
        np.array([1, 2], dtype="timedelta64[s]"),
    ],
)
def test_non_real_dtypes_raise_type_error(bad):
    good = np.zeros(2)
    for args, name in [((bad, good), "pred"), ((good, bad), "target")]:
        for fn in (acb_mse, acb_mse_grad, acb_mse_per_sample, class_stats):
            with pytest.raises(
                TypeError, match=re.escape(f"{name} has unsupported dtype {bad.dtype}")
            ):
                fn(*args)


def test_shape_mismatch_names_both_shapes():
    for fn in (acb_mse, acb_mse_grad, acb_mse_per_sample, class_stats):
        with pytest.raises(ValueError, match=r"\(2, 3\).*\(3, 2\)"):
            fn(np.zeros((2, 3)), np.zeros((3, 2)))
        # No broadcasting, even where numpy would broadcast.
        with pytest.raises(ValueError, match="same shape"):
            fn(np.zeros((2, 3)), np.zeros(3))


def test_empty_input_raises():
    for fn in (acb_mse, acb_mse_grad, acb_mse_per_sample, class_stats):
        with pytest.raises(ValueError, match="empty"):
            fn(np.zeros((0, 3)), np.zeros((0, 3)))


@pytest.mark.parametrize("weight", [-1.0, -1e-300, math.nan, math.inf, -math.inf])
def test_bad_weights_raise(weight):
    p, t = np.ones(3), np.zeros(3)
    for fn in (acb_mse, acb_mse_grad, acb_mse_per_sample):
        with pytest.raises(
            ValueError,
            match=re.escape(f"zero_weighting must be a finite number >= 0, got {weight!r}"),
        ):
            fn(p, t, weight, 1.0)
        with pytest.raises(ValueError, match="nonzero_weighting"):
            fn(p, t, 1.0, weight)
    with pytest.raises(ValueError, match="zero_weighting"):
        class_stats(p, t).loss(weight)


def test_low_level_core_rejects_what_the_api_would_convert():
    core = acbmse_rs._core
    with pytest.raises(TypeError, match="float32 or float64"):
        core.acb_mse(np.zeros(3, np.float32), np.zeros(3, np.float64), 1.0, 1.0)
    with pytest.raises(ValueError, match="same shape"):
        core.class_stats(np.zeros(3), np.zeros(4))
    out = np.zeros(3)
    with pytest.raises(ValueError, match="share memory"):
        core.grad_into(out, np.zeros(3), 1.0, 1.0, out)
    with pytest.raises(ValueError, match="shape of pred"):
        core.grad_into(np.zeros(3), np.zeros(3), 1.0, 1.0, np.zeros(4))
    with pytest.raises(TypeError, match="same dtype"):
        core.grad_into(np.zeros(3), np.zeros(3), 1.0, 1.0, np.zeros(3, np.float32))


def test_scaled_diff_into_writes_coefficient_times_difference():
    pred = np.array([1.0, 2.0, 3.0], np.float32)
    target = np.array([0.0, 1.0, 0.0], np.float32)
    out = np.empty(3, np.float32)
    st = acbmse_rs._core.scaled_diff_into(pred, target, 0.5, -2.0, out)
    np.testing.assert_array_equal(out, [0.5, -2.0, 1.5])
    assert st == class_stats(pred, target)
    out[:] = 0
    assert acbmse_rs._core.scaled_diff_into(pred, target, 0.5, -2.0, out, stats=False) is None
    np.testing.assert_array_equal(out, [0.5, -2.0, 1.5])


def test_inputs_are_never_modified():
    rng = np.random.default_rng(5)
    pred, target = sparse_pair(rng, (3, 70_000), 0.1)
    pred[0, 0], target[1, 1] = np.nan, np.nan
    before = pred.copy(), target.copy()
    acb_mse(pred, target)
    acb_mse_grad(pred, target)
    acb_mse_per_sample(pred, target)
    class_stats(pred, target)
    np.testing.assert_array_equal(pred, before[0])
    np.testing.assert_array_equal(target, before[1])


def test_class_stats_object():
    a = ClassStats(3, 1, 1.5, 0.25)
    b = ClassStats(n_zero=1, n_nonzero=2, sse_zero=0.5, sse_nonzero=2.0)
    assert repr(a) == "ClassStats(n_zero=3, n_nonzero=1, sse_zero=1.5, sse_nonzero=0.25)"
    assert a + b == ClassStats(4, 3, 2.0, 2.25)
    assert sum([a, b]) == a + b
    assert a + ClassStats() == a
    assert a != b and a != (3, 1, 1.5, 0.25)
    assert pickle.loads(pickle.dumps(a)) == a
    assert a.loss() == 0.5 + 0.25
    assert a.loss(2.0, 4.0) == 1.0 + 1.0
    assert (a.n_total, a.mse_zero, a.mse_nonzero, a.nonzero_fraction) == (4, 0.5, 0.25, 0.25)
    assert ClassStats().loss() == 0.0 and ClassStats().nonzero_fraction == 0.0
    with pytest.raises(TypeError):
        a + 1.0  # noqa: B018
    with pytest.raises(OverflowError):
        ClassStats(-1)


def test_chunked_reduction_equals_whole():
    rng = np.random.default_rng(6)
    pred, target = sparse_pair(rng, (50, 300), 0.05)
    parts = [class_stats(pred[i : i + 7], target[i : i + 7]) for i in range(0, 50, 7)]
    merged = sum(parts)
    whole = class_stats(pred, target)
    assert (merged.n_zero, merged.n_nonzero) == (whole.n_zero, whole.n_nonzero)
    assert merged.loss(0.3, 2.0) == pytest.approx(acb_mse(pred, target, 0.3, 2.0), rel=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_accuracy_at_ten_million_elements(dtype):
    rng = np.random.default_rng(7)
    pred, target = sparse_pair(rng, (10_000_000,), 0.02, dtype)
    want = reference_loss(pred, target)
    got = acb_mse(pred, target)
    assert abs(got - want) <= rtol_for(dtype) * abs(want)
    # Both sums, not only the loss.
    _, _, s0, s1 = reference_stats(pred, target)
    st = class_stats(pred, target)
    assert abs(st.sse_zero - s0) <= rtol_for(dtype) * s0
    assert abs(st.sse_nonzero - s1) <= rtol_for(dtype) * s1


def test_bitwise_deterministic_across_thread_counts_and_calls():
    rng = np.random.default_rng(8)
    pred, target = sparse_pair(rng, (40, 100_000), 0.02)
    results = []
    try:
        for n in (1, 2, 8, 2):
            acbmse_rs.set_num_threads(n)
            assert acbmse_rs.get_num_threads() == n
            loss, grad = acb_mse_grad(pred, target, 0.6, 1.4)
            results.append(
                (
                    acb_mse(pred, target, 0.6, 1.4),
                    loss,
                    acb_mse_per_sample(pred, target).tobytes(),
                    grad.tobytes(),
                    class_stats(pred, target),
                )
            )
    finally:
        acbmse_rs.set_num_threads(None)
    assert all(r == results[0] for r in results)


def test_set_num_threads_validation():
    with pytest.raises(ValueError, match="at least 1.*got 0"):
        acbmse_rs.set_num_threads(0)
    with pytest.raises(ValueError, match="got -3"):
        acbmse_rs.set_num_threads(-3)


def test_rayon_num_threads_is_honoured():
    code = "import acbmse_rs; print(acbmse_rs.get_num_threads())"
    env = {"RAYON_NUM_THREADS": "3", "PATH": ""}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "3"


def test_concurrent_calls_from_python_threads():
    rng = np.random.default_rng(9)
    data = [sparse_pair(rng, (8, 50_000), 0.05) for _ in range(4)]
    want = [acb_mse(p, t) for p, t in data]
    errors: list[BaseException] = []
    got: dict[int, list[float]] = {i: [] for i in range(8)}

    def work(i: int) -> None:
        try:
            for _ in range(5):
                p, t = data[i % 4]
                got[i].append(acb_mse(p, t))
                _, grad = acb_mse_grad(p, t)
                assert grad.shape == p.shape
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors
    for i in range(8):
        assert got[i] == [want[i % 4]] * 5


def test_more_than_two_to_the_31_elements():
    n = 2**31 + 7
    pred = np.broadcast_to(np.float32(1.5), (n,))
    target = np.broadcast_to(np.float32(0.0), (n,))
    st = class_stats(pred, target)
    assert st.n_zero == n and st.n_nonzero == 0
    assert st.sse_zero == 2.25 * n
    assert acb_mse(pred, target) == 2.25


def test_every_simd_level_gives_bitwise_the_same_results():
    code = (
        "import hashlib, numpy as np, acbmse_rs, sys\n"
        "rng = np.random.default_rng(13)\n"
        "t = np.where(rng.random((3, 70001)) < 0.1, rng.random((3, 70001)), 0).astype('f4')\n"
        "p = (t + rng.normal(0, 0.3, t.shape)).astype('f4')\n"
        "loss, grad = acbmse_rs.acb_mse_grad(p, t, 0.4, 1.6)\n"
        "per = acbmse_rs.acb_mse_per_sample(p, t)\n"
        "sys.stdout.write(acbmse_rs._core.SIMD + ' ' + repr(loss) + ' '"
        " + hashlib.sha256(grad.tobytes() + per.tobytes()).hexdigest())\n"
    )
    outputs = {}
    for level in ("baseline", "avx2", "avx512"):
        env = {"ACBMSE_RS_SIMD": level, "PATH": ""}
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        used, rest = out.stdout.split(" ", 1)
        outputs[used] = rest
    assert "baseline" in outputs
    assert len(set(outputs.values())) == 1, outputs


def _loss_in_child(queue) -> None:  # pragma: no cover - runs in a forked child
    rng = np.random.default_rng(14)
    pred, target = sparse_pair(rng, (4, 100_000), 0.05)
    queue.put(acb_mse(pred, target))


@pytest.mark.skipif(sys.platform == "win32", reason="fork is POSIX only")
def test_kernels_work_in_a_forked_child():
    import multiprocessing as mp

    rng = np.random.default_rng(14)
    pred, target = sparse_pair(rng, (4, 100_000), 0.05)
    want = acb_mse(pred, target)  # starts the thread pool in the parent
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_loss_in_child, args=(queue,))
    child.start()
    child.join(timeout=60)
    assert child.exitcode == 0, "the forked child hung or failed"
    assert queue.get(timeout=5) == want


def test_gradient_into_a_reused_buffer():
    rng = np.random.default_rng(15)
    pred, target = sparse_pair(rng, (3, 70_000), 0.05)
    buf = np.full(pred.shape, np.nan, np.float32)
    loss, grad = acb_mse_grad(pred, target, 0.5, 2.0, out=buf)
    assert grad is buf
    want_loss, want = acb_mse_grad(pred, target, 0.5, 2.0)
    assert loss == want_loss
    np.testing.assert_array_equal(buf, want)
    with pytest.raises(TypeError, match="dtype float32.*got float64"):
        acb_mse_grad(pred, target, out=np.empty(pred.shape))
    with pytest.raises(ValueError, match=r"shape \(3, 70000\), got \(3, 7\)"):
        acb_mse_grad(pred, target, out=np.empty((3, 7), np.float32))
    with pytest.raises(ValueError, match="C-contiguous"):
        acb_mse_grad(pred, target, out=np.empty(pred.shape[::-1], np.float32).T)
    with pytest.raises(ValueError, match="share memory"):
        acb_mse_grad(pred, target, out=pred)
    with pytest.raises(TypeError, match="numpy.ndarray"):
        acb_mse_grad(pred, target, out=[0.0])


def test_per_sample_losses_from_statistics():
    rng = np.random.default_rng(16)
    pred, target = sparse_pair(rng, (6, 500), 0.05)
    target[0] = 0
    n0, n1, s0, s1 = acbmse_rs._core.per_sample_stats(pred, target)
    losses = acbmse_rs._core.per_sample_losses(n0, n1, s0, s1, 0.5, 2.0)
    np.testing.assert_array_equal(losses, acb_mse_per_sample(pred, target, 0.5, 2.0))
    with pytest.raises(ValueError, match=r"equal lengths, got \[6, 6, 6, 5\]"):
        acbmse_rs._core.per_sample_losses(n0, n1, s0, s1[:5])
    with pytest.raises(ValueError, match="nonzero_weighting"):
        acbmse_rs._core.per_sample_losses(n0, n1, s0, s1, 1.0, -2.0)

"""Tests of acbmse_rs.dask on the default threaded scheduler and a distributed LocalCluster."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import acbmse_rs
import numpy as np
import pytest
from acbmse_rs import Scorer

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

from acbmse_rs import dask as acb_dask  # noqa: E402

SHAPE = (53, 12, 10)


@pytest.fixture(scope="module")
def arrays() -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    rng = np.random.default_rng(3)
    hit = rng.random(SHAPE) < 0.07
    target = np.where(hit, rng.uniform(0.2, 1.0, SHAPE), 0.0).astype(np.float32)
    pred = (target + rng.normal(0.0, 0.1, SHAPE)).astype(np.float32)
    return pred, target


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    """A LocalCluster with 2 worker processes on loopback (one per module)."""
    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
    )
    with distributed.Client(cluster, set_as_default=False) as c:
        yield c
    cluster.close()


CHUNKINGS = [
    ((53, 12, 10), (53, 12, 10)),  # one block
    ((10, 12, 10), (10, 12, 10)),  # 10 does not divide 53
    ((8, 5, 10), (8, 5, 10)),  # non-sample axes chunked too
    ((7, 12, 10), (20, 6, 4)),  # different chunks: target is rechunked
]


def _both(
    arrays: tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]],
    chunks: tuple[tuple[int, ...], tuple[int, ...]],
) -> tuple[Any, Any]:
    pred, target = arrays
    return da.from_array(pred, chunks=chunks[0]), da.from_array(target, chunks=chunks[1])


@pytest.mark.parametrize("chunks", CHUNKINGS)
def test_threaded_scheduler_matches_in_memory(arrays: Any, chunks: Any) -> None:
    pred, target = arrays
    p, t = _both(arrays, chunks)
    loss = acb_dask.acb_mse(p, t, 0.5, 2.0).compute(scheduler="threads")
    assert loss == pytest.approx(acbmse_rs.acb_mse(pred, target, 0.5, 2.0), rel=1e-12)
    stats = acb_dask.class_stats(p, t).compute(scheduler="threads")
    expected = acbmse_rs.class_stats(pred, target)
    assert (stats.n_zero, stats.n_nonzero) == (expected.n_zero, expected.n_nonzero)
    assert stats.sse_zero == pytest.approx(expected.sse_zero, rel=1e-12)
    per_sample = acb_dask.acb_mse_per_sample(p, t, 0.5, 2.0).compute(scheduler="threads")
    in_memory = acbmse_rs.acb_mse_per_sample(pred, target, 0.5, 2.0)
    if len(p.chunks[1]) == 1 and len(p.chunks[2]) == 1:
        np.testing.assert_array_equal(per_sample, in_memory)  # whole samples: same bits
    else:
        np.testing.assert_allclose(per_sample, in_memory, rtol=1e-12)


def test_score_equals_the_streaming_scorer(arrays: Any) -> None:
    pred, target = arrays
    s = Scorer(1.0, 3.0)
    s.update(pred, target)
    expected = s.compute()
    for chunks in CHUNKINGS:
        p, t = _both(arrays, chunks)
        r = acb_dask.score(p, t, 1.0, 3.0, split_every=2).compute(scheduler="threads")
        assert r.loss == expected.loss and r.n_samples == expected.n_samples
        assert r.stats.n_zero == expected.stats.n_zero
        np.testing.assert_allclose(r.per_sample, expected.per_sample, rtol=1e-12)


def test_numpy_inputs_and_tree_fan_in(arrays: Any) -> None:
    pred, target = arrays
    for split_every in (2, 3, 64):
        p, t = _both(arrays, ((4, 3, 10), (4, 3, 10)))
        loss = acb_dask.acb_mse(p, t, split_every=split_every).compute(scheduler="threads")
        assert loss == pytest.approx(acbmse_rs.acb_mse(pred, target), rel=1e-12)
    assert acb_dask.acb_mse(pred, target).compute() == pytest.approx(
        acbmse_rs.acb_mse(pred, target), rel=1e-12
    )


@pytest.mark.parametrize("chunks", [CHUNKINGS[1], CHUNKINGS[2]])
def test_distributed_local_cluster(client: Any, arrays: Any, chunks: Any) -> None:
    pred, target = arrays
    p, t = _both(arrays, chunks)
    loss, per_sample = client.compute(
        [acb_dask.acb_mse(p, t, 0.5, 2.0), acb_dask.acb_mse_per_sample(p, t, 0.5, 2.0)],
        sync=True,
    )
    result = client.compute(acb_dask.score(p, t, 0.5, 2.0), sync=True)
    assert loss == pytest.approx(acbmse_rs.acb_mse(pred, target, 0.5, 2.0), rel=1e-12)
    np.testing.assert_allclose(
        per_sample, acbmse_rs.acb_mse_per_sample(pred, target, 0.5, 2.0), rtol=1e-12
    )
    assert result.loss == pytest.approx(loss, rel=1e-12)
    assert result.n_samples == SHAPE[0]
    # The work really ran in the worker processes.
    assert len(client.scheduler_info()["workers"]) == 2


def test_bad_input(arrays: Any) -> None:
    pred, target = arrays
    p = da.from_array(pred, chunks=10)
    with pytest.raises(ValueError, match="same shape"):
        acb_dask.acb_mse(p, p[:, :5])
    with pytest.raises(TypeError, match="complex"):
        acb_dask.acb_mse(p.astype(complex), p)
    with pytest.raises(ValueError, match="zero_weighting"):
        acb_dask.acb_mse(p, p, -1.0)
    with pytest.raises(ValueError, match="split_every"):
        acb_dask.acb_mse(p, p, split_every=1)
    with pytest.raises(ValueError, match="empty"):
        acb_dask.acb_mse(p[:0], p[:0])
    with pytest.raises(ValueError, match="unknown chunk sizes"):
        acb_dask.acb_mse(p[p[:, 0, 0] > 0], p[p[:, 0, 0] > 0])


def test_importing_the_package_imports_no_optional_dependency() -> None:
    code = (
        "import sys, acbmse_rs, acbmse_rs.cli, acbmse_rs.readers;"
        "bad = [m for m in ('dask', 'distributed', 'h5py', 'torch') if m in sys.modules];"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_docstring_examples() -> None:
    import doctest

    result = doctest.testmod(acb_dask)
    assert result.attempted > 0 and result.failed == 0

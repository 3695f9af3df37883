"""ACB-MSE on ``dask.array`` inputs, for datasets beyond one machine's memory.

Each block of ``(pred, target)`` is reduced by the Rust kernel to class statistics
(:class:`~acbmse_rs.ClassStats`: counts and sums of squared errors), and the
blocks' statistics are added up by a tree reduction in a fixed order, so the
result does not depend on the scheduler or the number of workers and equals the
in-memory result up to float64 rounding (counts exactly).

Per-sample losses allow any chunking: when the non-sample axes are chunked, each
block yields its rows' partial statistics, which are added per sample before the
loss is taken.

All functions are lazy: :func:`acb_mse` returns a 0-d dask array and
:func:`acb_mse_per_sample` a 1-D dask array (compute them together with
``dask.compute(loss, per_sample)`` to read the data once); :func:`class_stats` and
:func:`score` return a ``dask.delayed.Delayed``. Call ``dask.compute`` on arrays and
on Delayed objects separately: dask 2026.8 returns the results of a mixed call in
the wrong order. Note also that ``da.from_array`` copies a NumPy input whole (and
hashes it unless ``name=False``); arrays read from zarr or HDF5 are not copied.
Dask is an optional extra: ``pip install 'acbmse-rs[dask]'``.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any

import numpy as np

try:
    import dask.array as _dask_array
    from dask.base import tokenize as _tokenize
    from dask.delayed import Delayed
    from dask.delayed import delayed as _delayed
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError("acbmse_rs.dask needs dask: pip install 'acbmse-rs[dask]'") from e

from . import _core
from ._api import check_pair, check_samples_axis, prepare
from ._api import class_stats as _np_class_stats
from ._core import ClassStats
from .scorer import Scorer, ScoreResult, _per_sample_losses

__all__ = ["acb_mse", "acb_mse_per_sample", "class_stats", "score"]

# dask's annotations are partial; the calls below are checked by the tests.
da: Any = _dask_array
delayed: Any = _delayed
DaskArray = _dask_array.Array

if TYPE_CHECKING:  # np.ndarray[...] is not subscriptable at run time before NumPy 1.22
    NDArray = np.ndarray[Any, Any]


def _as_pair(pred: Any, target: Any) -> tuple[Any, Any]:
    """Validates the inputs and returns them as dask arrays with equal chunks."""
    p = pred if isinstance(pred, da.Array) else da.asarray(pred)
    t = target if isinstance(target, da.Array) else da.asarray(target)
    for name, a in (("pred", p), ("target", t)):
        if any(np.isnan(n) for n in a.shape):
            raise ValueError(
                f"{name} has unknown chunk sizes (shape {a.shape}); call "
                "compute_chunk_sizes() first"
            )
    check_pair(p, t)
    if t.chunks != p.chunks:
        t = t.rechunk(p.chunks)
    return p, t


def _block_stats(p: NDArray, t: NDArray) -> ClassStats:
    if p.size == 0:
        return ClassStats()
    return _np_class_stats(p, t)


def _add(*parts: Any) -> Any:
    total = parts[0]
    for part in parts[1:]:
        total = total + part
    return total


def _merge_scorers(*scorers: Scorer) -> Scorer:
    merged = Scorer(scorers[0].zero_weighting, scorers[0].nonzero_weighting)
    for s in scorers:
        merged.merge(s)
    return merged


def _tree(parts: list[Any], combine: Any, split_every: int, name: str) -> Delayed:
    """Combines delayed values in groups of ``split_every``, level by level, in order."""
    if split_every < 2:
        raise ValueError(f"split_every must be at least 2, got {split_every}")
    level = 0
    while len(parts) > 1:
        parts = [
            delayed(combine, pure=True)(
                *parts[i : i + split_every], dask_key_name=f"{name}-{level}-{i}"
            )
            for i in range(0, len(parts), split_every)
        ]
        level += 1
    if not isinstance(parts[0], Delayed):
        wrapped: Delayed = delayed(parts[0])
        return wrapped
    return parts[0]


def _token(*args: Any) -> str:
    return str(_tokenize(*args))


def class_stats(pred: Any, target: Any, *, split_every: int = 16) -> Delayed:
    """Lazy class statistics of ``pred`` against ``target`` (dask or NumPy arrays).

    Args:
        pred: Predictions, a ``dask.array.Array`` (or anything ``da.asarray`` takes).
        target: Targets, the same shape (rechunked to ``pred``'s chunks if needed).
        split_every: Fan-in of the tree reduction.

    Returns:
        A ``Delayed`` that computes to a :class:`~acbmse_rs.ClassStats`.
    """
    p, t = _as_pair(pred, target)
    token = _token(p, t)
    blocks = [
        delayed(_block_stats, pure=True)(pb, tb, dask_key_name=f"acbmse-stats-{token}-{k}")
        for k, (pb, tb) in enumerate(
            zip(p.to_delayed().ravel().tolist(), t.to_delayed().ravel().tolist())
        )
    ]
    return _tree(blocks, _add, split_every, f"acbmse-sum-{token}")


def _loss(stats: ClassStats, zero_weighting: float, nonzero_weighting: float) -> float:
    return float(stats.loss(zero_weighting, nonzero_weighting))


def acb_mse(
    pred: Any,
    target: Any,
    zero_weighting: float = 1.0,
    nonzero_weighting: float = 1.0,
    *,
    split_every: int = 16,
) -> DaskArray:
    """Lazy ACB-MSE of dask arrays: blocks -> ClassStats -> tree sum -> loss.

    Returns a 0-d float64 dask array (so it computes together with other dask
    arrays, such as :func:`acb_mse_per_sample`'s). Equals :func:`acbmse_rs.acb_mse`
    on the computed arrays up to float64 rounding.

    Example:
        >>> import dask.array as da, numpy as np
        >>> from acbmse_rs import dask as acb_dask
        >>> t = da.from_array(np.array([[0.0, 2.0], [0.0, 0.0]]), chunks=1)
        >>> acb_dask.acb_mse(t + 1, t).compute()  # both class MSEs are 1
        2.0
    """
    _core.validate_weights(zero_weighting, nonzero_weighting)
    stats = class_stats(pred, target, split_every=split_every)
    loss = delayed(_loss, pure=True)(stats, zero_weighting, nonzero_weighting)
    scalar: DaskArray = da.from_delayed(loss, shape=(), dtype=np.float64)
    return scalar


def _block_per_sample(
    p: NDArray, t: NDArray, zero_weighting: float, nonzero_weighting: float
) -> NDArray:
    if p.shape[0] == 0:
        return np.empty(0, np.float64)
    pp, tt = prepare(p, t)
    return _core.acb_mse_per_sample(pp, tt, zero_weighting, nonzero_weighting)


def _block_sample_stats(p: NDArray, t: NDArray) -> NDArray:
    """Per-row statistics of one block, as a float64 array of shape (4, rows)."""
    if p.shape[0] == 0 or p.size == 0:
        return np.zeros((4, p.shape[0]), np.float64)
    pp, tt = prepare(p, t)
    return np.stack([np.asarray(a, np.float64) for a in _core.per_sample_stats(pp, tt)])


def _row_losses(parts: list[NDArray], zero_weighting: float, nonzero_weighting: float) -> NDArray:
    total = _add(*parts)
    return _per_sample_losses(
        total[0], total[1], total[2], total[3], zero_weighting, nonzero_weighting
    )


def acb_mse_per_sample(
    pred: Any, target: Any, zero_weighting: float = 1.0, nonzero_weighting: float = 1.0
) -> DaskArray:
    """Lazy ACB-MSE of each sample (axis 0) of dask arrays, as a 1-D float64 dask array.

    Any chunking works. With whole samples per block (no chunking along the other
    axes) each block runs ``acb_mse_per_sample`` and the values equal the in-memory
    ones bit for bit; otherwise each block's per-row statistics are added across
    the blocks of a row of blocks first (equal up to float64 rounding).
    """
    _core.validate_weights(zero_weighting, nonzero_weighting)
    p, t = _as_pair(pred, target)
    check_samples_axis(p.ndim, "acb_mse_per_sample")
    if all(len(c) == 1 for c in p.chunks[1:]):
        per_sample: DaskArray = da.map_blocks(
            _block_per_sample,
            p,
            t,
            zero_weighting,
            nonzero_weighting,
            drop_axis=list(range(1, p.ndim)),
            chunks=(p.chunks[0],),
            dtype=np.float64,
            meta=np.empty(0, np.float64),
        )
        return per_sample
    token = _token(p, t, zero_weighting, nonzero_weighting)
    pblocks, tblocks = p.to_delayed(), t.to_delayed()
    rows = []
    for i, n in enumerate(p.chunks[0]):
        parts = [
            delayed(_block_sample_stats, pure=True)(
                pblocks[(i,) + rest],
                tblocks[(i,) + rest],
                dask_key_name=f"acbmse-rowstats-{token}-{i}-{'-'.join(map(str, rest))}",
            )
            for rest in itertools.product(*(range(len(c)) for c in p.chunks[1:]))
        ]
        losses = delayed(_row_losses, pure=True)(
            parts, zero_weighting, nonzero_weighting, dask_key_name=f"acbmse-rowloss-{token}-{i}"
        )
        rows.append(da.from_delayed(losses, shape=(n,), dtype=np.float64))
    joined: DaskArray = da.concatenate(rows)
    return joined


def _row_scorer(
    parts: list[NDArray],
    sample_shape: tuple[int, ...],
    zero_weighting: float,
    nonzero_weighting: float,
) -> Scorer:
    total = _add(*parts)
    scorer = Scorer(zero_weighting, nonzero_weighting)
    scorer._add_per_sample_stats(sample_shape, total[0], total[1], total[2], total[3])
    return scorer


def _compute_result(scorer: Scorer) -> ScoreResult:
    return scorer.compute()


def score(
    pred: Any,
    target: Any,
    zero_weighting: float = 1.0,
    nonzero_weighting: float = 1.0,
    *,
    split_every: int = 16,
) -> Delayed:
    """Lazy :class:`~acbmse_rs.ScoreResult` of dask arrays, as the streaming Scorer gives.

    Each row of blocks becomes a :class:`~acbmse_rs.Scorer` on a worker; the
    scorers travel pickled and are merged by a tree reduction in sample order, so
    the result (global loss, class statistics, per-sample array) is exactly the one
    a single :class:`~acbmse_rs.Scorer` gives on the whole data.
    """
    _core.validate_weights(zero_weighting, nonzero_weighting)
    p, t = _as_pair(pred, target)
    check_samples_axis(p.ndim, "score")
    token = _token(p, t, zero_weighting, nonzero_weighting, "score")
    pblocks, tblocks = p.to_delayed(), t.to_delayed()
    sample_shape = tuple(int(n) for n in p.shape[1:])
    scorers = []
    for i, n in enumerate(p.chunks[0]):
        if n == 0:
            continue
        parts = [
            delayed(_block_sample_stats, pure=True)(
                pblocks[(i,) + rest],
                tblocks[(i,) + rest],
                dask_key_name=f"acbmse-scorestats-{token}-{i}-{'-'.join(map(str, rest))}",
            )
            for rest in itertools.product(*(range(len(c)) for c in p.chunks[1:]))
        ]
        scorers.append(
            delayed(_row_scorer, pure=True)(
                parts,
                sample_shape,
                zero_weighting,
                nonzero_weighting,
                dask_key_name=f"acbmse-scorer-{token}-{i}",
            )
        )
    merged = _tree(scorers, _merge_scorers, split_every, f"acbmse-merge-{token}")
    result: Delayed = delayed(_compute_result, pure=True)(merged)
    return result

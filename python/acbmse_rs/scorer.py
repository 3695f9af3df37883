"""The streaming scorer: ACB-MSE of a whole dataset, fed batch by batch.

A :class:`Scorer` keeps the dataset's class statistics (element counts and sums of
squared errors of the zero and nonzero classes) and the per-sample losses. Each
``update`` makes one pass over its batch with the Rust kernel, which yields the
per-sample statistics; their sums are the batch's global statistics. ``compute``
turns the statistics into a :class:`ScoreResult`.

The sums of squared errors are accumulated exactly (in integers, at NumPy speed),
so the result does not depend on how the data was cut
into batches, nor on the order in which scorers are merged: scoring a dataset in
chunks of 7 or 700 samples, or on three processes merged afterwards, gives the
same bits.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from . import _core
from ._api import check_samples_axis, prepare
from ._core import ClassStats

__all__ = ["ScoreResult", "Scorer"]


class _ExactSum:
    """A running sum of float64 values kept exactly, as an integer multiple of 2**-1126.

    Every finite float64 is ``M * 2**(e - 53)`` with an integer ``|M| < 2**53`` and
    ``e >= -1073``, so it is an integer multiple of ``2**-1126``; the sum of any
    number of them is too, and a Python integer holds it exactly. ``add_array``
    works at NumPy speed: values are grouped by exponent and their mantissas (split
    into 27- and 26-bit halves, so that float64 sums of up to ``2**25`` of them are
    exact) are added with ``bincount``. The value is the correctly rounded sum, so it
    does not depend on how the values were split into arrays or in which order sums
    were merged. Infinities and NaN are kept apart and dominate, as in a plain sum.
    """

    __slots__ = ("num", "special")

    _SHIFT = 1073  # exponent offset: e + _SHIFT >= 0 for every finite float64
    _SCALE = 1 << 1126
    _PIECE = 1 << 25  # values per bincount pass (keeps the float64 sums exact)

    def __init__(self) -> None:
        self.num = 0
        self.special = 0.0

    def add_array(self, values: np.ndarray[Any, np.dtype[np.float64]]) -> None:
        """Adds every element of a float64 array."""
        values = np.asarray(values, np.float64).reshape(-1)
        if values.size == 0:
            return
        finite = np.isfinite(values)
        if not finite.all():
            self.special += float(np.sum(values[~finite]))
            values = values[finite]
        for lo in range(0, len(values), self._PIECE):
            self.num += self._exact(values[lo : lo + self._PIECE])

    @classmethod
    def _exact(cls, values: np.ndarray[Any, np.dtype[np.float64]]) -> int:
        mantissa, exponent = np.frexp(values)
        m = np.ldexp(mantissa, 53).astype(np.int64)  # exact: |m| < 2**53
        base = int(exponent.min())
        group = exponent - base  # at most ~2,100 distinct exponents: bincount, no sort
        high = np.bincount(group, weights=(m >> 26).astype(np.float64))
        low = np.bincount(group, weights=(m & ((1 << 26) - 1)).astype(np.float64))
        total = 0
        for k in np.flatnonzero((high != 0) | (low != 0)).tolist():
            total += ((int(high[k]) << 26) + int(low[k])) << (base + k + cls._SHIFT)
        return total

    def merge(self, other: _ExactSum) -> None:
        """Adds another exact sum."""
        self.num += other.num
        self.special += other.special

    @property
    def value(self) -> float:
        """The correctly rounded sum (NaN or inf if any such value was added)."""
        if self.special != 0.0 or math.isnan(self.special):
            return self.special
        try:
            return self.num / self._SCALE  # int / int is correctly rounded
        except OverflowError:
            return math.inf if self.num > 0 else -math.inf

    def copy(self) -> _ExactSum:
        """An independent copy."""
        new = _ExactSum()
        new.num = self.num
        new.special = self.special
        return new


@dataclass(frozen=True, eq=False)
class ScoreResult:
    """What :meth:`Scorer.compute` returns: the score of everything seen.

    Attributes:
        loss: The global ACB-MSE: ``zero_weighting * mse_zero + nonzero_weighting *
            mse_nonzero`` with each class mean taken over all elements of all samples
            (equal to ``acb_mse`` on the concatenated data, up to float64 rounding).
        stats: The global class statistics (counts and sums of squared errors).
        n_samples: Number of samples (rows along axis 0) seen.
        per_sample: float64 array of shape ``(n_samples,)``: each sample's ACB-MSE,
            balanced by its own class counts (``acb_mse_per_sample``), in the order
            the samples were seen.
        zero_weighting: Weight A of the zero class.
        nonzero_weighting: Weight B of the nonzero class.
    """

    loss: float
    stats: ClassStats
    n_samples: int
    per_sample: np.ndarray[Any, np.dtype[np.float64]]
    zero_weighting: float
    nonzero_weighting: float

    @property
    def mse_zero(self) -> float:
        """Mean squared error over all zero-target elements (0.0 if there are none)."""
        return float(self.stats.mse_zero)

    @property
    def mse_nonzero(self) -> float:
        """Mean squared error over all nonzero-target elements (0.0 if there are none)."""
        return float(self.stats.mse_nonzero)

    @property
    def n_zero(self) -> int:
        """Number of elements whose target is zero."""
        return int(self.stats.n_zero)

    @property
    def n_nonzero(self) -> int:
        """Number of elements whose target is nonzero (NaN included)."""
        return int(self.stats.n_nonzero)

    @property
    def n_elements(self) -> int:
        """Total number of elements."""
        return int(self.stats.n_total)

    @property
    def nonzero_fraction(self) -> float:
        """Fraction of elements whose target is nonzero."""
        return float(self.stats.nonzero_fraction)

    def worst(self, k: int = 5) -> list[tuple[int, float]]:
        """The ``k`` samples with the highest loss, worst first, as ``(index, loss)``.

        NaN losses count as the worst (they usually mean broken data). Ties keep
        the lower index first.
        """
        if k < 0:
            raise ValueError(f"k must be >= 0, got {k}")
        losses = self.per_sample
        key = np.where(np.isnan(losses), np.inf, losses)
        nan_first = np.isnan(losses).astype(np.int8)
        # lexsort: last key is primary; stable, so ties keep index order.
        order = np.lexsort((-key, -nan_first))[:k]
        return [(int(i), float(losses[i])) for i in order]

    def to_dict(self, top: int = 5) -> dict[str, Any]:
        """The summary as a JSON-ready dict (non-finite numbers become ``None``)."""

        def num(v: float) -> float | None:
            return v if math.isfinite(v) else None

        return {
            "acb_mse": num(self.loss),
            "zero_weighting": self.zero_weighting,
            "nonzero_weighting": self.nonzero_weighting,
            "mse_zero": num(self.mse_zero),
            "mse_nonzero": num(self.mse_nonzero),
            "n_zero": self.n_zero,
            "n_nonzero": self.n_nonzero,
            "n_elements": self.n_elements,
            "nonzero_fraction": self.nonzero_fraction,
            "n_samples": self.n_samples,
            "per_sample_mean": num(float(np.mean(self.per_sample))) if self.n_samples else None,
            "worst": [{"index": i, "loss": num(v)} for i, v in self.worst(top)],
        }

    def format_table(self, top: int = 5, labels: Sequence[str] | None = None) -> str:
        """A readable multi-line summary table.

        Args:
            top: How many of the worst samples to list.
            labels: Optional description of each worst sample's location (for
                example ``"file.npy[3]"``), parallel to ``worst(top)``.
        """
        rows = [
            ("ACB-MSE", f"{self.loss:.6g}"),
            (
                "weights (zero, nonzero)",
                f"{self.zero_weighting:g}, {self.nonzero_weighting:g}",
            ),
            ("MSE zero class", f"{self.mse_zero:.6g}  ({self.n_zero:,} elements)"),
            ("MSE nonzero class", f"{self.mse_nonzero:.6g}  ({self.n_nonzero:,} elements)"),
            ("nonzero fraction", f"{self.nonzero_fraction:.4%}"),
            ("samples", f"{self.n_samples:,}"),
        ]
        if self.n_samples:
            rows.append(("mean per-sample ACB-MSE", f"{float(np.mean(self.per_sample)):.6g}"))
        width = max(len(name) for name, _ in rows)
        lines = [f"{name:<{width}}  {value}" for name, value in rows]
        worst = self.worst(top)
        if worst:
            lines.append("")
            lines.append(f"worst {len(worst)} samples:")
            lines.append(f"  {'rank':>4}  {'index':>10}  {'ACB-MSE':>12}  where")
            for rank, (index, loss) in enumerate(worst, 1):
                where = labels[rank - 1] if labels is not None else ""
                lines.append(f"  {rank:>4}  {index:>10}  {loss:>12.6g}  {where}".rstrip())
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.format_table()

    def __repr__(self) -> str:
        return (
            f"ScoreResult(loss={self.loss!r}, n_samples={self.n_samples}, "
            f"mse_zero={self.mse_zero!r}, mse_nonzero={self.mse_nonzero!r}, "
            f"nonzero_fraction={self.nonzero_fraction!r})"
        )


class Scorer:
    r"""Streaming ACB-MSE over a dataset fed in batches along axis 0.

    The global loss balances the classes over everything seen:

    .. math::

        \mathrm{loss} = A \cdot \frac{\sum_{Z} (p - t)^2}{|Z|}
                      + B \cdot \frac{\sum_{H} (p - t)^2}{|H|}

    with :math:`Z` / :math:`H` all zero / nonzero target elements of all batches,
    which is ``acb_mse`` of the concatenated data. Each sample's own ACB-MSE is
    kept too (8 bytes per sample). Scorers pickle, and :meth:`merge` combines the
    scorers of several processes exactly.

    Args:
        zero_weighting: Weight A of the zero class (finite, >= 0).
        nonzero_weighting: Weight B of the nonzero class (finite, >= 0).

    Example:
        >>> import numpy as np, acbmse_rs
        >>> s = acbmse_rs.Scorer()
        >>> s.update(np.ones((2, 3)), np.array([[0, 0, 1], [1, 1, 1]]))
        >>> s.update(np.zeros((1, 3)), np.zeros((1, 3)))
        >>> r = s.compute()
        >>> r.loss, r.n_samples, r.per_sample.tolist()   # zero class: 2/5, nonzero: 0/4
        (0.4, 3, [1.0, 0.0, 0.0])
    """

    def __init__(self, zero_weighting: float = 1.0, nonzero_weighting: float = 1.0) -> None:
        for name, value in (
            ("zero_weighting", zero_weighting),
            ("nonzero_weighting", nonzero_weighting),
        ):
            if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
                raise TypeError(
                    f"{name} must be a real number, got {type(value).__name__} {value!r}"
                )
        _core.validate_weights(float(zero_weighting), float(nonzero_weighting))
        self._zero_weighting = float(zero_weighting)
        self._nonzero_weighting = float(nonzero_weighting)
        self.reset()

    @property
    def zero_weighting(self) -> float:
        """Weight A of the zero class."""
        return self._zero_weighting

    @property
    def nonzero_weighting(self) -> float:
        """Weight B of the nonzero class."""
        return self._nonzero_weighting

    @property
    def n_samples(self) -> int:
        """Number of samples seen so far."""
        return self._n_samples

    @property
    def sample_shape(self) -> tuple[int, ...] | None:
        """Shape of one sample (``shape[1:]`` of the batches), or None before any update."""
        return self._sample_shape

    @property
    def stats(self) -> ClassStats:
        """The class statistics of everything seen so far."""
        return ClassStats(
            self._n_zero, self._n_nonzero, self._sse_zero.value, self._sse_nonzero.value
        )

    def reset(self) -> None:
        """Forgets everything seen; the weights are kept."""
        self._n_samples = 0
        self._sample_shape: tuple[int, ...] | None = None
        self._n_zero = 0
        self._n_nonzero = 0
        self._sse_zero = _ExactSum()
        self._sse_nonzero = _ExactSum()
        self._per_sample: list[np.ndarray[Any, np.dtype[np.float64]]] = []

    def update(self, pred: npt.ArrayLike, target: npt.ArrayLike) -> None:
        """Adds a batch of samples (axis 0 = samples) in one pass over the data.

        Args:
            pred: Predictions of shape ``(batch, *sample_shape)``.
            target: Targets of the same shape.

        Raises:
            TypeError: For a non-real dtype.
            ValueError: For mismatched or empty shapes, 0-d input, or a sample shape
                different from the earlier batches'.
        """
        p, t = prepare(pred, target)
        check_samples_axis(p.ndim, "Scorer.update")
        sample_shape = tuple(p.shape[1:])
        if self._sample_shape is not None and sample_shape != self._sample_shape:
            raise ValueError(
                f"batch samples have shape {sample_shape} but earlier batches had "
                f"{self._sample_shape} (batch shape {p.shape})"
            )
        n_zero, n_nonzero, sse_zero, sse_nonzero = _core.per_sample_stats(p, t)
        self._add_per_sample_stats(sample_shape, n_zero, n_nonzero, sse_zero, sse_nonzero)

    def _add_per_sample_stats(
        self,
        sample_shape: tuple[int, ...],
        n_zero: np.ndarray[Any, Any],
        n_nonzero: np.ndarray[Any, Any],
        sse_zero: np.ndarray[Any, np.dtype[np.float64]],
        sse_nonzero: np.ndarray[Any, np.dtype[np.float64]],
    ) -> None:
        """Adds samples given by their statistics (as ``_core.per_sample_stats`` returns).

        Used by :meth:`update` and by the Dask layer, which may assemble a sample's
        statistics from several blocks.
        """
        if self._sample_shape is not None and sample_shape != self._sample_shape:
            raise ValueError(
                f"samples have shape {sample_shape} but earlier ones had {self._sample_shape}"
            )
        losses = _per_sample_losses(
            n_zero, n_nonzero, sse_zero, sse_nonzero, self._zero_weighting, self._nonzero_weighting
        )
        self._sample_shape = sample_shape
        self._n_samples += len(losses)
        self._n_zero += int(n_zero.sum())
        self._n_nonzero += int(n_nonzero.sum())
        self._sse_zero.add_array(np.asarray(sse_zero, np.float64))
        self._sse_nonzero.add_array(np.asarray(sse_nonzero, np.float64))
        self._per_sample.append(losses)

    def merge(self, other: Scorer) -> Scorer:
        """Adds everything ``other`` has seen to this scorer, in place.

        ``other``'s samples come after this scorer's in the per-sample array. The
        global statistics combine exactly, so merging in any order gives the same
        loss. Returns ``self``.

        Raises:
            TypeError: If ``other`` is not a Scorer.
            ValueError: If the weights or the sample shapes differ.
        """
        if not isinstance(other, Scorer):
            raise TypeError(f"can only merge another Scorer, got {type(other).__name__}")
        if (other._zero_weighting, other._nonzero_weighting) != (
            self._zero_weighting,
            self._nonzero_weighting,
        ):
            raise ValueError(
                "cannot merge scorers with different weights: "
                f"(zero_weighting, nonzero_weighting) = "
                f"({self._zero_weighting}, {self._nonzero_weighting}) and "
                f"({other._zero_weighting}, {other._nonzero_weighting})"
            )
        if (
            self._sample_shape is not None
            and other._sample_shape is not None
            and self._sample_shape != other._sample_shape
        ):
            raise ValueError(
                f"cannot merge scorers with different sample shapes: {self._sample_shape} "
                f"and {other._sample_shape}"
            )
        sse_zero, sse_nonzero = other._sse_zero.copy(), other._sse_nonzero.copy()
        per_sample = list(other._per_sample)
        if self._sample_shape is None:
            self._sample_shape = other._sample_shape
        self._n_samples += other._n_samples
        self._n_zero += other._n_zero
        self._n_nonzero += other._n_nonzero
        self._sse_zero.merge(sse_zero)
        self._sse_nonzero.merge(sse_nonzero)
        self._per_sample.extend(per_sample)
        return self

    def per_sample(self) -> np.ndarray[Any, np.dtype[np.float64]]:
        """The per-sample losses seen so far, as one float64 array."""
        if len(self._per_sample) != 1:
            joined = (
                np.concatenate(self._per_sample) if self._per_sample else np.empty(0, np.float64)
            )
            self._per_sample = [joined]
        return self._per_sample[0]

    def compute(self) -> ScoreResult:
        """The score of everything seen so far.

        Raises:
            ValueError: If no sample has been seen.
        """
        if self._n_samples == 0:
            raise ValueError("Scorer.compute() needs at least one update with samples")
        stats = self.stats
        return ScoreResult(
            loss=float(stats.loss(self._zero_weighting, self._nonzero_weighting)),
            stats=stats,
            n_samples=self._n_samples,
            per_sample=self.per_sample().copy(),
            zero_weighting=self._zero_weighting,
            nonzero_weighting=self._nonzero_weighting,
        )

    def __repr__(self) -> str:
        return (
            f"Scorer(zero_weighting={self._zero_weighting!r}, "
            f"nonzero_weighting={self._nonzero_weighting!r}, n_samples={self._n_samples})"
        )


def _per_sample_losses(
    n_zero: np.ndarray[Any, Any],
    n_nonzero: np.ndarray[Any, Any],
    sse_zero: np.ndarray[Any, np.dtype[np.float64]],
    sse_nonzero: np.ndarray[Any, np.dtype[np.float64]],
    zero_weighting: float,
    nonzero_weighting: float,
) -> np.ndarray[Any, np.dtype[np.float64]]:
    """Per-sample ACB-MSE from per-sample statistics, by ``ClassStats.loss`` in the core,
    so the values equal ``acb_mse_per_sample`` bit for bit."""
    return _core.per_sample_losses(
        np.asarray(n_zero, dtype=np.uint64),
        np.asarray(n_nonzero, dtype=np.uint64),
        np.asarray(sse_zero, dtype=np.float64),
        np.asarray(sse_nonzero, dtype=np.float64),
        zero_weighting,
        nonzero_weighting,
    )

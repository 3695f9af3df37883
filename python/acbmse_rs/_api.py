"""The NumPy-facing functions: validation and dtype conversion, then the Rust kernels.

Argument order is ``(pred, target)``, as in torch and the original ``acb_mse``
package (not scikit-learn's ``(y_true, y_pred)``).

Dtype rule: float32 and float64 arrays are read in place, never copied. Otherwise the
computation dtype is ``numpy.result_type(pred, target)``, with float16 widened to
float32, wider floats (longdouble) narrowed to float64, and integer/bool-only pairs
computed in float64; inputs that need it are converted (copied) to that dtype.
Complex, object, string, datetime and other non-real dtypes raise ``TypeError``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from . import _core
from ._core import ClassStats

__all__ = [
    "acb_mse",
    "acb_mse_grad",
    "acb_mse_per_sample",
    "check_pair",
    "check_samples_axis",
    "class_stats",
    "prepare",
]

_REAL_KINDS = frozenset("biuf")


def _compute_dtype(a: np.dtype[Any], b: np.dtype[Any]) -> np.dtype[Any]:
    common = np.result_type(a, b)
    if common == np.float32 or common == np.float64:
        return np.dtype(common.type)
    if common.kind == "f":
        return np.dtype(np.float32 if common.itemsize < 4 else np.float64)
    return np.dtype(np.float64)


def check_pair(pred: Any, target: Any) -> None:
    """Check two array-like objects (NumPy, Dask, ...) before any data is read.

    Raises ``TypeError`` for non-real dtypes and ``ValueError`` for mismatched shapes
    (no broadcasting) or empty input; the messages name the offending values.
    """
    for name, a in (("pred", pred), ("target", target)):
        if a.dtype.kind not in _REAL_KINDS:
            raise TypeError(
                f"{name} has unsupported dtype {a.dtype}; expected real numbers "
                "(float, integer or bool)"
            )
    if pred.shape != target.shape:
        raise ValueError(
            "pred and target must have the same shape (no broadcasting), got "
            f"pred.shape={pred.shape} and target.shape={target.shape}"
        )
    if pred.size == 0:
        raise ValueError(
            f"pred and target are empty (shape {pred.shape}); ACB-MSE needs at least one element"
        )


def check_samples_axis(ndim: int, what: str) -> None:
    """Raise ``ValueError`` unless the inputs have an axis 0 (of samples) for ``what``."""
    if ndim == 0:
        raise ValueError(
            f"{what} needs arrays with at least 1 dimension (axis 0 = samples), got 0-d arrays"
        )


def prepare(
    pred: npt.ArrayLike, target: npt.ArrayLike
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Validate ``pred`` and ``target`` and return them as arrays of one float dtype.

    float32/float64 NumPy arrays of equal dtype come back unchanged (same objects'
    memory, no copy). Raises ``TypeError`` for non-real dtypes and ``ValueError``
    for mismatched shapes or empty input.
    """
    p = np.asarray(pred)
    t = np.asarray(target)
    check_pair(p, t)
    dtype = _compute_dtype(p.dtype, t.dtype)
    # astype(copy=False) also makes byte-swapped input native.
    return p.astype(dtype, copy=False), t.astype(dtype, copy=False)


def acb_mse(
    pred: npt.ArrayLike,
    target: npt.ArrayLike,
    zero_weighting: float = 1.0,
    nonzero_weighting: float = 1.0,
) -> float:
    r"""Automatic Class-Balanced MSE of ``pred`` against ``target``.

    .. math::

        \mathrm{loss} = A \cdot \frac{1}{|Z|}\sum_{i \in Z} (p_i - t_i)^2
                      + B \cdot \frac{1}{|H|}\sum_{i \in H} (p_i - t_i)^2

    where :math:`Z = \{i : t_i = 0\}`, :math:`H = \{i : t_i \ne 0\}` (a NaN target is
    in :math:`H`), :math:`A` = ``zero_weighting`` and :math:`B` = ``nonzero_weighting``.
    An empty class contributes 0. NaN and inf propagate into the result.

    Args:
        pred: Predictions, any shape and memory layout.
        target: Targets, the same shape as ``pred``.
        zero_weighting: Weight A of the zero class (finite, >= 0).
        nonzero_weighting: Weight B of the nonzero class (finite, >= 0).

    Returns:
        The loss as a Python float (accumulated in float64).

    Raises:
        TypeError: For a non-real dtype (complex, object, string, datetime, ...).
        ValueError: For mismatched shapes, empty input or a bad weight.

    Example:
        >>> import numpy as np, acbmse_rs
        >>> target = np.array([0.0, 0.0, 0.0, 2.0])
        >>> pred = np.array([0.0, 0.3, 0.0, 1.0])
        >>> round(acbmse_rs.acb_mse(pred, target), 6)   # 0.09/3 + 1/1
        1.03
    """
    _core.validate_weights(zero_weighting, nonzero_weighting)
    p, t = prepare(pred, target)
    return _core.acb_mse(p, t, zero_weighting, nonzero_weighting)


def acb_mse_grad(
    pred: npt.ArrayLike,
    target: npt.ArrayLike,
    zero_weighting: float = 1.0,
    nonzero_weighting: float = 1.0,
    *,
    out: np.ndarray[Any, Any] | None = None,
) -> tuple[float, np.ndarray[Any, Any]]:
    """ACB-MSE and its gradient with respect to ``pred``.

    The gradient is ``2 * w_c * (pred - target) / n_c`` for the class ``c`` of each
    element, where ``w_c`` is the class weight and ``n_c`` its element count. It is
    computed in two passes (the target alone to count the classes, then both inputs
    while writing the gradient); the only allocation is the output.

    Args:
        pred: Predictions, any shape and memory layout.
        target: Targets, the same shape as ``pred``.
        zero_weighting: Weight of the zero class (finite, >= 0).
        nonzero_weighting: Weight of the nonzero class (finite, >= 0).
        out: Optional array to write the gradient into: C-contiguous, writeable,
            ``pred``'s shape and the computation dtype, not overlapping the inputs.
            Reusing one buffer across calls (e.g. every training step) saves the
            allocation and the kernel's zeroing of fresh pages, which on large
            inputs costs about as much as reading the inputs.

    Returns:
        ``(loss, grad)``: the loss as a float, and the gradient: ``out`` if given,
        else a new C-contiguous array of ``pred``'s shape in the computation dtype
        (float32 for float32 input, float64 for float64; see the module docstring
        for other dtypes).

    Example:
        >>> import numpy as np, acbmse_rs
        >>> loss, grad = acbmse_rs.acb_mse_grad(np.array([1.0, 0.0]), np.array([0.0, 2.0]))
        >>> loss, grad.tolist()
        (5.0, [2.0, -4.0])
    """
    _core.validate_weights(zero_weighting, nonzero_weighting)
    p, t = prepare(pred, target)
    if out is None:
        out = np.empty(p.shape, dtype=p.dtype)
    else:
        _check_out(out, p)
    stats = _core.grad_into(p, t, zero_weighting, nonzero_weighting, out)
    return stats.loss(zero_weighting, nonzero_weighting), out


def _check_out(out: Any, p: np.ndarray[Any, Any]) -> None:
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be a numpy.ndarray, got {type(out).__name__}")
    if out.dtype != p.dtype:
        raise TypeError(f"out must have dtype {p.dtype} (the computation dtype), got {out.dtype}")
    if out.shape != p.shape:
        raise ValueError(f"out must have pred's shape {p.shape}, got {out.shape}")
    if not out.flags.c_contiguous or not out.flags.writeable:
        raise ValueError("out must be C-contiguous and writeable")


def acb_mse_per_sample(
    pred: npt.ArrayLike,
    target: npt.ArrayLike,
    zero_weighting: float = 1.0,
    nonzero_weighting: float = 1.0,
) -> np.ndarray[Any, np.dtype[np.float64]]:
    """ACB-MSE of each sample along axis 0, each balanced by its own class counts.

    ``acb_mse_per_sample(pred, target)[k] == acb_mse(pred[k], target[k])`` exactly.

    Args:
        pred: Predictions with at least one dimension; axis 0 indexes samples.
        target: Targets, the same shape as ``pred``.
        zero_weighting: Weight of the zero class (finite, >= 0).
        nonzero_weighting: Weight of the nonzero class (finite, >= 0).

    Returns:
        A float64 array of shape ``(pred.shape[0],)``.

    Example:
        >>> import numpy as np, acbmse_rs
        >>> acbmse_rs.acb_mse_per_sample(np.ones((2, 3)), np.array([[0, 0, 1], [1, 1, 1]]))
        array([1., 0.])
    """
    _core.validate_weights(zero_weighting, nonzero_weighting)
    p, t = prepare(pred, target)
    check_samples_axis(p.ndim, "acb_mse_per_sample")
    return _core.acb_mse_per_sample(p, t, zero_weighting, nonzero_weighting)


def class_stats(pred: npt.ArrayLike, target: npt.ArrayLike) -> ClassStats:
    """Class counts and sums of squared errors of ``pred`` against ``target``.

    The statistics of several blocks add up (``a + b``), and
    ``class_stats(p, t).loss(A, B) == acb_mse(p, t, A, B)``.

    Example:
        >>> import numpy as np, acbmse_rs
        >>> acbmse_rs.class_stats(np.array([1.0, 0.5]), np.array([0.0, 1.0]))
        ClassStats(n_zero=1, n_nonzero=1, sse_zero=1.0, sse_nonzero=0.25)
    """
    p, t = prepare(pred, target)
    return _core.class_stats(p, t)

"""acbmse-rs: fast, correct ACB-MSE (Automatic Class-Balanced Mean Squared Error).

ACB-MSE averages the squared error separately over the target's zero elements and its
nonzero elements and adds the two means with weights ``zero_weighting`` and
``nonzero_weighting``, so a sparse signal is not drowned by the empty background.

Argument order is ``(pred, target)``. ``import acbmse_rs`` never imports torch; the
torch criterion lives in ``acbmse_rs.torch``.
"""

from ._api import acb_mse, acb_mse_grad, acb_mse_per_sample, class_stats
from ._core import ClassStats, __version__, get_num_threads, set_num_threads
from .scorer import Scorer, ScoreResult

__all__ = [
    "ClassStats",
    "ScoreResult",
    "Scorer",
    "__version__",
    "acb_mse",
    "acb_mse_grad",
    "acb_mse_per_sample",
    "class_stats",
    "get_num_threads",
    "set_num_threads",
]


def __getattr__(name: str) -> object:
    # Lazy: ``from acbmse_rs import ACBLoss`` imports torch only when asked for.
    if name == "ACBLoss":
        from .torch import ACBLoss

        return ACBLoss
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""Type stubs for the compiled core ``acbmse_rs._core`` (built from src/python.rs).

These functions accept NumPy arrays of one dtype (float32 or float64), same shape,
non-empty; the public functions in ``acbmse_rs`` convert other inputs first.
"""

from typing import Any

import numpy as np
import numpy.typing as npt

__version__: str
CHUNK: int
SIMD: str

_FloatArray = npt.NDArray[np.floating[Any]]

class ClassStats:
    """Class counts and sums of squared errors of a block of (pred, target) pairs."""

    def __new__(
        cls,
        n_zero: int = 0,
        n_nonzero: int = 0,
        sse_zero: float = 0.0,
        sse_nonzero: float = 0.0,
    ) -> ClassStats: ...
    @property
    def n_zero(self) -> int: ...
    @property
    def n_nonzero(self) -> int: ...
    @property
    def sse_zero(self) -> float: ...
    @property
    def sse_nonzero(self) -> float: ...
    @property
    def n_total(self) -> int: ...
    @property
    def mse_zero(self) -> float: ...
    @property
    def mse_nonzero(self) -> float: ...
    @property
    def nonzero_fraction(self) -> float: ...
    def loss(self, zero_weighting: float = 1.0, nonzero_weighting: float = 1.0) -> float: ...
    def __add__(self, other: ClassStats) -> ClassStats: ...
    def __radd__(self, other: ClassStats | int) -> ClassStats: ...
    def __eq__(self, other: object) -> bool: ...
    def __reduce__(self) -> tuple[type[ClassStats], tuple[int, int, float, float]]: ...

def class_stats(pred: _FloatArray, target: _FloatArray) -> ClassStats: ...
def acb_mse(
    pred: _FloatArray,
    target: _FloatArray,
    zero_weighting: float = 1.0,
    nonzero_weighting: float = 1.0,
) -> float: ...
def acb_mse_per_sample(
    pred: _FloatArray,
    target: _FloatArray,
    zero_weighting: float = 1.0,
    nonzero_weighting: float = 1.0,
) -> npt.NDArray[np.float64]: ...
def per_sample_stats(
    pred: _FloatArray, target: _FloatArray
) -> tuple[
    npt.NDArray[np.uint64],
    npt.NDArray[np.uint64],
    npt.NDArray[np.float64],
    npt.NDArray[np.float64],
]: ...
def per_sample_losses(
    n_zero: npt.NDArray[np.uint64],
    n_nonzero: npt.NDArray[np.uint64],
    sse_zero: npt.NDArray[np.float64],
    sse_nonzero: npt.NDArray[np.float64],
    zero_weighting: float = 1.0,
    nonzero_weighting: float = 1.0,
) -> npt.NDArray[np.float64]: ...
def grad_into(
    pred: _FloatArray,
    target: _FloatArray,
    zero_weighting: float,
    nonzero_weighting: float,
    out: _FloatArray,
) -> ClassStats: ...
def scaled_diff_into(
    pred: _FloatArray,
    target: _FloatArray,
    coef_zero: float,
    coef_nonzero: float,
    out: _FloatArray,
    stats: bool = True,
) -> ClassStats | None: ...
def set_num_threads(n: int | None) -> None: ...
def get_num_threads() -> int: ...
def validate_weights(zero_weighting: float, nonzero_weighting: float) -> None: ...

//! The binding layer (`acbmse_rs._core`): argument checks, dtype dispatch, GIL
//! release, and calls into [`crate::kernels`]. No numerics live here.
//!
//! The Python package (`python/acbmse_rs/`) converts array-likes and dtypes before
//! calling in, so these functions accept only NumPy arrays of equal dtype,
//! float32 or float64.

use numpy::ndarray::ArrayViewD;
use numpy::{
    PyArray1, PyArrayDyn, PyArrayMethods, PyReadonlyArray1, PyReadonlyArrayDyn,
    PyReadwriteArrayDyn, PyUntypedArrayMethods,
};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyFloat, PyTuple, PyType};

use crate::kernels::{self, Element, ShapeError, CHUNK};
use crate::stats::{check_weights, ClassStats, WeightError};
use crate::threads;

fn shape_error(e: ShapeError) -> PyErr {
    PyValueError::new_err(e.to_string())
}

fn weight_error(e: WeightError) -> PyErr {
    PyValueError::new_err(e.to_string())
}

/// A pair of same-dtype read-only arrays.
enum Pair<'py> {
    F32(PyReadonlyArrayDyn<'py, f32>, PyReadonlyArrayDyn<'py, f32>),
    F64(PyReadonlyArrayDyn<'py, f64>, PyReadonlyArrayDyn<'py, f64>),
}

fn describe(obj: &Bound<'_, PyAny>) -> String {
    match obj.getattr("dtype") {
        Ok(dtype) => format!("dtype {dtype}"),
        Err(_) => format!("type {}", obj.get_type()),
    }
}

/// Borrows `pred` and `target` read-only and checks their shapes match and are
/// not empty.
fn pair<'py>(pred: &Bound<'py, PyAny>, target: &Bound<'py, PyAny>) -> PyResult<Pair<'py>> {
    let pair = if let (Ok(p), Ok(t)) = (
        pred.extract::<PyReadonlyArrayDyn<'py, f32>>(),
        target.extract::<PyReadonlyArrayDyn<'py, f32>>(),
    ) {
        Pair::F32(p, t)
    } else if let (Ok(p), Ok(t)) = (
        pred.extract::<PyReadonlyArrayDyn<'py, f64>>(),
        target.extract::<PyReadonlyArrayDyn<'py, f64>>(),
    ) {
        Pair::F64(p, t)
    } else {
        return Err(PyTypeError::new_err(format!(
            "pred and target must be NumPy arrays of the same dtype, float32 or float64 \
             (use the acbmse_rs functions, which convert other inputs), got pred with {} \
             and target with {}",
            describe(pred),
            describe(target)
        )));
    };
    let (pred_shape, target_shape, len) = match &pair {
        Pair::F32(p, t) => (p.shape().to_vec(), t.shape().to_vec(), p.len()),
        Pair::F64(p, t) => (p.shape().to_vec(), t.shape().to_vec(), p.len()),
    };
    if pred_shape != target_shape {
        return Err(shape_error(ShapeError {
            pred: pred_shape,
            target: target_shape,
        }));
    }
    if len == 0 {
        return Err(PyValueError::new_err(format!(
            "pred and target are empty (shape {pred_shape:?}); ACB-MSE needs at least one element"
        )));
    }
    Ok(pair)
}

/// Inputs up to this many elements are folded while holding the GIL: releasing
/// and re-taking it would cost more than the work.
const GIL_RELEASE_MIN: usize = 4096;

/// Runs a kernel with the GIL released (except for tiny inputs). Kernels on inputs
/// of at least [`kernels::PARALLEL_MIN_LEN`] elements share the work between this
/// thread and the kernel pool.
fn run<R: Send>(py: Python<'_>, len: usize, f: impl FnOnce() -> R + Send) -> R {
    if len <= GIL_RELEASE_MIN {
        f()
    } else {
        py.detach(f)
    }
}

macro_rules! with_pair {
    ($pair:expr, |$p:ident, $t:ident| $body:expr) => {
        match $pair {
            Pair::F32(a, b) => {
                let ($p, $t) = (a.as_array(), b.as_array());
                $body
            }
            Pair::F64(a, b) => {
                let ($p, $t) = (a.as_array(), b.as_array());
                $body
            }
        }
    };
}

fn stats_of<T: Element>(
    py: Python<'_>,
    p: ArrayViewD<'_, T>,
    t: ArrayViewD<'_, T>,
) -> PyResult<ClassStats> {
    let len = p.len();
    run(py, len, || kernels::class_stats(p, t)).map_err(shape_error)
}

/// Class counts and sums of squared errors of `pred` against `target`.
#[pyfunction]
fn class_stats(
    py: Python<'_>,
    pred: &Bound<'_, PyAny>,
    target: &Bound<'_, PyAny>,
) -> PyResult<PyClassStats> {
    let pair = pair(pred, target)?;
    let stats = with_pair!(&pair, |p, t| stats_of(py, p, t))?;
    Ok(PyClassStats(stats))
}

/// ACB-MSE of `pred` against `target`.
#[pyfunction]
#[pyo3(signature = (pred, target, zero_weighting=1.0, nonzero_weighting=1.0))]
fn acb_mse(
    py: Python<'_>,
    pred: &Bound<'_, PyAny>,
    target: &Bound<'_, PyAny>,
    zero_weighting: f64,
    nonzero_weighting: f64,
) -> PyResult<f64> {
    check_weights(zero_weighting, nonzero_weighting).map_err(weight_error)?;
    let pair = pair(pred, target)?;
    let stats = with_pair!(&pair, |p, t| stats_of(py, p, t))?;
    Ok(stats.loss(zero_weighting, nonzero_weighting))
}

fn per_sample<'py>(
    py: Python<'py>,
    pred: &Bound<'py, PyAny>,
    target: &Bound<'py, PyAny>,
) -> PyResult<Vec<ClassStats>> {
    let pair = pair(pred, target)?;
    with_pair!(&pair, |p, t| {
        if p.ndim() == 0 {
            return Err(PyValueError::new_err(
                "per-sample losses need arrays with at least 1 dimension (axis 0 = samples), got 0-d arrays",
            ));
        }
        let len = p.len();
        run(py, len, || kernels::per_sample_stats(p, t)).map_err(shape_error)
    })
}

/// Per-sample class statistics, as four arrays
/// `(n_zero, n_nonzero, sse_zero, sse_nonzero)` of length `pred.shape[0]`.
#[pyfunction]
#[allow(clippy::type_complexity)]
fn per_sample_stats<'py>(
    py: Python<'py>,
    pred: &Bound<'py, PyAny>,
    target: &Bound<'py, PyAny>,
) -> PyResult<(
    Bound<'py, PyArray1<u64>>,
    Bound<'py, PyArray1<u64>>,
    Bound<'py, PyArray1<f64>>,
    Bound<'py, PyArray1<f64>>,
)> {
    let stats = per_sample(py, pred, target)?;
    Ok((
        PyArray1::from_iter(py, stats.iter().map(|s| s.n_zero)),
        PyArray1::from_iter(py, stats.iter().map(|s| s.n_nonzero)),
        PyArray1::from_iter(py, stats.iter().map(|s| s.sse_zero)),
        PyArray1::from_iter(py, stats.iter().map(|s| s.sse_nonzero)),
    ))
}

/// ACB-MSE of each sample (axis 0), each balanced by its own class counts.
#[pyfunction]
#[pyo3(signature = (pred, target, zero_weighting=1.0, nonzero_weighting=1.0))]
fn acb_mse_per_sample<'py>(
    py: Python<'py>,
    pred: &Bound<'py, PyAny>,
    target: &Bound<'py, PyAny>,
    zero_weighting: f64,
    nonzero_weighting: f64,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    check_weights(zero_weighting, nonzero_weighting).map_err(weight_error)?;
    let stats = per_sample(py, pred, target)?;
    Ok(PyArray1::from_iter(
        py,
        stats
            .iter()
            .map(|s| s.loss(zero_weighting, nonzero_weighting)),
    ))
}

/// ACB-MSE of each entry of per-sample statistics (as `per_sample_stats` returns
/// them, possibly added up across blocks): the same `ClassStats::loss` as every
/// other loss, so the values equal `acb_mse_per_sample`'s bit for bit.
#[pyfunction]
#[pyo3(signature = (n_zero, n_nonzero, sse_zero, sse_nonzero, zero_weighting=1.0, nonzero_weighting=1.0))]
fn per_sample_losses<'py>(
    py: Python<'py>,
    n_zero: PyReadonlyArray1<'py, u64>,
    n_nonzero: PyReadonlyArray1<'py, u64>,
    sse_zero: PyReadonlyArray1<'py, f64>,
    sse_nonzero: PyReadonlyArray1<'py, f64>,
    zero_weighting: f64,
    nonzero_weighting: f64,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    check_weights(zero_weighting, nonzero_weighting).map_err(weight_error)?;
    let (n0, n1, s0, s1) = (
        n_zero.as_array(),
        n_nonzero.as_array(),
        sse_zero.as_array(),
        sse_nonzero.as_array(),
    );
    let lengths = [n0.len(), n1.len(), s0.len(), s1.len()];
    if lengths.iter().any(|&n| n != lengths[0]) {
        return Err(PyValueError::new_err(format!(
            "per-sample statistics must have equal lengths, got {lengths:?}"
        )));
    }
    let stats = (0..lengths[0]).map(|k| ClassStats {
        n_zero: n0[k],
        n_nonzero: n1[k],
        sse_zero: s0[k],
        sse_nonzero: s1[k],
    });
    Ok(PyArray1::from_iter(
        py,
        stats.map(|s| s.loss(zero_weighting, nonzero_weighting)),
    ))
}

/// What the gradient pass does with the counts.
#[derive(Clone, Copy)]
enum GradMode {
    /// Count the classes first, then write `2 w_c / n_c * (pred - target)`.
    Weights(f64, f64),
    /// Write `coef_c * (pred - target)` with the coefficients given; the flag says
    /// whether to compute the class statistics too.
    Coefficients(f64, f64, bool),
}

fn grad_kernel<T: Element + numpy::Element>(
    py: Python<'_>,
    p: ArrayViewD<'_, T>,
    t: ArrayViewD<'_, T>,
    out: &Bound<'_, PyAny>,
    mode: GradMode,
) -> PyResult<Option<ClassStats>> {
    let out_array = out.cast::<PyArrayDyn<T>>().map_err(|_| {
        PyTypeError::new_err(format!(
            "out must be a NumPy array of the same dtype as pred, got {}",
            describe(out)
        ))
    })?;
    if out_array.shape() != p.shape() {
        return Err(PyValueError::new_err(format!(
            "out must have the shape of pred {:?}, got {:?}",
            p.shape(),
            out_array.shape()
        )));
    }
    let mut guard: PyReadwriteArrayDyn<'_, T> = out_array.try_readwrite().map_err(|e| {
        PyValueError::new_err(format!(
            "out must be a writeable array that does not share memory with pred or target ({e})"
        ))
    })?;
    let slice = guard
        .as_slice_mut()
        .map_err(|_| PyValueError::new_err("out must be C-contiguous"))?;
    let len = p.len();
    run(py, len, move || match mode {
        GradMode::Weights(w0, w1) => kernels::grad(p, t, w0, w1, slice).map(Some),
        GradMode::Coefficients(c0, c1, with_stats) => {
            kernels::scaled_diff(p, t, c0, c1, slice, with_stats)
        }
    })
    .map_err(shape_error)
}

/// Writes the gradient of ACB-MSE with respect to `pred` into `out` (C-contiguous,
/// same shape and dtype as `pred`) and returns the class statistics of the data.
#[pyfunction]
fn grad_into(
    py: Python<'_>,
    pred: &Bound<'_, PyAny>,
    target: &Bound<'_, PyAny>,
    zero_weighting: f64,
    nonzero_weighting: f64,
    out: &Bound<'_, PyAny>,
) -> PyResult<PyClassStats> {
    check_weights(zero_weighting, nonzero_weighting).map_err(weight_error)?;
    let pair = pair(pred, target)?;
    let mode = GradMode::Weights(zero_weighting, nonzero_weighting);
    let stats = with_pair!(&pair, |p, t| grad_kernel(py, p, t, out, mode))?;
    Ok(PyClassStats(
        stats.expect("the gradient pass computes statistics"),
    ))
}

/// Writes `coef_c * (pred - target)`, for each element's class `c`, into `out`
/// (C-contiguous, same shape and dtype as `pred`) and returns the class statistics,
/// or `None` with `stats=False`, which skips computing them (about half the work on
/// data in cache). This is the backward pass when the counts are already known.
#[pyfunction]
#[pyo3(signature = (pred, target, coef_zero, coef_nonzero, out, stats=true))]
fn scaled_diff_into(
    py: Python<'_>,
    pred: &Bound<'_, PyAny>,
    target: &Bound<'_, PyAny>,
    coef_zero: f64,
    coef_nonzero: f64,
    out: &Bound<'_, PyAny>,
    stats: bool,
) -> PyResult<Option<PyClassStats>> {
    let pair = pair(pred, target)?;
    let mode = GradMode::Coefficients(coef_zero, coef_nonzero, stats);
    let result = with_pair!(&pair, |p, t| grad_kernel(py, p, t, out, mode))?;
    Ok(result.map(PyClassStats))
}

/// Sets the number of threads the kernels use (`None` restores the default:
/// `RAYON_NUM_THREADS` if set, else the number of CPUs).
#[pyfunction]
#[pyo3(signature = (n))]
fn set_num_threads(n: Option<i64>) -> PyResult<()> {
    let threads = match n {
        None => None,
        Some(n) if n >= 1 => Some(n as usize),
        Some(n) => {
            return Err(PyValueError::new_err(format!(
                "number of threads must be at least 1 (or None for the default), got {n}"
            )))
        }
    };
    threads::set_num_threads(threads).map_err(PyValueError::new_err)
}

/// The number of threads the kernels use.
#[pyfunction]
fn get_num_threads() -> usize {
    threads::get_num_threads()
}

/// Checks the two class weights (finite and >= 0), raising ValueError otherwise.
#[pyfunction]
fn validate_weights(zero_weighting: f64, nonzero_weighting: f64) -> PyResult<()> {
    check_weights(zero_weighting, nonzero_weighting).map_err(weight_error)
}

/// Class statistics of a block of (pred, target) pairs.
///
/// ``n_zero`` and ``n_nonzero`` count the elements whose target is zero and
/// nonzero; ``sse_zero`` and ``sse_nonzero`` are the sums of squared errors over
/// each class. ``a + b`` merges two blocks, so a dataset can be reduced chunk by
/// chunk or on many machines; ``loss()`` gives the ACB-MSE of everything merged.
#[pyclass(name = "ClassStats", module = "acbmse_rs", frozen, from_py_object)]
#[derive(Clone, Copy)]
pub struct PyClassStats(pub ClassStats);

#[pymethods]
impl PyClassStats {
    #[new]
    #[pyo3(signature = (n_zero=0, n_nonzero=0, sse_zero=0.0, sse_nonzero=0.0))]
    fn new(n_zero: u64, n_nonzero: u64, sse_zero: f64, sse_nonzero: f64) -> Self {
        PyClassStats(ClassStats {
            n_zero,
            n_nonzero,
            sse_zero,
            sse_nonzero,
        })
    }

    /// Number of elements whose target is exactly zero.
    #[getter]
    fn n_zero(&self) -> u64 {
        self.0.n_zero
    }

    /// Number of elements whose target is nonzero (NaN included).
    #[getter]
    fn n_nonzero(&self) -> u64 {
        self.0.n_nonzero
    }

    /// Sum of squared errors over the zero class.
    #[getter]
    fn sse_zero(&self) -> f64 {
        self.0.sse_zero
    }

    /// Sum of squared errors over the nonzero class.
    #[getter]
    fn sse_nonzero(&self) -> f64 {
        self.0.sse_nonzero
    }

    /// Total number of elements.
    #[getter]
    fn n_total(&self) -> u64 {
        self.0.n_total()
    }

    /// Mean squared error over the zero class (0.0 when it is empty).
    #[getter]
    fn mse_zero(&self) -> f64 {
        self.0.mse_zero()
    }

    /// Mean squared error over the nonzero class (0.0 when it is empty).
    #[getter]
    fn mse_nonzero(&self) -> f64 {
        self.0.mse_nonzero()
    }

    /// Fraction of elements in the nonzero class (0.0 when there are none).
    #[getter]
    fn nonzero_fraction(&self) -> f64 {
        match self.0.n_total() {
            0 => 0.0,
            n => self.0.n_nonzero as f64 / n as f64,
        }
    }

    /// ACB-MSE of everything merged into these statistics:
    /// ``zero_weighting * mse_zero + nonzero_weighting * mse_nonzero``
    /// (an empty class contributes 0).
    #[pyo3(signature = (zero_weighting=1.0, nonzero_weighting=1.0))]
    fn loss(&self, zero_weighting: f64, nonzero_weighting: f64) -> PyResult<f64> {
        check_weights(zero_weighting, nonzero_weighting).map_err(weight_error)?;
        Ok(self.0.loss(zero_weighting, nonzero_weighting))
    }

    fn __add__(&self, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let py = other.py();
        match other.extract::<PyClassStats>() {
            Ok(o) => Ok(Py::new(py, PyClassStats(self.0 + o.0))?.into_any()),
            Err(_) => Ok(py.NotImplemented()),
        }
    }

    /// Lets ``sum(list_of_stats)`` start from the integer 0.
    fn __radd__(&self, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let py = other.py();
        if let Ok(0) = other.extract::<i64>() {
            return Ok(Py::new(py, *self)?.into_any());
        }
        self.__add__(other)
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let py = other.py();
        match other.extract::<PyClassStats>() {
            Ok(o) => Ok(pyo3::types::PyBool::new(py, self.0 == o.0)
                .to_owned()
                .into_any()
                .unbind()),
            Err(_) => Ok(py.NotImplemented()),
        }
    }

    fn __reduce__<'py>(
        slf: &Bound<'py, Self>,
    ) -> PyResult<(Bound<'py, PyType>, Bound<'py, PyTuple>)> {
        let py = slf.py();
        let s = slf.get().0;
        let args = (s.n_zero, s.n_nonzero, s.sse_zero, s.sse_nonzero).into_pyobject(py)?;
        Ok((slf.get_type(), args))
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let float = |v: f64| -> PyResult<String> { Ok(PyFloat::new(py, v).repr()?.to_string()) };
        Ok(format!(
            "ClassStats(n_zero={}, n_nonzero={}, sse_zero={}, sse_nonzero={})",
            self.0.n_zero,
            self.0.n_nonzero,
            float(self.0.sse_zero)?,
            float(self.0.sse_nonzero)?
        ))
    }
}

/// The compiled core of acbmse_rs. Use the functions of the ``acbmse_rs`` package,
/// which accept any array-like and convert dtypes; these accept NumPy arrays only.
#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("CHUNK", CHUNK)?;
    m.add("SIMD", kernels::Simd::active().name())?;
    m.add_class::<PyClassStats>()?;
    m.add_function(wrap_pyfunction!(class_stats, m)?)?;
    m.add_function(wrap_pyfunction!(acb_mse, m)?)?;
    m.add_function(wrap_pyfunction!(acb_mse_per_sample, m)?)?;
    m.add_function(wrap_pyfunction!(per_sample_stats, m)?)?;
    m.add_function(wrap_pyfunction!(per_sample_losses, m)?)?;
    m.add_function(wrap_pyfunction!(grad_into, m)?)?;
    m.add_function(wrap_pyfunction!(scaled_diff_into, m)?)?;
    m.add_function(wrap_pyfunction!(set_num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(get_num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(validate_weights, m)?)?;
    Ok(())
}

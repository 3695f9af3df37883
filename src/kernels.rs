//! The numerical kernels: folds into [`ClassStats`], per-sample folds, and the
//! gradient pass. Pure Rust, generic over `f32`/`f64`, no Python types.
//!
//! Determinism: every kernel cuts its input into chunks of [`CHUNK`] elements
//! (a constant, independent of the thread count), folds each chunk serially with a
//! fixed lane structure, and adds the partial results in chunk order. Results are
//! therefore bitwise identical for any number of threads and on repeated calls.
//! Sums are accumulated in `f64` whatever the element type.

use std::sync::Mutex;

use ndarray::ArrayViewD;
use rayon::prelude::*;

use crate::layout::Source;
use crate::stats::ClassStats;

/// Elements per chunk: the unit of parallel work and of deterministic summation.
pub const CHUNK: usize = 1 << 16;

/// Independent accumulators per fold, so that the inner loop vectorises.
const LANES: usize = 16;

/// Element types the kernels read: `f32` and `f64`.
pub trait Element:
    Copy
    + PartialEq
    + std::ops::Sub<Output = Self>
    + std::ops::Mul<Output = Self>
    + Send
    + Sync
    + 'static
{
    /// The additive zero of the type.
    const ZERO: Self;
    /// Exact widening (or identity) conversion to `f64`.
    fn to_f64(self) -> f64;
    /// Rounding conversion from `f64`.
    fn from_f64(value: f64) -> Self;
}

impl Element for f32 {
    const ZERO: Self = 0.0;
    #[inline(always)]
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
    #[inline(always)]
    fn from_f64(value: f64) -> Self {
        value as f32
    }
}

impl Element for f64 {
    const ZERO: Self = 0.0;
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self
    }
    #[inline(always)]
    fn from_f64(value: f64) -> Self {
        value
    }
}

/// Shapes of `pred` and `target` differ (the kernels never broadcast).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShapeError {
    /// Shape of `pred`.
    pub pred: Vec<usize>,
    /// Shape of `target`.
    pub target: Vec<usize>,
}

impl std::fmt::Display for ShapeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "pred and target must have the same shape, got pred {:?} and target {:?}",
            self.pred, self.target
        )
    }
}

impl std::error::Error for ShapeError {}

fn check_shapes<T>(pred: &ArrayViewD<'_, T>, target: &ArrayViewD<'_, T>) -> Result<(), ShapeError> {
    if pred.shape() == target.shape() {
        Ok(())
    } else {
        Err(ShapeError {
            pred: pred.shape().to_vec(),
            target: target.shape().to_vec(),
        })
    }
}

// ---------------------------------------------------------------------------
// Inner loops over one chunk of contiguous data.

/// One element's contribution, shared by every inner loop so they all round alike.
/// The difference is taken in the input precision (as torch does; for `f32` that is
/// one rounding, at most 2^-24 relative), then widened, squared and accumulated in
/// `f64`. Widening first would cost a third of the speed of the fold.
#[inline(always)]
fn squared_error<T: Element>(p: T, t: T) -> (f64, f64, bool) {
    let d = (p - t).to_f64();
    (d, d * d, t == T::ZERO)
}

/// Lane accumulators of a fold.
struct Lanes {
    sse_zero: [f64; LANES],
    sse_nonzero: [f64; LANES],
    // 32-bit counters vectorise better; a chunk has at most CHUNK < 2^32 elements.
    n_zero: [u32; LANES],
}

impl Lanes {
    #[inline(always)]
    fn new() -> Self {
        Lanes {
            sse_zero: [0.0; LANES],
            sse_nonzero: [0.0; LANES],
            n_zero: [0; LANES],
        }
    }

    #[inline(always)]
    fn add(&mut self, lane: usize, d2: f64, zero: bool) {
        // Selects, not multiplications by a mask: a NaN or inf in one class must not
        // leak into the other.
        self.sse_zero[lane] += if zero { d2 } else { 0.0 };
        self.sse_nonzero[lane] += if zero { 0.0 } else { d2 };
        self.n_zero[lane] += u32::from(zero);
    }

    /// Adds the lanes in a fixed order.
    #[inline(always)]
    fn finish(self, len: usize) -> ClassStats {
        let n_zero: u64 = self.n_zero.iter().map(|&n| u64::from(n)).sum();
        ClassStats {
            n_zero,
            n_nonzero: len as u64 - n_zero,
            sse_zero: self.sse_zero.iter().sum(),
            sse_nonzero: self.sse_nonzero.iter().sum(),
        }
    }
}

#[inline(always)]
fn fold_chunk_impl<T: Element>(pred: &[T], target: &[T]) -> ClassStats {
    assert_eq!(pred.len(), target.len());
    assert!(pred.len() <= CHUNK, "a chunk has at most CHUNK elements");
    let mut lanes = Lanes::new();
    let p_blocks = pred.chunks_exact(LANES);
    let t_blocks = target.chunks_exact(LANES);
    let (p_rest, t_rest) = (p_blocks.remainder(), t_blocks.remainder());
    for (pb, tb) in p_blocks.zip(t_blocks) {
        let pb: &[T; LANES] = pb.try_into().expect("block of LANES");
        let tb: &[T; LANES] = tb.try_into().expect("block of LANES");
        for j in 0..LANES {
            let (_, d2, zero) = squared_error(pb[j], tb[j]);
            lanes.add(j, d2, zero);
        }
    }
    for (j, (&p, &t)) in p_rest.iter().zip(t_rest).enumerate() {
        let (_, d2, zero) = squared_error(p, t);
        lanes.add(j, d2, zero);
    }
    lanes.finish(pred.len())
}

/// The gradient is computed in the input precision, as torch does: the coefficient
/// is rounded to `T` once, then `coef * (pred - target)` is one multiplication in `T`
/// (for `f32`, within 2 ulp of the exact value), which vectorises at full width.
#[inline(always)]
fn write_scaled_diff_impl<T: Element>(
    pred: &[T],
    target: &[T],
    coef_zero: f64,
    coef_nonzero: f64,
    out: &mut [T],
) {
    assert!(pred.len() == target.len() && pred.len() == out.len());
    let (coef_zero, coef_nonzero) = (T::from_f64(coef_zero), T::from_f64(coef_nonzero));
    for ((o, &p), &t) in out.iter_mut().zip(pred).zip(target) {
        let coef = if t == T::ZERO {
            coef_zero
        } else {
            coef_nonzero
        };
        *o = coef * (p - t);
    }
}

/// `with_stats`: also fold the chunk (else the statistics are empty). Two simple
/// loops over a chunk that stays in cache vectorise far better than one loop that
/// both reduces and writes.
#[inline(always)]
fn scaled_diff_chunk_impl<T: Element>(
    pred: &[T],
    target: &[T],
    coef_zero: f64,
    coef_nonzero: f64,
    out: &mut [T],
    with_stats: bool,
) -> ClassStats {
    let stats = if with_stats {
        fold_chunk_impl(pred, target)
    } else {
        ClassStats::EMPTY
    };
    write_scaled_diff_impl(pred, target, coef_zero, coef_nonzero, out);
    stats
}

#[inline(always)]
fn count_zero_chunk_impl<T: Element>(target: &[T]) -> u64 {
    // An integer count is exact in any order, so a plain loop lets the compiler
    // choose the vectorisation.
    target.iter().map(|&t| u64::from(t == T::ZERO)).sum()
}

// The same loops compiled for AVX2 and for AVX-512 (F + VL + DQ + BW), chosen at run
// time. The lane structure is explicit and no fused multiply-add is used, so every
// version gives bitwise the same results.
macro_rules! simd_variant {
    ($name:ident, $features:literal) => {
        #[cfg(target_arch = "x86_64")]
        mod $name {
            use super::*;

            #[target_feature(enable = $features)]
            pub(super) fn fold_chunk<T: Element>(pred: &[T], target: &[T]) -> ClassStats {
                fold_chunk_impl(pred, target)
            }

            #[target_feature(enable = $features)]
            pub(super) fn scaled_diff_chunk<T: Element>(
                pred: &[T],
                target: &[T],
                coef_zero: f64,
                coef_nonzero: f64,
                out: &mut [T],
                with_stats: bool,
            ) -> ClassStats {
                scaled_diff_chunk_impl(pred, target, coef_zero, coef_nonzero, out, with_stats)
            }

            #[target_feature(enable = $features)]
            pub(super) fn count_zero_chunk<T: Element>(target: &[T]) -> u64 {
                count_zero_chunk_impl(target)
            }
        }
    };
}

simd_variant!(avx2, "avx2");
simd_variant!(avx512, "avx512f,avx512vl,avx512dq,avx512bw,avx2");

/// Instruction sets the inner loops are compiled for, best last.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Simd {
    /// The target's baseline (SSE2 on x86_64).
    Baseline,
    /// AVX2.
    Avx2,
    /// AVX-512 F, VL, DQ and BW.
    Avx512,
}

impl Simd {
    /// The best level this CPU supports.
    pub fn detect() -> Simd {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            if has!("avx512f") && has!("avx512vl") && has!("avx512dq") && has!("avx512bw") {
                return Simd::Avx512;
            }
            if has!("avx2") {
                return Simd::Avx2;
            }
        }
        Simd::Baseline
    }

    /// The level in use: the detected one, lowered by the environment variable
    /// `ACBMSE_RS_SIMD` (`baseline`, `avx2` or `avx512`) if set. It can only lower
    /// the level; all levels give bitwise the same results.
    pub fn active() -> Simd {
        static ACTIVE: std::sync::OnceLock<Simd> = std::sync::OnceLock::new();
        *ACTIVE.get_or_init(|| {
            let detected = Simd::detect();
            let requested = match std::env::var("ACBMSE_RS_SIMD").as_deref() {
                Ok("baseline") => Simd::Baseline,
                Ok("avx2") => Simd::Avx2,
                _ => Simd::Avx512,
            };
            detected.min(requested)
        })
    }

    /// Lower-case name, as accepted by `ACBMSE_RS_SIMD`.
    pub fn name(self) -> &'static str {
        match self {
            Simd::Baseline => "baseline",
            Simd::Avx2 => "avx2",
            Simd::Avx512 => "avx512",
        }
    }
}

/// Folds one chunk (at most [`CHUNK`] elements) of contiguous data into class
/// statistics.
pub fn fold_chunk<T: Element>(pred: &[T], target: &[T]) -> ClassStats {
    fold_chunk_with(Simd::active(), pred, target)
}

/// [`fold_chunk`] compiled for a given level (lowered to what the CPU supports).
pub fn fold_chunk_with<T: Element>(simd: Simd, pred: &[T], target: &[T]) -> ClassStats {
    #[cfg(target_arch = "x86_64")]
    match simd.min(Simd::detect()) {
        // SAFETY: the CPU supports these AVX-512 subsets (checked at run time).
        Simd::Avx512 => return unsafe { avx512::fold_chunk(pred, target) },
        // SAFETY: the CPU supports AVX2 (checked at run time).
        Simd::Avx2 => return unsafe { avx2::fold_chunk(pred, target) },
        Simd::Baseline => {}
    }
    let _ = simd;
    fold_chunk_impl(pred, target)
}

/// Writes `coef_c * (pred - target)` for each element's class `c` into `out` and
/// returns the chunk's class statistics (the same as [`fold_chunk`]). At most
/// [`CHUNK`] elements.
pub fn scaled_diff_chunk<T: Element>(
    pred: &[T],
    target: &[T],
    coef_zero: f64,
    coef_nonzero: f64,
    out: &mut [T],
) -> ClassStats {
    scaled_diff_chunk_with(
        Simd::active(),
        pred,
        target,
        coef_zero,
        coef_nonzero,
        out,
        true,
    )
}

/// [`scaled_diff_chunk`] compiled for a given level (lowered to what the CPU
/// supports); with `with_stats == false` it only writes and returns empty statistics.
pub fn scaled_diff_chunk_with<T: Element>(
    simd: Simd,
    pred: &[T],
    target: &[T],
    coef_zero: f64,
    coef_nonzero: f64,
    out: &mut [T],
    with_stats: bool,
) -> ClassStats {
    #[cfg(target_arch = "x86_64")]
    match simd.min(Simd::detect()) {
        // SAFETY: the CPU supports these AVX-512 subsets (checked at run time).
        Simd::Avx512 => {
            return unsafe {
                avx512::scaled_diff_chunk(pred, target, coef_zero, coef_nonzero, out, with_stats)
            }
        }
        // SAFETY: the CPU supports AVX2 (checked at run time).
        Simd::Avx2 => {
            return unsafe {
                avx2::scaled_diff_chunk(pred, target, coef_zero, coef_nonzero, out, with_stats)
            }
        }
        Simd::Baseline => {}
    }
    let _ = simd;
    scaled_diff_chunk_impl(pred, target, coef_zero, coef_nonzero, out, with_stats)
}

/// Counts the zero targets of one chunk of contiguous data.
pub fn count_zero_chunk<T: Element>(target: &[T]) -> u64 {
    #[cfg(target_arch = "x86_64")]
    match Simd::active() {
        // SAFETY: the CPU supports these AVX-512 subsets (checked at run time).
        Simd::Avx512 => return unsafe { avx512::count_zero_chunk(target) },
        // SAFETY: the CPU supports AVX2 (checked at run time).
        Simd::Avx2 => return unsafe { avx2::count_zero_chunk(target) },
        Simd::Baseline => {}
    }
    count_zero_chunk_impl(target)
}

// ---------------------------------------------------------------------------
// Whole-array kernels.

/// Inputs of fewer elements than this are processed serially on the calling
/// thread: waking the pool costs about as much as folding a few chunks (measured
/// here at 30-60 us, against 12-16 us per chunk). The chunking, and so the result, is
/// the same either way.
pub const PARALLEL_MIN_LEN: usize = 8 * CHUNK;

/// `f(state, k)` for `k` in `0..n`, results in order; `init` makes one scratch
/// state per thread. Parallel when `parallel`: inside a rayon pool (as in tests) on
/// that pool, otherwise on the kernel pool of [`crate::threads`] with the calling
/// thread taking part.
fn map_tasks<R, S, I, F>(parallel: bool, n: usize, init: I, f: F) -> Vec<R>
where
    R: Send,
    I: Fn() -> S + Sync + Send,
    F: Fn(&mut S, usize) -> R + Sync + Send,
{
    if !parallel {
        let mut state = init();
        (0..n).map(|k| f(&mut state, k)).collect()
    } else if rayon::current_thread_index().is_some() {
        (0..n).into_par_iter().map_init(init, f).collect()
    } else {
        crate::threads::parallel_map(n, init, f)
    }
}

/// Folds logical elements `start .. start + len` of two sources, in chunks of
/// [`CHUNK`] counted from `start`, serially.
fn fold_range<T: Element>(
    pred: &Source<'_, T>,
    target: &Source<'_, T>,
    start: usize,
    len: usize,
    bufs: &mut (Vec<T>, Vec<T>),
) -> ClassStats {
    let mut stats = ClassStats::EMPTY;
    let mut offset = 0;
    while offset < len {
        let n = CHUNK.min(len - offset);
        let p = pred.chunk(start + offset, n, &mut bufs.0);
        let t = target.chunk(start + offset, n, &mut bufs.1);
        stats += fold_chunk(p, t);
        offset += n;
    }
    stats
}

/// Class statistics of every element of `pred` and `target` (same shape, any
/// layout). Runs in the current rayon pool when there is more than one chunk.
pub fn class_stats<T: Element>(
    pred: ArrayViewD<'_, T>,
    target: ArrayViewD<'_, T>,
) -> Result<ClassStats, ShapeError> {
    check_shapes(&pred, &target)?;
    // The statistics do not depend on the order in which elements are visited,
    // only the rounding does: two arrays with the same dense non-C layout (e.g. both
    // Fortran-ordered) are read in memory order, in place.
    if pred.strides() == target.strides() && pred.to_slice().is_none() {
        if let (Some(p), Some(t)) = (pred.to_slice_memory_order(), target.to_slice_memory_order()) {
            return Ok(fold_sources(&Source::Slice(p), &Source::Slice(t)));
        }
    }
    Ok(fold_sources(&Source::new(pred), &Source::new(target)))
}

fn fold_sources<T: Element>(pred: &Source<'_, T>, target: &Source<'_, T>) -> ClassStats {
    let len = pred.len();
    let partials = map_tasks(
        len >= PARALLEL_MIN_LEN,
        len.div_ceil(CHUNK),
        || (Vec::new(), Vec::new()),
        |bufs, k| {
            let start = k * CHUNK;
            fold_range(pred, target, start, CHUNK.min(len - start), bufs)
        },
    );
    partials.into_iter().sum()
}

/// Class statistics of each sample (index along axis 0), each folded from its own
/// start exactly as [`class_stats`] folds that sample alone.
///
/// `pred` and `target` must have at least one dimension.
pub fn per_sample_stats<T: Element>(
    pred: ArrayViewD<'_, T>,
    target: ArrayViewD<'_, T>,
) -> Result<Vec<ClassStats>, ShapeError> {
    check_shapes(&pred, &target)?;
    assert!(pred.ndim() >= 1, "per-sample statistics need an axis 0");
    let n_samples = pred.shape()[0];
    if n_samples == 0 {
        return Ok(Vec::new());
    }
    let sample_len = pred.len() / n_samples;
    let (pred, target) = (Source::new(pred), Source::new(target));
    let chunks_per_sample = sample_len.div_ceil(CHUNK).max(1);
    let parallel = pred.len() >= PARALLEL_MIN_LEN;
    if chunks_per_sample == 1 {
        return Ok(map_tasks(
            parallel,
            n_samples,
            || (Vec::new(), Vec::new()),
            |bufs, k| fold_range(&pred, &target, k * sample_len, sample_len, bufs),
        ));
    }
    // Large samples: (sample, chunk) pairs, then each sample's chunks are added in
    // order.
    let partials = map_tasks(
        parallel,
        n_samples * chunks_per_sample,
        || (Vec::new(), Vec::new()),
        |bufs, task| {
            let (k, c) = (task / chunks_per_sample, task % chunks_per_sample);
            let offset = c * CHUNK;
            let len = CHUNK.min(sample_len - offset);
            fold_range(&pred, &target, k * sample_len + offset, len, bufs)
        },
    );
    Ok(partials
        .chunks(chunks_per_sample)
        .map(|parts| parts.iter().copied().sum())
        .collect())
}

/// Number of zero targets (any layout).
pub fn count_zero<T: Element>(target: ArrayViewD<'_, T>) -> u64 {
    // Order does not matter for an integer count: read in memory order if dense.
    let source = match target.to_slice_memory_order() {
        Some(s) => Source::Slice(s),
        None => Source::new(target),
    };
    let len = source.len();
    let count = |k: usize, buf: &mut Vec<T>| {
        let start = k * CHUNK;
        count_zero_chunk(source.chunk(start, CHUNK.min(len - start), buf))
    };
    map_tasks(
        len >= PARALLEL_MIN_LEN,
        len.div_ceil(CHUNK),
        Vec::new,
        |buf, k| count(k, buf),
    )
    .into_iter()
    .sum()
}

/// Writes `coef_c * (pred - target)` into `out` (C order, same number of elements)
/// for each element's class `c`. With `with_stats`, also returns the class
/// statistics of the data (bitwise equal to [`class_stats`] of a C-contiguous copy);
/// without, returns `None` and skips that work (a backward pass, whose counts are
/// known, needs only the writes).
pub fn scaled_diff<T: Element>(
    pred: ArrayViewD<'_, T>,
    target: ArrayViewD<'_, T>,
    coef_zero: f64,
    coef_nonzero: f64,
    out: &mut [T],
    with_stats: bool,
) -> Result<Option<ClassStats>, ShapeError> {
    check_shapes(&pred, &target)?;
    assert_eq!(out.len(), pred.len(), "output length");
    let (pred, target) = (Source::new(pred), Source::new(target));
    let simd = Simd::active();
    let run = |k: usize, out: &mut [T], bufs: &mut (Vec<T>, Vec<T>)| {
        let start = k * CHUNK;
        let p = pred.chunk(start, out.len(), &mut bufs.0);
        let t = target.chunk(start, out.len(), &mut bufs.1);
        scaled_diff_chunk_with(simd, p, t, coef_zero, coef_nonzero, out, with_stats)
    };
    // Each task takes its own output chunk.
    let chunks: Vec<Mutex<Option<&mut [T]>>> =
        out.chunks_mut(CHUNK).map(|o| Mutex::new(Some(o))).collect();
    let partials = map_tasks(
        pred.len() >= PARALLEL_MIN_LEN,
        chunks.len(),
        || (Vec::new(), Vec::new()),
        |bufs, k| {
            let o = chunks[k]
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take()
                .expect("each output chunk is written once");
            run(k, o, bufs)
        },
    );
    let stats: ClassStats = partials.into_iter().sum();
    Ok(with_stats.then_some(stats))
}

/// Inputs up to this size (pred and target together) take the gradient's
/// fold-first order (see [`grad`]).
pub const GRAD_FOLD_FIRST_MAX_BYTES: usize = 32 << 20;

/// The gradient of ACB-MSE with respect to `pred`, written into `out` (C order),
/// and the class statistics of the data (for the loss). Two passes:
/// - large inputs (memory-bound): the target alone to count the classes, then both
///   inputs while folding the statistics and writing the gradient, which moves the
///   fewest bytes;
/// - inputs that fit in cache (compute-bound): the full fold first, then both
///   inputs again while only writing, which does the least work.
///
/// Both orders give bitwise the same statistics and gradient.
///
/// Weights are not checked here; see [`crate::stats::check_weights`].
pub fn grad<T: Element>(
    pred: ArrayViewD<'_, T>,
    target: ArrayViewD<'_, T>,
    zero_weighting: f64,
    nonzero_weighting: f64,
    out: &mut [T],
) -> Result<ClassStats, ShapeError> {
    check_shapes(&pred, &target)?;
    let bytes = 2 * pred.len() * std::mem::size_of::<T>();
    if bytes <= GRAD_FOLD_FIRST_MAX_BYTES {
        // Logical order, as the gradient pass folds (not `class_stats`, which may
        // read a non-C layout in memory order).
        let stats = fold_sources(&Source::new(pred.view()), &Source::new(target.view()));
        let (coef_zero, coef_nonzero) = stats.grad_coefficients(zero_weighting, nonzero_weighting);
        scaled_diff(pred, target, coef_zero, coef_nonzero, out, false)?;
        return Ok(stats);
    }
    let n_zero = count_zero(target.view());
    let counts = ClassStats {
        n_zero,
        n_nonzero: target.len() as u64 - n_zero,
        ..ClassStats::EMPTY
    };
    let (coef_zero, coef_nonzero) = counts.grad_coefficients(zero_weighting, nonzero_weighting);
    let stats = scaled_diff(pred, target, coef_zero, coef_nonzero, out, true)?;
    Ok(stats.expect("statistics were asked for"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{s, Array, ArrayD, IxDyn};

    /// Straightforward float64 reference.
    fn reference(pred: &[f64], target: &[f64]) -> ClassStats {
        let mut s = ClassStats::EMPTY;
        for (&p, &t) in pred.iter().zip(target) {
            let d2 = (p - t) * (p - t);
            if t == 0.0 {
                s.n_zero += 1;
                s.sse_zero += d2;
            } else {
                s.n_nonzero += 1;
                s.sse_nonzero += d2;
            }
        }
        s
    }

    /// Deterministic pseudo-random data with about `hit_rate` nonzero targets.
    fn data(n: usize, hit_rate: f64, seed: u64) -> (Vec<f64>, Vec<f64>) {
        let mut state = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let mut next = move || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        let target: Vec<f64> = (0..n)
            .map(|_| if next() < hit_rate { 1.0 + next() } else { 0.0 })
            .collect();
        let pred = target.iter().map(|t| t + next() - 0.5).collect();
        (pred, target)
    }

    fn view(v: &[f64]) -> ArrayViewD<'_, f64> {
        ArrayViewD::from_shape(IxDyn(&[v.len()]), v).unwrap()
    }

    fn assert_close(a: ClassStats, b: ClassStats, rtol: f64) {
        assert_eq!((a.n_zero, a.n_nonzero), (b.n_zero, b.n_nonzero));
        for (x, y) in [(a.sse_zero, b.sse_zero), (a.sse_nonzero, b.sse_nonzero)] {
            assert!((x - y).abs() <= rtol * y.abs(), "{x} vs {y}");
        }
    }

    fn in_pool<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> R {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(f)
    }

    #[test]
    fn matches_reference_across_sizes() {
        for n in [
            1,
            15,
            16,
            17,
            1000,
            CHUNK - 1,
            CHUNK,
            CHUNK + 1,
            3 * CHUNK + 123,
        ] {
            let (p, t) = data(n, 0.1, n as u64);
            let got = class_stats(view(&p), view(&t)).unwrap();
            assert_close(got, reference(&p, &t), 1e-13);
        }
    }

    #[test]
    fn f32_accumulates_in_f64() {
        let (p, t) = data(200_000, 0.05, 7);
        let p32: Vec<f32> = p.iter().map(|&x| x as f32).collect();
        let t32: Vec<f32> = t.iter().map(|&x| x as f32).collect();
        // The reference takes the difference in f32, as the kernel does, and squares
        // and sums in f64: the sums then agree to f64 rounding.
        let mut want = ClassStats::EMPTY;
        for (&p, &t) in p32.iter().zip(&t32) {
            let d2 = f64::from(p - t) * f64::from(p - t);
            if t == 0.0 {
                want.n_zero += 1;
                want.sse_zero += d2;
            } else {
                want.n_nonzero += 1;
                want.sse_nonzero += d2;
            }
        }
        // And within 2^-23 of the exact f64 computation.
        let widened = |v: &[f32]| v.iter().map(|&x| f64::from(x)).collect::<Vec<_>>();
        let exact = reference(&widened(&p32), &widened(&t32));
        let got = class_stats(
            ArrayViewD::from_shape(IxDyn(&[p32.len()]), &p32).unwrap(),
            ArrayViewD::from_shape(IxDyn(&[t32.len()]), &t32).unwrap(),
        )
        .unwrap();
        assert_close(got, want, 1e-12);
        assert_close(got, exact, 2.4e-7);
    }

    #[test]
    fn all_zero_and_all_nonzero_targets() {
        let pred = vec![1.0, 2.0, 3.0];
        let zeros = vec![0.0, -0.0, 0.0];
        let s = class_stats(view(&pred), view(&zeros)).unwrap();
        assert_eq!(
            (s.n_zero, s.n_nonzero, s.sse_zero, s.sse_nonzero),
            (3, 0, 14.0, 0.0)
        );
        assert_eq!(s.loss(1.0, 1.0), 14.0 / 3.0);
        let ones = vec![1.0; 3];
        let s = class_stats(view(&pred), view(&ones)).unwrap();
        assert_eq!(
            (s.n_zero, s.n_nonzero, s.sse_zero, s.sse_nonzero),
            (0, 3, 0.0, 5.0)
        );
    }

    #[test]
    fn empty_input() {
        let s = class_stats(view(&[]), view(&[])).unwrap();
        assert_eq!(s, ClassStats::EMPTY);
        assert_eq!(s.loss(1.0, 1.0), 0.0);
    }

    #[test]
    fn nan_and_inf_propagate_into_their_class_only() {
        let pred = vec![f64::NAN, 1.0, 0.0, 2.0];
        let target = vec![0.0, 1.0, f64::NAN, 0.0];
        let s = class_stats(view(&pred), view(&target)).unwrap();
        // A NaN target is nonzero.
        assert_eq!((s.n_zero, s.n_nonzero), (2, 2));
        assert!(s.sse_zero.is_nan() && s.sse_nonzero.is_nan());
        let s = class_stats(view(&[f64::INFINITY, 1.0]), view(&[1.0, 0.0])).unwrap();
        assert_eq!(s.sse_nonzero, f64::INFINITY);
        assert_eq!(s.sse_zero, 1.0);
    }

    #[test]
    fn parallel_equals_serial_bitwise() {
        let (p, t) = data(10 * CHUNK + 77, 0.02, 3);
        let one = in_pool(1, || class_stats(view(&p), view(&t)).unwrap());
        for threads in [2, 3, 8] {
            assert_eq!(
                in_pool(threads, || class_stats(view(&p), view(&t)).unwrap()),
                one
            );
        }
        let mut g1 = vec![0.0; p.len()];
        let mut g8 = vec![0.0; p.len()];
        let s1 = in_pool(1, || grad(view(&p), view(&t), 1.0, 2.0, &mut g1).unwrap());
        let s8 = in_pool(8, || grad(view(&p), view(&t), 1.0, 2.0, &mut g8).unwrap());
        assert_eq!(s1, s8);
        assert_eq!(s1, one);
        assert_eq!(g1, g8);
    }

    #[test]
    fn kernel_pool_with_caller_equals_serial_bitwise() {
        // Called from outside any rayon pool: the kernel pool and this thread share
        // the tasks.
        let (p, t) = data(20 * CHUNK + 5, 0.03, 23);
        let serial = in_pool(1, || class_stats(view(&p), view(&t)).unwrap());
        assert_eq!(class_stats(view(&p), view(&t)).unwrap(), serial);
        let mut g_serial = vec![0.0; p.len()];
        let mut g = vec![0.0; p.len()];
        in_pool(1, || {
            grad(view(&p), view(&t), 1.0, 3.0, &mut g_serial).unwrap()
        });
        grad(view(&p), view(&t), 1.0, 3.0, &mut g).unwrap();
        assert_eq!(g, g_serial);
        let pa =
            Array::from_shape_vec((20, p.len() / 20), p[..p.len() / 20 * 20].to_vec()).unwrap();
        let ta =
            Array::from_shape_vec((20, t.len() / 20), t[..t.len() / 20 * 20].to_vec()).unwrap();
        let per = per_sample_stats(pa.view().into_dyn(), ta.view().into_dyn()).unwrap();
        let per_serial = in_pool(1, || {
            per_sample_stats(pa.view().into_dyn(), ta.view().into_dyn()).unwrap()
        });
        assert_eq!(per, per_serial);
    }

    #[test]
    fn strided_equals_contiguous_copy_bitwise() {
        let (p, t) = data(6 * 70 * 400, 0.05, 11);
        let pa = Array::from_shape_vec((6, 70, 400), p).unwrap().into_dyn();
        let ta = Array::from_shape_vec((6, 70, 400), t).unwrap().into_dyn();
        let views = [
            (pa.view().reversed_axes(), ta.view().reversed_axes()),
            (
                pa.slice(s![..;-2, 3.., ..;3]).into_dyn(),
                ta.slice(s![..;-2, 3.., ..;3]).into_dyn(),
            ),
        ];
        for (pv, tv) in views {
            let (pc, tc) = (
                pv.as_standard_layout().into_owned(),
                tv.as_standard_layout().into_owned(),
            );
            let want = class_stats(pc.view(), tc.view()).unwrap();
            let got = class_stats(pv.clone(), tv.clone()).unwrap();
            assert_close(got, want, 1e-13);
            let want = per_sample_stats(pc.view(), tc.view()).unwrap();
            assert_eq!(per_sample_stats(pv.clone(), tv.clone()).unwrap(), want);
            let mut g_want = vec![0.0; pc.len()];
            let mut g_got = vec![0.0; pc.len()];
            let s_want = grad(pc.view(), tc.view(), 1.0, 1.0, &mut g_want).unwrap();
            assert_eq!(grad(pv, tv, 1.0, 1.0, &mut g_got).unwrap(), s_want);
            assert_eq!(g_got, g_want);
        }
        // Mixed: one contiguous, one strided (C order), bitwise.
        let tt = ta.view().reversed_axes().as_standard_layout().into_owned();
        let pt = pa.view().reversed_axes();
        let want = class_stats(pt.as_standard_layout().view(), tt.view()).unwrap();
        assert_eq!(class_stats(pt, tt.view()).unwrap(), want);
    }

    #[test]
    fn per_sample_equals_each_sample_alone() {
        for (n_samples, sample_len) in [(1, 5), (7, 100), (3, 2 * CHUNK + 5), (1, 3 * CHUNK)] {
            let (p, t) = data(n_samples * sample_len, 0.1, sample_len as u64);
            let pa = Array::from_shape_vec((n_samples, sample_len), p)
                .unwrap()
                .into_dyn();
            let ta = Array::from_shape_vec((n_samples, sample_len), t)
                .unwrap()
                .into_dyn();
            let got = per_sample_stats(pa.view(), ta.view()).unwrap();
            assert_eq!(got.len(), n_samples);
            for (k, stats) in got.iter().enumerate() {
                let alone = class_stats(
                    pa.slice(s![k, ..]).into_dyn(),
                    ta.slice(s![k, ..]).into_dyn(),
                )
                .unwrap();
                assert_eq!(*stats, alone);
            }
        }
    }

    #[test]
    fn gradient_matches_formula_and_finite_differences() {
        let (p, t) = data(3000, 0.2, 5);
        let (w0, w1) = (0.7, 1.9);
        let mut g = vec![0.0; p.len()];
        let s = grad(view(&p), view(&t), w0, w1, &mut g).unwrap();
        assert_eq!(s, class_stats(view(&p), view(&t)).unwrap());
        for i in [0, 1, 17, 999, 2999] {
            let (w, n) = if t[i] == 0.0 {
                (w0, s.n_zero)
            } else {
                (w1, s.n_nonzero)
            };
            let want = 2.0 * w * (p[i] - t[i]) / n as f64;
            assert!((g[i] - want).abs() <= 1e-15 * want.abs().max(1e-300));
            let h = 1e-6;
            let mut pp = p.clone();
            pp[i] += h;
            let up = class_stats(view(&pp), view(&t)).unwrap().loss(w0, w1);
            pp[i] -= 2.0 * h;
            let down = class_stats(view(&pp), view(&t)).unwrap().loss(w0, w1);
            assert!(((up - down) / (2.0 * h) - g[i]).abs() < 1e-7);
        }
    }

    #[test]
    fn every_simd_level_gives_bitwise_the_same_results() {
        let (p, t) = data(CHUNK - 3, 0.05, 21);
        let p32: Vec<f32> = p.iter().map(|&x| x as f32).collect();
        let t32: Vec<f32> = t.iter().map(|&x| x as f32).collect();
        let levels = [Simd::Baseline, Simd::Avx2, Simd::Avx512];
        let run = |simd: Simd| {
            let mut g64 = vec![0.0; p.len()];
            let mut g32 = vec![0.0f32; p.len()];
            (
                fold_chunk_with(simd, &p, &t),
                fold_chunk_with(simd, &p32, &t32),
                scaled_diff_chunk_with(simd, &p, &t, 0.3, -1.7, &mut g64, true),
                scaled_diff_chunk_with(simd, &p32, &t32, 0.3, -1.7, &mut g32, true),
                g64,
                g32,
            )
        };
        let want = run(Simd::Baseline);
        for simd in levels {
            assert_eq!(run(simd), want, "{simd:?} (detected {:?})", Simd::detect());
        }
    }

    #[test]
    fn scaled_diff_without_statistics_writes_the_same() {
        let (p, t) = data(3 * CHUNK + 5, 0.1, 19);
        let mut with = vec![0.0; p.len()];
        let mut without = vec![0.0; p.len()];
        let s = scaled_diff(view(&p), view(&t), 0.5, -1.5, &mut with, true).unwrap();
        assert_eq!(s, Some(class_stats(view(&p), view(&t)).unwrap()));
        let none = scaled_diff(view(&p), view(&t), 0.5, -1.5, &mut without, false).unwrap();
        assert_eq!(none, None);
        assert_eq!(with, without);
    }

    #[test]
    fn both_gradient_orders_agree_bitwise() {
        // Just above the fold-first limit, and the same data cut to just below it.
        let n = GRAD_FOLD_FIRST_MAX_BYTES / 16 + 3 * CHUNK + 7;
        let (p, t) = data(n, 0.02, 29);
        let mut g = vec![0.0; n];
        let s = grad(view(&p), view(&t), 0.5, 2.0, &mut g).unwrap();
        let small = GRAD_FOLD_FIRST_MAX_BYTES / 16;
        let mut g_small = vec![0.0; small];
        let s_small = grad(view(&p[..small]), view(&t[..small]), 0.5, 2.0, &mut g_small).unwrap();
        assert_eq!(s, class_stats(view(&p), view(&t)).unwrap());
        assert_eq!(
            s_small,
            class_stats(view(&p[..small]), view(&t[..small])).unwrap()
        );
        // Same coefficients give the same gradient whichever order computed them.
        let (c0, c1) = s_small.grad_coefficients(0.5, 2.0);
        let mut g_check = vec![0.0; small];
        scaled_diff(
            view(&p[..small]),
            view(&t[..small]),
            c0,
            c1,
            &mut g_check,
            true,
        )
        .unwrap();
        assert_eq!(g_small, g_check);
        let (c0, c1) = s.grad_coefficients(0.5, 2.0);
        let mut g_check = vec![0.0; n];
        scaled_diff(view(&p), view(&t), c0, c1, &mut g_check, false).unwrap();
        assert_eq!(g, g_check);
    }

    #[test]
    fn count_zero_counts_signed_zeros_only() {
        let t = vec![0.0, -0.0, f64::NAN, 1.0, 0.0];
        assert_eq!(count_zero(view(&t)), 3);
        let (_, big) = data(5 * CHUNK + 3, 0.3, 1);
        assert_eq!(
            count_zero(view(&big)),
            big.iter().filter(|&&x| x == 0.0).count() as u64
        );
    }

    #[test]
    fn shape_mismatch_is_an_error() {
        let a = ArrayD::<f64>::zeros(IxDyn(&[2, 3]));
        let b = ArrayD::<f64>::zeros(IxDyn(&[3, 2]));
        let err = class_stats(a.view(), b.view()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "pred and target must have the same shape, got pred [2, 3] and target [3, 2]"
        );
        assert!(per_sample_stats(a.view(), b.view()).is_err());
    }

    #[test]
    fn huge_broadcast_view_uses_64_bit_indices() {
        // 2^31 + 5 elements without allocating them: zero-stride views.
        let n = (1usize << 31) + 5;
        let p = ArrayD::from_elem(IxDyn(&[]), 1.0f32);
        let t = ArrayD::from_elem(IxDyn(&[]), 0.0f32);
        let pv = p.broadcast(IxDyn(&[n])).unwrap();
        let tv = t.broadcast(IxDyn(&[n])).unwrap();
        let s = class_stats(pv, tv).unwrap();
        assert_eq!(s.n_zero, n as u64);
        assert_eq!(s.sse_zero, n as f64);
    }
}

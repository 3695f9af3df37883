//! acbmse-rs: fast, correct ACB-MSE (Automatic Class-Balanced Mean Squared Error).
//!
//! Everything reduces to [`stats::ClassStats`]: the pure-Rust [`kernels`] fold
//! `(pred, target)` pairs into class counts and sums of squared errors (and write
//! the gradient), in parallel and deterministically. The `python` feature (on by
//! default) adds the thin binding layer that maturin builds into
//! `acbmse_rs._core`.

pub mod kernels;
pub mod layout;
pub mod stats;
pub mod threads;

#[cfg(feature = "python")]
mod python;

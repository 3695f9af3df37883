//! The one statistics type everything reduces to.
//!
//! A block of `(pred, target)` pairs is summarised by four numbers: how many
//! targets are zero and nonzero, and the sum of squared errors over each class.
//! [`ClassStats`] values form a commutative monoid under `+` (up to floating-point
//! rounding of the sums), so a dataset can be reduced chunk by chunk, sample by
//! sample, or on many machines, and the ACB-MSE of the whole is a function of the
//! merged statistics alone.

use std::fmt;
use std::ops::{Add, AddAssign};

/// Class counts and sums of squared errors of a block of `(pred, target)` pairs.
///
/// The zero class is `target == 0` (both `+0.0` and `-0.0`); every other target,
/// NaN included, is in the nonzero class.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ClassStats {
    /// Number of elements whose target is exactly zero.
    pub n_zero: u64,
    /// Number of elements whose target is nonzero (or NaN).
    pub n_nonzero: u64,
    /// Sum of `(pred - target)^2` over the zero class.
    pub sse_zero: f64,
    /// Sum of `(pred - target)^2` over the nonzero class.
    pub sse_nonzero: f64,
}

/// A class weight that is negative, NaN or infinite.
#[derive(Clone, Debug, PartialEq)]
pub struct WeightError {
    /// Which weight was rejected (`"zero_weighting"` or `"nonzero_weighting"`).
    pub name: &'static str,
    /// The value received.
    pub value: f64,
}

impl fmt::Display for WeightError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Spelled as Python spells floats (-1.0, nan, inf), since most callers are Python.
        let value = if self.value.is_nan() {
            "nan".to_string()
        } else {
            format!("{:?}", self.value)
        };
        write!(f, "{} must be a finite number >= 0, got {value}", self.name)
    }
}

impl std::error::Error for WeightError {}

/// Checks that both class weights are finite and non-negative.
pub fn check_weights(zero_weighting: f64, nonzero_weighting: f64) -> Result<(), WeightError> {
    for (name, value) in [
        ("zero_weighting", zero_weighting),
        ("nonzero_weighting", nonzero_weighting),
    ] {
        if !(value.is_finite() && value >= 0.0) {
            return Err(WeightError { name, value });
        }
    }
    Ok(())
}

/// Mean of a class: `sse / n`, or 0 for an empty class.
#[inline]
fn class_mean(sse: f64, n: u64) -> f64 {
    if n == 0 {
        0.0
    } else {
        sse / n as f64
    }
}

impl ClassStats {
    /// The statistics of nothing: the identity of `+`.
    pub const EMPTY: ClassStats = ClassStats {
        n_zero: 0,
        n_nonzero: 0,
        sse_zero: 0.0,
        sse_nonzero: 0.0,
    };

    /// Total number of elements.
    pub fn n_total(&self) -> u64 {
        self.n_zero + self.n_nonzero
    }

    /// Mean squared error over the zero class (0 when the class is empty).
    pub fn mse_zero(&self) -> f64 {
        class_mean(self.sse_zero, self.n_zero)
    }

    /// Mean squared error over the nonzero class (0 when the class is empty).
    pub fn mse_nonzero(&self) -> f64 {
        class_mean(self.sse_nonzero, self.n_nonzero)
    }

    /// ACB-MSE of everything these statistics summarise:
    /// `zero_weighting * mse_zero + nonzero_weighting * mse_nonzero`.
    ///
    /// Weights are not checked here; see [`check_weights`].
    pub fn loss(&self, zero_weighting: f64, nonzero_weighting: f64) -> f64 {
        // An empty class contributes exactly 0, even with a zero weight and no data.
        let mut loss = 0.0;
        if self.n_zero > 0 {
            loss += zero_weighting * self.mse_zero();
        }
        if self.n_nonzero > 0 {
            loss += nonzero_weighting * self.mse_nonzero();
        }
        loss
    }

    /// Gradient coefficients `(2 w0 / n0, 2 w1 / n1)`: the derivative of the loss
    /// with respect to `pred[i]` is `coef_c * (pred[i] - target[i])` for the class
    /// `c` of element `i`. An empty class gets coefficient 0 (it has no elements).
    pub fn grad_coefficients(&self, zero_weighting: f64, nonzero_weighting: f64) -> (f64, f64) {
        let coef = |w: f64, n: u64| if n == 0 { 0.0 } else { 2.0 * w / n as f64 };
        (
            coef(zero_weighting, self.n_zero),
            coef(nonzero_weighting, self.n_nonzero),
        )
    }
}

impl Add for ClassStats {
    type Output = ClassStats;

    #[inline]
    fn add(self, other: ClassStats) -> ClassStats {
        ClassStats {
            n_zero: self.n_zero + other.n_zero,
            n_nonzero: self.n_nonzero + other.n_nonzero,
            sse_zero: self.sse_zero + other.sse_zero,
            sse_nonzero: self.sse_nonzero + other.sse_nonzero,
        }
    }
}

impl AddAssign for ClassStats {
    #[inline]
    fn add_assign(&mut self, other: ClassStats) {
        *self = *self + other;
    }
}

impl std::iter::Sum for ClassStats {
    fn sum<I: Iterator<Item = ClassStats>>(iter: I) -> ClassStats {
        iter.fold(ClassStats::EMPTY, |a, b| a + b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(n0: u64, n1: u64, s0: f64, s1: f64) -> ClassStats {
        ClassStats {
            n_zero: n0,
            n_nonzero: n1,
            sse_zero: s0,
            sse_nonzero: s1,
        }
    }

    #[test]
    fn loss_weights_class_means() {
        let s = stats(4, 2, 8.0, 6.0);
        assert_eq!(s.loss(1.0, 1.0), 2.0 + 3.0);
        assert_eq!(s.loss(0.5, 2.0), 1.0 + 6.0);
    }

    #[test]
    fn empty_class_contributes_zero() {
        assert_eq!(stats(0, 3, 0.0, 3.0).loss(1.0, 1.0), 1.0);
        assert_eq!(stats(5, 0, 10.0, 0.0).loss(1.0, 7.0), 2.0);
        assert_eq!(ClassStats::EMPTY.loss(1.0, 1.0), 0.0);
    }

    #[test]
    fn merge_is_componentwise_and_has_identity() {
        let a = stats(1, 2, 0.5, 1.5);
        let b = stats(3, 4, 2.0, 4.0);
        assert_eq!(a + b, stats(4, 6, 2.5, 5.5));
        assert_eq!(a + ClassStats::EMPTY, a);
        assert_eq!([a, b].into_iter().sum::<ClassStats>(), a + b);
    }

    #[test]
    fn weights_are_checked() {
        assert!(check_weights(0.0, 2.5).is_ok());
        let err = check_weights(-1.0, 1.0).unwrap_err();
        assert_eq!(err.name, "zero_weighting");
        assert!(err.to_string().ends_with("got -1.0"));
        assert!(check_weights(1.0, f64::NAN)
            .unwrap_err()
            .to_string()
            .ends_with("got nan"));
        assert_eq!(
            check_weights(1.0, f64::NAN).unwrap_err().name,
            "nonzero_weighting"
        );
        assert!(check_weights(f64::INFINITY, 1.0).is_err());
    }

    #[test]
    fn grad_coefficients() {
        assert_eq!(
            stats(4, 2, 0.0, 0.0).grad_coefficients(1.0, 3.0),
            (0.5, 3.0)
        );
        assert_eq!(
            stats(0, 2, 0.0, 0.0).grad_coefficients(1.0, 1.0),
            (0.0, 1.0)
        );
    }
}

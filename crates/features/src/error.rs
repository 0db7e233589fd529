//! Input errors. Every public entry point validates its input and names the offending
//! element, so callers (and the Python facade, which turns these into `ValueError`) get a
//! precise message instead of NaN propagating silently.

/// Why an input was rejected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FeatureError {
    /// A price or volume is NaN or infinite.
    #[error("{what}[{index}] is not finite ({value})")]
    NonFinite {
        what: &'static str,
        index: usize,
        value: f64,
    },
    /// Feature prices must be strictly positive (they are divided by).
    #[error("{what}[{index}] must be > 0 (got {value})")]
    NonPositive {
        what: &'static str,
        index: usize,
        value: f64,
    },
    /// Volumes must be >= 0.
    #[error("{what}[{index}] must be >= 0 (got {value})")]
    Negative {
        what: &'static str,
        index: usize,
        value: f64,
    },
    /// Two inputs that must be aligned have different lengths.
    #[error("length mismatch: {left} has {left_len} elements, {right} has {right_len}")]
    LengthMismatch {
        left: &'static str,
        left_len: usize,
        right: &'static str,
        right_len: usize,
    },
    /// A period of 0 (or otherwise unusable parameter).
    #[error("invalid parameter {name}: {reason}")]
    InvalidParameter {
        name: &'static str,
        reason: &'static str,
    },
    /// A backtest signal outside {-1, 0, 1}.
    #[error("signals[{index}] must be -1, 0 or 1 (got {value})")]
    InvalidSignal { index: usize, value: i64 },
}

pub(crate) fn check_finite(what: &'static str, xs: &[f64]) -> Result<(), FeatureError> {
    // Fast path: one branch-free pass, then locate the culprit only on failure.
    if xs.iter().all(|x| x.is_finite()) {
        return Ok(());
    }
    let index = xs.iter().position(|x| !x.is_finite()).unwrap_or(0);
    Err(FeatureError::NonFinite {
        what,
        index,
        value: xs[index],
    })
}

pub(crate) fn check_period(name: &'static str, period: usize) -> Result<(), FeatureError> {
    if period == 0 {
        return Err(FeatureError::InvalidParameter {
            name,
            reason: "must be >= 1",
        });
    }
    Ok(())
}

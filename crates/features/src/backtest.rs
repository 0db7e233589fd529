//! Fast single-instrument backtest (seed §4.2), made precise.
//!
//! * `signals[t]` ∈ {-1, 0, 1} is the **target position** (one unit short, flat, one unit
//!   long) taken at `prices[t]` and held until tick `t + 1`.
//! * Mark to market: `equity[t] = equity[t-1] + position[t-1] * (prices[t] - prices[t-1])`,
//!   starting flat with `equity = 0` before tick 0.
//! * Each change of position is one trade and costs
//!   `commission * |position[t] - position[t-1]| * prices[t]` (proportional commission on
//!   traded notional: a reversal trades two units), deducted at tick `t`.
//! * The last position is left open (marked at the last price, no closing commission).
//! * `pnl = equity[len - 1]` (0 for empty input).

use crate::error::{check_finite, FeatureError};

/// Outcome of [`backtest`].
#[derive(Debug, Clone, PartialEq)]
pub struct BacktestResult {
    /// Final equity.
    pub pnl: f64,
    /// Number of position changes.
    pub trades: u64,
    /// Equity after each tick, aligned with the input.
    pub equity: Vec<f64>,
}

/// Run the backtest. Signals may be any integer type (numpy `int8`..`int64`).
pub fn backtest<S>(
    prices: &[f64],
    signals: &[S],
    commission: f64,
) -> Result<BacktestResult, FeatureError>
where
    S: Copy + Into<i64>,
{
    if prices.len() != signals.len() {
        return Err(FeatureError::LengthMismatch {
            left: "prices",
            left_len: prices.len(),
            right: "signals",
            right_len: signals.len(),
        });
    }
    if !commission.is_finite() || commission < 0.0 {
        return Err(FeatureError::InvalidParameter {
            name: "commission",
            reason: "must be finite and >= 0",
        });
    }
    check_finite("prices", prices)?;
    let mut equity = Vec::with_capacity(prices.len());
    let mut pos: i64 = 0;
    let mut eq = 0.0_f64;
    let mut trades = 0_u64;
    let mut prev = prices.first().copied().unwrap_or(0.0);
    for (index, (&p, &s)) in prices.iter().zip(signals).enumerate() {
        let s: i64 = s.into();
        if !(-1..=1).contains(&s) {
            return Err(FeatureError::InvalidSignal { index, value: s });
        }
        eq += pos as f64 * (p - prev);
        if s != pos {
            eq -= commission * (s - pos).abs() as f64 * p;
            trades += 1;
            pos = s;
        }
        equity.push(eq);
        prev = p;
    }
    Ok(BacktestResult {
        pnl: equity.last().copied().unwrap_or(0.0),
        trades,
        equity,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed() {
        // long at 10 (cost 0.01*10), 12: +2, reverse at 12 (cost 0.01*2*12),
        // 11: short gains +1, flat at 11 (cost 0.01*11)
        let r = backtest(&[10.0, 12.0, 12.0, 11.0, 11.0], &[1i32, 1, -1, 0, 0], 0.01).unwrap();
        assert_eq!(r.trades, 3);
        let expected = [-0.1, 1.9, 1.9 - 0.24, 1.66 + 1.0 - 0.11, 2.55];
        for (a, b) in r.equity.iter().zip(expected) {
            assert!((a - b).abs() < 1e-12, "{a} vs {b}");
        }
        assert_eq!(r.pnl, *r.equity.last().unwrap());
    }

    #[test]
    fn empty_and_errors() {
        let r = backtest::<i64>(&[], &[], 0.0).unwrap();
        assert_eq!((r.pnl, r.trades, r.equity.len()), (0.0, 0, 0));
        assert!(matches!(
            backtest(&[1.0, 2.0], &[0i64, 2], 0.0),
            Err(FeatureError::InvalidSignal { index: 1, value: 2 })
        ));
        assert!(backtest(&[1.0], &[0i64, 0], 0.0).is_err());
        assert!(backtest(&[1.0], &[0i64], -0.1).is_err());
        assert!(backtest(&[f64::INFINITY], &[0i64], 0.0).is_err());
    }
}

//! Streaming indicator primitives and their batch forms.
//!
//! Every batch function is a loop over the streaming primitive, so batch and per-tick
//! results are bit-for-bit identical. Batch outputs are aligned with the input: element
//! `t` describes the series up to and including `t`, and is NaN while the indicator is
//! still warming up (see each type for its exact warm-up).

use crate::error::{check_finite, check_period, FeatureError};

/// Exponential moving average, `alpha = 2 / (period + 1)`, seeded with the simple mean of
/// the first `period` inputs (the TA-Lib convention): the first value is produced by
/// input number `period` (index `period - 1`); afterwards
/// `ema += alpha * (x - ema)`.
#[derive(Debug, Clone)]
pub struct Ema {
    period: usize,
    alpha: f64,
    count: usize,
    sum: f64,
    value: f64,
}

impl Ema {
    /// `period` must be >= 1.
    pub fn new(period: usize) -> Self {
        let period = period.max(1);
        Self {
            period,
            alpha: 2.0 / (period as f64 + 1.0),
            count: 0,
            sum: 0.0,
            value: f64::NAN,
        }
    }

    /// Feed one value; `None` during warm-up.
    #[inline]
    pub fn update(&mut self, x: f64) -> Option<f64> {
        if self.count < self.period {
            self.sum += x;
            self.count += 1;
            if self.count < self.period {
                return None;
            }
            self.value = self.sum / self.period as f64;
            return Some(self.value);
        }
        self.value += self.alpha * (x - self.value);
        Some(self.value)
    }
}

/// Wilder's RSI. `delta_t = p_t - p_{t-1}`; gains `max(delta, 0)`, losses `max(-delta, 0)`.
/// The first averages are the simple means of the first `period` gains/losses (available at
/// index `period`); then `avg = (avg * (period - 1) + x) / period`.
/// `RSI = 100 - 100 / (1 + avg_gain / avg_loss)`; when `avg_loss == 0` it is 100, or 50
/// when `avg_gain == 0` too (flat series).
#[derive(Debug, Clone)]
pub struct Rsi {
    period: usize,
    prev: Option<f64>,
    count: usize,
    avg_gain: f64,
    avg_loss: f64,
}

impl Rsi {
    /// `period` must be >= 1.
    pub fn new(period: usize) -> Self {
        Self {
            period: period.max(1),
            prev: None,
            count: 0,
            avg_gain: 0.0,
            avg_loss: 0.0,
        }
    }

    /// Feed one price; `None` during warm-up (the first `period` prices).
    #[inline]
    pub fn update(&mut self, price: f64) -> Option<f64> {
        let prev = self.prev.replace(price)?;
        let delta = price - prev;
        // Branch-free (a random walk makes `delta > 0` unpredictable); same values as
        // `if delta > 0 { (delta, 0) } else { (0, -delta) }` (input is finite).
        let gain = delta.max(0.0);
        let loss = (-delta).max(0.0);
        let p = self.period as f64;
        if self.count < self.period {
            // Accumulate sums in avg_* until the first average.
            self.avg_gain += gain;
            self.avg_loss += loss;
            self.count += 1;
            if self.count < self.period {
                return None;
            }
            self.avg_gain /= p;
            self.avg_loss /= p;
        } else {
            // Multiply by the reciprocal: one division fewer per value (differs from
            // `/ p` by at most 1 ulp per step).
            let inv = 1.0 / p;
            self.avg_gain = (self.avg_gain * (p - 1.0) + gain) * inv;
            self.avg_loss = (self.avg_loss * (p - 1.0) + loss) * inv;
        }
        Some(rsi_value(self.avg_gain, self.avg_loss))
    }
}

#[inline]
fn rsi_value(avg_gain: f64, avg_loss: f64) -> f64 {
    if avg_loss == 0.0 {
        if avg_gain == 0.0 {
            50.0
        } else {
            100.0
        }
    } else {
        // == 100 - 100 / (1 + avg_gain / avg_loss), with one division
        100.0 * avg_gain / (avg_gain + avg_loss)
    }
}

/// One MACD observation. `line = EMA_fast - EMA_slow` (from index `slow - 1`, or
/// `max(fast, slow) - 1`); `signal = EMA_signal(line)` seeded like [`Ema`] from the first
/// `signal` line values (from index `slow + signal - 2`); `histogram = line - signal`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MacdPoint {
    pub line: f64,
    /// NaN while the signal EMA warms up.
    pub signal: f64,
    /// NaN while the signal EMA warms up.
    pub histogram: f64,
}

/// Streaming MACD(fast, slow, signal).
#[derive(Debug, Clone)]
pub struct Macd {
    fast: Ema,
    slow: Ema,
    signal: Ema,
}

impl Macd {
    pub fn new(fast: usize, slow: usize, signal: usize) -> Self {
        Self {
            fast: Ema::new(fast),
            slow: Ema::new(slow),
            signal: Ema::new(signal),
        }
    }

    /// Feed one price; `None` until the MACD line exists.
    #[inline]
    pub fn update(&mut self, price: f64) -> Option<MacdPoint> {
        let f = self.fast.update(price);
        let s = self.slow.update(price);
        let line = f? - s?;
        let signal = self.signal.update(line).unwrap_or(f64::NAN);
        Some(MacdPoint {
            line,
            signal,
            histogram: line - signal,
        })
    }
}

/// Fixed-capacity window over the latest values, stored twice so the latest `k` values
/// are always one contiguous slice (oldest first).
#[derive(Debug, Clone)]
pub(crate) struct Window {
    cap: usize,
    pos: usize,
    len: usize,
    buf: Vec<f64>,
}

impl Window {
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            cap,
            pos: cap - 1,
            len: 0,
            buf: vec![0.0; 2 * cap],
        }
    }

    #[inline]
    pub(crate) fn push(&mut self, x: f64) {
        self.pos = if self.pos + 1 == self.cap {
            0
        } else {
            self.pos + 1
        };
        self.buf[self.pos] = x;
        self.buf[self.pos + self.cap] = x;
        if self.len < self.cap {
            self.len += 1;
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The latest `k <= len` values, oldest first.
    #[inline]
    pub(crate) fn latest(&self, k: usize) -> &[f64] {
        debug_assert!(k <= self.len && k <= self.cap);
        let end = self.pos + self.cap + 1;
        &self.buf[end - k..end]
    }
}

/// Arithmetic mean, summed oldest to newest.
#[inline]
pub(crate) fn mean(xs: &[f64]) -> f64 {
    xs.iter().sum::<f64>() / xs.len() as f64
}

/// Population standard deviation around `mu` (two-pass: no cancellation).
#[inline]
pub(crate) fn std_around(xs: &[f64], mu: f64) -> f64 {
    (xs.iter().map(|x| (x - mu) * (x - mu)).sum::<f64>() / xs.len() as f64).sqrt()
}

/// Batch [`Ema`]: NaN for indices `< period - 1`.
pub fn ema(prices: &[f64], period: usize) -> Result<Vec<f64>, FeatureError> {
    check_period("period", period)?;
    check_finite("prices", prices)?;
    let mut e = Ema::new(period);
    Ok(prices
        .iter()
        .map(|&p| e.update(p).unwrap_or(f64::NAN))
        .collect())
}

/// Batch [`Rsi`]: NaN for indices `< period`.
pub fn rsi(prices: &[f64], period: usize) -> Result<Vec<f64>, FeatureError> {
    check_period("period", period)?;
    check_finite("prices", prices)?;
    let mut r = Rsi::new(period);
    Ok(prices
        .iter()
        .map(|&p| r.update(p).unwrap_or(f64::NAN))
        .collect())
}

/// `(line, signal, histogram)` series of [`macd`].
pub type MacdSeries = (Vec<f64>, Vec<f64>, Vec<f64>);

/// Batch [`Macd`]: `(line, signal, histogram)`, each aligned with `prices`, NaN during
/// warm-up.
pub fn macd(
    prices: &[f64],
    fast: usize,
    slow: usize,
    signal: usize,
) -> Result<MacdSeries, FeatureError> {
    check_period("fast", fast)?;
    check_period("slow", slow)?;
    check_period("signal", signal)?;
    check_finite("prices", prices)?;
    let n = prices.len();
    let (mut line, mut sig, mut hist) = (vec![f64::NAN; n], vec![f64::NAN; n], vec![f64::NAN; n]);
    let mut m = Macd::new(fast, slow, signal);
    let outs = line.iter_mut().zip(sig.iter_mut()).zip(hist.iter_mut());
    for (&p, ((l, s), h)) in prices.iter().zip(outs) {
        if let Some(pt) = m.update(p) {
            (*l, *s, *h) = (pt.line, pt.signal, pt.histogram);
        }
    }
    Ok((line, sig, hist))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ema_is_seeded_with_the_simple_mean() {
        let out = ema(&[1.0, 2.0, 3.0, 4.0], 3).unwrap();
        assert!(out[0].is_nan() && out[1].is_nan());
        assert_eq!(out[2], 2.0);
        assert_eq!(out[3], 2.0 + 0.5 * (4.0 - 2.0));
    }

    #[test]
    fn rsi_hand_computed() {
        // period 2: deltas +1, -1, +2
        let out = rsi(&[10.0, 11.0, 10.0, 12.0], 2).unwrap();
        assert!(out[0].is_nan() && out[1].is_nan());
        // avg gain 0.5, avg loss 0.5 -> 50
        assert_eq!(out[2], 50.0);
        // gain (0.5*1+2)/2 = 1.25, loss (0.5*1+0)/2 = 0.25 -> 100 - 100/6
        assert!((out[3] - (100.0 - 100.0 / 6.0)).abs() < 1e-12);
    }

    #[test]
    fn rsi_flat_and_monotone() {
        assert!(rsi(&[5.0; 30], 14).unwrap()[14..]
            .iter()
            .all(|&v| v == 50.0));
        let up: Vec<f64> = (0..30).map(f64::from).collect();
        assert!(rsi(&up, 14).unwrap()[14..].iter().all(|&v| v == 100.0));
    }

    #[test]
    fn macd_warmup_indices() {
        let p: Vec<f64> = (0..40)
            .map(|i| 100.0 + (f64::from(i) * 0.3).sin())
            .collect();
        let (line, sig, hist) = macd(&p, 12, 26, 9).unwrap();
        assert!(line[24].is_nan() && !line[25].is_nan());
        assert!(sig[32].is_nan() && !sig[33].is_nan());
        assert_eq!(hist[33], line[33] - sig[33]);
    }

    #[test]
    fn window_latest_is_contiguous_and_ordered() {
        let mut w = Window::new(3);
        for x in 1..=5 {
            w.push(f64::from(x));
        }
        assert_eq!(w.len(), 3);
        assert_eq!(w.latest(3), &[3.0, 4.0, 5.0]);
        assert_eq!(w.latest(2), &[4.0, 5.0]);
    }

    #[test]
    fn rejects_nan_and_zero_period() {
        assert!(matches!(
            rsi(&[1.0, f64::NAN], 14),
            Err(FeatureError::NonFinite { index: 1, .. })
        ));
        assert!(matches!(
            ema(&[1.0], 0),
            Err(FeatureError::InvalidParameter { .. })
        ));
    }
}

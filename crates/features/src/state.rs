//! The 7 model features, per tick ([`FeatureState`]) and in batch ([`features`]).

use crate::error::{check_finite, FeatureError};
use crate::indicators::{mean, std_around, Macd, Rsi, Window};
use crate::{
    BB_K, BB_PERIOD, FLAT_BAND_REL, MACD_FAST, MACD_SIGNAL, MACD_SLOW, MA_LONG, MA_SHORT,
    MOMENTUM_PERIOD, N_FEATURES, RSI_PERIOD, VOLUME_PERIOD, WARMUP,
};

/// One feature row, in [`crate::FEATURE_NAMES`] order.
pub type FeatureRow = [f64; N_FEATURES];

/// Incremental feature computation for one instrument: feed every tick in order.
#[derive(Debug, Clone)]
pub struct FeatureState {
    rsi: Rsi,
    macd: Macd,
    prices: Window,
    volumes: Window,
    ticks: usize,
}

impl Default for FeatureState {
    fn default() -> Self {
        Self::new()
    }
}

impl FeatureState {
    pub fn new() -> Self {
        Self {
            rsi: Rsi::new(RSI_PERIOD),
            macd: Macd::new(MACD_FAST, MACD_SLOW, MACD_SIGNAL),
            prices: Window::new(MA_LONG.max(BB_PERIOD).max(MOMENTUM_PERIOD + 1)),
            volumes: Window::new(VOLUME_PERIOD),
            ticks: 0,
        }
    }

    /// Ticks accepted so far.
    pub fn ticks(&self) -> usize {
        self.ticks
    }

    /// Feed one tick. `Ok(None)` for the first `WARMUP - 1` ticks, then `Ok(Some(row))`
    /// on every tick. A rejected tick (`price` not finite or `<= 0`, `volume` not finite
    /// or `< 0`) returns `Err` and leaves the state unchanged.
    #[inline]
    pub fn update(&mut self, price: f64, volume: f64) -> Result<Option<FeatureRow>, FeatureError> {
        validate_tick(self.ticks, price, volume)?;
        Ok(self.update_unchecked(price, volume))
    }

    #[inline]
    fn update_unchecked(&mut self, price: f64, volume: f64) -> Option<FeatureRow> {
        self.ticks += 1;
        let rsi = self.rsi.update(price);
        let macd = self.macd.update(price);
        self.prices.push(price);
        self.volumes.push(volume);
        if self.ticks < WARMUP {
            return None;
        }
        // After WARMUP ticks every component is warm (asserted by the const checks in lib.rs).
        let rsi = rsi.unwrap_or(f64::NAN);
        let hist = macd.map_or(f64::NAN, |m| m.histogram);

        let bb_window = self.prices.latest(BB_PERIOD);
        let bb_mid = mean(bb_window);
        let bb_sd = std_around(bb_window, bb_mid);
        let bb_pos = if bb_sd <= FLAT_BAND_REL * bb_mid.abs() {
            0.5
        } else {
            let lower = bb_mid - BB_K * bb_sd;
            let upper = bb_mid + BB_K * bb_sd;
            (price - lower) / (upper - lower)
        };
        let ma_short = if MA_SHORT == BB_PERIOD {
            bb_mid
        } else {
            mean(self.prices.latest(MA_SHORT))
        };
        let ma_long = mean(self.prices.latest(MA_LONG));
        let vol_mean = mean(self.volumes.latest(VOLUME_PERIOD));
        let volume_ratio = if vol_mean > 0.0 {
            volume / vol_mean
        } else {
            1.0
        };
        let past = self.prices.latest(MOMENTUM_PERIOD + 1)[0];

        Some([
            rsi,
            hist / price,
            bb_pos,
            price / ma_short - 1.0,
            price / ma_long - 1.0,
            volume_ratio,
            price / past - 1.0,
        ])
    }
}

#[inline]
fn validate_tick(index: usize, price: f64, volume: f64) -> Result<(), FeatureError> {
    if !price.is_finite() {
        return Err(FeatureError::NonFinite {
            what: "prices",
            index,
            value: price,
        });
    }
    if price <= 0.0 {
        return Err(FeatureError::NonPositive {
            what: "prices",
            index,
            value: price,
        });
    }
    if !volume.is_finite() {
        return Err(FeatureError::NonFinite {
            what: "volumes",
            index,
            value: volume,
        });
    }
    if volume < 0.0 {
        return Err(FeatureError::Negative {
            what: "volumes",
            index,
            value: volume,
        });
    }
    Ok(())
}

/// Batch features: a row-major `len × N_FEATURES` matrix aligned with the input; rows
/// `0..WARMUP-1` are NaN. Identical, bit for bit, to feeding [`FeatureState::update`].
/// The whole input is validated first: nothing is computed for a bad series.
pub fn features(prices: &[f64], volumes: &[f64]) -> Result<Vec<f64>, FeatureError> {
    if prices.len() != volumes.len() {
        return Err(FeatureError::LengthMismatch {
            left: "prices",
            left_len: prices.len(),
            right: "volumes",
            right_len: volumes.len(),
        });
    }
    check_finite("prices", prices)?;
    check_finite("volumes", volumes)?;
    for (i, (&p, &v)) in prices.iter().zip(volumes).enumerate() {
        validate_tick(i, p, v)?;
    }
    let mut out = vec![f64::NAN; prices.len() * N_FEATURES];
    let mut state = FeatureState::new();
    for (row, (&p, &v)) in out
        .chunks_exact_mut(N_FEATURES)
        .zip(prices.iter().zip(volumes))
    {
        if let Some(r) = state.update_unchecked(p, v) {
            row.copy_from_slice(&r);
        }
    }
    Ok(out)
}

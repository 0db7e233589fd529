//! # tradewire-features
//!
//! The model features, computed by the same Rust code for training (through the PyO3
//! module `tradewire._features`) and for live inference (`signal-bridge`), so the
//! "feature order must match Python training" risk of the seed design cannot arise: the
//! order is [`FEATURE_NAMES`], stored with every registered model and checked before
//! inference.
//!
//! ## The 7 features (row `t`, price `p_t`, volume `v_t`)
//!
//! | # | name | definition |
//! |---|---|---|
//! | 0 | `rsi` | Wilder RSI(14) in [0, 100] ([`indicators::Rsi`]); 50 on a flat series |
//! | 1 | `macd` | MACD histogram, `(EMA12 − EMA26) − EMA9(EMA12 − EMA26)`, divided by `p_t` ([`indicators::Macd`]) |
//! | 2 | `bollinger_bands` | %B: `(p_t − lower) / (upper − lower)` with `mid = SMA20`, `upper/lower = mid ± 2σ` (population σ of the same 20 prices); 0.5 when `σ ≤ 1e-12·|mid|` (flat window) |
//! | 3 | `moving_average_20` | `p_t / SMA20 − 1` |
//! | 4 | `moving_average_50` | `p_t / SMA50 − 1` |
//! | 5 | `volume_ratio` | `v_t / mean(v_{t−19..=t})`; 1 when that mean is 0 |
//! | 6 | `price_momentum` | `p_t / p_{t−10} − 1` (10-tick rate of change) |
//!
//! EMAs use `alpha = 2/(n+1)` and are seeded with the simple mean of their first `n`
//! inputs. Price-denominated features are divided by the price so a model trained at one
//! price level applies at another.
//!
//! ## Warm-up and NaN policy
//!
//! * A row exists once every window is full: the first row is produced by tick
//!   [`WARMUP`] = 50 (index 49; SMA50 is the longest window, the MACD signal needs 34).
//!   [`FeatureState::update`] returns `Ok(None)` before that; batch [`features`] fills
//!   rows `0..49` with NaN so output rows stay aligned with input ticks.
//! * Input is never allowed to produce NaN silently: a NaN/±inf price or volume, a price
//!   `<= 0` or a volume `< 0` is an error ([`FeatureError`]) naming the element. Batch
//!   calls validate everything before computing; a rejected tick leaves a
//!   [`FeatureState`] unchanged.
//! * The raw indicator functions ([`rsi`], [`macd`], [`ema`]) accept any finite prices and
//!   return NaN only for their own warm-up indices.
//!
//! Batch functions are loops over the streaming types, so batch and per-tick results are
//! identical bit for bit.
//!
//! ## Backtest
//!
//! [`backtest`]: see [`backtest::backtest`] for the exact accounting.

pub mod backtest;
mod error;
pub mod indicators;
mod state;

pub use backtest::{backtest, BacktestResult};
pub use error::FeatureError;
pub use indicators::{ema, macd, rsi, Ema, Macd, MacdPoint, Rsi};
pub use state::{features, FeatureRow, FeatureState};

/// Number of model features.
pub const N_FEATURES: usize = 7;

/// Feature names, in model-input order. Python's `tradewire.features.FEATURE_NAMES` is
/// this constant (exported through PyO3), and the model registry stores it per model.
pub const FEATURE_NAMES: [&str; N_FEATURES] = [
    "rsi",
    "macd",
    "bollinger_bands",
    "moving_average_20",
    "moving_average_50",
    "volume_ratio",
    "price_momentum",
];

pub const RSI_PERIOD: usize = 14;
pub const MACD_FAST: usize = 12;
pub const MACD_SLOW: usize = 26;
pub const MACD_SIGNAL: usize = 9;
pub const BB_PERIOD: usize = 20;
pub const BB_K: f64 = 2.0;
pub const MA_SHORT: usize = 20;
pub const MA_LONG: usize = 50;
pub const VOLUME_PERIOD: usize = 20;
pub const MOMENTUM_PERIOD: usize = 10;
/// A Bollinger window whose σ is at most this fraction of its mean counts as flat (%B = 0.5).
pub const FLAT_BAND_REL: f64 = 1e-12;

/// Ticks needed before the first feature row (the longest window).
pub const WARMUP: usize = 50;

// Every component must be warm by tick WARMUP.
const _: () = {
    assert!(RSI_PERIOD < WARMUP);
    assert!(MACD_SLOW + MACD_SIGNAL - 1 <= WARMUP && MACD_FAST <= MACD_SLOW);
    assert!(BB_PERIOD <= WARMUP && MA_SHORT <= WARMUP && MA_LONG <= WARMUP);
    assert!(VOLUME_PERIOD <= WARMUP && MOMENTUM_PERIOD < WARMUP);
    assert!(WARMUP == MA_LONG);
};

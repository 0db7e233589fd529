//! Rust-side benchmark of the batch indicators and the backtest (issue 5 goals: RSI and
//! MACD on 1M points <= 5 ms, backtest on 1M ticks <= 5 ms).
//!
//! ```text
//! cargo run --release -p tradewire-features --example bench_features [-- POINTS [ROUNDS]]
//! ```
//!
//! Prints one JSON object: milliseconds per call, best of ROUNDS (default 1_000_000 points,
//! 20 rounds), plus the mean per-tick cost of `FeatureState::update`.

use std::hint::black_box;
use std::time::Instant;

use tradewire_features::{backtest, ema, features, macd, rsi, FeatureState};

/// Deterministic random walk (xorshift64): prices, volumes and signals in -1..=1.
fn walk(n: usize) -> (Vec<f64>, Vec<f64>, Vec<i64>) {
    let mut s: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut p = 100.0;
    let mut prices = Vec::with_capacity(n);
    let mut volumes = Vec::with_capacity(n);
    let mut signals = Vec::with_capacity(n);
    for _ in 0..n {
        p *= 1.0 + (next() - 0.5) * 0.004;
        prices.push(p);
        volumes.push((next() * 5000.0).floor());
        signals.push((next() * 3.0).floor() as i64 - 1);
    }
    (prices, volumes, signals)
}

/// Best wall time of `rounds` calls, in milliseconds.
fn best_ms<T>(rounds: usize, mut f: impl FnMut() -> T) -> f64 {
    (0..rounds)
        .map(|_| {
            let t0 = Instant::now();
            black_box(f());
            t0.elapsed().as_secs_f64() * 1e3
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let points: usize = args
        .next()
        .map_or(1_000_000, |a| a.parse().expect("POINTS"));
    let rounds: usize = args.next().map_or(20, |a| a.parse().expect("ROUNDS"));
    assert!(
        points >= 100 && rounds >= 1,
        "want POINTS >= 100 and ROUNDS >= 1"
    );
    let (prices, volumes, signals) = walk(points);
    let px = black_box(prices.as_slice());

    let rsi_ms = best_ms(rounds, || rsi(px, 14).expect("finite prices"));
    let ema_ms = best_ms(rounds, || ema(px, 12).expect("finite prices"));
    let macd_ms = best_ms(rounds, || macd(px, 12, 26, 9).expect("finite prices"));
    let bt_ms = best_ms(rounds, || {
        backtest(px, black_box(&signals), 0.001).expect("valid signals")
    });
    let features_ms = best_ms(rounds.min(5), || {
        features(px, black_box(&volumes)).expect("valid input")
    });
    let tick_ns = best_ms(rounds.min(5), || {
        let mut st = FeatureState::new();
        let mut rows = 0usize;
        for (&p, &v) in px.iter().zip(&volumes) {
            rows += usize::from(st.update(p, v).expect("valid input").is_some());
        }
        rows
    }) * 1e6
        / points as f64;

    println!(
        "{{\"points\": {points}, \"rounds\": {rounds}, \"rsi_ms\": {rsi_ms:.3}, \
         \"ema12_ms\": {ema_ms:.3}, \"macd_ms\": {macd_ms:.3}, \"backtest_ms\": {bt_ms:.3}, \
         \"features_ms\": {features_ms:.3}, \"feature_state_update_ns\": {tick_ns:.1}}}"
    );
}

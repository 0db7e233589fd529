//! Batch == per tick (bit for bit), warm-up boundaries and edge cases.

use tradewire_features::{features, FeatureError, FeatureState, FEATURE_NAMES, N_FEATURES, WARMUP};

/// Deterministic pseudo-random walk (xorshift; no rand dependency).
fn series(n: usize, seed: u64) -> (Vec<f64>, Vec<f64>) {
    let mut s = seed;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut p = 100.0;
    let mut prices = Vec::with_capacity(n);
    let mut volumes = Vec::with_capacity(n);
    for _ in 0..n {
        p *= 1.0 + (next() - 0.5) * 0.02;
        prices.push(p);
        volumes.push((next() * 1000.0).floor());
    }
    (prices, volumes)
}

#[test]
fn incremental_equals_batch_bit_for_bit() {
    let (p, v) = series(5000, 42);
    let batch = features(&p, &v).unwrap();
    let mut st = FeatureState::new();
    for t in 0..p.len() {
        let row = st.update(p[t], v[t]).unwrap();
        let b = &batch[t * N_FEATURES..(t + 1) * N_FEATURES];
        match row {
            None => {
                assert!(t < WARMUP - 1, "no row at {t}");
                assert!(b.iter().all(|x| x.is_nan()));
            }
            Some(r) => {
                assert!(t >= WARMUP - 1);
                for (a, c) in r.iter().zip(b) {
                    assert_eq!(a.to_bits(), c.to_bits(), "tick {t}");
                }
            }
        }
    }
}

#[test]
fn rows_are_finite_after_warmup() {
    let (p, v) = series(2000, 7);
    let f = features(&p, &v).unwrap();
    assert!(f[(WARMUP - 1) * N_FEATURES..].iter().all(|x| x.is_finite()));
    assert_eq!(FEATURE_NAMES.len(), N_FEATURES);
}

#[test]
fn short_series_is_all_nan() {
    let (p, v) = series(WARMUP - 1, 3);
    let f = features(&p, &v).unwrap();
    assert_eq!(f.len(), (WARMUP - 1) * N_FEATURES);
    assert!(f.iter().all(|x| x.is_nan()));
    assert!(features(&[], &[]).unwrap().is_empty());
}

#[test]
fn constant_prices() {
    let f = features(&[0.1; 60], &[5.0; 60]).unwrap();
    let row = &f[(WARMUP - 1) * N_FEATURES..WARMUP * N_FEATURES];
    assert_eq!(row[0], 50.0);
    assert!(row[1].abs() < 1e-12);
    assert_eq!(row[2], 0.5);
    assert!(row[3].abs() < 1e-12 && row[4].abs() < 1e-12);
    assert!((row[5] - 1.0).abs() < 1e-12);
    assert_eq!(row[6], 0.0);
    // zero volume everywhere: ratio defined as 1
    let f = features(&[1.0; 50], &[0.0; 50]).unwrap();
    assert_eq!(f[49 * N_FEATURES + 5], 1.0);
}

#[test]
fn invalid_ticks_are_rejected_and_state_is_unchanged() {
    let (p, v) = series(10, 1);
    assert!(matches!(
        features(&p[..3], &v[..2]),
        Err(FeatureError::LengthMismatch { .. })
    ));
    let mut bad = p.clone();
    bad[4] = f64::NAN;
    let err = features(&bad, &v).unwrap_err();
    assert_eq!(err.to_string(), "prices[4] is not finite (NaN)");
    bad[4] = -1.0;
    assert!(matches!(
        features(&bad, &v),
        Err(FeatureError::NonPositive { index: 4, .. })
    ));
    let mut badv = v.clone();
    badv[2] = -3.0;
    assert!(matches!(
        features(&p, &badv),
        Err(FeatureError::Negative { index: 2, .. })
    ));

    let mut st = FeatureState::new();
    st.update(100.0, 1.0).unwrap();
    assert!(st.update(f64::INFINITY, 1.0).is_err());
    assert!(st.update(100.0, f64::NAN).is_err());
    assert_eq!(st.ticks(), 1);
}

//! signal-bridge's decision: a signal and its confidence from the model's probabilities.

use tradewire::v1::trading_signal::SignalType;

/// The signal and its confidence from float32 probabilities `(buy, hold, sell)`, compared
/// with `threshold` as doubles (crate documentation, "signal-bridge").
pub fn decide(p: &[f32; 3], threshold: f64) -> (SignalType, f64) {
    let m = p[0].max(p[1]).max(p[2]);
    let kind = if p[0] == m && f64::from(p[0]) > threshold {
        SignalType::Buy
    } else if p[2] == m && f64::from(p[2]) > threshold {
        SignalType::Sell
    } else {
        SignalType::Hold
    };
    (kind, f64::from(m))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule() {
        assert_eq!(
            decide(&[0.7, 0.2, 0.1], 0.6),
            (SignalType::Buy, f64::from(0.7f32))
        );
        assert_eq!(decide(&[0.1, 0.2, 0.7], 0.6).0, SignalType::Sell);
        assert_eq!(
            decide(&[0.5, 0.4, 0.1], 0.6),
            (SignalType::Hold, f64::from(0.5f32))
        );
        // 0.6f32 is above 0.6f64: compared as doubles.
        assert_eq!(decide(&[0.6, 0.3, 0.1], 0.6).0, SignalType::Buy);
        // A tie between buy and sell at the top goes to buy.
        assert_eq!(decide(&[0.45, 0.1, 0.45], 0.4).0, SignalType::Buy);
    }
}

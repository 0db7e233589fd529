//! market-data's ticks: the seeded random walk, the simulated clock and CSV rows (the
//! rules are in the crate documentation, "market-data").

use tradewire::v1::MarketData;

/// splitmix64.
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator seeded with `seed` (a negative seed is taken modulo 2^64).
    pub fn new(seed: i64) -> Self {
        SplitMix64 { state: seed as u64 }
    }

    /// The next 64 random bits.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A double in [0, 1): the top 53 bits times 2^-53 (exact).
    #[inline]
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / 9_007_199_254_740_992.0)
    }
}

const SQRT3: f64 = 1.732_050_807_568_877_2;
const REGIME_TICKS: u64 = 200;

#[derive(Debug, Clone)]
struct SymbolState {
    symbol: String,
    mid: f64,
    ret: f64,
    regime: f64,
    ticks: u64,
}

/// The seeded random walk over several symbols, round-robin.
#[derive(Debug, Clone)]
pub struct RandomWalk {
    rng: SplitMix64,
    symbols: Vec<SymbolState>,
    start_price: f64,
    volatility: f64,
    next: u64,
}

impl RandomWalk {
    pub fn new(symbols: &[String], seed: i64, start_price: f64, volatility: f64) -> Self {
        RandomWalk {
            rng: SplitMix64::new(seed),
            symbols: symbols
                .iter()
                .map(|s| SymbolState {
                    symbol: s.clone(),
                    mid: start_price,
                    ret: 0.0,
                    regime: 0.0,
                    ticks: 0,
                })
                .collect(),
            start_price,
            volatility,
            next: 0,
        }
    }

    /// Index of the next tick (0-based).
    pub fn index(&self) -> u64 {
        self.next
    }

    /// Tick `index()` with the given timestamp.
    pub fn tick(&mut self, timestamp_us: i64) -> MarketData {
        let n = self.symbols.len() as u64;
        let k = (self.next % n) as usize;
        self.next += 1;
        let rng = &mut self.rng;
        let s = &mut self.symbols[k];
        if s.ticks.is_multiple_of(REGIME_TICKS) {
            s.regime = (rng.uniform() * 3.0).floor() - 1.0;
        }
        let u1 = rng.uniform();
        let u2 = rng.uniform();
        let u3 = rng.uniform();
        let u4 = rng.uniform();
        let shock = ((((u1 + u2) + u3) + u4) - 2.0) * SQRT3 * self.volatility;
        s.ret = 0.3 * s.ret + 0.0006 * s.regime + shock;
        s.mid *= 1.0 + s.ret;
        if !(s.mid.is_finite() && s.mid > 0.0) {
            s.mid = self.start_price;
        }
        let half = s.mid * (0.5 + rng.uniform()) * 0.0001;
        let bid = s.mid - half;
        let ask = s.mid + half;
        let volume = (1000.0 * (1.0 + s.ret.abs() * 200.0) * (0.5 + rng.uniform())).floor();
        let bid_size = 100.0 * ((rng.uniform() * 10.0).floor() + 1.0);
        let ask_size = 100.0 * ((rng.uniform() * 10.0).floor() + 1.0);
        s.ticks += 1;
        MarketData {
            symbol: s.symbol.clone(),
            price: s.mid,
            volume,
            timestamp_us,
            exchange: "SIM".into(),
            bid,
            ask,
            bid_size,
            ask_size,
        }
    }
}

/// The step of the simulated clock for a publishing rate: `floor(1e6 / rate)` µs, at least
/// 1; 1 when `rate` is 0 (unpaced).
pub fn sim_step_us(rate: f64) -> i64 {
    if rate > 0.0 {
        ((1_000_000.0 / rate).floor() as i64).max(1)
    } else {
        1
    }
}

/// The timestamp of tick `index` on the simulated clock starting at `sim_start_us`.
pub fn sim_timestamp_us(sim_start_us: i64, rate: f64, index: u64) -> i64 {
    sim_start_us.saturating_add((index as i64).saturating_mul(sim_step_us(rate)))
}

/// The ticks of a CSV text, in file order; `source` names it in errors (`source:line: ...`).
/// A row without `timestamp_us` has 0 there: the caller stamps it with its clock.
pub fn parse_csv(text: &str, source: &str) -> Result<Vec<MarketData>, String> {
    let mut header: Option<Vec<String>> = None;
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let at = format!("{source}:{}", i + 1);
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let cells: Vec<&str> = line.split(',').map(str::trim).collect();
        let Some(cols) = &header else {
            let cols: Vec<String> = cells.iter().map(|c| c.to_ascii_lowercase()).collect();
            for need in ["symbol", "price"] {
                if !cols.iter().any(|c| c == need) {
                    return Err(format!("{at}: the header has no {need:?} column"));
                }
            }
            header = Some(cols);
            continue;
        };
        if cells.len() != cols.len() {
            return Err(format!(
                "{at}: {} cells, the header has {}",
                cells.len(),
                cols.len()
            ));
        }
        let get = |name: &str| cols.iter().position(|c| c == name).map(|j| cells[j]);
        let num = |name: &str, default: f64| -> Result<f64, String> {
            match get(name) {
                None | Some("") => Ok(default),
                Some(v) => v
                    .parse::<f64>()
                    .ok()
                    .filter(|x| x.is_finite())
                    .ok_or_else(|| format!("{at}: {name} {v:?} is not a number")),
            }
        };
        let symbol = get("symbol").unwrap_or_default().to_owned();
        if symbol.is_empty() || symbol.starts_with('~') {
            return Err(format!("{at}: bad symbol {symbol:?}"));
        }
        let price = num("price", f64::NAN)?;
        if !price.is_finite() {
            return Err(format!("{at}: price is missing"));
        }
        let timestamp_us = match get("timestamp_us") {
            None | Some("") => 0,
            Some(v) => v
                .parse::<i64>()
                .map_err(|_| format!("{at}: timestamp_us {v:?} is not an integer"))?,
        };
        out.push(MarketData {
            symbol,
            price,
            volume: num("volume", 0.0)?,
            timestamp_us,
            exchange: get("exchange")
                .filter(|e| !e.is_empty())
                .unwrap_or("CSV")
                .to_owned(),
            bid: num("bid", price)?,
            ask: num("ask", price)?,
            bid_size: num("bid_size", 0.0)?,
            ask_size: num("ask_size", 0.0)?,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_reference_values() {
        // splitmix64 seeded with 0: the published first outputs.
        let mut r = SplitMix64::new(0);
        assert_eq!(r.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(r.next_u64(), 0x6E78_9E6A_A1B9_65F4);
        let u = SplitMix64::new(7).uniform();
        assert!((0.0..1.0).contains(&u));
    }

    #[test]
    fn walk_is_deterministic_and_valid() {
        let syms = vec!["A".to_string(), "B".to_string()];
        let mut a = RandomWalk::new(&syms, 42, 100.0, 0.004);
        let mut b = RandomWalk::new(&syms, 42, 100.0, 0.004);
        for i in 0..10_000 {
            let x = a.tick(i);
            assert_eq!(x, b.tick(i));
            assert_eq!(x.symbol, syms[(i % 2) as usize]);
            assert!(x.bid < x.price && x.price < x.ask && x.volume >= 0.0);
        }
    }

    #[test]
    fn simulated_clock() {
        assert_eq!(sim_step_us(0.0), 1);
        assert_eq!(sim_step_us(3.0), 333_333);
        assert_eq!(sim_step_us(5e6), 1);
        assert_eq!(sim_timestamp_us(1_000, 1000.0, 3), 4_000);
    }

    #[test]
    fn csv_rows_and_errors() {
        let text = "# comment\nSymbol, price,volume,timestamp_us\n\nA,10.5,3,7\nB,2,,\n";
        let rows = parse_csv(text, "t.csv").unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(
            (rows[0].bid, rows[0].ask, rows[0].timestamp_us),
            (10.5, 10.5, 7)
        );
        assert_eq!((rows[1].volume, rows[1].exchange.as_str()), (0.0, "CSV"));
        assert_eq!(
            parse_csv("symbol\n", "t.csv").unwrap_err(),
            "t.csv:1: the header has no \"price\" column"
        );
        assert_eq!(
            parse_csv("symbol,price\nA,inf\n", "t.csv").unwrap_err(),
            "t.csv:2: price \"inf\" is not a number"
        );
        assert_eq!(
            parse_csv("symbol,price\nA\n", "t.csv").unwrap_err(),
            "t.csv:2: 1 cells, the header has 2"
        );
        assert_eq!(
            parse_csv("symbol,price\n~A,1\n", "t.csv").unwrap_err(),
            "t.csv:2: bad symbol \"~A\""
        );
        assert_eq!(
            parse_csv("symbol,price\nA,\n", "t.csv").unwrap_err(),
            "t.csv:2: price is missing"
        );
        assert_eq!(
            parse_csv("symbol,price,timestamp_us\nA,1,x\n", "t.csv").unwrap_err(),
            "t.csv:2: timestamp_us \"x\" is not an integer"
        );
    }
}

//! `tradewire._rules`: the PyO3 face of `tradewire-rules`, the reference services' rules.
//!
//! Protobuf messages cross in both directions as their serialized bytes (the Python side
//! parses and builds them with its own SDK, `tradewire.rules`); the engine's outputs come
//! back as `(kind, bytes)` with `kind` [`ORDER`] or [`POSITION`]. Undecodable bytes, a bad
//! CSV line or a bad engine state raise `ValueError` with the message.

use prost::Message;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use tradewire::v1::{MarketData, StrategyCommand, TradingSignal};
use tradewire_rules as rules;

/// An engine output that goes on the orders channel.
const ORDER: u8 = 0;
/// An engine output that goes on the positions channel.
const POSITION: u8 = 1;

type Outputs<'py> = Vec<(u8, Bound<'py, PyBytes>)>;

fn decode<M: Message + Default>(what: &str, bytes: &[u8]) -> PyResult<M> {
    M::decode(bytes).map_err(|e| PyValueError::new_err(format!("not a {what}: {e}")))
}

fn outputs<'py>(py: Python<'py>, out: Vec<rules::Output>) -> Outputs<'py> {
    out.into_iter()
        .map(|o| match o {
            rules::Output::Order(m) => (ORDER, PyBytes::new(py, &m.encode_to_vec())),
            rules::Output::Position(m) => (POSITION, PyBytes::new(py, &m.encode_to_vec())),
        })
        .collect()
}

/// A double as text: shortest round trip, Rust's `{:?}`.
#[pyfunction]
fn fmt_num(x: f64) -> String {
    rules::fmt_num(x)
}

/// The timestamp of tick `index` on the simulated clock.
#[pyfunction]
fn sim_timestamp_us(sim_start_us: i64, rate: f64, index: u64) -> i64 {
    rules::sim_timestamp_us(sim_start_us, rate, index)
}

/// The MarketData rows of a CSV text, serialized; `source` names it in errors.
#[pyfunction]
fn parse_csv<'py>(py: Python<'py>, text: &str, source: &str) -> PyResult<Vec<Bound<'py, PyBytes>>> {
    let rows = rules::parse_csv(text, source).map_err(PyValueError::new_err)?;
    Ok(rows
        .iter()
        .map(|r| PyBytes::new(py, &r.encode_to_vec()))
        .collect())
}

/// (signal type number, confidence) from float32 probabilities.
#[pyfunction]
fn decide(p_buy: f32, p_hold: f32, p_sell: f32, threshold: f64) -> (i32, f64) {
    let (kind, confidence) = rules::decide(&[p_buy, p_hold, p_sell], threshold);
    (kind as i32, confidence)
}

/// The seeded random walk; `tick` returns a serialized MarketData.
#[pyclass(module = "tradewire._rules")]
struct RandomWalk {
    inner: rules::RandomWalk,
}

#[pymethods]
impl RandomWalk {
    #[new]
    fn new(symbols: Vec<String>, seed: i64, start_price: f64, volatility: f64) -> PyResult<Self> {
        if symbols.is_empty() {
            return Err(PyValueError::new_err("a random walk needs a symbol"));
        }
        Ok(Self {
            inner: rules::RandomWalk::new(&symbols, seed, start_price, volatility),
        })
    }

    fn tick<'py>(&mut self, py: Python<'py>, timestamp_us: i64) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.inner.tick(timestamp_us).encode_to_vec())
    }

    #[getter]
    fn index(&self) -> u64 {
        self.inner.index()
    }
}

/// One symbol's average-cost book.
#[pyclass(module = "tradewire._rules")]
struct Book {
    inner: rules::Book,
}

#[pymethods]
impl Book {
    #[new]
    #[pyo3(signature = (quantity = 0.0, avg_cost = 0.0, realized = 0.0))]
    fn new(quantity: f64, avg_cost: f64, realized: f64) -> Self {
        Self {
            inner: rules::Book {
                quantity,
                avg_cost,
                realized,
            },
        }
    }

    fn fill(&mut self, quantity: f64, price: f64) -> f64 {
        self.inner.fill(quantity, price)
    }

    fn unrealized(&self, mark: f64) -> f64 {
        self.inner.unrealized(mark)
    }

    #[getter]
    fn quantity(&self) -> f64 {
        self.inner.quantity
    }

    #[getter]
    fn avg_cost(&self) -> f64 {
        self.inner.avg_cost
    }

    #[getter]
    fn realized(&self) -> f64 {
        self.inner.realized
    }

    fn __repr__(&self) -> String {
        let b = &self.inner;
        format!(
            "Book(quantity={}, avg_cost={}, realized={})",
            rules::fmt_num(b.quantity),
            rules::fmt_num(b.avg_cost),
            rules::fmt_num(b.realized)
        )
    }
}

/// The execution engine. Times are a monotonic clock's nanoseconds.
#[pyclass(module = "tradewire._rules")]
struct Engine {
    inner: rules::Engine,
}

#[pymethods]
impl Engine {
    #[new]
    fn new(run: String, max_position_size: f64, max_daily_loss: f64, order_quantity: f64) -> Self {
        Self {
            inner: rules::Engine::new(
                run,
                rules::Limits {
                    max_position_size,
                    max_daily_loss,
                    order_quantity,
                },
            ),
        }
    }

    /// An engine that goes on from a state written by `state()`.
    #[staticmethod]
    fn restore(state: &str) -> PyResult<Self> {
        let state = rules::EngineState::from_json(state).map_err(PyValueError::new_err)?;
        let inner = rules::Engine::restore(state).map_err(PyValueError::new_err)?;
        Ok(Self { inner })
    }

    /// Everything the engine decided, as JSON.
    fn state(&self) -> String {
        self.inner.state().to_json()
    }

    fn on_quote<'py>(
        &mut self,
        py: Python<'py>,
        market_data: &[u8],
        now_ns: u64,
    ) -> PyResult<Outputs<'py>> {
        let md: MarketData = decode("MarketData", market_data)?;
        let mut out = Vec::new();
        self.inner.on_quote(&md, now_ns, &mut out);
        Ok(outputs(py, out))
    }

    fn on_signal<'py>(
        &mut self,
        py: Python<'py>,
        signal: &[u8],
        now_ns: u64,
    ) -> PyResult<Outputs<'py>> {
        let signal: TradingSignal = decode("TradingSignal", signal)?;
        let mut out = Vec::new();
        self.inner.on_signal(signal, now_ns, &mut out);
        Ok(outputs(py, out))
    }

    fn on_timer<'py>(&mut self, py: Python<'py>, now_ns: u64) -> Outputs<'py> {
        let mut out = Vec::new();
        self.inner.on_timer(now_ns, &mut out);
        outputs(py, out)
    }

    /// A Position update for every position held (see the Rust `position_snapshot`).
    fn position_snapshot<'py>(&self, py: Python<'py>) -> Outputs<'py> {
        let mut out = Vec::new();
        self.inner.position_snapshot(&mut out);
        outputs(py, out)
    }

    /// (outcome number, reason, outputs).
    fn on_command<'py>(
        &mut self,
        py: Python<'py>,
        command: &[u8],
    ) -> PyResult<(i32, String, Outputs<'py>)> {
        let cmd: StrategyCommand = decode("StrategyCommand", command)?;
        let mut out = Vec::new();
        let (outcome, reason) = self.inner.on_command(&cmd, &mut out);
        Ok((outcome as i32, reason, outputs(py, out)))
    }

    /// The summary line's figures, as JSON.
    fn summary(&self) -> String {
        self.inner.summary().to_string()
    }

    fn pnl(&self) -> (f64, f64) {
        self.inner.pnl()
    }

    fn positions(&self) -> Vec<(String, f64)> {
        self.inner.positions()
    }

    #[getter]
    fn run_id(&self) -> &str {
        self.inner.run_id()
    }

    #[getter]
    fn killed(&self) -> bool {
        self.inner.killed()
    }

    #[getter]
    fn open_orders(&self) -> usize {
        self.inner.open_orders()
    }

    #[getter]
    fn pending(&self) -> usize {
        self.inner.pending()
    }
}

#[pymodule]
fn _rules(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("ORDER", ORDER)?;
    m.add("POSITION", POSITION)?;
    m.add("QUOTE_WAIT_NS", rules::engine::QUOTE_WAIT)?;
    m.add("STATE_FORMAT", rules::engine::STATE_FORMAT)?;
    m.add_function(wrap_pyfunction!(fmt_num, m)?)?;
    m.add_function(wrap_pyfunction!(sim_timestamp_us, m)?)?;
    m.add_function(wrap_pyfunction!(parse_csv, m)?)?;
    m.add_function(wrap_pyfunction!(decide, m)?)?;
    m.add_class::<RandomWalk>()?;
    m.add_class::<Book>()?;
    m.add_class::<Engine>()?;
    Ok(())
}

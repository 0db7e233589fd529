//! `tradewire._features`: the PyO3 face of `tradewire-features`.
//!
//! Inputs are borrowed from numpy without copying (`PyReadonlyArray1::as_slice`, so they
//! must be C-contiguous: the Python facade `tradewire.features` guarantees that); outputs
//! are Rust `Vec`s handed to numpy without copying. The GIL is released while computing.
//! Every `FeatureError` becomes a `ValueError` carrying its message.

use numpy::ndarray::Array2;
use numpy::{IntoPyArray, PyArray1, PyArray2, PyReadonlyArray1};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyTuple;
use tradewire_features as tf;

fn value_error(e: tf::FeatureError) -> PyErr {
    PyValueError::new_err(e.to_string())
}

fn slice<'a, T: numpy::Element>(name: &str, a: &'a PyReadonlyArray1<'_, T>) -> PyResult<&'a [T]> {
    a.as_slice()
        .map_err(|_| PyValueError::new_err(format!("{name} must be a C-contiguous 1-D array")))
}

/// Wilder RSI; NaN for indices < period.
#[pyfunction]
#[pyo3(signature = (prices, period = tf::RSI_PERIOD))]
fn rsi<'py>(
    py: Python<'py>,
    prices: PyReadonlyArray1<'py, f64>,
    period: usize,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let p = slice("prices", &prices)?;
    let out = py.detach(|| tf::rsi(p, period)).map_err(value_error)?;
    Ok(out.into_pyarray(py))
}

/// EMA seeded with the simple mean of the first `period` values.
#[pyfunction]
fn ema<'py>(
    py: Python<'py>,
    prices: PyReadonlyArray1<'py, f64>,
    period: usize,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let p = slice("prices", &prices)?;
    let out = py.detach(|| tf::ema(p, period)).map_err(value_error)?;
    Ok(out.into_pyarray(py))
}

type Arr<'py> = Bound<'py, PyArray1<f64>>;

/// MACD line, signal line and histogram.
#[pyfunction]
#[pyo3(signature = (prices, fast = tf::MACD_FAST, slow = tf::MACD_SLOW, signal = tf::MACD_SIGNAL))]
fn macd<'py>(
    py: Python<'py>,
    prices: PyReadonlyArray1<'py, f64>,
    fast: usize,
    slow: usize,
    signal: usize,
) -> PyResult<(Arr<'py>, Arr<'py>, Arr<'py>)> {
    let p = slice("prices", &prices)?;
    let (l, s, h) = py
        .detach(|| tf::macd(p, fast, slow, signal))
        .map_err(value_error)?;
    Ok((l.into_pyarray(py), s.into_pyarray(py), h.into_pyarray(py)))
}

/// The 7 features, shape (len, 7), rows < WARMUP - 1 NaN.
#[pyfunction]
fn features<'py>(
    py: Python<'py>,
    prices: PyReadonlyArray1<'py, f64>,
    volumes: PyReadonlyArray1<'py, f64>,
) -> PyResult<Bound<'py, PyArray2<f64>>> {
    let p = slice("prices", &prices)?;
    let v = slice("volumes", &volumes)?;
    let n = p.len();
    let flat = py.detach(|| tf::features(p, v)).map_err(value_error)?;
    let arr = Array2::from_shape_vec((n, tf::N_FEATURES), flat)
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
    Ok(arr.into_pyarray(py))
}

/// Backtest; returns (pnl, trades, equity).
#[pyfunction]
fn backtest<'py>(
    py: Python<'py>,
    prices: PyReadonlyArray1<'py, f64>,
    signals: PyReadonlyArray1<'py, i64>,
    commission: f64,
) -> PyResult<(f64, u64, Arr<'py>)> {
    let p = slice("prices", &prices)?;
    let s = slice("signals", &signals)?;
    let r = py
        .detach(|| tf::backtest(p, s, commission))
        .map_err(value_error)?;
    Ok((r.pnl, r.trades, r.equity.into_pyarray(py)))
}

/// Per-tick features: `update(price, volume)` returns a 7-tuple, or None during warm-up.
#[pyclass(module = "tradewire._features")]
struct FeatureState {
    inner: tf::FeatureState,
}

#[pymethods]
impl FeatureState {
    #[new]
    fn new() -> Self {
        Self {
            inner: tf::FeatureState::new(),
        }
    }

    fn update(&mut self, price: f64, volume: f64) -> PyResult<Option<[f64; tf::N_FEATURES]>> {
        self.inner.update(price, volume).map_err(value_error)
    }

    #[getter]
    fn ticks(&self) -> usize {
        self.inner.ticks()
    }
}

#[pymodule]
fn _features(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("FEATURE_NAMES", PyTuple::new(m.py(), tf::FEATURE_NAMES)?)?;
    m.add("N_FEATURES", tf::N_FEATURES)?;
    m.add("WARMUP", tf::WARMUP)?;
    m.add_function(wrap_pyfunction!(rsi, m)?)?;
    m.add_function(wrap_pyfunction!(ema, m)?)?;
    m.add_function(wrap_pyfunction!(macd, m)?)?;
    m.add_function(wrap_pyfunction!(features, m)?)?;
    m.add_function(wrap_pyfunction!(backtest, m)?)?;
    m.add_class::<FeatureState>()?;
    Ok(())
}

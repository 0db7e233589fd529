//! `tradewire._wire.CommandStore`: the durable applied-command store of
//! `tradewire::command_store`, for the Python `CommandServer` (one file format, one
//! implementation for both SDKs).
//!
//! Frozen with the store behind a mutex (a SQLite connection is not shared between
//! threads); every call that touches the file releases the GIL.

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use pyo3::exceptions::{PyOSError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use tradewire::command_store::{
    CommandStore as Inner, CommandStoreOptions, StateWrites, StoreError,
};

fn store_err(e: StoreError) -> PyErr {
    match e {
        StoreError::Invalid(m) => PyValueError::new_err(m),
        other => PyOSError::new_err(other.to_string()),
    }
}

/// An open command store (see `tradewire::command_store`).
#[pyclass(module = "tradewire._wire", frozen)]
pub struct CommandStore {
    inner: Mutex<Option<Inner>>,
}

impl CommandStore {
    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> Result<T, StoreError>) -> PyResult<T> {
        let mut guard: MutexGuard<'_, Option<Inner>> =
            self.inner.lock().unwrap_or_else(|e| e.into_inner());
        match guard.as_mut() {
            Some(store) => f(store).map_err(store_err),
            None => Err(PyRuntimeError::new_err("command store is closed")),
        }
    }
}

/// `(key, value)` writes; a None value deletes the key.
type Writes = Vec<(String, Option<Vec<u8>>)>;

fn writes(state: Writes) -> StateWrites {
    let mut out = StateWrites::new();
    for (key, value) in state {
        match value {
            Some(v) => out.put(key, v),
            None => out.delete(key),
        }
    }
    out
}

#[pymethods]
impl CommandStore {
    /// Opens (creating) the store at `path`; `window_s`: how long ids are remembered;
    /// `fsync`: commits on disk (not only in the operating system) before returning.
    #[new]
    #[pyo3(signature = (path, window_s, fsync, prune_batch))]
    fn new(
        py: Python<'_>,
        path: &str,
        window_s: f64,
        fsync: bool,
        prune_batch: usize,
    ) -> PyResult<Self> {
        if !(window_s.is_finite() && window_s >= 1.0) {
            return Err(PyValueError::new_err(format!(
                "window_s must be a number >= 1, got {window_s}"
            )));
        }
        let options = CommandStoreOptions {
            path: path.into(),
            window: Duration::from_secs_f64(window_s),
            fsync,
            prune_batch,
        };
        let inner = py.detach(|| Inner::open(&options)).map_err(store_err)?;
        Ok(CommandStore {
            inner: Mutex::new(Some(inner)),
        })
    }

    /// `(ack, applied_us)` of `command_id` if applied within the window before `now_us`.
    fn lookup<'py>(
        &self,
        py: Python<'py>,
        command_id: &str,
        now_us: i64,
    ) -> PyResult<Option<(Bound<'py, PyBytes>, i64)>> {
        let found = py.detach(|| self.with(|s| s.lookup(command_id, now_us)))?;
        Ok(found.map(|c| (PyBytes::new(py, &c.ack), c.applied_us)))
    }

    /// Commits `command_id`, its serialized `ack`, `applied_us` and the handler's `state`
    /// writes in one transaction.
    fn record(
        &self,
        py: Python<'_>,
        command_id: &str,
        ack: &[u8],
        applied_us: i64,
        state: Writes,
    ) -> PyResult<()> {
        let state = writes(state);
        py.detach(|| self.with(|s| s.record(command_id, ack, applied_us, &state)))
    }

    /// Commits handler state outside any command.
    fn write_state(&self, py: Python<'_>, state: Writes) -> PyResult<()> {
        let state = writes(state);
        py.detach(|| self.with(|s| s.write_state(&state)))
    }

    /// Deletes a bounded number of expired ids; returns how many.
    fn prune(&self, py: Python<'_>, now_us: i64) -> PyResult<usize> {
        py.detach(|| self.with(|s| s.prune(now_us)))
    }

    /// The committed value of handler state `key`, or None.
    fn state<'py>(&self, py: Python<'py>, key: &str) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let v = py.detach(|| self.with(|s| s.state(key)))?;
        Ok(v.map(|v| PyBytes::new(py, &v)))
    }

    /// Handler state keys starting with `prefix` and their values, in key order.
    #[pyo3(signature = (prefix = ""))]
    fn state_items<'py>(
        &self,
        py: Python<'py>,
        prefix: &str,
    ) -> PyResult<Vec<(String, Bound<'py, PyBytes>)>> {
        let items = py.detach(|| self.with(|s| s.state_items(prefix)))?;
        Ok(items
            .into_iter()
            .map(|(k, v)| (k, PyBytes::new(py, &v)))
            .collect())
    }

    /// Ids held (expired ones not yet pruned included).
    fn __len__(&self, py: Python<'_>) -> PyResult<usize> {
        let n = py.detach(|| self.with(|s| s.len()))?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    /// The store file.
    #[getter]
    fn path(&self) -> PyResult<String> {
        self.with(|s| Ok(s.path().display().to_string()))
    }

    /// Counters: recorded, hits, pruned.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = self.with(|s| Ok(s.stats().clone()))?;
        let d = PyDict::new(py);
        d.set_item("recorded", s.recorded)?;
        d.set_item("hits", s.hits)?;
        d.set_item("pruned", s.pruned)?;
        Ok(d)
    }

    /// Closes the file and releases its lock; later calls raise RuntimeError.
    fn close(&self, py: Python<'_>) {
        py.detach(|| {
            let mut guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            guard.take();
        });
    }
}

/// Adds the classes to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<CommandStore>()
}

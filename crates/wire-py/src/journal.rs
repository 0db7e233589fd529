//! `tradewire._wire.Journal` / `JournalReader`: the publisher journal of
//! `tradewire::journal`, for the Python `Publisher` (one format, one implementation).
//!
//! Both classes are frozen with their state behind a mutex: the Python publisher appends
//! from the user thread and reads from its control thread. Reads and appends release the
//! GIL while they touch the disk.

use std::sync::Mutex;
use std::time::Duration;

use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use tradewire::journal::{
    FsyncPolicy, Journal as Inner, JournalOptions, JournalReader as InnerReader, PublisherRange,
};

fn os_err(e: std::io::Error) -> PyErr {
    match e.kind() {
        std::io::ErrorKind::InvalidInput => PyValueError::new_err(e.to_string()),
        _ => match e.raw_os_error() {
            Some(errno) => PyOSError::new_err((errno, e.to_string())),
            None => PyOSError::new_err(e.to_string()),
        },
    }
}

/// `(publisher_id, first_seq, last_seq, {key: last_key_seq})`.
type Range<'py> = (u64, u64, u64, Bound<'py, PyDict>);

fn range<'py>(py: Python<'py>, r: &PublisherRange) -> PyResult<Range<'py>> {
    let keys = PyDict::new(py);
    for (k, v) in &r.last_key_seq {
        keys.set_item(k, v)?;
    }
    Ok((r.publisher_id, r.first_seq, r.last_seq, keys))
}

/// An open journal directory (see `tradewire::journal`).
#[pyclass(module = "tradewire._wire", frozen)]
pub struct Journal {
    inner: Mutex<Inner>,
}

impl Journal {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[pymethods]
impl Journal {
    /// `fsync`: "never", "interval" (every `fsync_interval_ms`) or "always";
    /// `retention_bytes` / `retention_age_s` 0: no bound.
    #[new]
    #[pyo3(signature = (dir, segment_bytes, retention_bytes, retention_age_s, fsync, fsync_interval_ms))]
    fn new(
        py: Python<'_>,
        dir: &str,
        segment_bytes: u64,
        retention_bytes: u64,
        retention_age_s: f64,
        fsync: &str,
        fsync_interval_ms: u64,
    ) -> PyResult<Self> {
        if !(retention_age_s.is_finite() && retention_age_s >= 0.0) {
            return Err(PyValueError::new_err(format!(
                "retention_age_s must be a number >= 0, got {retention_age_s}"
            )));
        }
        let fsync = FsyncPolicy::parse(fsync, Duration::from_millis(fsync_interval_ms))
            .map_err(PyValueError::new_err)?;
        let options = JournalOptions {
            dir: dir.into(),
            segment_bytes,
            retention_bytes,
            retention_age: Duration::from_secs_f64(retention_age_s),
            fsync,
        };
        let inner = py.detach(|| Inner::open(options)).map_err(os_err)?;
        Ok(Journal {
            inner: Mutex::new(inner),
        })
    }

    /// Appends one published frame.
    fn append(&self, py: Python<'_>, frame: &[u8]) -> PyResult<()> {
        py.detach(|| self.lock().append(frame)).map_err(os_err)
    }

    /// Periodic work: the interval fsync, retention by age.
    fn tick(&self, py: Python<'_>) -> PyResult<()> {
        py.detach(|| {
            // The fsync runs without the lock: appends go on meanwhile.
            let due = self.lock().due_sync()?;
            if let Some(job) = due {
                job.run()?;
            }
            self.lock().tick()
        })
        .map_err(os_err)
    }

    /// Forces appended records to the disk.
    fn sync(&self, py: Python<'_>) -> PyResult<()> {
        py.detach(|| self.lock().sync()).map_err(os_err)
    }

    /// What is held of `publisher_id`, or None.
    fn publisher<'py>(&self, py: Python<'py>, publisher_id: u64) -> PyResult<Option<Range<'py>>> {
        let r = self.lock().publisher(publisher_id);
        r.as_ref().map(|r| range(py, r)).transpose()
    }

    /// The id other than `current` that wrote last, or None.
    fn previous<'py>(&self, py: Python<'py>, current: u64) -> PyResult<Option<Range<'py>>> {
        let r = self.lock().previous(current);
        r.as_ref().map(|r| range(py, r)).transpose()
    }

    /// Every id held, oldest first.
    fn publishers<'py>(&self, py: Python<'py>) -> PyResult<Vec<Range<'py>>> {
        let all = self.lock().publishers();
        all.iter().map(|r| range(py, r)).collect()
    }

    /// A reader of `publisher_id`'s frames numbered `from_seq..=to_seq` (by key_seq of
    /// `key` when not empty).
    fn read(&self, publisher_id: u64, key: &str, from_seq: u64, to_seq: u64) -> JournalReader {
        let reader = self.lock().read(publisher_id, key, from_seq, to_seq);
        JournalReader {
            inner: Mutex::new(reader),
        }
    }

    /// Bytes of all segments.
    #[getter]
    fn size(&self) -> u64 {
        self.lock().size()
    }

    /// Counters: appended, appended_bytes, fsyncs, segments_deleted, truncated_bytes,
    /// recovered_records, indexed_segments.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = self.lock().stats();
        let d = PyDict::new(py);
        d.set_item("appended", s.appended)?;
        d.set_item("appended_bytes", s.appended_bytes)?;
        d.set_item("fsyncs", s.fsyncs)?;
        d.set_item("segments_deleted", s.segments_deleted)?;
        d.set_item("truncated_bytes", s.truncated_bytes)?;
        d.set_item("recovered_records", s.recovered_records)?;
        d.set_item("indexed_segments", s.indexed_segments)?;
        Ok(d)
    }
}

/// Frames of one range, read lazily from the segment files.
#[pyclass(module = "tradewire._wire", frozen)]
pub struct JournalReader {
    inner: Mutex<InnerReader>,
}

#[pymethods]
impl JournalReader {
    /// Up to `limit` `(number, frame)` pairs; an empty list at the end.
    fn next_batch<'py>(
        &self,
        py: Python<'py>,
        limit: usize,
    ) -> PyResult<Vec<(u64, Bound<'py, PyBytes>)>> {
        let batch: Vec<(u64, Vec<u8>)> = py.detach(|| {
            let mut r = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            r.by_ref().take(limit).collect()
        });
        Ok(batch
            .into_iter()
            .map(|(n, f)| (n, PyBytes::new(py, &f)))
            .collect())
    }
}

/// Registers the journal classes in `tradewire._wire`.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Journal>()?;
    m.add_class::<JournalReader>()?;
    Ok(())
}

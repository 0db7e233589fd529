//! `tradewire._wire.Sequencer`: the Rust subscriber's delivery state machine
//! (`tradewire::transport::Sequencer`) over Python objects, so that both SDKs order,
//! recover and check their streams with the same code.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use tradewire::transport::{self as tw, Start, Verdict};

/// What `data` / `replayed` did with the item.
const NEXT: u8 = 0;
const TAKEN: u8 = 1;
const DUPLICATE: u8 = 2;
const DROPPED: u8 = 3;

fn code(verdict: Verdict) -> u8 {
    match verdict {
        Verdict::Next => NEXT,
        Verdict::Taken => TAKEN,
        Verdict::Duplicate => DUPLICATE,
        Verdict::Dropped => DROPPED,
    }
}

/// One subscriber's ordering, gaps, replay requests, plausibility checks and restarts.
/// Times are `time.monotonic_ns()` values.
#[pyclass(module = "tradewire._wire")]
pub struct Sequencer {
    inner: tw::Sequencer<Py<PyAny>>,
}

#[pymethods]
impl Sequencer {
    #[new]
    #[pyo3(signature = (*, start = "latest", recover = true, replay_timeout = 2.0, plausible_jump = 65_536, max_parked = 100_000, max_candidates = 8))]
    fn new(
        start: &str,
        recover: bool,
        replay_timeout: f64,
        plausible_jump: u64,
        max_parked: usize,
        max_candidates: usize,
    ) -> PyResult<Self> {
        let start = match start {
            "latest" => Start::Latest,
            "earliest" => Start::Earliest,
            other => {
                return Err(PyValueError::new_err(format!(
                    "start must be 'latest' or 'earliest', not {other:?}"
                )))
            }
        };
        if !(replay_timeout.is_finite() && replay_timeout > 0.0) {
            return Err(PyValueError::new_err(format!(
                "replay_timeout must be a positive number of seconds, not {replay_timeout}"
            )));
        }
        Ok(Sequencer {
            inner: tw::Sequencer::new(tw::SequencerOptions {
                start,
                recover,
                replay_timeout_ns: (replay_timeout * 1e9) as u64,
                plausible_jump,
                max_parked,
                max_candidates,
            }),
        })
    }

    /// A live data frame: 0 when `item` is next in order and nothing else became ready
    /// (deliver it directly), 1 kept (call `take_ready`), 2 duplicate, 3 dropped.
    fn data(&mut self, publisher_id: u64, key: &str, n: u64, item: Py<PyAny>, now: u64) -> u8 {
        let verdict = self.inner.on_data(publisher_id, key, n, item, now);
        if verdict != Verdict::Next {
            return code(verdict);
        }
        if self.inner.ready_len() > 1 {
            return TAKEN; // earlier items wait in the ready queue: it goes after them
        }
        drop(self.inner.pop_ready_back());
        NEXT
    }

    /// A frame replayed from the control socket: same codes as `data` (never 0).
    fn replayed(&mut self, publisher_id: u64, key: &str, n: u64, item: Py<PyAny>, now: u64) -> u8 {
        code(self.inner.on_replayed(publisher_id, key, n, item, now))
    }

    /// The handshake's heartbeat: (key, last number) per tracked key.
    fn handshake(
        &mut self,
        publisher_id: u64,
        targets: Vec<(String, u64)>,
        publisher_newer: bool,
        now: u64,
    ) {
        self.inner
            .on_handshake(publisher_id, &targets, publisher_newer, now);
    }

    /// A heartbeat: (key, last number) per tracked key.
    fn heartbeat(&mut self, publisher_id: u64, targets: Vec<(String, u64)>, now: u64) {
        self.inner.on_heartbeat(publisher_id, &targets, now);
    }

    /// A ReplayEnd, answered by the publisher whose id is `answered_by`.
    #[allow(clippy::too_many_arguments)]
    fn replay_end(
        &mut self,
        answered_by: u64,
        publisher_id: u64,
        key: &str,
        from_seq: u64,
        to_seq: u64,
        unknown_publisher: bool,
        last_seq: u64,
        now: u64,
    ) {
        self.inner.on_replay_end(
            answered_by,
            publisher_id,
            key,
            from_seq,
            to_seq,
            unknown_publisher,
            last_seq,
            now,
        );
    }

    fn timer(&mut self, now: u64) {
        self.inner.on_timer(now);
    }

    fn next_deadline(&self) -> Option<u64> {
        self.inner.next_deadline()
    }

    fn resume_from(&mut self, publisher_id: u64, last: u64) {
        self.inner.resume_from(publisher_id, last);
    }

    fn baseline(&mut self, publisher_id: u64, key: &str, last: u64) {
        self.inner.baseline(publisher_id, key, last);
    }

    fn push_ready(&mut self, item: Py<PyAny>) {
        self.inner.push_ready(item);
    }

    #[getter]
    fn publisher_id(&self) -> Option<u64> {
        self.inner.publisher_id()
    }

    fn has_ready(&self) -> bool {
        self.inner.has_ready()
    }

    fn has_output(&self) -> bool {
        self.inner.has_output()
    }

    fn take_ready(&mut self) -> Vec<Py<PyAny>> {
        std::iter::from_fn(|| self.inner.pop_ready()).collect()
    }

    /// Replay requests to send: (publisher_id, key, from_seq, to_seq).
    fn take_asks(&mut self) -> Vec<(u64, String, u64, u64)> {
        std::iter::from_fn(|| self.inner.pop_ask())
            .map(|a| (a.publisher_id, a.key, a.from, a.to))
            .collect()
    }

    /// Events: (kind, publisher_id, key, first, last, detail).
    fn take_events(&mut self) -> Vec<(&'static str, u64, String, u64, u64, String)> {
        std::iter::from_fn(|| self.inner.pop_event())
            .map(|e| {
                (
                    e.kind.name(),
                    e.publisher_id,
                    e.key,
                    e.first,
                    e.last,
                    e.detail,
                )
            })
            .collect()
    }

    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = self.inner.stats();
        let out = PyDict::new(py);
        for (name, value) in [
            ("duplicates", s.duplicates),
            ("gaps", s.gaps),
            ("missed", s.missed),
            ("recovered", s.recovered),
            ("unrecoverable", s.unrecoverable),
            ("unknown_tails", s.unknown_tails),
            ("restarts", s.restarts),
            ("replay_requests", s.replay_requests),
            ("checks", s.checks),
            ("disowned", s.disowned),
            ("unverified", s.unverified),
            ("stale", s.stale),
        ] {
            out.set_item(name, value)?;
        }
        Ok(out)
    }
}

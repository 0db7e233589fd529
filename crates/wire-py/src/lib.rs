//! `tradewire._wire`: the PyO3 face of `tradewire::wire` for the Python SDK's hot path.
//!
//! `Codec.decode` builds `tradewire.wire.Envelope` tuples from frames; `Codec.recv` drains
//! a pyzmq socket without blocking, decoding as it goes; `Codec.pack` writes a frame.
//! A frame that does not decode comes back as None (`decode`) or as its bytes (`recv`):
//! the Python decoder then names the error, so WIRE.md's error kinds live in one place
//! per language. `tradewire.wire` uses this module when it is built and falls back to
//! pure Python otherwise (or when `TRADEWIRE_PURE_PYTHON=1`).
#![deny(unsafe_code)]

mod command_store;
mod journal;
mod libzmq;
mod sequencer;

use std::collections::HashMap;
use std::sync::Mutex;

use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString, PyTuple, PyType};
use tradewire::wire;

use libzmq::{LibZmq, Recv};

/// Decoded topics kept, like the Python decoder's cache.
const TOPIC_CACHE_SIZE: usize = 100_000;

/// A topic's bytes -> its (channel, key) as Python strings.
type TopicCache = HashMap<Box<[u8]>, (Py<PyString>, Py<PyString>)>;

/// Frames to Envelope objects, with decoded topics cached as Python strings.
///
/// The cache is behind a `try_lock`: a call that finds it busy (another thread got the
/// GIL while a finalizer ran mid-decode) builds its strings without it, never waits.
struct Decoder {
    envelope: Py<PyType>,
    tuple_new: Py<PyAny>,
    topics: Mutex<TopicCache>,
    max_payload: usize,
}

impl Decoder {
    /// The Envelope of `frame`, or None when it is not a valid frame.
    fn envelope<'py>(
        &self,
        py: Python<'py>,
        frame: &[u8],
        max_payload: usize,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        let Ok(env) = wire::decode_with_limit(frame, max_payload) else {
            return Ok(None);
        };
        let topic = &frame[..env.channel.len() + 1 + env.key.len()];
        let mut cache = self.topics.try_lock().ok();
        let cached = cache.as_ref().and_then(|c| c.get(topic));
        let (channel, key) = match cached {
            Some((c, k)) => (c.bind(py).clone(), k.bind(py).clone()),
            None => {
                let c = PyString::intern(py, env.channel);
                let k = PyString::new(py, env.key);
                if let Some(cache) = cache.as_mut().filter(|c| c.len() < TOPIC_CACHE_SIZE) {
                    cache.insert(topic.into(), (c.clone().unbind(), k.clone().unbind()));
                }
                (c, k)
            }
        };
        drop(cache);
        let fields = (
            channel,
            key,
            env.type_id,
            env.fingerprint,
            env.publisher_id,
            env.seq,
            env.key_seq,
            env.send_ts_ns,
            PyBytes::new(py, env.payload),
            env.flags,
        )
            .into_pyobject(py)?;
        // tuple.__new__(Envelope, fields): what NamedTuple._make does, without Python code.
        Ok(Some(
            self.tuple_new
                .bind(py)
                .call1((self.envelope.bind(py), fields))?,
        ))
    }
}

/// The envelope codec, bound to the Python Envelope class (and optionally to libzmq).
/// Frozen: every method takes `&self`, so threads sharing one Codec never collide.
#[pyclass(module = "tradewire._wire", frozen)]
struct Codec {
    decoder: Decoder,
    zmq: Option<LibZmq>,
}

#[pymethods]
impl Codec {
    /// `envelope`: the NamedTuple class to build; `libzmq`: path of the libzmq pyzmq
    /// loaded, needed by `recv` only.
    #[new]
    #[pyo3(signature = (envelope, max_payload, libzmq = None))]
    fn new(
        envelope: Bound<'_, PyType>,
        max_payload: usize,
        libzmq: Option<&str>,
    ) -> PyResult<Self> {
        let py = envelope.py();
        if !envelope.is_subclass_of::<PyTuple>()? {
            return Err(PyValueError::new_err("envelope must be a tuple subclass"));
        }
        let zmq = libzmq
            .map(LibZmq::open)
            .transpose()
            .map_err(PyOSError::new_err)?;
        Ok(Self {
            decoder: Decoder {
                tuple_new: py.get_type::<PyTuple>().getattr("__new__")?.unbind(),
                envelope: envelope.unbind(),
                topics: Mutex::new(HashMap::new()),
                max_payload,
            },
            zmq,
        })
    }

    /// True when `recv` can be used (libzmq was opened).
    #[getter]
    fn can_recv(&self) -> bool {
        self.zmq.is_some()
    }

    /// The Envelope of `frame`, or None when the frame is invalid.
    #[pyo3(signature = (frame, max_payload = None))]
    fn decode<'py>(
        &self,
        frame: &Bound<'py, PyBytes>,
        max_payload: Option<usize>,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        let max = max_payload.unwrap_or(self.decoder.max_payload);
        self.decoder.envelope(frame.py(), frame.as_bytes(), max)
    }

    /// Up to `limit` frames queued on a pyzmq socket (`Socket.underlying`), without
    /// blocking: each an Envelope, or the frame's bytes when it does not decode. Frames
    /// already taken are returned before an error is raised (on the next call).
    fn recv<'py>(
        &self,
        py: Python<'py>,
        socket: usize,
        limit: usize,
    ) -> PyResult<Bound<'py, PyList>> {
        let zmq = self
            .zmq
            .as_ref()
            .ok_or_else(|| PyValueError::new_err("Codec was made without libzmq"))?;
        if socket == 0 {
            return Err(PyValueError::new_err(
                "socket handle is 0 (a closed socket)",
            ));
        }
        let out = PyList::empty(py);
        let decoder = &self.decoder;
        let max = decoder.max_payload;
        while out.len() < limit {
            let step = zmq.recv_one(socket, |frame| match decoder.envelope(py, frame, max) {
                Ok(Some(env)) => Ok(env),
                Ok(None) => Ok(PyBytes::new(py, rejected_part(frame, max)).into_any()),
                Err(e) => Err(e),
            });
            match step {
                Ok((Recv::Frame, Some(item))) => out.append(item?)?,
                Ok((Recv::Interrupted, _)) if out.is_empty() => py.check_signals()?,
                Ok(_) => break,
                Err(e) if out.is_empty() => {
                    let code = e.raw_os_error().unwrap_or(0);
                    return Err(PyOSError::new_err((code, e.to_string())));
                }
                Err(_) => break,
            }
        }
        Ok(out)
    }

    /// `pack` the frame, send it without blocking on a pyzmq socket handle, return it.
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (socket, topic, type_id, fingerprint, publisher_id, seq, key_seq, send_ts_ns, payload, flags = 0))]
    fn pack_send<'py>(
        &self,
        py: Python<'py>,
        socket: usize,
        topic: &[u8],
        type_id: u16,
        fingerprint: u64,
        publisher_id: u64,
        seq: u64,
        key_seq: u64,
        send_ts_ns: u64,
        payload: &[u8],
        flags: u8,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let zmq = self
            .zmq
            .as_ref()
            .ok_or_else(|| PyValueError::new_err("Codec was made without libzmq"))?;
        if socket == 0 {
            return Err(PyValueError::new_err(
                "socket handle is 0 (a closed socket)",
            ));
        }
        let frame = self.pack(
            py,
            topic,
            type_id,
            fingerprint,
            publisher_id,
            seq,
            key_seq,
            send_ts_ns,
            payload,
            flags,
        )?;
        zmq.send(socket, frame.as_bytes())
            .map_err(|e| PyOSError::new_err((e.raw_os_error().unwrap_or(0), e.to_string())))?;
        Ok(frame)
    }

    /// One frame: `topic` (from `tradewire.wire.topic`) + header + payload.
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (topic, type_id, fingerprint, publisher_id, seq, key_seq, send_ts_ns, payload, flags = 0))]
    fn pack<'py>(
        &self,
        py: Python<'py>,
        topic: &[u8],
        type_id: u16,
        fingerprint: u64,
        publisher_id: u64,
        seq: u64,
        key_seq: u64,
        send_ts_ns: u64,
        payload: &[u8],
        flags: u8,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let text = topic
            .strip_suffix(&[0])
            .and_then(|t| std::str::from_utf8(t).ok())
            .ok_or_else(|| PyValueError::new_err("topic must be tradewire.wire.topic() bytes"))?;
        let (channel, key) = text
            .split_once('/')
            .ok_or_else(|| PyValueError::new_err("topic has no '/'"))?;
        let env = wire::Envelope {
            channel,
            key,
            flags,
            type_id,
            fingerprint,
            publisher_id,
            seq,
            key_seq,
            send_ts_ns,
            payload,
        };
        // The crate's encoder: one definition of the byte layout (WIRE.md section 2).
        let frame = env
            .to_vec()
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        Ok(PyBytes::new(py, &frame))
    }
}

/// The part of a frame that does not decode which the Python decoder needs to name its
/// error: all of it, except for an oversized payload, which its topic and header name (a
/// frame just under `ZMQ_MAXMSGSIZE` is not copied whole into Python).
fn rejected_part(frame: &[u8], max_payload: usize) -> &[u8] {
    match wire::decode_with_limit(frame, max_payload) {
        Err(wire::WireError::Oversized { .. }) => {
            let topic = frame.iter().position(|&b| b == 0).map_or(0, |nul| nul + 1);
            &frame[..frame.len().min(topic + wire::HEADER_SIZE)]
        }
        _ => frame,
    }
}

#[pymodule]
fn _wire(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Codec>()?;
    m.add_class::<sequencer::Sequencer>()?;
    journal::register(m)?;
    command_store::register(m)?;
    Ok(())
}

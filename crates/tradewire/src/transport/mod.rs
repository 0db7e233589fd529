//! The tradewire transport over ZeroMQ (WIRE.md section 7), std threads only.
//!
//! - [`Publisher`]: XPUB data socket + ROUTER control socket; sequence numbers, replay
//!   ring, last-value map, sync-topic handshake, idle heartbeats.
//! - [`Subscriber`]: SUB + DEALER; returns from construction only once the subscription
//!   is live (§7.1), detects gaps and recovers them by replay (§7.2) in the background
//!   of `recv` (one request per stream outstanding, later gaps folded into the next;
//!   the live stream keeps being read meanwhile), optional late join
//!   from a snapshot (§7.3), peer loss (§7.4). Malformed frames are counted, never fatal.
//! - [`CommandClient`] / [`CommandServer`]: DEALER/ROUTER with retries until a deadline
//!   and a dedupe window on the server (§7.5); optional CURVE with an allow list of
//!   client keys ([`CurveServer`], [`CurveClient`]).
//!
//! Every frame is one ZMQ message in the envelope of [`crate::wire`].
//!
//! ```no_run
//! use std::time::Duration;
//! use tradewire::transport::{Publisher, Subscriber, SubscriberOptions};
//! use tradewire::v1::MarketData;
//!
//! let publisher = Publisher::<MarketData>::bind("ipc:///tmp/md.ipc")?;
//! let mut sub = Subscriber::<MarketData>::connect_with(
//!     "ipc:///tmp/md.ipc",
//!     SubscriberOptions { keys: vec!["AAPL".into()], ..Default::default() },
//! )?;
//! publisher.publish(&MarketData { symbol: "AAPL".into(), price: 1.0, ..Default::default() })?;
//! let got = sub.recv(Duration::from_secs(1)).expect("live after connect");
//! assert_eq!(got.seq, 1);
//! # Ok::<(), tradewire::transport::TransportError>(())
//! ```

mod command;
mod publisher;
mod security;
mod sequencer;
mod subscriber;

use std::collections::hash_map::RandomState;
use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use thiserror::Error;

use crate::catalog::{Channel, Pattern, SchemaMessage};
use crate::wire::WireError;

pub use command::{
    CommandClient, CommandClientOptions, CommandClientStats, CommandServer, CommandServerOptions,
    CommandServerStats, NO_ID_REASON,
};
pub use publisher::{Publisher, PublisherOptions, PublisherStats};
pub use security::{curve_available, CurveClient, CurveKeyPair, CurveServer};
pub use sequencer::{
    ReplayAsk, SeqEvent, Sequencer, SequencerOptions, SequencerStats, Start, Verdict, TO_LAST,
};
#[doc(hidden)]
pub use subscriber::json_string;
pub use subscriber::{Event, EventKind, Received, Subscriber, SubscriberOptions, SubscriberStats};

/// Default socket linger: `close()`/drop is bounded by this even when the peer is gone.
pub const DEFAULT_LINGER: Duration = Duration::from_millis(500);
/// Default send / receive high-water mark of data sockets, in messages.
pub const DEFAULT_HWM: i32 = 100_000;
/// Default number of frames a publisher keeps for replay.
pub const DEFAULT_RING_SIZE: usize = 100_000;
/// Default idle heartbeat interval of a publisher.
pub const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(1);
/// Default time without traffic after which a subscriber reports `peer_lost`.
pub const DEFAULT_PEER_TIMEOUT: Duration = Duration::from_secs(3);
/// Key prefix of the sync topics of the subscription handshake (§7.1).
pub const SYNC_PREFIX: &str = "~sync~";
/// Frames a publisher's control socket queues per peer before it stops sending to it.
pub const DEFAULT_CONTROL_SNDHWM: i32 = 1_000;
/// Replay or snapshot answers a publisher sends at once; further requests wait their turn.
pub const DEFAULT_MAX_ACTIVE_REPLAYS: usize = 4;
/// Requests one peer may have waiting at a publisher; more are refused and counted.
pub const DEFAULT_MAX_QUEUED_REPLAYS: usize = 64;
/// An answer whose peer takes nothing for this long is abandoned and counted.
pub const DEFAULT_CONTROL_SEND_TIMEOUT: Duration = Duration::from_secs(2);
/// Bad-input warnings of one socket are written at most this often.
pub const DEFAULT_WARN_INTERVAL: Duration = Duration::from_secs(1);

/// The largest frame that can be valid with payloads up to `max_payload` bytes: the
/// longest topic, the header and the payload. Receivers set it as `ZMQ_MAXMSGSIZE`, so
/// libzmq drops a larger frame (and the connection that sent it) before buffering it.
pub fn max_frame_size(max_payload: usize) -> i64 {
    let max = crate::wire::MAX_TOPIC + crate::wire::HEADER_SIZE;
    i64::try_from(max_payload.saturating_add(max)).unwrap_or(i64::MAX)
}

/// Bad-input warnings of one socket: at most one line on stderr per interval, carrying
/// the counts by kind since the previous line (a flood writes one line a second).
#[derive(Debug)]
pub(crate) struct WarnLimiter {
    what: String,
    interval: Duration,
    /// Count and one example detail of each kind seen since the last line.
    pending: BTreeMap<&'static str, (u64, String)>,
    next_at: Option<Instant>,
}

impl WarnLimiter {
    pub(crate) fn new(what: String, interval: Duration) -> Self {
        WarnLimiter {
            what,
            interval,
            pending: BTreeMap::new(),
            next_at: None,
        }
    }

    /// Counts one `kind`; writes a line when the interval since the last one has passed.
    /// `detail` is built once per kind and line, so a flood costs a counter increment.
    pub(crate) fn warn(&mut self, kind: &'static str, detail: impl FnOnce() -> String) {
        self.pending.entry(kind).or_insert_with(|| (0, detail())).0 += 1;
        let now = Instant::now();
        if self.next_at.is_none_or(|at| now >= at) {
            self.emit(now);
        }
    }

    /// Writes what was counted since the last line, if anything.
    pub(crate) fn flush(&mut self) {
        if !self.pending.is_empty() {
            self.emit(Instant::now());
        }
    }

    fn emit(&mut self, now: Instant) {
        let counts: Vec<String> = self
            .pending
            .iter()
            .map(|(k, (n, detail))| format!("{k}={n} (e.g. {detail})"))
            .collect();
        eprintln!("tradewire: WARNING {}: {}", self.what, counts.join("; "));
        self.pending.clear();
        self.next_at = Some(now + self.interval);
    }
}

impl Drop for WarnLimiter {
    fn drop(&mut self) {
        self.flush();
    }
}

/// Whether `payload` is a valid encoding of the schema message type `type_id`:
/// `Ok(false)` when the type is not in the schema, `Err` (bad_payload) when it does not parse.
pub(crate) fn check_payload(type_id: u16, payload: &[u8]) -> std::result::Result<bool, WireError> {
    let Some((_, reencode)) = crate::channels::CODECS
        .iter()
        .find(|(t, _)| t.type_id == type_id)
    else {
        return Ok(false);
    };
    let mut scratch = Vec::new();
    reencode(payload, &mut scratch)?;
    Ok(true)
}

/// What can go wrong in the transport.
#[derive(Debug, Error)]
pub enum TransportError {
    /// A ZeroMQ call failed.
    #[error("zmq: {0}")]
    Zmq(#[from] zmq::Error),
    /// A frame could not be encoded or decoded.
    #[error("wire: {0}")]
    Wire(#[from] WireError),
    /// An operation did not complete before its deadline.
    #[error("timed out: {0}")]
    Timeout(String),
    /// The endpoint or channel configuration is not usable.
    #[error("configuration: {0}")]
    Config(String),
    /// A command server's store could not be opened or used.
    #[error("{0}")]
    Store(#[from] crate::command_store::StoreError),
}

/// A ZeroMQ context to share between endpoints of one process (needed for `inproc://`,
/// saves I/O threads). By default every endpoint owns a context of its own, terminated
/// when the endpoint is dropped (which flushes pending sends, bounded by the linger).
#[derive(Clone, Default)]
pub struct Context(pub zmq::Context);

impl Context {
    /// A new context with one I/O thread.
    pub fn new() -> Self {
        Context(zmq::Context::new())
    }
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Context")
    }
}

/// Result of transport operations.
pub type Result<T> = std::result::Result<T, TransportError>;

/// The control endpoint derived from a data endpoint (WIRE.md §7):
/// `ipc://PATH` → `ipc://PATH.ctl`, `tcp://HOST:PORT` → `tcp://HOST:PORT+1`.
pub fn control_endpoint(endpoint: &str) -> Result<String> {
    if endpoint.starts_with("ipc://") {
        return Ok(format!("{endpoint}.ctl"));
    }
    if let Some(rest) = endpoint.strip_prefix("tcp://") {
        if let Some((host, port)) = rest.rsplit_once(':') {
            if let Ok(port) = port.parse::<u16>() {
                if let Some(next) = port.checked_add(1) {
                    return Ok(format!("tcp://{host}:{next}"));
                }
            }
        }
    }
    Err(TransportError::Config(format!(
        "cannot derive a control endpoint from {endpoint:?}: use ipc://PATH or tcp://HOST:PORT, \
         or configure the control endpoint explicitly"
    )))
}

/// The pub/sub channel that carries `M` (the first one declared), unless given.
pub(crate) fn resolve_channel<M: SchemaMessage>(
    given: Option<Channel>,
    pattern: Pattern,
) -> Result<Channel> {
    let channel = match given {
        Some(c) => c,
        None => crate::channels::CHANNELS
            .iter()
            .find(|c| c.message.type_id == M::TYPE.type_id && c.pattern == pattern)
            .copied()
            .ok_or_else(|| {
                TransportError::Config(format!(
                    "no {pattern:?} channel carries {}",
                    M::TYPE.full_name
                ))
            })?,
    };
    if channel.pattern != pattern {
        return Err(TransportError::Config(format!(
            "channel {:?} is {:?}, not {pattern:?}",
            channel.name, channel.pattern
        )));
    }
    if channel.message.type_id != M::TYPE.type_id {
        return Err(TransportError::Config(format!(
            "channel {:?} carries {}, not {}",
            channel.name,
            channel.message.full_name,
            M::TYPE.full_name
        )));
    }
    Ok(channel)
}

/// Nanoseconds since the Unix epoch.
pub(crate) fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Microseconds since the Unix epoch.
pub(crate) fn now_us() -> i64 {
    i64::try_from(now_ns() / 1_000).unwrap_or(i64::MAX)
}

/// A random u64 from the OS-seeded std hasher keys, the clock and a process counter.
pub(crate) fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = RandomState::new().build_hasher();
    h.write_u64(now_ns());
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u32(std::process::id());
    h.finish()
}

/// A random non-zero u64 (publisher ids).
pub(crate) fn random_nonzero_u64() -> u64 {
    loop {
        let v = random_u64();
        if v != 0 {
            return v;
        }
    }
}

/// `n` random lowercase hex digits.
pub(crate) fn random_hex(n: usize) -> String {
    let mut out = String::with_capacity(n);
    while out.len() < n {
        let v = random_u64();
        out.push_str(&format!("{v:016x}"));
    }
    out.truncate(n);
    out
}

/// Milliseconds for a zmq option, clamped to i32.
pub(crate) fn millis_i32(d: Duration) -> i32 {
    i32::try_from(d.as_millis()).unwrap_or(i32::MAX)
}

/// Milliseconds for zmq_poll, at least 0, clamped to i64.
pub(crate) fn millis_i64(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Sets `flag` in the header of an encoded frame (no-op on a frame without a topic NUL).
pub(crate) fn set_flag(frame: &mut [u8], flag: u8) {
    if let Some(nul) = frame
        .iter()
        .take(crate::wire::MAX_TOPIC)
        .position(|&b| b == 0)
    {
        if let Some(flags) = frame.get_mut(nul + 4) {
            *flags |= flag;
        }
    }
}

/// Applies the socket options every tradewire socket gets: linger, and on tcp ZMTP
/// heartbeats and capped reconnect backoff (WIRE.md §7.4).
pub(crate) fn common_options(
    sock: &zmq::Socket,
    endpoint: &str,
    linger: Duration,
) -> zmq::Result<()> {
    sock.set_linger(millis_i32(linger))?;
    if endpoint.starts_with("tcp://") {
        sock.set_heartbeat_ivl(1_000)?;
        sock.set_heartbeat_timeout(3_000)?;
        sock.set_heartbeat_ttl(6_000)?;
    }
    sock.set_reconnect_ivl(100)?;
    sock.set_reconnect_ivl_max(2_000)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_endpoints() {
        assert_eq!(
            control_endpoint("ipc:///tmp/x").unwrap(),
            "ipc:///tmp/x.ctl"
        );
        assert_eq!(
            control_endpoint("tcp://127.0.0.1:5555").unwrap(),
            "tcp://127.0.0.1:5556"
        );
        assert_eq!(
            control_endpoint("tcp://[::1]:7000").unwrap(),
            "tcp://[::1]:7001"
        );
        assert!(control_endpoint("tcp://host:*").is_err());
        assert!(control_endpoint("tcp://host:65535").is_err());
        assert!(control_endpoint("inproc://x").is_err());
    }

    #[test]
    fn randoms() {
        let a = random_hex(16);
        assert_eq!(a.len(), 16);
        assert!(a
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        assert_ne!(random_u64(), random_u64());
        assert_ne!(random_nonzero_u64(), 0);
    }

    #[test]
    fn channel_resolution() {
        use crate::v1;
        let c = resolve_channel::<v1::MarketData>(None, Pattern::PubSub).unwrap();
        assert_eq!(c.name, "market_data");
        assert!(resolve_channel::<v1::MarketData>(None, Pattern::Command).is_err());
        assert!(
            resolve_channel::<v1::Order>(Some(crate::channels::MARKET_DATA), Pattern::PubSub)
                .is_err()
        );
        let c = resolve_channel::<v1::StrategyCommand>(None, Pattern::Command).unwrap();
        assert_eq!(c.name, "commands");
    }
}

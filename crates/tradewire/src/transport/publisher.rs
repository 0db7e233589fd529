//! Publisher: XPUB data socket + ROUTER control socket (WIRE.md §7).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::catalog::{Channel, Keyed, Pattern, SchemaMessage};
use crate::journal::{Journal, JournalOptions, JournalReader, PublisherRange};
use crate::v1;
use crate::wire::{self, FLAG_REPLAY, FLAG_SNAPSHOT};

use super::security::{CurveServer, ZapHandler};
use super::{
    common_options, control_endpoint, max_frame_size, now_ns, now_us, random_nonzero_u64,
    resolve_channel, set_flag, Result, TransportError, WarnLimiter, DEFAULT_CONTROL_SEND_TIMEOUT,
    DEFAULT_CONTROL_SNDHWM, DEFAULT_HEARTBEAT_INTERVAL, DEFAULT_HWM, DEFAULT_LINGER,
    DEFAULT_MAX_ACTIVE_REPLAYS, DEFAULT_MAX_QUEUED_REPLAYS, DEFAULT_RING_SIZE,
    DEFAULT_WARN_INTERVAL, SYNC_PREFIX,
};

/// How the control thread waits for requests; XPUB subscription events (the handshake)
/// are read at least this often.
const CONTROL_POLL: Duration = Duration::from_millis(2);
/// Frames one answer sends per turn of the control loop.
const SEND_BATCH: usize = 256;
/// Ring slots a replay looks at per hold of the lock.
const SCAN_CHUNK: u64 = 4_096;
/// Requests waiting, all peers together.
const MAX_QUEUED_TOTAL: usize = 4_096;
/// Journal records a replay reads per turn.
const JOURNAL_CHUNK: usize = 256;
/// How often the control thread runs the journal's periodic work (fsync, retention).
const JOURNAL_TICK: Duration = Duration::from_millis(50);

/// Publisher configuration. `Default` gives the WIRE.md defaults.
#[derive(Debug, Clone)]
pub struct PublisherOptions {
    /// Control ROUTER endpoint; derived from the data endpoint when `None`.
    pub control_endpoint: Option<String>,
    /// Channel to publish on; the pub/sub channel carrying `M` when `None`.
    pub channel: Option<Channel>,
    /// Frames kept for replay (at least 1).
    pub ring_size: usize,
    /// Idle time after which a heartbeat is published.
    pub heartbeat_interval: Duration,
    /// XPUB send high-water mark per subscriber, in messages (0 = unlimited).
    pub sndhwm: i32,
    /// Socket linger on close.
    pub linger: Duration,
    /// ZMQ context to use; a new one (owned by this publisher) when `None`.
    pub context: Option<super::Context>,
    /// Largest control request payload; the control socket's `ZMQ_MAXMSGSIZE` follows.
    pub max_payload: usize,
    /// Control socket send high-water mark per peer, in frames: an answer stops at it
    /// until the peer reads.
    pub control_sndhwm: i32,
    /// Replay / snapshot answers sent at once (one per peer); other requests wait.
    pub max_active_replays: usize,
    /// Requests one peer may have waiting; more are refused (`replays_refused`).
    pub max_queued_replays: usize,
    /// An answer whose peer takes nothing for this long is abandoned
    /// (`control_send_failed`).
    pub control_send_timeout: Duration,
    /// Rejected control requests are logged at most once per this interval.
    pub warn_interval: Duration,
    /// Append every published frame to this on-disk journal (WIRE.md section 7.6):
    /// replays reach numbers evicted from the ring and the numbers of the previous
    /// publisher ids found in the journal, and heartbeats name the previous id.
    pub journal: Option<JournalOptions>,
    /// `false` (default): libzmq drops a frame a subscriber's full queue refuses for that
    /// subscriber only, uncounted here; that subscriber sees and reports the gap.
    /// `true`: `ZMQ_XPUB_NODROP`, the frame is sent to no subscriber and counted
    /// `hwm_dropped` (every subscriber replays it): one stalled subscriber then holds back
    /// the live stream of all (WIRE.md 8.5).
    pub count_hwm_drops: bool,
    /// Only CURVE clients whose keys this allows may use the control socket (replay,
    /// snapshot, checks); refusals are counted ([`Publisher::curve_refusals`]) and logged.
    /// The data socket stays open to every subscriber (WIRE.md 8.4). Needs a context of
    /// its own (one authenticator per ZMQ context).
    pub control_curve: Option<CurveServer>,
}

impl Default for PublisherOptions {
    fn default() -> Self {
        PublisherOptions {
            control_endpoint: None,
            channel: None,
            ring_size: DEFAULT_RING_SIZE,
            heartbeat_interval: DEFAULT_HEARTBEAT_INTERVAL,
            sndhwm: DEFAULT_HWM,
            linger: DEFAULT_LINGER,
            context: None,
            max_payload: wire::DEFAULT_MAX_PAYLOAD,
            control_sndhwm: DEFAULT_CONTROL_SNDHWM,
            max_active_replays: DEFAULT_MAX_ACTIVE_REPLAYS,
            max_queued_replays: DEFAULT_MAX_QUEUED_REPLAYS,
            control_send_timeout: DEFAULT_CONTROL_SEND_TIMEOUT,
            warn_interval: DEFAULT_WARN_INTERVAL,
            journal: None,
            count_hwm_drops: false,
            control_curve: None,
        }
    }
}

/// Publisher counters. With `count_hwm_drops`, the XPUB has `ZMQ_XPUB_NODROP` set: a frame
/// refused at a subscriber's high-water mark is counted `hwm_dropped` (WIRE.md section
/// 8.5); it stays in the ring (and journal) for the subscribers' replay.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublisherStats {
    /// Data messages published.
    pub sent: u64,
    /// Idle heartbeats published.
    pub heartbeats: u64,
    /// Sync-topic subscriptions answered (subscription handshakes).
    pub handshakes: u64,
    /// Subscription events seen on the XPUB (sync topics excluded).
    pub subscriptions: u64,
    /// Replay requests answered.
    pub replay_requests: u64,
    /// Frames resent by replay.
    pub replayed: u64,
    /// Sequence numbers requested but no longer held (reported in ReplayEnd).
    pub unrecoverable: u64,
    /// Snapshot requests answered.
    pub snapshots_served: u64,
    /// Control requests rejected (malformed, unexpected type, bad framing).
    pub control_rejected: u64,
    /// `control_rejected` by kind: a WIRE.md error kind, `bad_framing` or
    /// `unexpected_request`.
    pub rejected: BTreeMap<&'static str, u64>,
    /// Control replies that could not be sent (peer gone or stuck).
    pub control_send_failed: u64,
    /// Requests refused because their peer already had `max_queued_replays` waiting.
    pub replays_refused: u64,
    /// Data frames not sent because a subscriber's queue was at the send high-water mark
    /// (sent to no subscriber; recoverable by replay).
    pub hwm_dropped: u64,
    /// Frames appended to the journal.
    pub journaled: u64,
    /// Frames of `replayed` read from the journal (not held by the ring).
    pub replayed_from_journal: u64,
    /// Journal errors of the control thread (fsync, retention), logged.
    pub journal_errors: u64,
}

/// One frame of the replay ring.
#[derive(Default)]
struct Slot {
    seq: u64,
    key_id: u32,
    key_seq: u64,
    frame: Vec<u8>,
}

/// The last `cap` frames, by seq: slot `(seq - 1) % cap`.
struct Ring {
    cap: usize,
    slots: Vec<Slot>,
}

impl Ring {
    fn new(cap: usize) -> Self {
        Ring {
            cap: cap.max(1),
            slots: Vec::new(),
        }
    }

    fn index(&self, seq: u64) -> usize {
        // seq >= 1; the remainder is < cap, a usize.
        usize::try_from((seq - 1) % self.cap as u64).unwrap_or(0)
    }

    /// The (cleared) slot for `seq`, created on first use.
    fn slot_for(&mut self, seq: u64) -> &mut Slot {
        let i = self.index(seq);
        if i == self.slots.len() {
            self.slots.push(Slot::default());
        }
        let slot = &mut self.slots[i];
        slot.frame.clear();
        slot.seq = 0;
        slot
    }

    /// Oldest seq held when the last published seq is `last` (0: nothing held).
    fn oldest(&self, last: u64) -> u64 {
        if last == 0 {
            0
        } else {
            last.saturating_sub(self.cap as u64 - 1).max(1)
        }
    }

    fn get(&self, seq: u64) -> Option<&Slot> {
        self.slots.get(self.index(seq)).filter(|s| s.seq == seq)
    }
}

/// Everything the user thread and the control thread share, behind one mutex.
struct Shared {
    xpub: zmq::Socket,
    seq: u64,
    key_ids: HashMap<String, u32>,
    keys: Vec<String>,
    key_seqs: Vec<u64>,
    ring: Ring,
    /// Latest frame per key id, for last-value channels.
    last_value: Option<Vec<Vec<u8>>>,
    journal: Option<Journal>,
    /// Sync topics whose handshake Heartbeat a full subscriber queue refused; retried.
    pending_sync: Vec<String>,
    stats: PublisherStats,
}

struct Inner {
    channel: Channel,
    publisher_id: u64,
    /// When `publisher_id` was drawn (the Heartbeat's uptime).
    started: Instant,
    /// The previous publisher id found in the journal at start, with its last numbers.
    previous: Option<PublisherRange>,
    shared: Mutex<Shared>,
    handshake: Condvar,
    stop: AtomicBool,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Shared> {
        // A panic while holding the lock leaves consistent-enough counters; keep going.
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Publishes messages of type `M` on one channel with sequence numbers, and serves
/// replay, snapshots and the subscription handshake from a background thread.
///
/// `publish` takes `&self`: the publisher may be shared between threads. Dropping it
/// stops the control thread and closes the sockets (bounded by the linger).
pub struct Publisher<M> {
    inner: Arc<Inner>,
    endpoint: String,
    control_endpoint: String,
    thread: Option<JoinHandle<()>>,
    /// The control socket's authenticator (with `control_curve`).
    zap: Option<ZapHandler>,
    _context: zmq::Context,
    _message: PhantomData<fn(&M)>,
}

impl<M: SchemaMessage + Keyed> Publisher<M> {
    /// Binds with default options.
    pub fn bind(endpoint: &str) -> Result<Self> {
        Self::bind_with(endpoint, PublisherOptions::default())
    }

    /// Binds the data XPUB at `endpoint` and the control ROUTER, and starts the control
    /// thread.
    pub fn bind_with(endpoint: &str, options: PublisherOptions) -> Result<Self> {
        let channel = resolve_channel::<M>(options.channel, Pattern::PubSub)?;
        let control = match &options.control_endpoint {
            Some(c) => c.clone(),
            None => control_endpoint(endpoint)?,
        };
        let context = options.context.clone().unwrap_or_default().0;
        let xpub = context.socket(zmq::XPUB)?;
        common_options(&xpub, endpoint, options.linger)?;
        xpub.set_sndhwm(options.sndhwm)?;
        // Counting: at the high-water mark a send fails with EAGAIN (counted) instead of
        // libzmq dropping the frame for that subscriber alone.
        xpub.set_xpub_nodrop(options.count_hwm_drops)?;
        xpub.bind(endpoint)?;
        let router = context.socket(zmq::ROUTER)?;
        common_options(&router, &control, options.linger)?;
        // A full peer queue makes a send fail with EAGAIN instead of dropping the frame.
        router.set_router_mandatory(true)?;
        router.set_sndhwm(options.control_sndhwm.max(1))?;
        router.set_maxmsgsize(max_frame_size(options.max_payload))?;
        let zap = match &options.control_curve {
            Some(curve) => Some(ZapHandler::secure_server(
                &context, &router, curve, &control,
            )?),
            None => None,
        };
        router.bind(&control)?;
        if let Some(zap) = &zap {
            if let Ok(Ok(bound)) = router.get_last_endpoint() {
                zap.set_endpoint(bound);
            }
        }
        let limits = Limits {
            max_payload: options.max_payload,
            max_active: options.max_active_replays.max(1),
            max_queued: options.max_queued_replays.max(1),
            send_timeout: options.control_send_timeout,
            warn: WarnLimiter::new(
                format!("rejected control requests on {}", channel.name),
                options.warn_interval,
            ),
        };

        let publisher_id = random_nonzero_u64();
        let journal = match &options.journal {
            Some(j) => Some(Journal::open(j.clone()).map_err(|e| {
                TransportError::Config(format!("journal {}: {e}", j.dir.display()))
            })?),
            None => None,
        };
        let previous = journal.as_ref().and_then(|j| j.previous(publisher_id));
        let inner = Arc::new(Inner {
            channel,
            publisher_id,
            started: Instant::now(),
            previous,
            shared: Mutex::new(Shared {
                xpub,
                seq: 0,
                key_ids: HashMap::new(),
                keys: Vec::new(),
                key_seqs: Vec::new(),
                ring: Ring::new(options.ring_size),
                last_value: channel.last_value.then(Vec::new),
                journal,
                pending_sync: Vec::new(),
                stats: PublisherStats::default(),
            }),
            handshake: Condvar::new(),
            stop: AtomicBool::new(false),
        });
        let thread_inner = Arc::clone(&inner);
        let interval = options.heartbeat_interval;
        let thread = std::thread::Builder::new()
            .name(format!("tw-pub-{}", channel.name))
            .spawn(move || control_loop(&thread_inner, &router, interval, limits))
            .map_err(|e| TransportError::Config(format!("cannot start control thread: {e}")))?;
        Ok(Publisher {
            inner,
            endpoint: endpoint.to_owned(),
            control_endpoint: control,
            thread: Some(thread),
            zap,
            _context: context,
            _message: PhantomData,
        })
    }

    /// Publishes one message; returns its channel sequence number.
    pub fn publish(&self, msg: &M) -> Result<u64> {
        let channel = self.inner.channel;
        let key = if channel.key_field.is_empty() {
            ""
        } else {
            msg.key()
        };
        let mut guard = self.inner.lock();
        let s = &mut *guard;
        let key_id = match s.key_ids.get(key) {
            Some(&id) => id,
            None => {
                wire::validate_key(key)?;
                let id = u32::try_from(s.keys.len())
                    .map_err(|_| TransportError::Config("too many keys".into()))?;
                s.key_ids.insert(key.to_owned(), id);
                s.keys.push(key.to_owned());
                s.key_seqs.push(0);
                if let Some(lv) = &mut s.last_value {
                    lv.push(Vec::new());
                }
                id
            }
        };
        let idx = key_id as usize;
        let seq = s.seq + 1;
        let key_seq = if key.is_empty() {
            seq
        } else {
            s.key_seqs[idx] + 1
        };
        let slot = s.ring.slot_for(seq);
        wire::encode_message(
            channel.name,
            key,
            msg,
            self.inner.publisher_id,
            seq,
            key_seq,
            now_ns(),
            0,
            &mut slot.frame,
        )?;
        // Journal first: what went out is always in the journal (a kill -9 between the
        // two leaves a journaled frame no subscriber saw, never the reverse).
        if let Some(journal) = &mut s.journal {
            journal
                .append(&slot.frame)
                .map_err(|e| TransportError::Config(format!("journal append: {e}")))?;
        }
        match s.xpub.send(&slot.frame[..], zmq::DONTWAIT) {
            Ok(()) => {}
            Err(zmq::Error::EAGAIN) => s.stats.hwm_dropped += 1,
            Err(e) => return Err(e.into()),
        }
        slot.seq = seq;
        slot.key_id = key_id;
        slot.key_seq = key_seq;
        s.seq = seq;
        s.key_seqs[idx] = key_seq;
        if let Some(lv) = &mut s.last_value {
            let frame = &s.ring.slots[s.ring.index(seq)].frame;
            let latest = &mut lv[idx];
            latest.clear();
            latest.extend_from_slice(frame);
        }
        s.stats.sent += 1;
        if s.journal.is_some() {
            s.stats.journaled += 1;
        }
        Ok(seq)
    }

    /// Waits until at least one subscriber has completed the subscription handshake
    /// (§7.1), or `timeout` passes. Returns whether one did.
    pub fn wait_for_subscriber(&self, timeout: Duration) -> bool {
        self.wait_until(timeout, |s| s.handshakes > 0)
    }

    /// Waits until a subscriber is connected: a completed handshake, or any data
    /// subscription (a subscriber reconnecting after a publisher restart resends its data
    /// subscriptions, not its sync topic). Returns whether one is.
    pub fn wait_for_subscription(&self, timeout: Duration) -> bool {
        self.wait_until(timeout, |s| s.handshakes > 0 || s.subscriptions > 0)
    }

    fn wait_until(&self, timeout: Duration, done: impl Fn(&PublisherStats) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let mut guard = self.inner.lock();
        while !done(&guard.stats) {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            guard = match self.inner.handshake.wait_timeout(guard, deadline - now) {
                Ok((g, _)) => g,
                Err(e) => e.into_inner().0,
            };
        }
        true
    }
}

impl<M> Publisher<M> {
    /// This publisher's random non-zero id (new at every start).
    pub fn publisher_id(&self) -> u64 {
        self.inner.publisher_id
    }

    /// The channel published on.
    pub fn channel(&self) -> Channel {
        self.inner.channel
    }

    /// The data endpoint as given.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The control endpoint in use.
    pub fn control_endpoint(&self) -> &str {
        &self.control_endpoint
    }

    /// Sequence number of the last published message (0 before the first).
    pub fn last_seq(&self) -> u64 {
        self.inner.lock().seq
    }

    /// A copy of the counters.
    pub fn stats(&self) -> PublisherStats {
        self.inner.lock().stats.clone()
    }

    /// Refused CURVE handshakes at the control socket by kind (`unknown_client`,
    /// `no_curve`, `bad_server_key`, `protocol_error`); empty without `control_curve`.
    pub fn curve_refusals(&self) -> BTreeMap<&'static str, u64> {
        self.zap
            .as_ref()
            .map(|z| z.log().refusals())
            .unwrap_or_default()
    }

    /// Stops the control thread and closes the sockets (also done on drop).
    pub fn close(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.inner.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl<M> Drop for Publisher<M> {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl<M> std::fmt::Debug for Publisher<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("channel", &self.inner.channel.name)
            .field(
                "publisher_id",
                &format_args!("{:016x}", self.inner.publisher_id),
            )
            .field("endpoint", &self.endpoint)
            .field("control_endpoint", &self.control_endpoint)
            .finish()
    }
}

// ---- control thread -------------------------------------------------------------------

/// The control socket's bounds (see [`PublisherOptions`]).
struct Limits {
    max_payload: usize,
    max_active: usize,
    max_queued: usize,
    send_timeout: Duration,
    warn: WarnLimiter,
}

/// Requests being answered and waiting, and how many each peer has of either.
#[derive(Default)]
struct Answers {
    waiting: VecDeque<Answer>,
    active: Vec<Answer>,
    per_peer: HashMap<Vec<u8>, usize>,
}

/// The reply frames to one control request, produced lazily (a replay reads the ring as
/// it goes) and sent as far as the peer's queue allows.
struct Answer {
    identity: Vec<u8>,
    source: Source,
    pending: Option<Vec<u8>>,
    stalled_since: Option<Instant>,
    done: bool,
}

enum Source {
    Frames(VecDeque<Vec<u8>>),
    Replay(Box<ReplayCursor>),
}

/// A replay in progress: numbers (key_seq of `key_id`, else seq) `expected..=upto` among
/// channel seqs `cursor..=newest` still held by the ring; numbers the ring no longer
/// holds are read from the journal (when there is one) before the ring goes on, so the
/// answer stays in number order. A replay of a previous publisher id reads the journal
/// only (`ring` false).
struct ReplayCursor {
    end: v1::ReplayEnd,
    ring: bool,
    /// The journal's part in progress, with the last number it covers.
    journal: Option<(JournalReader, u64)>,
    key_id: Option<u32>,
    newest: u64,
    upto: u64,
    expected: u64,
    cursor: u64,
    scanned: bool,
    buffered: VecDeque<Vec<u8>>,
    lost: Option<(u64, u64)>,
    lost_count: u64,
    sent: u64,
    ended: bool,
}

impl ReplayCursor {
    /// An answer to `end`'s range that has sent nothing yet.
    fn new(
        ring: bool,
        key_id: Option<u32>,
        newest: u64,
        upto: u64,
        cursor: u64,
        end: v1::ReplayEnd,
    ) -> Self {
        ReplayCursor {
            ring,
            journal: None,
            key_id,
            newest,
            upto,
            expected: end.from_seq,
            cursor,
            scanned: false,
            buffered: VecDeque::new(),
            lost: None,
            lost_count: 0,
            sent: 0,
            ended: false,
            end,
        }
    }

    fn lose(&mut self, from: u64, to: u64) {
        self.lost_count += to - from + 1;
        let (a, b) = self.lost.unwrap_or((from, to));
        self.lost = Some((a.min(from), b.max(to)));
    }

    fn next_frame(&mut self, inner: &Inner) -> Option<Vec<u8>> {
        // Each scan moves on (ring slots or journal records), so this ends.
        while self.buffered.is_empty() && !self.scanned {
            self.scan(inner);
        }
        if let Some(frame) = self.buffered.pop_front() {
            self.sent += 1;
            return Some(frame);
        }
        if self.ended {
            return None;
        }
        self.ended = true;
        if self.expected <= self.upto {
            self.lose(self.expected, self.upto);
        }
        if let Some((a, b)) = self.lost {
            self.end.unrecoverable_from = a;
            self.end.unrecoverable_to = b;
        }
        self.end.replayed = u32::try_from(self.sent).unwrap_or(u32::MAX);
        let mut s = inner.lock();
        s.stats.replayed += self.sent;
        s.stats.unrecoverable += self.lost_count;
        drop(s);
        control_frame(inner, "", &self.end).ok()
    }

    /// Reads `expected..=to` from the journal next, if there is one; else they are lost.
    fn journal_part(&mut self, s: &Shared, to: u64) {
        match &s.journal {
            Some(journal) => {
                let reader = journal.read(self.end.publisher_id, &self.end.key, self.expected, to);
                self.journal = Some((reader, to));
            }
            None => {
                self.lose(self.expected, to);
                self.expected = to + 1;
            }
        }
    }

    /// Reads the next chunk of the journal's part (outside the publisher's lock).
    fn scan_journal(&mut self, inner: &Inner) {
        let Some((mut reader, to)) = self.journal.take() else {
            self.scanned = true;
            return;
        };
        let mut read = 0u64;
        let mut exhausted = false;
        while read < JOURNAL_CHUNK as u64 {
            let Some((n, mut frame)) = reader.next_frame() else {
                exhausted = true;
                break;
            };
            if n < self.expected {
                continue;
            }
            if n > self.expected {
                self.lose(self.expected, n - 1);
            }
            set_flag(&mut frame, FLAG_REPLAY);
            self.buffered.push_back(frame);
            self.expected = n + 1;
            read += 1;
            if n >= to {
                exhausted = true;
                break;
            }
        }
        if read > 0 {
            inner.lock().stats.replayed_from_journal += read;
        }
        if !exhausted {
            self.journal = Some((reader, to));
            return;
        }
        if self.expected <= to {
            self.lose(self.expected, to);
            self.expected = to + 1;
        }
        if !self.ring || self.expected > self.upto {
            self.scanned = true;
        }
    }

    /// Copies the next chunk of matching frames out of the ring.
    fn scan(&mut self, inner: &Inner) {
        if self.journal.is_some() || !self.ring {
            return self.scan_journal(inner);
        }
        let s = inner.lock();
        self.cursor = self.cursor.max(s.ring.oldest(s.seq));
        let last = self.newest.min(self.cursor.saturating_add(SCAN_CHUNK - 1));
        while self.cursor <= last {
            let seq = self.cursor;
            self.cursor += 1;
            let Some(slot) = s.ring.get(seq) else {
                continue;
            };
            let n = match self.key_id {
                Some(id) if slot.key_id != id => continue,
                Some(_) => slot.key_seq,
                None => seq,
            };
            if n < self.expected {
                continue;
            }
            if n > self.upto {
                self.scanned = true;
                break;
            }
            if n > self.expected {
                // The ring no longer holds expected..n-1: the journal's turn, then this
                // slot again.
                self.cursor = seq;
                self.journal_part(&s, n - 1);
                if self.journal.is_some() {
                    return;
                }
            }
            let mut frame = slot.frame.clone();
            set_flag(&mut frame, FLAG_REPLAY);
            self.buffered.push_back(frame);
            self.expected = n + 1;
        }
        if self.expected > self.upto {
            self.scanned = true;
        } else if self.cursor > self.newest {
            // The rest was overwritten while the answer was going out.
            self.journal_part(&s, self.upto);
            if self.journal.is_none() {
                self.scanned = true;
            }
        }
    }
}

impl Answer {
    fn next_frame(&mut self, inner: &Inner) -> Option<Vec<u8>> {
        match &mut self.source {
            Source::Frames(frames) => frames.pop_front(),
            Source::Replay(cursor) => cursor.next_frame(inner),
        }
    }

    /// Sends up to a batch of frames; true when it may send more right away.
    fn send_some(&mut self, inner: &Inner, router: &zmq::Socket, limits: &mut Limits) -> bool {
        for _ in 0..SEND_BATCH {
            if self.pending.is_none() {
                self.pending = self.next_frame(inner);
            }
            let Some(frame) = &self.pending else {
                self.done = true;
                return false;
            };
            let sent = router
                .send(&self.identity[..], zmq::SNDMORE | zmq::DONTWAIT)
                .and_then(|()| router.send(&frame[..], zmq::DONTWAIT));
            match sent {
                Ok(()) => {
                    self.pending = None;
                    self.stalled_since = None;
                }
                // The peer's queue is full: it reads slowly or not at all.
                Err(zmq::Error::EAGAIN) => {
                    let since = *self.stalled_since.get_or_insert_with(Instant::now);
                    if since.elapsed() > limits.send_timeout {
                        self.abandon(inner, limits, "its peer took nothing");
                    }
                    return false;
                }
                Err(e) => {
                    self.abandon(inner, limits, &e.to_string());
                    return false;
                }
            }
        }
        true
    }

    fn abandon(&mut self, inner: &Inner, limits: &mut Limits, why: &str) {
        self.done = true;
        inner.lock().stats.control_send_failed += 1;
        limits
            .warn
            .warn("control_send_failed", || format!("answer abandoned: {why}"));
    }
}

impl Answers {
    /// Moves every active answer on, then starts waiting ones in free slots (one per
    /// peer). True when some answer can go on right away.
    fn send(&mut self, inner: &Inner, router: &zmq::Socket, limits: &mut Limits) -> bool {
        let mut busy = false;
        for answer in &mut self.active {
            busy |= answer.send_some(inner, router, limits);
        }
        let per_peer = &mut self.per_peer;
        self.active.retain(|a| {
            if a.done {
                if let Some(n) = per_peer.get_mut(&a.identity) {
                    *n -= 1;
                    if *n == 0 {
                        per_peer.remove(&a.identity);
                    }
                }
            }
            !a.done
        });
        if !self.waiting.is_empty() && self.active.len() < limits.max_active {
            let mut serving: HashSet<Vec<u8>> =
                self.active.iter().map(|a| a.identity.clone()).collect();
            let mut i = 0;
            while i < self.waiting.len() && self.active.len() < limits.max_active {
                if serving.contains(&self.waiting[i].identity) {
                    i += 1;
                    continue;
                }
                if let Some(answer) = self.waiting.remove(i) {
                    serving.insert(answer.identity.clone());
                    self.active.push(answer);
                    busy = true;
                }
            }
        }
        busy
    }
}

fn control_loop(
    inner: &Inner,
    router: &zmq::Socket,
    heartbeat_interval: Duration,
    mut limits: Limits,
) {
    let mut last_seen_seq = 0u64;
    let mut last_activity = Instant::now();
    let poll_ms = super::millis_i64(CONTROL_POLL);
    let mut answers = Answers::default();
    let mut busy = false;
    let mut last_tick = Instant::now();
    while !inner.stop.load(Ordering::Acquire) {
        match router.poll(zmq::POLLIN, if busy { 0 } else { poll_ms }) {
            Ok(n) if n > 0 => {
                // Drain what is queued, then look at subscriptions again.
                for _ in 0..64 {
                    match router.recv_multipart(zmq::DONTWAIT) {
                        Ok(parts) => request(inner, &parts, &mut answers, &mut limits),
                        Err(_) => break,
                    }
                }
            }
            Ok(_) => {}
            Err(zmq::Error::ETERM) => return,
            Err(_) => {}
        }
        busy = answers.send(inner, router, &mut limits);
        let mut s = inner.lock();
        drain_subscriptions(inner, &mut s);
        if s.seq != last_seen_seq {
            last_seen_seq = s.seq;
            last_activity = Instant::now();
        } else if last_activity.elapsed() >= heartbeat_interval {
            if let Ok(frame) = heartbeat_frame(inner, &s, "") {
                // A full subscriber queue refuses it (EAGAIN); the next interval retries.
                if s.xpub.send(frame, zmq::DONTWAIT).is_ok() {
                    s.stats.heartbeats += 1;
                }
            }
            last_activity = Instant::now();
        }
        if last_tick.elapsed() >= JOURNAL_TICK {
            last_tick = Instant::now();
            // The fsync runs outside the publisher's lock: publishing goes on meanwhile.
            let due = s.journal.as_mut().map(|j| j.due_sync());
            drop(s);
            let synced = match due {
                Some(Ok(Some(job))) => job.run(),
                Some(Err(e)) => Err(e),
                _ => Ok(()),
            };
            let mut s = inner.lock();
            let result = synced.and_then(|()| s.journal.as_mut().map_or(Ok(()), |j| j.tick()));
            if let Err(e) = result {
                s.stats.journal_errors += 1;
                drop(s);
                limits
                    .warn
                    .warn("journal_error", || format!("journal fsync/retention: {e}"));
            }
        }
    }
}

/// Reads XPUB subscription events; answers sync-topic subscriptions with a Heartbeat on
/// exactly that topic (§7.1).
fn drain_subscriptions(inner: &Inner, s: &mut Shared) {
    let mut woke = false;
    // Handshakes a full subscriber queue refused earlier, oldest first.
    let pending = std::mem::take(&mut s.pending_sync);
    for key in pending {
        woke |= send_sync(inner, s, key);
    }
    while let Ok(event) = s.xpub.recv_bytes(zmq::DONTWAIT) {
        let Some((&1, topic)) = event.split_first() else {
            continue; // unsubscribe or not a subscription
        };
        let sync_key = topic
            .strip_suffix(b"\0")
            .and_then(|t| t.strip_prefix(inner.channel.name.as_bytes()))
            .and_then(|t| t.strip_prefix(b"/"))
            .and_then(|k| std::str::from_utf8(k).ok())
            .filter(|k| k.starts_with(SYNC_PREFIX));
        match sync_key {
            Some(key) => woke |= send_sync(inner, s, key.to_owned()),
            None => {
                s.stats.subscriptions += 1;
                woke = true;
            }
        }
    }
    if woke {
        inner.handshake.notify_all();
    }
}

/// Sends the handshake Heartbeat on sync topic `key`; true when sent. Refused at the
/// high-water mark (a subscriber of the whole channel is full: it matches the sync topic
/// too), it is queued for the next turn.
fn send_sync(inner: &Inner, s: &mut Shared, key: String) -> bool {
    let Ok(frame) = heartbeat_frame(inner, s, &key) else {
        return false;
    };
    match s.xpub.send(frame, zmq::DONTWAIT) {
        Ok(()) => {
            s.stats.handshakes += 1;
            true
        }
        Err(zmq::Error::EAGAIN) => {
            if s.pending_sync.len() < MAX_QUEUED_TOTAL {
                s.pending_sync.push(key);
            }
            false
        }
        Err(_) => false,
    }
}

fn heartbeat_frame(inner: &Inner, s: &Shared, key: &str) -> Result<Vec<u8>> {
    let keyed = !inner.channel.key_field.is_empty();
    let beat = v1::Heartbeat {
        channel: inner.channel.name.to_owned(),
        last_seq: s.seq,
        timestamp_us: now_us(),
        last_key_seq: if keyed {
            s.keys
                .iter()
                .zip(&s.key_seqs)
                .map(|(k, &v)| (k.clone(), v))
                .collect()
        } else {
            Default::default()
        },
        uptime_us: u64::try_from(inner.started.elapsed().as_micros()).unwrap_or(u64::MAX),
        previous_publisher_id: inner.previous.as_ref().map_or(0, |p| p.publisher_id),
        previous_last_seq: inner.previous.as_ref().map_or(0, |p| p.last_seq),
        previous_last_key_seq: match &inner.previous {
            Some(p) if keyed => p.last_key_seq.clone(),
            _ => Default::default(),
        },
    };
    control_frame(inner, key, &beat)
}

fn control_frame<T: SchemaMessage>(inner: &Inner, key: &str, msg: &T) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    wire::encode_message(
        inner.channel.name,
        key,
        msg,
        inner.publisher_id,
        0,
        0,
        now_ns(),
        0,
        &mut out,
    )?;
    Ok(out)
}

fn reject(inner: &Inner, limits: &mut Limits, kind: &'static str, detail: String) {
    let mut s = inner.lock();
    s.stats.control_rejected += 1;
    *s.stats.rejected.entry(kind).or_insert(0) += 1;
    drop(s);
    limits.warn.warn(kind, || detail);
}

/// Takes one control request: queues its answer, or rejects / refuses it (counted).
fn request(inner: &Inner, parts: &[Vec<u8>], answers: &mut Answers, limits: &mut Limits) {
    let [identity, frame] = parts else {
        let detail = format!("{} frames, expected identity + 1", parts.len());
        return reject(inner, limits, "bad_framing", detail);
    };
    let env = match wire::decode_with_limit(frame, limits.max_payload) {
        Ok(env) => env,
        Err(e) => return reject(inner, limits, e.kind(), e.to_string()),
    };
    let source = if env.type_id == v1::ReplayRequest::TYPE.type_id {
        match wire::decode_message::<v1::ReplayRequest>(&env) {
            Ok(req) => replay(inner, req),
            Err(e) => return reject(inner, limits, e.kind(), e.to_string()),
        }
    } else if env.type_id == v1::SnapshotRequest::TYPE.type_id {
        match wire::decode_message::<v1::SnapshotRequest>(&env) {
            Ok(req) => Source::Frames(snapshot(inner, &req).into()),
            Err(e) => return reject(inner, limits, e.kind(), e.to_string()),
        }
    } else {
        let kind = match super::check_payload(env.type_id, env.payload) {
            Ok(true) => "unexpected_request",
            Ok(false) => "unknown_type",
            Err(e) => e.kind(),
        };
        let detail = format!("type {} is not a request", env.type_id);
        return reject(inner, limits, kind, detail);
    };
    let queued = answers.per_peer.get(identity).copied().unwrap_or(0);
    if queued >= limits.max_queued || answers.waiting.len() >= MAX_QUEUED_TOTAL {
        inner.lock().stats.replays_refused += 1;
        limits.warn.warn("replays_refused", || {
            format!("{queued} requests of one peer waiting")
        });
        return;
    }
    answers.per_peer.insert(identity.clone(), queued + 1);
    answers.waiting.push_back(Answer {
        identity: identity.clone(),
        source,
        pending: None,
        stalled_since: None,
        done: false,
    });
}

/// The answer to a ReplayRequest (§7.2): the held frames of the range, FLAG_REPLAY set,
/// read from the ring as they are sent (numbers overwritten meanwhile are reported lost),
/// then a ReplayEnd.
fn replay(inner: &Inner, req: v1::ReplayRequest) -> Source {
    let mut end = v1::ReplayEnd {
        channel: req.channel.clone(),
        publisher_id: req.publisher_id,
        key: req.key.clone(),
        from_seq: req.from_seq,
        to_seq: req.to_seq,
        ..Default::default()
    };
    let valid = req.from_seq >= 1 && req.from_seq <= req.to_seq;
    let mut s = inner.lock();
    s.stats.replay_requests += 1;
    let journaled = if req.publisher_id == inner.publisher_id {
        None
    } else {
        s.journal
            .as_ref()
            .and_then(|j| j.publisher(req.publisher_id))
    };
    if let (Some(range), true, true) = (&journaled, valid, req.channel == inner.channel.name) {
        // A previous publisher id of this journal: replayed from the journal alone.
        end.last_seq = if req.key.is_empty() {
            range.last_seq
        } else {
            range.last_key_seq.get(&req.key).copied().unwrap_or(0)
        };
        let upto = req.to_seq.min(end.last_seq);
        let mut cursor = Box::new(ReplayCursor::new(false, None, 0, upto, 0, end));
        if cursor.expected <= cursor.upto {
            let upto = cursor.upto;
            cursor.journal_part(&s, upto);
        } else {
            cursor.scanned = true;
        }
        drop(s);
        return Source::Replay(cursor);
    }
    if !valid || req.publisher_id != inner.publisher_id || req.channel != inner.channel.name {
        end.unknown_publisher = req.publisher_id != inner.publisher_id && journaled.is_none();
        if valid {
            end.unrecoverable_from = req.from_seq;
            end.unrecoverable_to = req.to_seq;
            // `to_seq` 2^64-1 asks for "up to your last": of an id this publisher does not
            // know, nobody knows how many that is.
            if req.to_seq != u64::MAX {
                s.stats.unrecoverable += req.to_seq - req.from_seq + 1;
            }
        }
        drop(s);
        return Source::Frames(control_frame(inner, "", &end).into_iter().collect());
    }
    let (key_id, newest_number) = if req.key.is_empty() {
        (None, s.seq)
    } else {
        match s.key_ids.get(&req.key) {
            Some(&id) => (Some(id), s.key_seqs[id as usize]),
            None => (Some(u32::MAX), 0),
        }
    };
    end.last_seq = newest_number;
    let upto = req.to_seq.min(newest_number);
    let start = if key_id.is_some() { 1 } else { req.from_seq };
    let cursor = ReplayCursor::new(true, key_id, s.seq, upto, start, end);
    drop(s);
    Source::Replay(Box::new(cursor))
}

/// The latest frame per requested key (FLAG_SNAPSHOT), then a SnapshotEnd (§7.3).
fn snapshot(inner: &Inner, req: &v1::SnapshotRequest) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let seq;
    {
        let mut s = inner.lock();
        s.stats.snapshots_served += 1;
        seq = s.seq;
        if let Some(lv) = &s.last_value {
            if req.keys.is_empty() {
                let mut ids: Vec<usize> = (0..s.keys.len()).collect();
                ids.sort_by(|&a, &b| s.keys[a].cmp(&s.keys[b]));
                for id in ids {
                    if !lv[id].is_empty() {
                        out.push(lv[id].clone());
                    }
                }
            } else {
                for key in &req.keys {
                    if let Some(&id) = s.key_ids.get(key) {
                        if !lv[id as usize].is_empty() {
                            out.push(lv[id as usize].clone());
                        }
                    }
                }
            }
        }
    }
    for frame in &mut out {
        set_flag(frame, FLAG_SNAPSHOT);
    }
    let end = v1::SnapshotEnd {
        channel: inner.channel.name.to_owned(),
        publisher_id: inner.publisher_id,
        seq,
        count: u32::try_from(out.len()).unwrap_or(u32::MAX),
    };
    if let Ok(frame) = control_frame(inner, "", &end) {
        out.push(frame);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_indexing() {
        let mut r = Ring::new(3);
        assert_eq!(r.oldest(0), 0);
        for seq in 1..=5u64 {
            let slot = r.slot_for(seq);
            slot.seq = seq;
            slot.frame.push(seq as u8);
        }
        assert_eq!(r.oldest(5), 3);
        assert!(r.get(2).is_none());
        assert_eq!(r.get(3).map(|s| s.frame[0]), Some(3));
        assert_eq!(r.get(5).map(|s| s.frame[0]), Some(5));
        assert_eq!(r.slots.len(), 3);
        assert_eq!(Ring::new(10).oldest(4), 1);
    }
}

//! Subscriber: SUB data socket + DEALER to the publisher's control ROUTER (WIRE.md §7).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::marker::PhantomData;
use std::time::{Duration, Instant};

use crate::catalog::{Channel, Pattern, SchemaMessage};
use crate::v1;
use crate::wire::{self, Envelope, WireError};

use super::{
    check_payload, common_options, control_endpoint, max_frame_size, millis_i64, now_ns,
    random_hex, random_nonzero_u64, resolve_channel, Result, TransportError, WarnLimiter,
    DEFAULT_HWM, DEFAULT_LINGER, DEFAULT_PEER_TIMEOUT, DEFAULT_WARN_INTERVAL, SYNC_PREFIX,
};

/// Subscriber configuration. `Default` gives the WIRE.md defaults.
#[derive(Debug, Clone)]
pub struct SubscriberOptions {
    /// Keys (e.g. symbols) to receive; empty means every key of the channel. With keys,
    /// gaps are tracked per key on `key_seq`; without, on the channel `seq`.
    pub keys: Vec<String>,
    /// Control endpoint of the publisher; derived from the data endpoint when `None`.
    pub control_endpoint: Option<String>,
    /// Channel to receive; the pub/sub channel carrying `M` when `None`.
    pub channel: Option<Channel>,
    /// How long construction waits for the subscription handshake (§7.1).
    pub connect_timeout: Duration,
    /// No traffic for this long is reported as `peer_lost` (§7.4).
    pub peer_timeout: Duration,
    /// A replay or snapshot request gives up after this long without a reply frame.
    pub replay_timeout: Duration,
    /// SUB receive high-water mark, in messages (0 = unlimited).
    pub rcvhwm: i32,
    /// Socket linger on close.
    pub linger: Duration,
    /// Start from a last-value snapshot (§7.3); only for last-value channels.
    pub snapshot: bool,
    /// Recover gaps by replay (default); when false gaps are only reported.
    pub recover: bool,
    /// Reject frames whose schema fingerprint differs from the local one.
    pub strict: bool,
    /// Largest accepted payload. Both sockets get the matching `ZMQ_MAXMSGSIZE`
    /// ([`super::max_frame_size`]): libzmq drops a frame too large to be valid, and the
    /// connection that sent it, before buffering it.
    pub max_payload: usize,
    /// Rejected frames are logged on stderr at most once per this interval, with counts
    /// by kind.
    pub warn_interval: Duration,
    /// ZMQ context to use; a new one (owned by this subscriber) when `None`.
    pub context: Option<super::Context>,
    /// Test hook: live data frames whose `seq` this returns true for are discarded as if
    /// the network had lost them (replayed frames are never discarded).
    #[doc(hidden)]
    pub lose_live: Option<fn(u64) -> bool>,
}

impl Default for SubscriberOptions {
    fn default() -> Self {
        SubscriberOptions {
            keys: Vec::new(),
            control_endpoint: None,
            channel: None,
            connect_timeout: Duration::from_secs(5),
            peer_timeout: DEFAULT_PEER_TIMEOUT,
            replay_timeout: Duration::from_secs(2),
            rcvhwm: DEFAULT_HWM,
            linger: DEFAULT_LINGER,
            snapshot: false,
            recover: true,
            strict: false,
            max_payload: wire::DEFAULT_MAX_PAYLOAD,
            warn_interval: DEFAULT_WARN_INTERVAL,
            context: None,
            lose_live: None,
        }
    }
}

/// A decoded message with its envelope fields.
#[derive(Debug, Clone, PartialEq)]
pub struct Received<M> {
    /// The message.
    pub message: M,
    /// Channel name.
    pub channel: &'static str,
    /// Topic key.
    pub key: String,
    /// Publisher id.
    pub publisher_id: u64,
    /// Channel sequence number.
    pub seq: u64,
    /// Per-key sequence number.
    pub key_seq: u64,
    /// Sender clock, ns since the Unix epoch.
    pub send_ts_ns: u64,
    /// Envelope flags ([`wire::FLAG_REPLAY`], [`wire::FLAG_SNAPSHOT`]).
    pub flags: u8,
}

impl<M> Received<M> {
    /// Resent from the publisher's replay ring.
    pub fn is_replay(&self) -> bool {
        self.flags & wire::FLAG_REPLAY != 0
    }

    /// Part of a last-value snapshot.
    pub fn is_snapshot(&self) -> bool {
        self.flags & wire::FLAG_SNAPSHOT != 0
    }
}

/// What kind of thing happened to the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// Sequence numbers `first..=last` were missed; recovery starts.
    GapDetected,
    /// Every message of `first..=last` was recovered by replay.
    GapRecovered,
    /// Messages `first..=last` are lost for good (not held, publisher restarted, or no
    /// answer); `detail` says why.
    UnrecoverableGap,
    /// A new publisher id appeared on the channel; `detail` names the previous one.
    PublisherRestart,
    /// Nothing received for the peer timeout.
    PeerLost,
    /// Traffic is back after `PeerLost`.
    PeerBack,
}

impl EventKind {
    /// The event name shared with the Python SDK: `gap_detected`, `unrecoverable_gap`, ...
    pub fn name(self) -> &'static str {
        match self {
            EventKind::GapDetected => "gap_detected",
            EventKind::GapRecovered => "gap_recovered",
            EventKind::UnrecoverableGap => "unrecoverable_gap",
            EventKind::PublisherRestart => "publisher_restart",
            EventKind::PeerLost => "peer_lost",
            EventKind::PeerBack => "peer_back",
        }
    }
}

/// Something the stream did that a consumer may need to know. `first..=last` is the
/// sequence range concerned, by `key_seq` of `key` when the subscriber filters on keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// What happened.
    pub kind: EventKind,
    /// Channel name.
    pub channel: &'static str,
    /// Publisher concerned.
    pub publisher_id: u64,
    /// Key of the range (empty for channel sequence numbers).
    pub key: String,
    /// First sequence number concerned (0 when not a range).
    pub first: u64,
    /// Last sequence number concerned (0 when not a range).
    pub last: u64,
    /// Human-readable detail.
    pub detail: String,
}

impl Event {
    /// One JSON object, the same fields as the Python SDK's `TransportEvent.as_dict()`.
    pub fn to_json(&self) -> String {
        format!(
            "{{\"event\":\"{}\",\"channel\":\"{}\",\"publisher_id\":\"{:016x}\",\"key\":{},\
             \"first\":{},\"last\":{},\"detail\":{}}}",
            self.kind.name(),
            self.channel,
            self.publisher_id,
            json_string(&self.key),
            self.first,
            self.last,
            json_string(&self.detail)
        )
    }
}

/// A JSON string literal (for the JSON lines of the command-line tools).
#[doc(hidden)]
pub fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Subscriber counters: nothing is dropped without being counted here.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubscriberStats {
    /// Frames received on the data socket.
    pub received: u64,
    /// Messages handed to the caller (live, replayed and snapshot).
    pub delivered: u64,
    /// Frames rejected, by WIRE.md error kind (`unknown_type` for a type id not in the
    /// schema, `bad_payload` for any frame whose payload does not parse as its type).
    pub rejected: BTreeMap<&'static str, u64>,
    /// The last rejection, as text.
    pub last_error: Option<String>,
    /// Valid frames of other known types, channels or keys, ignored (§7.1).
    pub ignored: u64,
    /// Heartbeats received.
    pub heartbeats: u64,
    /// Gaps detected.
    pub gaps: u64,
    /// Messages missing in detected gaps.
    pub missed: u64,
    /// Messages recovered by replay.
    pub recovered: u64,
    /// Messages lost for good (reported in `unrecoverable_gap` events).
    pub unrecoverable: u64,
    /// Messages already seen, dropped.
    pub duplicates: u64,
    /// Live messages already covered by the snapshot, dropped.
    pub snapshot_skipped: u64,
    /// Frames whose fingerprint differs from the local schema (decoded anyway unless
    /// strict).
    pub schema_mismatch: u64,
    /// Replay requests sent.
    pub replay_requests: u64,
    /// Publisher restarts seen.
    pub restarts: u64,
    /// Peer-lost reports.
    pub peer_lost: u64,
    /// Live frames discarded by the `lose_live` test hook.
    pub test_lost: u64,
}

/// Frames read from one socket per turn of `recv` before looking at the other.
const BATCH: usize = 256;

/// Delivery state of one tracked sequence (the channel seq, or one key's key_seq) of the
/// current publisher.
struct Stream<M> {
    /// Every number up to here is delivered or accounted lost.
    last: u64,
    /// Highest number known: delivered, held, lost, or asked for by replay.
    top: u64,
    /// Messages beyond a gap, waiting for it to be filled or given up.
    held: BTreeMap<u64, Received<M>>,
    /// Ranges given up beyond `last` (sorted), skipped when the held messages flush.
    lost: Vec<(u64, u64)>,
    /// The one replay request outstanding: its range and when it is given up.
    request: Option<(u64, u64)>,
    replay_deadline: Option<Instant>,
    /// Frames accepted from the outstanding request.
    replayed: u64,
    /// Highest number of the gaps seen while a request was outstanding (asked for next).
    wanted_upto: u64,
    /// Highest number asked for so far.
    requested_upto: u64,
}

impl<M> Stream<M> {
    fn new(last: u64) -> Self {
        Stream {
            last,
            top: last,
            held: BTreeMap::new(),
            lost: Vec::new(),
            request: None,
            replay_deadline: None,
            replayed: 0,
            wanted_upto: 0,
            requested_upto: last,
        }
    }
}

/// Receives messages of type `M` from one publisher, in sequence order, recovering gaps.
///
/// Not thread-safe by design (`&mut self`); move it to the thread that reads.
pub struct Subscriber<M> {
    channel: Channel,
    endpoint: String,
    control_endpoint: String,
    opts: SubscriberOptions,
    sub: zmq::Socket,
    dealer: zmq::Socket,
    client_id: u64,
    sync_key: String,
    keys: Vec<String>,
    /// Current publisher.
    pid: Option<u64>,
    /// Delivery state per tracked key ("" = channel seq when unfiltered) of `pid`.
    streams: HashMap<String, Stream<M>>,
    /// (publisher, channel seq) of the snapshot we started from.
    snapshot_seq: Option<(u64, u64)>,
    live: bool,
    out: VecDeque<Received<M>>,
    events: VecDeque<Event>,
    stats: SubscriberStats,
    last_traffic: Instant,
    lost: bool,
    warn: WarnLimiter,
    _context: zmq::Context,
    _message: PhantomData<fn() -> M>,
}

impl<M: SchemaMessage> Subscriber<M> {
    /// Connects with default options (every key).
    pub fn connect(endpoint: &str) -> Result<Self> {
        Self::connect_with(endpoint, SubscriberOptions::default())
    }

    /// Connects, subscribes and completes the handshake (§7.1): returns only once the
    /// subscription is live, or fails after `connect_timeout`. With `snapshot`, the
    /// snapshot is fetched too and its messages are the first ones received.
    pub fn connect_with(endpoint: &str, opts: SubscriberOptions) -> Result<Self> {
        let channel = resolve_channel::<M>(opts.channel, Pattern::PubSub)?;
        let control = match &opts.control_endpoint {
            Some(c) => c.clone(),
            None => control_endpoint(endpoint)?,
        };
        if opts.snapshot && !channel.last_value {
            return Err(TransportError::Config(format!(
                "channel {:?} is not a last-value channel: no snapshot",
                channel.name
            )));
        }
        for key in &opts.keys {
            wire::validate_key(key)?;
        }
        let context = opts.context.clone().unwrap_or_default().0;
        let sub = context.socket(zmq::SUB)?;
        common_options(&sub, endpoint, opts.linger)?;
        sub.set_rcvhwm(opts.rcvhwm)?;
        sub.set_maxmsgsize(max_frame_size(opts.max_payload))?;
        sub.connect(endpoint)?;
        let dealer = context.socket(zmq::DEALER)?;
        common_options(&dealer, &control, opts.linger)?;
        dealer.set_rcvhwm(0)?;
        dealer.set_maxmsgsize(max_frame_size(opts.max_payload))?;
        dealer.connect(&control)?;

        let mut keys = opts.keys.clone();
        keys.sort();
        keys.dedup();
        let mut topic = Vec::new();
        if keys.is_empty() {
            topic.extend_from_slice(channel.name.as_bytes());
            topic.push(b'/');
            sub.set_subscribe(&topic)?;
        } else {
            for key in &keys {
                topic.clear();
                wire::write_topic(channel.name, key, &mut topic)?;
                sub.set_subscribe(&topic)?;
            }
            // The keyless topic: heartbeats.
            topic.clear();
            wire::write_topic(channel.name, "", &mut topic)?;
            sub.set_subscribe(&topic)?;
        }
        let sync_key = format!("{SYNC_PREFIX}{}", random_hex(16));
        let mut sync_topic = Vec::new();
        wire::write_topic(channel.name, &sync_key, &mut sync_topic)?;
        sub.set_subscribe(&sync_topic)?;

        let mut me = Subscriber {
            channel,
            endpoint: endpoint.to_owned(),
            control_endpoint: control,
            sub,
            dealer,
            client_id: random_nonzero_u64(),
            sync_key,
            keys,
            pid: None,
            streams: HashMap::new(),
            snapshot_seq: None,
            live: false,
            out: VecDeque::new(),
            events: VecDeque::new(),
            stats: SubscriberStats::default(),
            last_traffic: Instant::now(),
            lost: false,
            warn: WarnLimiter::new(
                format!("rejected frames on {}", channel.name),
                opts.warn_interval,
            ),
            _context: context,
            _message: PhantomData,
            opts,
        };

        let deadline = Instant::now() + me.opts.connect_timeout;
        while !me.live {
            let now = Instant::now();
            if now >= deadline {
                return Err(TransportError::Timeout(format!(
                    "no subscription handshake from {endpoint} within {:?} \
                     (is a tradewire publisher bound there?)",
                    me.opts.connect_timeout
                )));
            }
            if me
                .sub
                .poll(zmq::POLLIN, millis_i64(deadline - now).max(1))?
                > 0
            {
                me.pump(0)?;
            }
        }
        me.sub.set_unsubscribe(&sync_topic)?;
        if me.opts.snapshot {
            me.load_snapshot()?;
        }
        me.last_traffic = Instant::now();
        Ok(me)
    }

    /// The next message, waiting at most `timeout`. Messages come in sequence order: one
    /// after a gap waits until the gap is recovered by replay or reported unrecoverable
    /// (bounded by `replay_timeout` without progress). Replay runs in the background of
    /// `recv`: the live stream keeps being read meanwhile, one replay request per stream
    /// is outstanding at a time, and gaps seen meanwhile are folded into the next one.
    pub fn recv(&mut self, timeout: Duration) -> Option<Received<M>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(r) = self.out.pop_front() {
                self.stats.delivered += 1;
                return Some(r);
            }
            match self.pump_all() {
                Ok(true) => continue,
                Ok(false) => {}
                Err(e) => {
                    self.stats.last_error = Some(e.to_string());
                    return None;
                }
            }
            self.check_timers();
            if !self.out.is_empty() {
                continue;
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            let mut wait = deadline - now;
            if !self.lost {
                let until_lost = self
                    .opts
                    .peer_timeout
                    .saturating_sub(self.last_traffic.elapsed());
                wait = wait.min(until_lost + Duration::from_millis(1));
            }
            for stream in self.streams.values() {
                if let Some(d) = stream.replay_deadline {
                    wait = wait.min(d.saturating_duration_since(now) + Duration::from_millis(1));
                }
            }
            let mut items = [
                self.sub.as_poll_item(zmq::POLLIN),
                self.dealer.as_poll_item(zmq::POLLIN),
            ];
            let _ = zmq::poll(&mut items, millis_i64(wait).max(1));
        }
    }

    /// Takes the next pending event, if any.
    pub fn next_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Takes every pending event.
    pub fn drain_events(&mut self) -> Vec<Event> {
        self.events.drain(..).collect()
    }

    /// The counters.
    pub fn stats(&self) -> &SubscriberStats {
        &self.stats
    }

    /// The channel received.
    pub fn channel(&self) -> Channel {
        self.channel
    }

    /// The data endpoint as given.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The control endpoint in use.
    pub fn control_endpoint(&self) -> &str {
        &self.control_endpoint
    }

    /// Id of the publisher currently followed.
    pub fn publisher_id(&self) -> Option<u64> {
        self.pid
    }

    /// Reads and handles what is queued on both sockets, up to a batch from each
    /// (replies to replay first); false when nothing was there.
    fn pump_all(&mut self) -> Result<bool> {
        let mut any = false;
        for _ in 0..BATCH {
            match self.dealer.recv_bytes(zmq::DONTWAIT) {
                Ok(frame) => {
                    any = true;
                    self.on_control_frame(&frame);
                }
                Err(zmq::Error::EAGAIN) => break,
                Err(e) => return Err(e.into()),
            }
        }
        for _ in 0..BATCH {
            if !self.pump(zmq::DONTWAIT)? {
                break;
            }
            any = true;
        }
        Ok(any)
    }

    /// Reads and handles one frame from the data socket; false when none was there.
    fn pump(&mut self, flags: i32) -> Result<bool> {
        let mut msg = zmq::Message::new();
        match self.sub.recv(&mut msg, flags) {
            Ok(()) => {
                self.on_frame(&msg);
                Ok(true)
            }
            Err(zmq::Error::EAGAIN) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Peer loss, and replay requests that got no answer in time (given up, so what
    /// follows them is delivered, and the next request goes out).
    fn check_timers(&mut self) {
        self.check_peer();
        let now = Instant::now();
        let expired: Vec<String> = self
            .streams
            .iter()
            .filter(|(_, s)| s.replay_deadline.is_some_and(|d| now >= d))
            .map(|(k, _)| k.clone())
            .collect();
        for key in expired {
            let why = format!("no ReplayEnd within {:?}", self.opts.replay_timeout);
            self.finish_request(&key, &why);
        }
    }

    fn check_peer(&mut self) {
        if !self.lost && self.last_traffic.elapsed() >= self.opts.peer_timeout {
            self.lost = true;
            self.stats.peer_lost += 1;
            let detail = format!(
                "nothing received from {} for {:?}",
                self.endpoint, self.opts.peer_timeout
            );
            self.event(EventKind::PeerLost, "", 0, 0, detail);
        }
    }

    fn reject(&mut self, err: &WireError) {
        *self.stats.rejected.entry(err.kind()).or_insert(0) += 1;
        let text = err.to_string();
        self.warn.warn(err.kind(), || text.clone());
        self.stats.last_error = Some(text);
    }

    /// A valid frame of a type this subscriber does not use: ignored (counted) when the
    /// schema has the type and the payload parses as it, else rejected.
    fn other_type(&mut self, env: &Envelope<'_>) {
        match check_payload(env.type_id, env.payload) {
            Ok(true) => self.stats.ignored += 1,
            Ok(false) => self.reject(&WireError::UnknownType {
                type_id: env.type_id,
                expected: None,
            }),
            Err(e) => self.reject(&e),
        }
    }

    fn event(&mut self, kind: EventKind, key: &str, first: u64, last: u64, detail: String) {
        self.events.push_back(Event {
            kind,
            channel: self.channel.name,
            publisher_id: self.pid.unwrap_or(0),
            key: key.to_owned(),
            first,
            last,
            detail,
        });
    }

    fn on_frame(&mut self, frame: &[u8]) {
        self.stats.received += 1;
        self.last_traffic = Instant::now();
        if self.lost {
            self.lost = false;
            self.event(EventKind::PeerBack, "", 0, 0, "traffic is back".into());
        }
        let env = match wire::decode_with_limit(frame, self.opts.max_payload) {
            Ok(env) => env,
            Err(e) => return self.reject(&e),
        };
        if env.channel != self.channel.name {
            self.stats.ignored += 1;
            return;
        }
        if env.type_id == v1::Heartbeat::TYPE.type_id {
            match wire::decode_message::<v1::Heartbeat>(&env) {
                Ok(hb) => self.on_heartbeat(&env, &hb),
                Err(e) => self.reject(&e),
            }
            return;
        }
        if env.type_id != M::TYPE.type_id {
            return self.other_type(&env);
        }
        if !self.keys.is_empty()
            && self
                .keys
                .binary_search_by(|k| k.as_str().cmp(env.key))
                .is_err()
        {
            self.stats.ignored += 1;
            return;
        }
        if self.opts.snapshot && !self.live {
            // Covered by the snapshot that follows the handshake.
            self.stats.snapshot_skipped += 1;
            return;
        }
        if let Some(lose) = self.opts.lose_live {
            if lose(env.seq) {
                self.stats.test_lost += 1;
                return;
            }
        }
        let Some(msg) = self.decode(&env) else {
            return;
        };
        self.on_data(&env, msg);
    }

    fn decode(&mut self, env: &Envelope<'_>) -> Option<M> {
        let decoded = if self.opts.strict {
            wire::decode_message_strict::<M>(env)
        } else {
            wire::decode_message::<M>(env)
        };
        match decoded {
            Ok(m) => {
                if env.fingerprint != M::TYPE.fingerprint {
                    self.stats.schema_mismatch += 1;
                }
                Some(m)
            }
            Err(e) => {
                self.reject(&e);
                None
            }
        }
    }

    fn received(&self, env: &Envelope<'_>, message: M) -> Received<M> {
        Received {
            message,
            channel: self.channel.name,
            key: env.key.to_owned(),
            publisher_id: env.publisher_id,
            seq: env.seq,
            key_seq: env.key_seq,
            send_ts_ns: env.send_ts_ns,
            flags: env.flags,
        }
    }

    /// The tracked key and sequence number of a data frame.
    fn number<'e>(&self, env: &Envelope<'e>) -> (&'e str, u64) {
        if self.keys.is_empty() {
            ("", env.seq)
        } else {
            (env.key, env.key_seq)
        }
    }

    /// Follows `publisher_id`; a different one than the current is a restart (§7.2):
    /// whatever the previous one still owed is reported lost, what was held for it is
    /// delivered, and the new stream starts over at 1.
    fn follow(&mut self, publisher_id: u64) {
        match self.pid {
            Some(p) if p == publisher_id => {}
            Some(previous) => {
                let keys: Vec<String> = self.streams.keys().cloned().collect();
                for key in keys {
                    let top = self.streams.get(&key).map_or(0, |s| s.top);
                    self.give_up(&key, 1, top, "the publisher restarted");
                }
                self.stats.restarts += 1;
                self.pid = Some(publisher_id);
                self.streams.clear();
                for key in self.tracked_keys() {
                    self.streams.insert(key, Stream::new(0));
                }
                self.snapshot_seq = None;
                let detail = format!("previous publisher {previous:016x}");
                self.event(EventKind::PublisherRestart, "", 0, 0, detail);
            }
            None => self.pid = Some(publisher_id),
        }
    }

    fn tracked_keys(&self) -> Vec<String> {
        if self.keys.is_empty() {
            vec![String::new()]
        } else {
            self.keys.clone()
        }
    }

    fn on_data(&mut self, env: &Envelope<'_>, msg: M) {
        self.follow(env.publisher_id);
        let (key, n) = self.number(env);
        let r = self.received(env, msg);
        let Some(stream) = self.streams.get_mut(key) else {
            // First message before the handshake completed: it is the baseline.
            self.streams.insert(key.to_owned(), Stream::new(n));
            self.out.push_back(r);
            return;
        };
        if n <= stream.last || stream.held.contains_key(&n) {
            let covered =
                matches!(self.snapshot_seq, Some((p, s)) if p == env.publisher_id && env.seq <= s);
            if covered {
                self.stats.snapshot_skipped += 1;
            } else {
                self.stats.duplicates += 1;
            }
            return;
        }
        let top = stream.top;
        stream.top = top.max(n);
        if n == stream.last + 1 && stream.held.is_empty() {
            stream.last = n;
            self.out.push_back(r);
            return;
        }
        stream.held.insert(n, r);
        if n > top + 1 {
            self.gap(key, top + 1, n - 1);
        }
        self.flush(key);
    }

    /// A replayed frame (FLAG_REPLAY, from the control socket) of the current publisher.
    fn on_replayed(&mut self, env: &Envelope<'_>) {
        if Some(env.publisher_id) != self.pid || env.type_id != M::TYPE.type_id {
            return;
        }
        let (key, n) = self.number(env);
        let Some(stream) = self.streams.get(key) else {
            return;
        };
        if n <= stream.last || stream.held.contains_key(&n) {
            self.stats.duplicates += 1;
            return;
        }
        let Some(msg) = self.decode(env) else {
            return;
        };
        let r = self.received(env, msg);
        let replay_timeout = self.opts.replay_timeout;
        let Some(stream) = self.streams.get_mut(key) else {
            return;
        };
        if stream.replay_deadline.is_some() {
            // Progress: the replay is still flowing.
            stream.replay_deadline = Some(Instant::now() + replay_timeout);
            stream.replayed += 1;
        }
        stream.top = stream.top.max(n);
        stream.held.insert(n, r);
        self.stats.recovered += 1;
        self.flush(key);
    }

    fn on_heartbeat(&mut self, env: &Envelope<'_>, hb: &v1::Heartbeat) {
        self.stats.heartbeats += 1;
        // Another subscriber's sync heartbeat (seen through a channel-wide prefix) is a
        // valid statement of the publisher's last seq too.
        if self.opts.snapshot && !self.live && env.key != self.sync_key {
            return;
        }
        self.follow(env.publisher_id);
        let targets: Vec<(String, u64)> = if self.keys.is_empty() {
            vec![(String::new(), hb.last_seq)]
        } else {
            self.keys
                .iter()
                .map(|k| (k.clone(), hb.last_key_seq.get(k).copied().unwrap_or(0)))
                .collect()
        };
        for (key, target) in targets {
            match self.streams.get_mut(&key) {
                None => {
                    self.streams.insert(key, Stream::new(target));
                }
                Some(stream) if target > stream.top => {
                    let from = stream.top + 1;
                    stream.top = target;
                    self.gap(&key, from, target);
                }
                Some(_) => {}
            }
        }
        if env.key == self.sync_key {
            self.live = true;
        }
    }

    /// `from..=to` of `key` is missing: report it and recover it by replay, now or (one
    /// request per stream outstanding) folded into the next request.
    fn gap(&mut self, key: &str, from: u64, to: u64) {
        self.stats.gaps += 1;
        self.stats.missed += to - from + 1;
        self.event(EventKind::GapDetected, key, from, to, String::new());
        if !self.opts.recover {
            self.give_up(key, from, to, "recovery disabled");
            return;
        }
        let Some(stream) = self.streams.get_mut(key) else {
            return;
        };
        if stream.request.is_some() {
            stream.wanted_upto = stream.wanted_upto.max(to);
            return;
        }
        self.request(key, from, to);
    }

    /// Sends a ReplayRequest for `from..=to` of `key` (none may be outstanding).
    fn request(&mut self, key: &str, from: u64, to: u64) {
        let request = v1::ReplayRequest {
            channel: self.channel.name.to_owned(),
            publisher_id: self.pid.unwrap_or(0),
            key: key.to_owned(),
            from_seq: from,
            to_seq: to,
        };
        if let Err(e) = self.send_control(&request) {
            self.give_up(key, from, to, &format!("replay request not sent: {e}"));
            return;
        }
        self.stats.replay_requests += 1;
        let deadline = Instant::now() + self.opts.replay_timeout;
        if let Some(stream) = self.streams.get_mut(key) {
            stream.request = Some((from, to));
            stream.replay_deadline = Some(deadline);
            stream.replayed = 0;
            stream.requested_upto = stream.requested_upto.max(to);
        }
    }

    /// The outstanding request of `key` is over (its ReplayEnd came, or it timed out):
    /// whatever of its range is still missing is lost for good; then the gaps
    /// seen meanwhile are asked for.
    fn finish_request(&mut self, key: &str, why: &str) {
        let Some(stream) = self.streams.get_mut(key) else {
            return;
        };
        let Some((from, to)) = stream.request.take() else {
            return;
        };
        stream.replay_deadline = None;
        let replayed = stream.replayed;
        let lost = self.give_up(key, from, to, why);
        if lost == 0 {
            let detail = format!("replayed {replayed}");
            self.event(EventKind::GapRecovered, key, from, to, detail);
        }
        let Some(stream) = self.streams.get_mut(key) else {
            return;
        };
        let wanted = std::mem::take(&mut stream.wanted_upto);
        let mut next = stream.requested_upto.max(stream.last) + 1;
        while next <= wanted && stream.held.contains_key(&next) {
            next += 1;
        }
        if next <= wanted {
            self.request(key, next, wanted);
        }
    }

    /// Accounts every number of `from..=to` of `key` that is neither delivered nor held
    /// as lost for good (events name the ranges), then delivers what follows. Returns
    /// how many were lost.
    fn give_up(&mut self, key: &str, from: u64, to: u64, why: &str) -> u64 {
        let Some(stream) = self.streams.get_mut(key) else {
            return 0;
        };
        let mut holes = Vec::new();
        let mut cursor = from.max(stream.last + 1);
        if cursor <= to {
            for &n in stream.held.range(cursor..=to).map(|(n, _)| n) {
                if n > cursor {
                    holes.push((cursor, n - 1));
                }
                cursor = n + 1;
            }
            if cursor <= to {
                holes.push((cursor, to));
            }
        }
        // Ranges already given up are not lost twice.
        let already = stream.lost.clone();
        let holes: Vec<(u64, u64)> = holes
            .into_iter()
            .flat_map(|h| subtract(h, &already))
            .collect();
        stream.top = stream.top.max(to);
        stream.lost.extend(holes.iter().copied());
        stream.lost.sort_unstable();
        let mut count = 0;
        for (a, b) in holes {
            count += b - a + 1;
            self.stats.unrecoverable += b - a + 1;
            self.event(EventKind::UnrecoverableGap, key, a, b, why.to_owned());
        }
        self.flush(key);
        count
    }

    /// Delivers the held messages that are next in sequence, skipping lost ranges.
    fn flush(&mut self, key: &str) {
        let Some(stream) = self.streams.get_mut(key) else {
            return;
        };
        loop {
            let next = stream.last + 1;
            if let Some(entry) = stream.held.first_entry() {
                if *entry.key() <= next {
                    let n = *entry.key();
                    let r = entry.remove();
                    if n == next {
                        stream.last = n;
                        self.out.push_back(r);
                    }
                    continue;
                }
            }
            if let Some(&(a, b)) = stream.lost.first() {
                if b <= stream.last {
                    stream.lost.remove(0);
                    continue;
                }
                if a <= next {
                    stream.last = b;
                    stream.lost.remove(0);
                    continue;
                }
            }
            return;
        }
    }

    /// A frame from the control socket: replayed data or a ReplayEnd.
    fn on_control_frame(&mut self, frame: &[u8]) {
        let env = match wire::decode_with_limit(frame, self.opts.max_payload) {
            Ok(env) => env,
            Err(e) => return self.reject(&e),
        };
        if env.type_id == v1::ReplayEnd::TYPE.type_id {
            match wire::decode_message::<v1::ReplayEnd>(&env) {
                Ok(end) => self.on_replay_end(&end),
                Err(e) => self.reject(&e),
            }
            return;
        }
        if env.type_id != M::TYPE.type_id {
            return self.other_type(&env);
        }
        if env.channel == self.channel.name {
            self.on_replayed(&env);
        }
    }

    fn on_replay_end(&mut self, end: &v1::ReplayEnd) {
        if Some(end.publisher_id) != self.pid {
            return; // about a previous publisher: already given up at the restart
        }
        let key = if self.keys.is_empty() {
            ""
        } else {
            end.key.as_str()
        };
        let current = self
            .streams
            .get(key)
            .and_then(|s| s.request)
            .is_some_and(|r| r == (end.from_seq, end.to_seq));
        if !current {
            return; // the end of an earlier, timed-out request
        }
        let why = if end.unknown_publisher {
            "the publisher restarted: this publisher id is unknown to it"
        } else {
            "no longer held by the publisher's replay ring"
        };
        let key = key.to_owned();
        self.finish_request(&key, why);
    }

    fn send_control<T: SchemaMessage>(&mut self, msg: &T) -> Result<()> {
        let mut frame = Vec::new();
        wire::encode_message(
            self.channel.name,
            "",
            msg,
            self.client_id,
            0,
            0,
            now_ns(),
            0,
            &mut frame,
        )?;
        self.dealer.send(frame, zmq::DONTWAIT)?;
        Ok(())
    }

    /// §7.3: fetch the latest frame per key, deliver it first, and start sequence
    /// tracking at the snapshot's seq (buffered live messages at or below are dropped).
    fn load_snapshot(&mut self) -> Result<()> {
        let request = v1::SnapshotRequest {
            channel: self.channel.name.to_owned(),
            keys: self.keys.clone(),
        };
        self.send_control(&request)?;
        let mut deadline = Instant::now() + self.opts.replay_timeout;
        let mut frames: Vec<Received<M>> = Vec::new();
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Err(TransportError::Timeout(format!(
                    "no SnapshotEnd from {} within {:?}",
                    self.control_endpoint, self.opts.replay_timeout
                )));
            }
            if self
                .dealer
                .poll(zmq::POLLIN, millis_i64(deadline - now).max(1))?
                == 0
            {
                continue;
            }
            let frame = self.dealer.recv_bytes(0)?;
            deadline = Instant::now() + self.opts.replay_timeout;
            let env = match wire::decode_with_limit(&frame, self.opts.max_payload) {
                Ok(env) => env,
                Err(e) => {
                    self.reject(&e);
                    continue;
                }
            };
            if env.type_id == v1::SnapshotEnd::TYPE.type_id {
                let end = match wire::decode_message::<v1::SnapshotEnd>(&env) {
                    Ok(end) => end,
                    Err(e) => {
                        self.reject(&e);
                        continue;
                    }
                };
                self.follow(end.publisher_id);
                self.snapshot_seq = Some((end.publisher_id, end.seq));
                if self.keys.is_empty() {
                    self.streams.insert(String::new(), Stream::new(end.seq));
                }
                for r in frames {
                    if r.publisher_id != end.publisher_id {
                        continue;
                    }
                    if !self.keys.is_empty() {
                        let stream = self
                            .streams
                            .entry(r.key.clone())
                            .or_insert_with(|| Stream::new(0));
                        if r.key_seq > stream.last {
                            *stream = Stream::new(r.key_seq);
                        }
                    }
                    self.out.push_back(r);
                }
                return Ok(());
            }
            if env.type_id != M::TYPE.type_id || !env.is_snapshot() {
                continue;
            }
            if let Some(msg) = self.decode(&env) {
                frames.push(self.received(&env, msg));
            }
        }
    }
}

/// The parts of `range` outside every range of `sorted` (ascending, disjoint).
fn subtract(range: (u64, u64), sorted: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let (mut a, b) = range;
    let mut out = Vec::new();
    for &(x, y) in sorted {
        if y < a || x > b {
            continue;
        }
        if x > a {
            out.push((a, x - 1));
        }
        if y >= b {
            return out;
        }
        a = y + 1;
    }
    if a <= b {
        out.push((a, b));
    }
    out
}

impl<M> std::fmt::Debug for Subscriber<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscriber")
            .field("channel", &self.channel.name)
            .field("endpoint", &self.endpoint)
            .field("keys", &self.keys)
            .field("publisher_id", &self.pid.map(|p| format!("{p:016x}")))
            .finish()
    }
}

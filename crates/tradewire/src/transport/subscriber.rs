//! Subscriber: SUB data socket + DEALER to the publisher's control ROUTER (WIRE.md §7).

use std::collections::{BTreeMap, VecDeque};
use std::marker::PhantomData;
use std::time::{Duration, Instant};

use crate::catalog::{Channel, Pattern, SchemaMessage};
use crate::v1;
use crate::wire::{self, Envelope, WireError};

use super::security::{secure_client, CurveClient};
pub use super::sequencer::{EventKind, Start};
use super::sequencer::{SeqEvent, Sequencer, SequencerOptions};
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
    /// Where to start in the stream of the publisher met at the handshake (§7.1).
    pub start: Start,
    /// A number more than this beyond the highest one known (or a new publisher id) is
    /// checked with the publisher's control socket before it is believed (§9).
    pub plausible_jump: u64,
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
    /// Keys for a publisher whose control socket requires CURVE; without them such a
    /// publisher answers no replay, snapshot or check (WIRE.md 8.4).
    pub control_curve: Option<CurveClient>,
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
            start: Start::Latest,
            plausible_jump: SequencerOptions::default().plausible_jump,
            strict: false,
            max_payload: wire::DEFAULT_MAX_PAYLOAD,
            warn_interval: DEFAULT_WARN_INTERVAL,
            context: None,
            control_curve: None,
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
    /// Tails of restarted publishers whose extent nobody knew (reported as an
    /// `unrecoverable_gap` ending at [`super::TO_LAST`], not in `unrecoverable`).
    pub unknown_tails: u64,
    /// Implausible numbers and new publisher ids checked with the publisher (§9).
    pub checks: u64,
    /// Frames of a previous publisher after its tail was settled, dropped (§9.3).
    pub stale: u64,
}

/// Frames read from one socket per turn of `recv` before looking at the other.
const BATCH: usize = 256;

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
    /// Ordering, gaps, replay and plausibility of what arrives.
    seq: Sequencer<Received<M>>,
    /// The clock of `seq` counts from here.
    born: Instant,
    /// (publisher, channel seq) of the snapshot we started from.
    snapshot_seq: Option<(u64, u64)>,
    live: bool,
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
        if let Some(curve) = &opts.control_curve {
            secure_client(&dealer, curve)?;
        }
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
            seq: Sequencer::new(SequencerOptions {
                start: opts.start,
                recover: opts.recover,
                replay_timeout_ns: u64::try_from(opts.replay_timeout.as_nanos())
                    .unwrap_or(u64::MAX),
                plausible_jump: opts.plausible_jump,
                ..SequencerOptions::default()
            }),
            born: Instant::now(),
            snapshot_seq: None,
            live: false,
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
            if let Some(r) = self.seq.pop_ready() {
                self.stats.delivered += 1;
                return Some(r);
            }
            let pumped = self.pump_all();
            // Timers run even while frames keep coming: a replay that never answers is
            // given up on time however busy the live stream is.
            self.check_timers();
            self.take_outputs();
            match pumped {
                Ok(true) => continue,
                Ok(false) => {}
                Err(e) => {
                    self.stats.last_error = Some(e.to_string());
                    return None;
                }
            }
            if self.seq.has_ready() {
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
            if let Some(d) = self.seq.next_deadline() {
                let left = Duration::from_nanos(d.saturating_sub(self.now()));
                wait = wait.min(left + Duration::from_millis(1));
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
        self.seq.publisher_id()
    }

    /// Nanoseconds since this subscriber was made: the sequencer's clock.
    fn now(&self) -> u64 {
        u64::try_from(self.born.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Sends the sequencer's replay requests; queues its events; copies its counters.
    fn take_outputs(&mut self) {
        while let Some(ask) = self.seq.pop_ask() {
            let request = v1::ReplayRequest {
                channel: self.channel.name.to_owned(),
                publisher_id: ask.publisher_id,
                key: ask.key,
                from_seq: ask.from,
                to_seq: ask.to,
            };
            // A request that cannot be sent is given up by the sequencer's timer.
            if let Err(e) = self.send_control(&request) {
                self.stats.last_error = Some(format!("replay request not sent: {e}"));
            }
        }
        while let Some(e) = self.seq.pop_event() {
            self.push_event(e);
        }
        let q = self.seq.stats();
        self.stats.duplicates = q.duplicates;
        self.stats.gaps = q.gaps;
        self.stats.missed = q.missed;
        self.stats.recovered = q.recovered;
        self.stats.unrecoverable = q.unrecoverable;
        self.stats.unknown_tails = q.unknown_tails;
        self.stats.restarts = q.restarts;
        self.stats.replay_requests = q.replay_requests;
        self.stats.checks = q.checks;
        self.stats.stale = q.stale;
        for (kind, n) in [("disowned", q.disowned), ("unverified", q.unverified)] {
            let seen = self.stats.rejected.get(kind).copied().unwrap_or(0);
            if n > seen {
                self.stats.rejected.insert(kind, n);
                let detail = format!(
                    "{} frame(s) {kind} by the plausibility check (§9)",
                    n - seen
                );
                self.warn.warn(kind, || detail);
            }
        }
    }

    fn push_event(&mut self, e: SeqEvent) {
        self.events.push_back(Event {
            kind: e.kind,
            channel: self.channel.name,
            publisher_id: e.publisher_id,
            key: e.key,
            first: e.first,
            last: e.last,
            detail: e.detail,
        });
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
        let now = self.now();
        if self.seq.next_deadline().is_some_and(|d| now >= d) {
            self.seq.on_timer(now);
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
            self.reconnect();
        }
    }

    /// Connects the data socket again. libzmq never reconnects a connection it closed
    /// itself, as it does over a frame above `ZMQ_MAXMSGSIZE` (WIRE.md 8.1): without this,
    /// one such frame would cut the subscriber off for good. The subscriptions go out
    /// again on the new connection; what was missed meanwhile is a gap, replayed.
    fn reconnect(&mut self) {
        let _ = self.sub.disconnect(&self.endpoint); // the connection may be gone already
        if let Err(e) = self.sub.connect(&self.endpoint) {
            self.stats.last_error = Some(format!("reconnect {}: {e}", self.endpoint));
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
            publisher_id: self.seq.publisher_id().unwrap_or(0),
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

    fn on_data(&mut self, env: &Envelope<'_>, msg: M) {
        let covered = matches!(
            self.snapshot_seq,
            Some((p, s)) if p == env.publisher_id && env.seq <= s
        );
        if covered {
            self.stats.snapshot_skipped += 1;
            return;
        }
        let (key, n) = self.number(env);
        let r = self.received(env, msg);
        let now = self.now();
        self.seq.on_data(env.publisher_id, key, n, r, now);
    }

    /// A replayed frame (FLAG_REPLAY, from the control socket).
    fn on_replayed(&mut self, env: &Envelope<'_>) {
        if env.type_id != M::TYPE.type_id {
            return;
        }
        let Some(msg) = self.decode(env) else {
            return;
        };
        let (key, n) = self.number(env);
        let r = self.received(env, msg);
        let now = self.now();
        self.seq.on_replayed(env.publisher_id, key, n, r, now);
    }

    fn on_heartbeat(&mut self, env: &Envelope<'_>, hb: &v1::Heartbeat) {
        self.stats.heartbeats += 1;
        // Another subscriber's sync heartbeat (seen through a channel-wide prefix) is a
        // valid statement of the publisher's last seq too.
        if self.opts.snapshot && !self.live && env.key != self.sync_key {
            return;
        }
        let targets: Vec<(String, u64)> = if self.keys.is_empty() {
            vec![(String::new(), hb.last_seq)]
        } else {
            self.keys
                .iter()
                .map(|k| (k.clone(), hb.last_key_seq.get(k).copied().unwrap_or(0)))
                .collect()
        };
        let now = self.now();
        if env.key == self.sync_key {
            // A publisher younger than our wait for it started after we did: everything
            // it published was missed, not skipped (0: a publisher that does not say).
            let waited = u64::try_from(self.born.elapsed().as_micros()).unwrap_or(u64::MAX);
            let newer = hb.uptime_us > 0 && hb.uptime_us < waited;
            self.seq
                .on_handshake(env.publisher_id, &targets, newer, now);
            self.live = true;
        } else {
            self.seq.on_heartbeat(env.publisher_id, &targets, now);
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
                Ok(end) => self.on_replay_end(env.publisher_id, &end),
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

    fn on_replay_end(&mut self, answered_by: u64, end: &v1::ReplayEnd) {
        let key = if self.keys.is_empty() {
            ""
        } else {
            end.key.as_str()
        };
        let now = self.now();
        self.seq.on_replay_end(
            answered_by,
            end.publisher_id,
            key,
            end.from_seq,
            end.to_seq,
            end.unknown_publisher,
            end.last_seq,
            now,
        );
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
                self.snapshot_seq = Some((end.publisher_id, end.seq));
                if self.keys.is_empty() {
                    self.seq.baseline(end.publisher_id, "", end.seq);
                }
                for r in frames {
                    if r.publisher_id != end.publisher_id {
                        continue;
                    }
                    if !self.keys.is_empty() {
                        self.seq.baseline(end.publisher_id, &r.key, r.key_seq);
                    }
                    self.seq.push_ready(r);
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

impl<M> std::fmt::Debug for Subscriber<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscriber")
            .field("channel", &self.channel.name)
            .field("endpoint", &self.endpoint)
            .field("keys", &self.keys)
            .field(
                "publisher_id",
                &self.seq.publisher_id().map(|p| format!("{p:016x}")),
            )
            .finish()
    }
}

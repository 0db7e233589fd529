//! The delivery logic of a subscriber (WIRE.md §7 and §9) as one socket-free state
//! machine: per (publisher, key) ordering, gaps, replay requests, giving up, plausibility
//! checks of far-ahead numbers and new publisher ids, and publisher restarts. The Rust
//! [`super::Subscriber`] drives it, and so does the Python subscriber through
//! `tradewire._wire.Sequencer`.
//!
//! Inputs say what arrived and when (`now`, nanoseconds of a monotonic clock); outputs
//! are queued: items in delivery order ([`Sequencer::pop_ready`]), replay requests to
//! send ([`Sequencer::pop_ask`]) and events ([`Sequencer::pop_event`]). Gaps are ranges:
//! the cost of a gap does not depend on its size.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

/// `to` of a replay request meaning "up to the last number you have": how a subscriber
/// asks a restarted publisher for the tail of its previous publisher id.
pub const TO_LAST: u64 = u64::MAX;

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

/// An event of one stream, without the channel (the subscriber adds it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeqEvent {
    /// What happened.
    pub kind: EventKind,
    /// Publisher concerned.
    pub publisher_id: u64,
    /// Key of the range (empty for channel sequence numbers).
    pub key: String,
    /// First number concerned (0 when not a range).
    pub first: u64,
    /// Last number concerned (0 when not a range; [`TO_LAST`] when unknown).
    pub last: u64,
    /// Human-readable detail.
    pub detail: String,
}

/// A replay request to send to the publisher's control socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayAsk {
    /// Publisher id whose stream is asked for.
    pub publisher_id: u64,
    /// Key (empty: channel seq numbers).
    pub key: String,
    /// First number.
    pub from: u64,
    /// Last number ([`TO_LAST`]: up to the publisher's last).
    pub to: u64,
}

/// Where a subscriber starts in the stream of a publisher it meets at its handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// After what the publisher had published (unless the publisher started after the
    /// subscriber began waiting for it: then from its first message).
    Latest,
    /// From seq 1: everything the publisher still holds is replayed first.
    Earliest,
}

/// Sequencer configuration.
#[derive(Debug, Clone)]
pub struct SequencerOptions {
    /// Where to start at the handshake.
    pub start: Start,
    /// Recover gaps by replay; when false gaps are only reported.
    pub recover: bool,
    /// A replay request, or a check of a frame, is given up (or asked again) after this
    /// long without progress, in nanoseconds.
    pub replay_timeout_ns: u64,
    /// A number more than this beyond the highest one known is checked with the
    /// publisher before it is believed (a forged or corrupted frame is not a gap).
    pub plausible_jump: u64,
    /// Frames parked while a check is outstanding, per stream or new publisher id; more
    /// are dropped (counted `unverified`; a genuine one becomes a gap and is replayed).
    pub max_parked: usize,
    /// New publisher ids checked at once; frames of further ids are dropped (counted).
    pub max_candidates: usize,
}

impl Default for SequencerOptions {
    fn default() -> Self {
        SequencerOptions {
            start: Start::Latest,
            recover: true,
            replay_timeout_ns: 2_000_000_000,
            plausible_jump: 65_536,
            max_parked: 100_000,
            max_candidates: 8,
        }
    }
}

/// Sequencer counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SequencerStats {
    /// Messages already seen, dropped.
    pub duplicates: u64,
    /// Gaps detected.
    pub gaps: u64,
    /// Messages missing in detected gaps.
    pub missed: u64,
    /// Messages recovered by replay.
    pub recovered: u64,
    /// Messages lost for good (reported in `unrecoverable_gap` events).
    pub unrecoverable: u64,
    /// Tails of restarted publishers whose extent nobody knew (no journal): reported as
    /// an `unrecoverable_gap` ending at [`TO_LAST`], not counted in `unrecoverable`.
    pub unknown_tails: u64,
    /// Publisher restarts confirmed.
    pub restarts: u64,
    /// Replay requests asked for (checks included).
    pub replay_requests: u64,
    /// Checks of implausible numbers and new publisher ids.
    pub checks: u64,
    /// Frames and heartbeats the publisher disowned (a number it never published, or a
    /// publisher id that is not the one answering): rejected.
    pub disowned: u64,
    /// Frames dropped unchecked: over the parking bounds, or their check got no answer.
    pub unverified: u64,
    /// Frames and heartbeats of a previous publisher that came after its tail was settled
    /// (delivered, or inside the range reported for it), dropped.
    pub stale: u64,
}

/// What became of one input frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// It was next in order and is the only item added to the ready queue (the common
    /// case: a caller may take it back with `pop_ready_back` and deliver it directly).
    Next,
    /// Kept: held beyond a gap, parked for a check, or delivered with others.
    Taken,
    /// Already delivered or held: dropped (counted).
    Duplicate,
    /// Dropped: unchecked (counted `unverified`) or not asked for.
    Dropped,
}

struct Stream<T> {
    /// Every number up to here is delivered or accounted lost.
    last: u64,
    /// Highest number known: delivered, held, lost, or asked for.
    top: u64,
    held: BTreeMap<u64, T>,
    /// Ranges given up beyond `last` (sorted, disjoint).
    lost: Vec<(u64, u64)>,
    /// The one replay request outstanding and when it is given up.
    request: Option<(u64, u64)>,
    deadline: Option<u64>,
    replayed: u64,
    /// Highest number of the gaps seen while a request was outstanding.
    wanted_upto: u64,
    requested_upto: u64,
    suspect: Option<Suspect<T>>,
}

impl<T> Stream<T> {
    fn new(last: u64) -> Self {
        Stream {
            last,
            top: last,
            held: BTreeMap::new(),
            lost: Vec::new(),
            request: None,
            deadline: None,
            replayed: 0,
            wanted_upto: 0,
            requested_upto: last,
            suspect: None,
        }
    }
}

/// A far-ahead number being checked; frames beyond the plausible range wait with it.
struct Suspect<T> {
    n: u64,
    /// The frame claiming `n` (None for a heartbeat's claim); a replayed copy from the
    /// control socket replaces it.
    item: Option<T>,
    parked: BTreeMap<u64, T>,
    /// The highest far-ahead last number a heartbeat claimed meanwhile (checked next).
    claim: Option<u64>,
    deadline: u64,
    tries: u32,
}

enum Parked<T> {
    Data { key: String, n: u64, item: T },
    Beat { targets: Vec<(String, u64)> },
}

/// A publisher id not followed yet, being checked with the control socket.
struct Candidate<T> {
    ask: (String, u64),
    parked: Vec<Parked<T>>,
    deadline: u64,
    tries: u32,
}

/// Checks asked again this many times before what waits on them is dropped.
const CHECK_TRIES: u32 = 3;

/// The delivery state of one subscriber. `T` is what is delivered (a message with its
/// envelope); the sequencer only orders it.
pub struct Sequencer<T> {
    opts: SequencerOptions,
    pid: Option<u64>,
    streams: HashMap<(u64, String), Stream<T>>,
    candidates: HashMap<u64, Candidate<T>>,
    /// Publisher ids followed before the current one.
    previous: HashSet<u64>,
    /// When the control socket last sent anything. The publisher answers one request
    /// of a subscriber at a time: one waiting behind a long answer is not late.
    progress: u64,
    resume: HashMap<u64, u64>,
    ready: VecDeque<T>,
    asks: VecDeque<ReplayAsk>,
    events: VecDeque<SeqEvent>,
    stats: SequencerStats,
}

impl<T> std::fmt::Debug for Sequencer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sequencer")
            .field("publisher_id", &self.pid)
            .field("streams", &self.streams.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl<T> Sequencer<T> {
    /// A sequencer that has met no publisher yet.
    pub fn new(opts: SequencerOptions) -> Self {
        Sequencer {
            opts,
            pid: None,
            streams: HashMap::new(),
            candidates: HashMap::new(),
            previous: HashSet::new(),
            progress: 0,
            resume: HashMap::new(),
            ready: VecDeque::new(),
            asks: VecDeque::new(),
            events: VecDeque::new(),
            stats: SequencerStats::default(),
        }
    }

    /// The publisher followed.
    pub fn publisher_id(&self) -> Option<u64> {
        self.pid
    }

    /// The counters.
    pub fn stats(&self) -> &SequencerStats {
        &self.stats
    }

    /// Next item in delivery order.
    pub fn pop_ready(&mut self) -> Option<T> {
        self.ready.pop_front()
    }

    /// The item a [`Verdict::Next`] just added.
    pub fn pop_ready_back(&mut self) -> Option<T> {
        self.ready.pop_back()
    }

    /// Next replay request to send.
    pub fn pop_ask(&mut self) -> Option<ReplayAsk> {
        self.asks.pop_front()
    }

    /// Next event.
    pub fn pop_event(&mut self) -> Option<SeqEvent> {
        self.events.pop_front()
    }

    /// Delivers `item` after what is ready, outside any sequence (a snapshot's frames).
    pub fn push_ready(&mut self, item: T) {
        self.ready.push_back(item);
    }

    /// How many items wait to be delivered.
    pub fn ready_len(&self) -> usize {
        self.ready.len()
    }

    /// Whether items wait to be delivered.
    pub fn has_ready(&self) -> bool {
        !self.ready.is_empty()
    }

    /// Whether asks or events wait to be taken.
    pub fn has_output(&self) -> bool {
        !self.asks.is_empty() || !self.events.is_empty()
    }

    /// Start the stream of `publisher_id` after `last` when the handshake meets it (the
    /// caller processed up to there before).
    pub fn resume_from(&mut self, publisher_id: u64, last: u64) {
        self.resume.insert(publisher_id, last);
    }

    /// Follow `publisher_id` with `key` delivered up to `last` (a snapshot's position).
    pub fn baseline(&mut self, publisher_id: u64, key: &str, last: u64) {
        self.pid = Some(publisher_id);
        self.streams
            .insert((publisher_id, key.to_owned()), Stream::new(last));
    }

    /// The earliest time at which [`Sequencer::on_timer`] has something to do.
    pub fn next_deadline(&self) -> Option<u64> {
        let streams = self.streams.values().flat_map(|s| {
            s.deadline
                .into_iter()
                .chain(s.suspect.as_ref().map(|x| x.deadline))
        });
        let candidates = self.candidates.values().map(|c| c.deadline);
        let quiet = self.progress + self.opts.replay_timeout_ns;
        streams.chain(candidates).min().map(|d| d.max(quiet))
    }

    // -- inputs ----------------------------------------------------------------------

    /// The handshake's heartbeat: the publisher's last number per tracked key.
    /// `publisher_newer`: the publisher started after the subscriber began waiting for
    /// it, so everything it published was missed, not skipped.
    pub fn on_handshake(
        &mut self,
        publisher_id: u64,
        targets: &[(String, u64)],
        publisher_newer: bool,
        now: u64,
    ) {
        if self.pid.is_some_and(|p| p != publisher_id) {
            return self.on_heartbeat(publisher_id, targets, now);
        }
        self.pid = Some(publisher_id);
        for (key, last) in targets {
            let id = (publisher_id, key.clone());
            if self.streams.contains_key(&id) {
                self.beat(publisher_id, key, *last, now);
                continue;
            }
            let resume = if key.is_empty() {
                self.resume.get(&publisher_id).copied()
            } else {
                None
            };
            let start = match (resume, self.opts.start) {
                (Some(r), _) => r.min(*last),
                (None, Start::Earliest) => 0,
                (None, Start::Latest) if publisher_newer => 0,
                (None, Start::Latest) => *last,
            };
            self.streams.insert(id, Stream::new(start));
            if *last > start {
                self.set_top(publisher_id, key, *last);
                self.gap(publisher_id, key, start + 1, *last, now);
            }
        }
    }

    /// A live data frame numbered `n` (the channel seq, or key_seq of `key`).
    pub fn on_data(&mut self, publisher_id: u64, key: &str, n: u64, item: T, now: u64) -> Verdict {
        match self.pid {
            Some(p) if p == publisher_id => self.live(publisher_id, key, n, item, now, false),
            // Frames of the previous publisher still queued when its restart was confirmed.
            // (Not checked: its successor answers for it now, not itself.)
            Some(_) if self.tail_open(publisher_id, key) => {
                self.live(publisher_id, key, n, item, now, true)
            }
            Some(_) if self.previous.contains(&publisher_id) => {
                self.stats.stale += 1;
                Verdict::Dropped
            }
            Some(_) => self.candidate(
                publisher_id,
                Parked::Data {
                    key: key.to_owned(),
                    n,
                    item,
                },
                now,
            ),
            None => {
                // No handshake yet (frames may race it): this publisher is the first.
                self.pid = Some(publisher_id);
                let start = match self.opts.start {
                    Start::Earliest => 0,
                    Start::Latest => n.saturating_sub(1),
                };
                self.streams
                    .insert((publisher_id, key.to_owned()), Stream::new(start));
                self.live(publisher_id, key, n, item, now, true)
            }
        }
    }

    /// A frame replayed from the control socket.
    pub fn on_replayed(
        &mut self,
        publisher_id: u64,
        key: &str,
        n: u64,
        item: T,
        now: u64,
    ) -> Verdict {
        let timeout = self.opts.replay_timeout_ns;
        self.progress = self.progress.max(now);
        let Some(s) = self.streams.get_mut(&(publisher_id, key.to_owned())) else {
            return Verdict::Dropped;
        };
        if let Some(sus) = s.suspect.as_mut() {
            if sus.n == n {
                sus.item = Some(item); // the publisher's own copy
                return Verdict::Taken;
            }
        }
        if n <= s.last || s.held.contains_key(&n) {
            self.stats.duplicates += 1;
            return Verdict::Duplicate;
        }
        if n > s.requested_upto {
            return Verdict::Dropped; // never asked for
        }
        if s.request.is_some() {
            s.deadline = Some(now + timeout);
            s.replayed += 1;
        }
        s.top = s.top.max(n);
        s.held.insert(n, item);
        self.stats.recovered += 1;
        self.flush(publisher_id, key);
        Verdict::Taken
    }

    /// A heartbeat: the publisher's last number per tracked key.
    pub fn on_heartbeat(&mut self, publisher_id: u64, targets: &[(String, u64)], now: u64) {
        match self.pid {
            Some(p) if p == publisher_id => {
                for (key, last) in targets {
                    self.beat(publisher_id, key, *last, now);
                }
            }
            Some(_) if self.previous.contains(&publisher_id) => {
                // Its tail is asked of its successor (open) or settled: nothing to learn.
                self.stats.stale += 1;
            }
            Some(_) => {
                let targets = targets.to_vec();
                self.candidate(publisher_id, Parked::Beat { targets }, now);
            }
            None => self.on_handshake(publisher_id, targets, false, now),
        }
    }

    /// The end of a replay, answered by the publisher whose id is `answered_by`.
    #[allow(clippy::too_many_arguments)]
    pub fn on_replay_end(
        &mut self,
        answered_by: u64,
        publisher_id: u64,
        key: &str,
        from: u64,
        to: u64,
        unknown_publisher: bool,
        last_seq: u64,
        now: u64,
    ) {
        self.progress = self.progress.max(now);
        if self
            .candidates
            .get(&publisher_id)
            .is_some_and(|c| c.ask == (key.to_owned(), from) && from == to)
        {
            if answered_by == publisher_id && !unknown_publisher {
                self.confirm(publisher_id, now);
            } else {
                self.disown_candidate(publisher_id);
            }
            return;
        }
        let id = (publisher_id, key.to_owned());
        let Some(s) = self.streams.get_mut(&id) else {
            return;
        };
        if from == to && s.suspect.as_ref().is_some_and(|x| x.n == from) {
            let Some(sus) = s.suspect.take() else {
                return;
            };
            if unknown_publisher && answered_by != publisher_id {
                // The publisher restarted meanwhile and does not know the id: nobody can
                // tell. Dropped, counted; the restart reports the old id's tail as lost.
                self.stats.unverified += u64::from(sus.item.is_some()) + sus.parked.len() as u64;
                return;
            }
            // A publisher answers for its own numbers, and from its journal for the ids
            // it took over from.
            let known_last = (!unknown_publisher).then_some(last_seq);
            if known_last.is_some_and(|last| sus.n <= last) {
                match sus.item {
                    Some(item) => {
                        self.live(publisher_id, key, sus.n, item, now, true);
                    }
                    None => self.beat_checked(publisher_id, key, sus.n, now),
                }
            } else {
                self.stats.disowned += 1;
            }
            // Frames parked and heartbeats seen while the check was out may have been sent
            // after the publisher answered: a number up to `plausible_jump` beyond the
            // answer's last is judged like any live number; only beyond that is it disowned.
            let jump = self.opts.plausible_jump;
            let plausible = |m: u64| known_last.is_some_and(|last| m <= last.saturating_add(jump));
            for (n, item) in sus.parked {
                if !plausible(n) {
                    self.stats.disowned += 1;
                    continue;
                }
                let checked = known_last.is_some_and(|last| n <= last);
                self.live(publisher_id, key, n, item, now, checked);
            }
            if let Some(claim) = sus.claim {
                if plausible(claim) {
                    self.beat(publisher_id, key, claim, now);
                } else {
                    self.stats.disowned += 1;
                }
            }
            return;
        }
        if s.request != Some((from, to)) {
            return; // the end of an earlier request, already given up
        }
        let why = if unknown_publisher {
            "the publisher restarted: this publisher id is unknown to it".to_owned()
        } else if to == TO_LAST {
            "no longer held by the restarted publisher".to_owned()
        } else {
            "no longer held by the publisher".to_owned()
        };
        let upto = if to == TO_LAST && !unknown_publisher {
            Some(last_seq)
        } else {
            None
        };
        self.finish_request(publisher_id, key, &why, upto, unknown_publisher, now);
    }

    /// Checks asked again, and requests and checks given up, whose time has come.
    pub fn on_timer(&mut self, now: u64) {
        let timeout = self.opts.replay_timeout_ns;
        if now < self.progress + timeout {
            return; // the control socket is still answering
        }
        let expired: Vec<(u64, String)> = self
            .streams
            .iter()
            .filter(|(_, s)| s.deadline.is_some_and(|d| now >= d))
            .map(|(id, _)| id.clone())
            .collect();
        for (pid, key) in expired {
            let why = format!("no ReplayEnd within {} ms", timeout / 1_000_000);
            self.finish_request(pid, &key, &why, None, true, now);
        }
        let suspects: Vec<(u64, String)> = self
            .streams
            .iter()
            .filter(|(_, s)| s.suspect.as_ref().is_some_and(|x| now >= x.deadline))
            .map(|(id, _)| id.clone())
            .collect();
        for (pid, key) in suspects {
            let Some(s) = self.streams.get_mut(&(pid, key.clone())) else {
                continue;
            };
            let Some(sus) = s.suspect.as_mut() else {
                continue;
            };
            if sus.tries < CHECK_TRIES {
                sus.tries += 1;
                sus.deadline = now + timeout;
                let n = sus.n;
                self.ask(pid, &key, n, n);
                continue;
            }
            let Some(sus) = s.suspect.take() else {
                continue;
            };
            self.stats.unverified += u64::from(sus.item.is_some());
            for (n, item) in sus.parked {
                self.live(pid, &key, n, item, now, false);
            }
            if let Some(claim) = sus.claim {
                self.beat(pid, &key, claim, now);
            }
        }
        let candidates: Vec<u64> = self
            .candidates
            .iter()
            .filter(|(_, c)| now >= c.deadline)
            .map(|(pid, _)| *pid)
            .collect();
        for pid in candidates {
            let Some(c) = self.candidates.get_mut(&pid) else {
                continue;
            };
            if c.tries < CHECK_TRIES {
                c.tries += 1;
                c.deadline = now + timeout;
                let (key, n) = c.ask.clone();
                self.ask(pid, &key, n, n);
            } else if let Some(c) = self.candidates.remove(&pid) {
                self.stats.unverified += c.parked.len() as u64;
            }
        }
    }

    // -- the stream ------------------------------------------------------------------

    fn tail_open(&self, pid: u64, key: &str) -> bool {
        self.previous.contains(&pid) && self.streams.contains_key(&(pid, key.to_owned()))
    }

    fn live(&mut self, pid: u64, key: &str, n: u64, item: T, now: u64, checked: bool) -> Verdict {
        let jump = self.opts.plausible_jump;
        let max_parked = self.opts.max_parked;
        let timeout = self.opts.replay_timeout_ns;
        let s = self
            .streams
            .entry((pid, key.to_owned()))
            .or_insert_with(|| Stream::new(0));
        if n <= s.last || s.held.contains_key(&n) {
            self.stats.duplicates += 1;
            return Verdict::Duplicate;
        }
        if !checked && n > s.top.saturating_add(jump) {
            if let Some(sus) = s.suspect.as_mut() {
                if n == sus.n || sus.parked.contains_key(&n) {
                    self.stats.duplicates += 1;
                    return Verdict::Duplicate;
                }
                if sus.parked.len() >= max_parked {
                    self.stats.unverified += 1;
                    return Verdict::Dropped;
                }
                sus.parked.insert(n, item);
                return Verdict::Taken;
            }
            s.suspect = Some(Suspect {
                n,
                item: Some(item),
                parked: BTreeMap::new(),
                claim: None,
                deadline: now + timeout,
                tries: 1,
            });
            self.stats.checks += 1;
            self.ask(pid, key, n, n);
            return Verdict::Taken;
        }
        let top = s.top;
        s.top = top.max(n);
        if n == s.last + 1 && s.held.is_empty() {
            s.last = n;
            self.ready.push_back(item);
            if !s.lost.is_empty() {
                self.flush(pid, key);
            }
            return Verdict::Next;
        }
        s.held.insert(n, item);
        if n > top + 1 {
            self.gap(pid, key, top + 1, n - 1, now);
        }
        self.flush(pid, key);
        Verdict::Taken
    }

    /// A heartbeat's claim that `last` is the publisher's last number of `key`.
    fn beat(&mut self, pid: u64, key: &str, last: u64, now: u64) {
        let jump = self.opts.plausible_jump;
        let timeout = self.opts.replay_timeout_ns;
        let s = self
            .streams
            .entry((pid, key.to_owned()))
            .or_insert_with(|| Stream::new(0));
        if last <= s.top {
            return;
        }
        if last > s.top.saturating_add(jump) {
            if let Some(sus) = s.suspect.as_mut() {
                if last != sus.n {
                    sus.claim = sus.claim.max(Some(last));
                }
            } else {
                s.suspect = Some(Suspect {
                    n: last,
                    item: None,
                    parked: BTreeMap::new(),
                    claim: None,
                    deadline: now + timeout,
                    tries: 1,
                });
                self.stats.checks += 1;
                self.ask(pid, key, last, last);
            }
            return;
        }
        self.beat_checked(pid, key, last, now);
    }

    fn beat_checked(&mut self, pid: u64, key: &str, last: u64, now: u64) {
        let Some(s) = self.streams.get_mut(&(pid, key.to_owned())) else {
            return;
        };
        if last > s.top {
            let from = s.top + 1;
            s.top = last;
            self.gap(pid, key, from, last, now);
        }
    }

    fn set_top(&mut self, pid: u64, key: &str, top: u64) {
        if let Some(s) = self.streams.get_mut(&(pid, key.to_owned())) {
            s.top = s.top.max(top);
        }
    }

    fn ask(&mut self, pid: u64, key: &str, from: u64, to: u64) {
        self.stats.replay_requests += 1;
        self.asks.push_back(ReplayAsk {
            publisher_id: pid,
            key: key.to_owned(),
            from,
            to,
        });
    }

    fn event(
        &mut self,
        kind: EventKind,
        pid: u64,
        key: &str,
        first: u64,
        last: u64,
        detail: String,
    ) {
        self.events.push_back(SeqEvent {
            kind,
            publisher_id: pid,
            key: key.to_owned(),
            first,
            last,
            detail,
        });
    }

    /// `from..=to` of `key` is missing: report it and recover it by replay, now or (one
    /// request per stream outstanding) folded into the next request.
    fn gap(&mut self, pid: u64, key: &str, from: u64, to: u64, now: u64) {
        self.stats.gaps += 1;
        self.stats.missed += to - from + 1;
        self.event(EventKind::GapDetected, pid, key, from, to, String::new());
        if !self.opts.recover {
            self.give_up(pid, key, from, to, "recovery disabled");
            return;
        }
        let Some(s) = self.streams.get_mut(&(pid, key.to_owned())) else {
            return;
        };
        if s.request.is_some() {
            s.wanted_upto = s.wanted_upto.max(to);
            return;
        }
        self.request(pid, key, from, to, now);
    }

    fn request(&mut self, pid: u64, key: &str, from: u64, to: u64, now: u64) {
        let timeout = self.opts.replay_timeout_ns;
        if let Some(s) = self.streams.get_mut(&(pid, key.to_owned())) {
            s.request = Some((from, to));
            s.deadline = Some(now + timeout);
            s.replayed = 0;
            s.requested_upto = s.requested_upto.max(to);
        }
        self.ask(pid, key, from, to);
    }

    /// The outstanding request of `key` is over: whatever of its range is still missing
    /// is lost for good, then the gaps seen meanwhile are asked for. For the tail of a
    /// previous publisher (`to` = [`TO_LAST`]), `upto` is its last number when the
    /// restarted publisher knew it; otherwise the tail's end is unknown.
    fn finish_request(
        &mut self,
        pid: u64,
        key: &str,
        why: &str,
        upto: Option<u64>,
        unknown_end: bool,
        now: u64,
    ) {
        let id = (pid, key.to_owned());
        let Some(s) = self.streams.get_mut(&id) else {
            return;
        };
        let Some((from, to)) = s.request.take() else {
            return;
        };
        s.deadline = None;
        let replayed = s.replayed;
        let tail = to == TO_LAST;
        let end = if tail {
            upto.unwrap_or(s.top).max(s.top)
        } else {
            to
        };
        if tail {
            s.requested_upto = end;
        }
        let lost = if end >= from {
            self.give_up(pid, key, from, end, why)
        } else {
            0
        };
        if tail && replayed + lost > 0 {
            // A tail's size is known only now: what was replayed or lost of it (not what
            // arrived live meanwhile) is a gap like any other in the counters.
            self.stats.gaps += 1;
            self.stats.missed += replayed + lost;
        }
        if tail && (unknown_end || upto.is_none()) {
            self.stats.unknown_tails += 1;
            let detail = format!(
                "{why}; what publisher {pid:016x} sent after {end} is unknown (no journal)"
            );
            self.event(
                EventKind::UnrecoverableGap,
                pid,
                key,
                end + 1,
                TO_LAST,
                detail,
            );
        } else if lost == 0 && end >= from {
            let detail = format!("replayed {replayed}");
            self.event(EventKind::GapRecovered, pid, key, from, end, detail);
        }
        if self.pid != Some(pid) {
            // A previous publisher's tail: its stream is over.
            self.flush(pid, key);
            if let Some(s) = self.streams.remove(&id) {
                for (_, item) in s.held {
                    self.ready.push_back(item);
                }
            }
            return;
        }
        let Some(s) = self.streams.get_mut(&id) else {
            return;
        };
        let wanted = std::mem::take(&mut s.wanted_upto);
        let mut next = s.requested_upto.max(s.last) + 1;
        while next <= wanted && s.held.contains_key(&next) {
            next += 1;
        }
        if next <= wanted {
            self.request(pid, key, next, wanted, now);
        }
    }

    /// Accounts every number of `from..=to` that is neither delivered nor held as lost
    /// for good (events name the ranges), then delivers what follows. Returns how many.
    fn give_up(&mut self, pid: u64, key: &str, from: u64, to: u64, why: &str) -> u64 {
        let Some(s) = self.streams.get_mut(&(pid, key.to_owned())) else {
            return 0;
        };
        let mut holes = Vec::new();
        let mut cursor = from.max(s.last + 1);
        if cursor <= to {
            for &n in s.held.range(cursor..=to).map(|(n, _)| n) {
                if n > cursor {
                    holes.push((cursor, n - 1));
                }
                cursor = n + 1;
            }
            if cursor <= to {
                holes.push((cursor, to));
            }
        }
        let holes: Vec<(u64, u64)> = holes
            .into_iter()
            .flat_map(|h| subtract(h, &s.lost))
            .collect();
        s.top = s.top.max(to);
        s.lost.extend(holes.iter().copied());
        s.lost.sort_unstable();
        let mut count = 0;
        for (a, b) in holes {
            count += b - a + 1;
            self.stats.unrecoverable += b - a + 1;
            self.event(EventKind::UnrecoverableGap, pid, key, a, b, why.to_owned());
        }
        self.flush(pid, key);
        count
    }

    /// Delivers the held items that are next in order, skipping lost ranges.
    fn flush(&mut self, pid: u64, key: &str) {
        let Some(s) = self.streams.get_mut(&(pid, key.to_owned())) else {
            return;
        };
        loop {
            let next = s.last + 1;
            if let Some(entry) = s.held.first_entry() {
                if *entry.key() <= next {
                    let n = *entry.key();
                    let item = entry.remove();
                    if n == next {
                        s.last = n;
                        self.ready.push_back(item);
                    }
                    continue;
                }
            }
            if let Some(&(a, b)) = s.lost.first() {
                if b <= s.last {
                    s.lost.remove(0);
                    continue;
                }
                if a <= next {
                    s.last = b;
                    s.lost.remove(0);
                    continue;
                }
            }
            return;
        }
    }

    // -- new publisher ids -------------------------------------------------------------

    fn candidate(&mut self, pid: u64, parked: Parked<T>, now: u64) -> Verdict {
        let timeout = self.opts.replay_timeout_ns;
        if let Some(c) = self.candidates.get_mut(&pid) {
            if c.parked.len() >= self.opts.max_parked {
                self.stats.unverified += 1;
                return Verdict::Dropped;
            }
            c.parked.push(parked);
            return Verdict::Taken;
        }
        if self.candidates.len() >= self.opts.max_candidates {
            self.stats.unverified += 1;
            return Verdict::Dropped;
        }
        let (key, n) = match &parked {
            Parked::Data { key, n, .. } => (key.clone(), *n),
            Parked::Beat { targets } => targets
                .first()
                .map(|(k, last)| (k.clone(), *last))
                .unwrap_or_default(),
        };
        let n = n.max(1);
        self.candidates.insert(
            pid,
            Candidate {
                ask: (key.clone(), n),
                parked: vec![parked],
                deadline: now + timeout,
                tries: 1,
            },
        );
        self.stats.checks += 1;
        self.ask(pid, &key, n, n);
        Verdict::Taken
    }

    fn disown_candidate(&mut self, pid: u64) {
        if let Some(c) = self.candidates.remove(&pid) {
            self.stats.disowned += c.parked.len() as u64;
        }
    }

    /// `pid` answered for itself: the publisher restarted (§7.2). The previous
    /// publisher's tail is asked of the new one (a publisher on a journal still holds
    /// it); then the new stream starts at 1, with what waited for the check.
    fn confirm(&mut self, pid: u64, now: u64) {
        let Some(c) = self.candidates.remove(&pid) else {
            return;
        };
        let timeout = self.opts.replay_timeout_ns;
        if let Some(previous) = self.pid.replace(pid) {
            self.previous.insert(previous);
            self.stats.restarts += 1;
            let detail = format!("previous publisher {previous:016x}");
            self.event(EventKind::PublisherRestart, pid, "", 0, 0, detail);
            let keys: Vec<String> = self
                .streams
                .keys()
                .filter(|(p, _)| *p == previous)
                .map(|(_, k)| k.clone())
                .collect();
            for key in keys {
                let id = (previous, key.clone());
                let Some(s) = self.streams.get_mut(&id) else {
                    continue;
                };
                if let Some(sus) = s.suspect.take() {
                    self.stats.unverified +=
                        u64::from(sus.item.is_some()) + sus.parked.len() as u64;
                }
                s.wanted_upto = 0;
                let from = s.last + 1;
                if self.opts.recover {
                    s.request = Some((from, TO_LAST));
                    s.deadline = Some(now + timeout);
                    s.replayed = 0;
                    s.requested_upto = TO_LAST;
                    self.ask(previous, &key, from, TO_LAST);
                } else {
                    s.request = Some((from, TO_LAST));
                    self.finish_request(previous, &key, "recovery disabled", None, true, now);
                }
            }
        }
        for parked in c.parked {
            match parked {
                Parked::Data { key, n, item } => {
                    self.live(pid, &key, n, item, now, false);
                }
                Parked::Beat { targets } => {
                    for (key, last) in targets {
                        self.beat(pid, &key, last, now);
                    }
                }
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

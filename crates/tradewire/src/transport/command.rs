//! Acknowledged commands: DEALER client, ROUTER server (WIRE.md §7.5).
//!
//! A server with a [`CommandStore`](crate::command_store) remembers the ids it applied,
//! with the ack it sent, across restarts; without one it remembers the last
//! `dedupe_window` ids in memory. Either way a command with an empty `command_id` is
//! answered REJECTED and never applied: without an id a retry cannot be told from a new
//! command.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use prost::Message;

use crate::catalog::{Channel, Pattern};
use crate::command_store::{CommandStore, CommandStoreOptions, StateWrites};
use crate::v1::{self, command_ack::Outcome};
use crate::wire;

use super::security::{secure_client, CurveClient, CurveServer, ZapHandler};
use super::{
    common_options, max_frame_size, millis_i64, now_ns, now_us, random_hex, random_nonzero_u64,
    resolve_channel, Result, TransportError, WarnLimiter, DEFAULT_LINGER, DEFAULT_WARN_INTERVAL,
};

/// Command client configuration.
#[derive(Debug, Clone)]
pub struct CommandClientOptions {
    /// The command channel; the one carrying StrategyCommand when `None`.
    pub channel: Option<Channel>,
    /// Resend interval until the acknowledgement arrives.
    pub retry_interval: Duration,
    /// Socket linger on close.
    pub linger: Duration,
    /// ZMQ context to use; a new one when `None`.
    pub context: Option<super::Context>,
    /// CURVE: this client's key pair and the server's public key.
    pub curve: Option<CurveClient>,
    /// Largest accepted reply payload; the socket's `ZMQ_MAXMSGSIZE` follows.
    pub max_payload: usize,
    /// Rejected replies are logged on stderr at most once per this interval.
    pub warn_interval: Duration,
}

impl Default for CommandClientOptions {
    fn default() -> Self {
        CommandClientOptions {
            channel: None,
            retry_interval: Duration::from_millis(250),
            linger: DEFAULT_LINGER,
            context: None,
            curve: None,
            max_payload: wire::DEFAULT_MAX_PAYLOAD,
            warn_interval: DEFAULT_WARN_INTERVAL,
        }
    }
}

/// Command client counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommandClientStats {
    /// Commands sent (first copies).
    pub commands: u64,
    /// Resends of a command not yet acknowledged.
    pub retries: u64,
    /// Acknowledgements received for the command being waited on.
    pub acks: u64,
    /// Acknowledgements of earlier commands (extra copies), ignored.
    pub stale_acks: u64,
    /// Frames rejected (malformed or of another type).
    pub rejected: u64,
    /// `rejected` by WIRE.md error kind.
    pub rejected_by_kind: BTreeMap<&'static str, u64>,
    /// Commands that timed out.
    pub timeouts: u64,
}

/// Sends StrategyCommands and waits for their CommandAck, resending until a deadline.
pub struct CommandClient {
    channel: Channel,
    endpoint: String,
    dealer: zmq::Socket,
    client_id: u64,
    seq: u64,
    retry_interval: Duration,
    max_payload: usize,
    stats: CommandClientStats,
    warn: WarnLimiter,
    _context: zmq::Context,
}

impl CommandClient {
    /// Connects with default options. The server need not be up yet: DEALER queues.
    pub fn connect(endpoint: &str) -> Result<Self> {
        Self::connect_with(endpoint, CommandClientOptions::default())
    }

    /// Connects with `options`.
    pub fn connect_with(endpoint: &str, options: CommandClientOptions) -> Result<Self> {
        let channel = resolve_channel::<v1::StrategyCommand>(options.channel, Pattern::Command)?;
        let context = options.context.clone().unwrap_or_default().0;
        let dealer = context.socket(zmq::DEALER)?;
        common_options(&dealer, endpoint, options.linger)?;
        dealer.set_maxmsgsize(max_frame_size(options.max_payload))?;
        if let Some(curve) = &options.curve {
            secure_client(&dealer, curve)?;
        }
        dealer.connect(endpoint)?;
        Ok(CommandClient {
            channel,
            endpoint: endpoint.to_owned(),
            dealer,
            client_id: random_nonzero_u64(),
            seq: 0,
            retry_interval: options.retry_interval,
            max_payload: options.max_payload,
            stats: CommandClientStats::default(),
            warn: WarnLimiter::new(
                format!("rejected replies on {}", channel.name),
                options.warn_interval,
            ),
            _context: context,
        })
    }

    /// Sends `command` (a `command_id` is generated when empty, `sent_timestamp_us` set
    /// when 0) and returns its acknowledgement; resends the same frame every retry
    /// interval; fails with [`TransportError::Timeout`] after `deadline`.
    pub fn send(
        &mut self,
        mut command: v1::StrategyCommand,
        deadline: Duration,
    ) -> Result<v1::CommandAck> {
        if command.command_id.is_empty() {
            command.command_id = random_hex(32);
        }
        if command.sent_timestamp_us == 0 {
            command.sent_timestamp_us = now_us();
        }
        self.seq += 1;
        let mut frame = Vec::new();
        wire::encode_message(
            self.channel.name,
            "",
            &command,
            self.client_id,
            self.seq,
            self.seq,
            now_ns(),
            0,
            &mut frame,
        )?;
        let give_up = Instant::now() + deadline;
        self.stats.commands += 1;
        let mut first = true;
        loop {
            let now = Instant::now();
            if now >= give_up {
                self.stats.timeouts += 1;
                return Err(TransportError::Timeout(format!(
                    "no CommandAck for command {} from {} within {deadline:?}",
                    command.command_id, self.endpoint
                )));
            }
            // A full queue (server away for long) skips this copy; the next retry tries again.
            if self.dealer.send(&frame[..], zmq::DONTWAIT).is_ok() && !first {
                self.stats.retries += 1;
            }
            first = false;
            let resend_at = (now + self.retry_interval).min(give_up);
            while let Some(wait) = resend_at.checked_duration_since(Instant::now()) {
                if self.dealer.poll(zmq::POLLIN, millis_i64(wait).max(1))? == 0 {
                    break;
                }
                while let Ok(reply) = self.dealer.recv_bytes(zmq::DONTWAIT) {
                    if let Some(ack) = self.ack_of(&reply) {
                        if ack.command_id == command.command_id {
                            self.stats.acks += 1;
                            return Ok(ack);
                        }
                        self.stats.stale_acks += 1;
                    }
                }
            }
        }
    }

    fn ack_of(&mut self, frame: &[u8]) -> Option<v1::CommandAck> {
        let ack = wire::decode_with_limit(frame, self.max_payload)
            .and_then(|env| wire::decode_message::<v1::CommandAck>(&env));
        match ack {
            Ok(ack) => Some(ack),
            Err(e) => {
                self.stats.rejected += 1;
                *self.stats.rejected_by_kind.entry(e.kind()).or_insert(0) += 1;
                self.warn.warn(e.kind(), || e.to_string());
                None
            }
        }
    }

    /// The counters.
    pub fn stats(&self) -> &CommandClientStats {
        &self.stats
    }
}

impl std::fmt::Debug for CommandClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommandClient")
            .field("endpoint", &self.endpoint)
            .finish()
    }
}

/// Command server configuration.
#[derive(Debug, Clone)]
pub struct CommandServerOptions {
    /// The command channel; the one carrying StrategyCommand when `None`.
    pub channel: Option<Channel>,
    /// Without a store: how many recent command ids are remembered (in memory) for
    /// deduplication.
    pub dedupe_window: usize,
    /// The durable applied-command store: ids (and the ack sent) are remembered for its
    /// time window and across restarts, and a handler's [`StateWrites`] commit with them.
    /// `None`: the in-memory window only (a restarted server forgets every id).
    pub store: Option<CommandStoreOptions>,
    /// Socket linger on close.
    pub linger: Duration,
    /// ZMQ context to use; a new one when `None`. A CURVE server runs its ZAP handler
    /// in this context: one CURVE server per context.
    pub context: Option<super::Context>,
    /// CURVE: the server's key pair and the client public keys allowed in. Any other
    /// client is refused during the handshake and logged on stderr with its key.
    pub curve: Option<CurveServer>,
    /// Largest accepted command payload; the socket's `ZMQ_MAXMSGSIZE` follows, so
    /// libzmq drops a frame too large to be valid (and its connection) before buffering it.
    pub max_payload: usize,
    /// Rejected frames are logged on stderr at most once per this interval.
    pub warn_interval: Duration,
}

impl Default for CommandServerOptions {
    fn default() -> Self {
        CommandServerOptions {
            channel: None,
            dedupe_window: 10_000,
            store: None,
            linger: DEFAULT_LINGER,
            context: None,
            curve: None,
            max_payload: wire::DEFAULT_MAX_PAYLOAD,
            warn_interval: DEFAULT_WARN_INTERVAL,
        }
    }
}

/// Command server counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommandServerStats {
    /// Commands applied (handler called).
    pub applied: u64,
    /// Copies of already-applied command ids, answered with `duplicate: true`.
    pub duplicates: u64,
    /// Frames rejected (bad framing, malformed, other type).
    pub rejected: u64,
    /// `rejected` by kind: a WIRE.md error kind, `bad_framing`, `wrong_channel` or
    /// `no_command_id` (a command with an empty id, answered REJECTED, not applied).
    pub rejected_by_kind: BTreeMap<&'static str, u64>,
    /// Acknowledgements that could not be sent (client gone).
    pub ack_failed: u64,
    /// Commands left unanswered because the store could not be read or written (the
    /// client retries; a handler that ran is called again for the retry).
    pub store_errors: u64,
}

/// The reason of the REJECTED ack of a command without an id.
pub const NO_ID_REASON: &str =
    "command_id is empty: a command server applies only commands with an id (retries reuse it)";

/// Applies each StrategyCommand id once and acknowledges every copy.
pub struct CommandServer {
    channel: Channel,
    endpoint: String,
    router: zmq::Socket,
    server_id: u64,
    window: usize,
    seen: HashMap<String, v1::CommandAck>,
    order: VecDeque<String>,
    /// Shared with [`CommandServer::shared_store`] holders: the lock is taken per store
    /// call, never across the handler.
    store: Option<Arc<Mutex<CommandStore>>>,
    writes: StateWrites,
    store_warn: WarnLimiter,
    max_payload: usize,
    stats: CommandServerStats,
    warn: WarnLimiter,
    /// Dropped (stopped and joined) before the router and the context.
    zap: Option<ZapHandler>,
    _context: zmq::Context,
}

impl CommandServer {
    /// Binds with default options.
    pub fn bind(endpoint: &str) -> Result<Self> {
        Self::bind_with(endpoint, CommandServerOptions::default())
    }

    /// Binds with `options`.
    pub fn bind_with(endpoint: &str, options: CommandServerOptions) -> Result<Self> {
        let channel = resolve_channel::<v1::StrategyCommand>(options.channel, Pattern::Command)?;
        let context = options.context.clone().unwrap_or_default().0;
        let router = context.socket(zmq::ROUTER)?;
        common_options(&router, endpoint, options.linger)?;
        router.set_router_mandatory(true)?;
        router.set_maxmsgsize(max_frame_size(options.max_payload))?;
        let zap = match &options.curve {
            Some(curve) => Some(ZapHandler::secure_server(
                &context, &router, curve, endpoint,
            )?),
            None => None,
        };
        router.bind(endpoint)?;
        // Opened once bound: a second server on the endpoint fails to bind before it
        // touches the store of the first.
        let store = options
            .store
            .as_ref()
            .map(CommandStore::open)
            .transpose()?
            .map(|s| Arc::new(Mutex::new(s)));
        if let Some(zap) = &zap {
            if let Ok(Ok(bound)) = router.get_last_endpoint() {
                zap.set_endpoint(bound);
            }
        }
        Ok(CommandServer {
            channel,
            endpoint: endpoint.to_owned(),
            router,
            server_id: random_nonzero_u64(),
            window: options.dedupe_window.max(1),
            seen: HashMap::new(),
            order: VecDeque::new(),
            store,
            writes: StateWrites::new(),
            store_warn: WarnLimiter::new(
                format!("command store errors on {}", channel.name),
                options.warn_interval,
            ),
            max_payload: options.max_payload,
            stats: CommandServerStats::default(),
            warn: WarnLimiter::new(
                format!("rejected commands on {}", channel.name),
                options.warn_interval,
            ),
            zap,
            _context: context,
        })
    }

    /// Waits up to `timeout` for commands and handles every one queued: `handler` is
    /// called once per new command id and returns (outcome, reason); every copy is
    /// acknowledged. Returns the number of frames handled.
    pub fn poll<F>(&mut self, timeout: Duration, mut handler: F) -> Result<usize>
    where
        F: FnMut(&v1::StrategyCommand) -> (Outcome, String),
    {
        self.poll_with_state(timeout, |command, _| handler(command))
    }

    /// As [`poll`](Self::poll), for a handler whose state lives in the store: what it
    /// writes into the [`StateWrites`] it is given commits in the same transaction as the
    /// command's id and ack, before the ack is sent, so the effect and the record of the
    /// command survive a crash together or not at all (read the state back with
    /// [`state`](Self::state) after a restart). Without a store the writes are dropped.
    pub fn poll_with_state<F>(&mut self, timeout: Duration, mut handler: F) -> Result<usize>
    where
        F: FnMut(&v1::StrategyCommand, &mut StateWrites) -> (Outcome, String),
    {
        if self.router.poll(zmq::POLLIN, millis_i64(timeout))? == 0 {
            if let Some(store) = &self.store {
                // Idle: expire a bounded batch of old ids.
                if let Err(e) = lock(store).prune(now_us()) {
                    self.store_warn.warn("prune", || e.to_string());
                }
            }
            return Ok(0);
        }
        let mut handled = 0;
        while let Ok(parts) = self.router.recv_multipart(zmq::DONTWAIT) {
            handled += 1;
            self.handle(&parts, &mut handler);
        }
        Ok(handled)
    }

    fn handle<F>(&mut self, parts: &[Vec<u8>], handler: &mut F)
    where
        F: FnMut(&v1::StrategyCommand, &mut StateWrites) -> (Outcome, String),
    {
        let [identity, frame] = parts else {
            let detail = format!("{} frames, expected identity + 1", parts.len());
            return self.reject("bad_framing", detail);
        };
        let env = match wire::decode_with_limit(frame, self.max_payload) {
            Ok(env) => env,
            Err(e) => return self.reject(e.kind(), e.to_string()),
        };
        if env.channel != self.channel.name {
            let detail = format!("a frame of channel {:?}", env.channel);
            return self.reject("wrong_channel", detail);
        }
        let command = match wire::decode_message::<v1::StrategyCommand>(&env) {
            Ok(command) => command,
            Err(e) => return self.reject(e.kind(), e.to_string()),
        };
        let ack = if command.command_id.is_empty() {
            self.reject("no_command_id", "a command with an empty command_id".into());
            v1::CommandAck {
                command_id: String::new(),
                outcome: Outcome::Rejected as i32,
                reason: NO_ID_REASON.into(),
                engine_timestamp_us: now_us(),
                duplicate: false,
            }
        } else {
            match self.ack_for(&command, handler) {
                Some(ack) => ack,
                None => return, // store error: no ack, the client retries
            }
        };
        let mut out = Vec::new();
        let sent = wire::encode_message(
            self.channel.name,
            "",
            &ack,
            self.server_id,
            0,
            0,
            now_ns(),
            0,
            &mut out,
        )
        .is_ok()
            && self
                .router
                .send(&identity[..], zmq::SNDMORE | zmq::DONTWAIT)
                .and_then(|()| self.router.send(out, zmq::DONTWAIT))
                .is_ok();
        if !sent {
            self.stats.ack_failed += 1;
        }
    }

    /// The ack of a command with an id: the first one again for a known id, else the
    /// handler's, recorded before it is returned. None when the store failed.
    fn ack_for<F>(
        &mut self,
        command: &v1::StrategyCommand,
        handler: &mut F,
    ) -> Option<v1::CommandAck>
    where
        F: FnMut(&v1::StrategyCommand, &mut StateWrites) -> (Outcome, String),
    {
        let id = &command.command_id;
        let looked_up = self.store.as_ref().map(|s| lock(s).lookup(id, now_us()));
        let first = match looked_up {
            Some(looked_up) => match looked_up {
                Ok(found) => match found.map(|c| v1::CommandAck::decode(c.ack.as_slice())) {
                    Some(Ok(ack)) => Some(ack),
                    Some(Err(e)) => return self.store_failed(format!("stored ack of {id}: {e}")),
                    None => None,
                },
                Err(e) => return self.store_failed(e.to_string()),
            },
            None => self.seen.get(id).cloned(),
        };
        if let Some(first) = first {
            self.stats.duplicates += 1;
            return Some(v1::CommandAck {
                duplicate: true,
                ..first
            });
        }
        self.writes.clear();
        let (outcome, reason) = handler(command, &mut self.writes);
        self.stats.applied += 1;
        let applied_us = now_us();
        let ack = v1::CommandAck {
            command_id: id.clone(),
            outcome: outcome as i32,
            reason,
            engine_timestamp_us: applied_us,
            duplicate: false,
        };
        match &self.store {
            Some(store) => {
                let recorded =
                    lock(store).record(id, &ack.encode_to_vec(), applied_us, &self.writes);
                self.writes.clear();
                if let Err(e) = recorded {
                    return self.store_failed(e.to_string());
                }
            }
            None => self.remember(id.clone(), ack.clone()),
        }
        Some(ack)
    }

    fn store_failed(&mut self, detail: String) -> Option<v1::CommandAck> {
        self.stats.store_errors += 1;
        self.store_warn.warn("store", || detail);
        None
    }

    fn reject(&mut self, kind: &'static str, detail: String) {
        self.stats.rejected += 1;
        *self.stats.rejected_by_kind.entry(kind).or_insert(0) += 1;
        self.warn.warn(kind, || detail);
    }

    fn remember(&mut self, id: String, ack: v1::CommandAck) {
        if self.order.len() >= self.window {
            if let Some(old) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
        self.order.push_back(id.clone());
        self.seen.insert(id, ack);
    }

    /// The counters.
    pub fn stats(&self) -> &CommandServerStats {
        &self.stats
    }

    /// The committed value of handler state `key` (None without a store).
    pub fn state(&self, key: &str) -> Result<Option<Vec<u8>>> {
        match &self.store {
            Some(store) => Ok(lock(store).state(key)?),
            None => Ok(None),
        }
    }

    /// Committed handler state keys starting with `prefix`, with their values, in key
    /// order (empty without a store).
    pub fn state_items(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>> {
        match &self.store {
            Some(store) => Ok(lock(store).state_items(prefix)?),
            None => Ok(Vec::new()),
        }
    }

    /// The store, when the server has one, locked for the caller.
    pub fn store(&mut self) -> Option<MutexGuard<'_, CommandStore>> {
        self.store.as_ref().map(|s| lock(s))
    }

    /// The store, when the server has one, for another thread: e.g. a service committing
    /// state that changes outside commands ([`CommandStore::write_state`]) in the same
    /// file as the commands' records. The server locks it only inside its own store calls
    /// (lookup, record, prune), never while the handler runs, so a handler may wait for a
    /// thread that holds it.
    pub fn shared_store(&self) -> Option<Arc<Mutex<CommandStore>>> {
        self.store.clone()
    }

    /// The endpoint as given.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The endpoint actually bound (resolves `tcp://HOST:*` to the port chosen).
    pub fn bound_endpoint(&self) -> Result<String> {
        match self.router.get_last_endpoint()? {
            Ok(e) => Ok(e),
            Err(raw) => Ok(String::from_utf8_lossy(&raw).into_owned()),
        }
    }

    /// CURVE clients let in by the allow list (0 without CURVE).
    pub fn curve_accepted(&self) -> u64 {
        self.zap.as_ref().map_or(0, |z| z.log().accepted())
    }

    /// CURVE clients refused (0 without CURVE); each refusal is also logged on stderr.
    pub fn curve_rejected(&self) -> u64 {
        self.zap.as_ref().map_or(0, |z| z.log().rejected())
    }

    /// Refused CURVE handshakes by kind: `unknown_client` (key not allowed), `no_curve`
    /// (client without CURVE), `bad_server_key` (client with another server key),
    /// `protocol_error`. Empty without CURVE.
    pub fn curve_refusals(&self) -> BTreeMap<&'static str, u64> {
        self.zap
            .as_ref()
            .map(|z| z.log().refusals())
            .unwrap_or_default()
    }

    /// The most recently refused client public keys (Z85), oldest first.
    pub fn curve_rejected_keys(&self) -> Vec<String> {
        self.zap
            .as_ref()
            .map(|z| z.log().rejected_keys())
            .unwrap_or_default()
    }
}

impl std::fmt::Debug for CommandServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommandServer")
            .field("endpoint", &self.endpoint)
            .finish()
    }
}

/// The store behind its lock. A holder that panicked leaves a usable connection: each store
/// call is one SQLite transaction, rolled back when unfinished.
fn lock(store: &Mutex<CommandStore>) -> MutexGuard<'_, CommandStore> {
    store.lock().unwrap_or_else(|e| e.into_inner())
}

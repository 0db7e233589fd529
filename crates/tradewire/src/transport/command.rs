//! Acknowledged commands: DEALER client, ROUTER server (WIRE.md §7.5).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::catalog::{Channel, Pattern};
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
    /// How many recent command ids are remembered for deduplication.
    pub dedupe_window: usize,
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
    /// `rejected` by kind: a WIRE.md error kind, `bad_framing` or `wrong_channel`.
    pub rejected_by_kind: BTreeMap<&'static str, u64>,
    /// Acknowledgements that could not be sent (client gone).
    pub ack_failed: u64,
}

/// Applies each StrategyCommand id once and acknowledges every copy.
pub struct CommandServer {
    channel: Channel,
    endpoint: String,
    router: zmq::Socket,
    server_id: u64,
    window: usize,
    seen: HashMap<String, v1::CommandAck>,
    order: VecDeque<String>,
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
        if self.router.poll(zmq::POLLIN, millis_i64(timeout))? == 0 {
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
        F: FnMut(&v1::StrategyCommand) -> (Outcome, String),
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
        let ack = match self.seen.get(&command.command_id) {
            Some(first) if !command.command_id.is_empty() => {
                self.stats.duplicates += 1;
                v1::CommandAck {
                    duplicate: true,
                    ..first.clone()
                }
            }
            _ => {
                let (outcome, reason) = handler(&command);
                self.stats.applied += 1;
                let ack = v1::CommandAck {
                    command_id: command.command_id.clone(),
                    outcome: outcome as i32,
                    reason,
                    engine_timestamp_us: now_us(),
                    duplicate: false,
                };
                if !command.command_id.is_empty() {
                    self.remember(command.command_id.clone(), ack.clone());
                }
                ack
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

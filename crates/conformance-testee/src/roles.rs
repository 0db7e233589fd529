//! Transport roles played with `tradewire::transport` (publisher, subscriber, echo,
//! signal, command server / client) and a relay on raw ZeroMQ sockets + `tradewire::wire`.

use std::time::{Duration, Instant};

use prost::Message;
use tradewire::command_store::CommandStoreOptions;
use tradewire::transport::{
    CommandClient, CommandClientOptions, CommandServer, CommandServerOptions, Publisher,
    PublisherOptions, Start, Subscriber, SubscriberOptions, TransportError,
};
use tradewire::v1::{
    self, command_ack::Outcome, strategy_command::CommandType, trading_signal::SignalType,
};
use tradewire::wire;

use crate::pb;
use crate::pb::role_action::Action;

/// Why a request could not be carried out.
pub enum Failure {
    /// The testee does not implement it.
    Unsupported(String),
    /// It was tried and failed.
    Error(String),
}

impl From<TransportError> for Failure {
    fn from(e: TransportError) -> Self {
        Failure::Error(e.to_string())
    }
}

impl From<zmq::Error> for Failure {
    fn from(e: zmq::Error) -> Self {
        Failure::Error(format!("zmq: {e}"))
    }
}

type Res<T> = Result<T, Failure>;

/// A started role; dropping it closes its sockets.
pub trait Role {
    /// Carries out one action.
    fn action(&mut self, action: pb::RoleAction) -> Res<pb::ActionReport>;
}

fn ms(value: u32, default: Duration) -> Duration {
    if value == 0 {
        default
    } else {
        Duration::from_millis(u64::from(value))
    }
}

fn opt(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

fn unsupported<T>(role: &str, action: &Option<Action>) -> Res<T> {
    Err(Failure::Unsupported(format!("{role} cannot do {action:?}")))
}

/// Starts the role `start` asks for; returns it and its publisher id (0 if none).
pub fn start(start: &pb::StartRole) -> Res<(Box<dyn Role>, u64)> {
    let channel = if start.channel.is_empty() {
        "market_data"
    } else {
        start.channel.as_str()
    };
    let role = pb::Role::try_from(start.role).unwrap_or(pb::Role::Unspecified);
    if matches!(role, pb::Role::Publisher | pb::Role::Subscriber) && channel != "market_data" {
        return Err(Failure::Unsupported(format!(
            "only channel market_data, not {channel}"
        )));
    }
    Ok(match role {
        pb::Role::Publisher => {
            let publisher = Publisher::<v1::MarketData>::bind_with(
                &start.endpoint,
                PublisherOptions {
                    control_endpoint: opt(&start.control_endpoint),
                    ring_size: if start.ring_size == 0 {
                        tradewire::transport::DEFAULT_RING_SIZE
                    } else {
                        start.ring_size as usize
                    },
                    heartbeat_interval: ms(
                        start.heartbeat_interval_ms,
                        tradewire::transport::DEFAULT_HEARTBEAT_INTERVAL,
                    ),
                    ..Default::default()
                },
            )?;
            let id = publisher.publisher_id();
            (
                Box::new(PublisherRole {
                    publisher,
                    published: 0,
                }),
                id,
            )
        }
        pb::Role::Subscriber => {
            let sub = Subscriber::<v1::MarketData>::connect_with(
                &start.endpoint,
                SubscriberOptions {
                    keys: start.keys.clone(),
                    control_endpoint: opt(&start.control_endpoint),
                    snapshot: start.snapshot,
                    connect_timeout: ms(start.connect_timeout_ms, Duration::from_secs(10)),
                    peer_timeout: ms(
                        start.peer_timeout_ms,
                        tradewire::transport::DEFAULT_PEER_TIMEOUT,
                    ),
                    replay_timeout: ms(start.replay_timeout_ms, Duration::from_secs(2)),
                    start: if start.start_at() == pb::StartAt::StartEarliest {
                        Start::Earliest
                    } else {
                        Start::Latest
                    },
                    max_payload: match start.max_payload {
                        0 => wire::DEFAULT_MAX_PAYLOAD,
                        n => n as usize,
                    },
                    ..Default::default()
                },
            )?;
            (Box::new(SubscriberRole { sub }), 0)
        }
        pb::Role::Echo => {
            let publisher =
                Publisher::<v1::TradingSignal>::bind_with(&start.out_endpoint, Default::default())?;
            let sub = Subscriber::<v1::MarketData>::connect_with(
                &start.endpoint,
                SubscriberOptions {
                    connect_timeout: ms(start.connect_timeout_ms, Duration::from_secs(10)),
                    ..Default::default()
                },
            )?;
            let id = publisher.publisher_id();
            (Box::new(EchoRole { publisher, sub }), id)
        }
        pb::Role::Signal => {
            let publisher =
                Publisher::<v1::TradingSignal>::bind_with(&start.out_endpoint, Default::default())?;
            let sub = Subscriber::<v1::MarketData>::connect_with(
                &start.endpoint,
                SubscriberOptions {
                    connect_timeout: ms(start.connect_timeout_ms, Duration::from_secs(10)),
                    ..Default::default()
                },
            )?;
            let id = publisher.publisher_id();
            (Box::new(SignalRole { publisher, sub }), id)
        }
        pb::Role::CommandServer => {
            // The same state directory across a stop and a start: the same server restarted.
            let store = (!start.state_dir.is_empty()).then(|| {
                CommandStoreOptions::new(
                    std::path::Path::new(&start.state_dir).join("commands.sqlite"),
                )
            });
            let server = CommandServer::bind_with(
                &start.endpoint,
                CommandServerOptions {
                    store,
                    ..Default::default()
                },
            )?;
            (
                Box::new(ServerRole {
                    server,
                    applied: Vec::new(),
                    kill: false,
                }),
                0,
            )
        }
        pb::Role::CommandClient => (
            Box::new(ClientRole {
                endpoint: start.endpoint.clone(),
                client: None,
            }),
            0,
        ),
        pb::Role::RelayRole => (Box::new(RelayRole::new(start)?), 0),
        pb::Role::Unspecified => {
            return Err(Failure::Unsupported(format!("role {}", start.role)));
        }
    })
}

struct PublisherRole {
    publisher: Publisher<v1::MarketData>,
    published: u64,
}

impl Role for PublisherRole {
    fn action(&mut self, action: pb::RoleAction) -> Res<pb::ActionReport> {
        match action.action {
            Some(Action::Idle(idle)) => std::thread::sleep(ms(idle.ms, Duration::ZERO)),
            Some(Action::Publish(req)) => {
                let keys = if req.keys.is_empty() {
                    vec!["AAPL".to_owned()]
                } else {
                    req.keys
                };
                let interval = (req.rate_hz > 0)
                    .then(|| Duration::from_secs_f64(1.0 / f64::from(req.rate_hz)));
                let mut next = Instant::now();
                for i in 1..=u64::from(req.count) {
                    let key = &keys[usize::try_from(i - 1).unwrap_or(0) % keys.len()];
                    #[allow(clippy::cast_precision_loss)]
                    let tick = v1::MarketData {
                        symbol: key.clone(),
                        price: i as f64,
                        timestamp_us: i64::try_from(i).unwrap_or(i64::MAX),
                        ..Default::default()
                    };
                    self.publisher.publish(&tick)?;
                    self.published += 1;
                    if let Some(step) = interval {
                        next += step;
                        if let Some(wait) = next.checked_duration_since(Instant::now()) {
                            std::thread::sleep(wait);
                        }
                    }
                }
            }
            other => return unsupported("publisher", &other),
        }
        Ok(pb::ActionReport {
            published: self.published,
            last_seq: self.publisher.last_seq(),
            ..Default::default()
        })
    }
}

struct SubscriberRole {
    sub: Subscriber<v1::MarketData>,
}

impl Role for SubscriberRole {
    fn action(&mut self, action: pb::RoleAction) -> Res<pb::ActionReport> {
        let req = match action.action {
            Some(Action::Collect(c)) => c,
            Some(Action::Idle(idle)) => {
                std::thread::sleep(ms(idle.ms, Duration::ZERO));
                return Ok(pb::ActionReport::default());
            }
            other => return unsupported("subscriber", &other),
        };
        let mut report = pb::ActionReport::default();
        let deadline = Instant::now() + ms(req.timeout_ms, Duration::from_secs(30));
        let idle = ms(req.idle_ms, Duration::from_secs(2));
        while req.count == 0 || report.messages.len() < req.count as usize {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                break;
            };
            let Some(got) = self.sub.recv(idle.min(left)) else {
                break;
            };
            report.messages.push(pb::Delivered {
                key: got.key.clone(),
                publisher_id: got.publisher_id,
                seq: got.seq,
                key_seq: got.key_seq,
                flags: u32::from(got.flags),
                payload: got.message.encode_to_vec(),
            });
        }
        report.events = self
            .sub
            .drain_events()
            .into_iter()
            .map(|e| pb::TransportEvent {
                kind: e.kind.name().to_owned(),
                key: e.key,
                first: e.first,
                last: e.last,
            })
            .collect();
        report.rejected = self.sub.stats().rejected.values().sum();
        Ok(report)
    }
}

struct EchoRole {
    publisher: Publisher<v1::TradingSignal>,
    sub: Subscriber<v1::MarketData>,
}

impl Role for EchoRole {
    fn action(&mut self, action: pb::RoleAction) -> Res<pb::ActionReport> {
        let Some(Action::Echo(req)) = action.action else {
            return unsupported("echo", &action.action);
        };
        let idle = ms(req.idle_ms, Duration::from_secs(2));
        let mut done = 0u64;
        while done < u64::from(req.count) {
            let Some(got) = self.sub.recv(idle) else {
                break;
            };
            let signal = v1::TradingSignal {
                symbol: got.message.symbol,
                timestamp_us: got.message.timestamp_us,
                confidence: got.message.price,
                ..Default::default()
            };
            self.publisher.publish(&signal)?;
            done += 1;
        }
        Ok(pb::ActionReport {
            published: done,
            ..Default::default()
        })
    }
}

/// Tick -> signal: one `TradingSignal` (HOLD, confidence 0) per tick, with the tick's
/// envelope send time in `features["tick_send_ts_us"]` (µs, rounded down).
struct SignalRole {
    publisher: Publisher<v1::TradingSignal>,
    sub: Subscriber<v1::MarketData>,
}

impl Role for SignalRole {
    fn action(&mut self, action: pb::RoleAction) -> Res<pb::ActionReport> {
        let Some(Action::Signal(req)) = action.action else {
            return unsupported("signal", &action.action);
        };
        let idle = ms(req.idle_ms, Duration::from_secs(2));
        let mut done = 0u64;
        while done < u64::from(req.count) {
            let Some(got) = self.sub.recv(idle) else {
                break;
            };
            // Whole microseconds since the epoch (< 2^53) are exact in an f64.
            #[allow(clippy::cast_precision_loss)]
            let sent_us = (got.send_ts_ns / 1000) as f64;
            let signal = v1::TradingSignal {
                symbol: got.message.symbol,
                signal: SignalType::Hold as i32,
                confidence: 0.0,
                timestamp_us: got.message.timestamp_us,
                features: [("tick_send_ts_us".to_owned(), sent_us)].into(),
            };
            self.publisher.publish(&signal)?;
            done += 1;
        }
        Ok(pb::ActionReport {
            published: done,
            ..Default::default()
        })
    }
}

struct ServerRole {
    server: CommandServer,
    applied: Vec<String>,
    kill: bool,
}

impl Role for ServerRole {
    fn action(&mut self, action: pb::RoleAction) -> Res<pb::ActionReport> {
        let Some(Action::Serve(req)) = action.action else {
            return unsupported("command server", &action.action);
        };
        let start = self.applied.len();
        let idle = ms(req.idle_ms, Duration::from_secs(2));
        let applied = &mut self.applied;
        let kill = &mut self.kill;
        let mut handler = |cmd: &v1::StrategyCommand| {
            applied.push(cmd.command_id.clone());
            match CommandType::try_from(cmd.r#type) {
                Ok(CommandType::KillSwitch) => *kill = true,
                Ok(CommandType::ResumeTrading) => *kill = false,
                _ => {}
            }
            (Outcome::Applied, String::new())
        };
        let mut last = Instant::now();
        loop {
            // `applied` is borrowed by the handler: count through the server's stats.
            let handled = self.server.poll(Duration::from_millis(20), &mut handler)?;
            if handled > 0 {
                last = Instant::now();
            }
            let done = usize::try_from(self.server.stats().applied).unwrap_or(usize::MAX);
            if done >= start + req.count as usize || last.elapsed() >= idle {
                break;
            }
        }
        // Answer copies still in flight (retries, duplicates) without waiting for more.
        while self.server.poll(Duration::from_millis(50), &mut handler)? > 0 {}
        Ok(pb::ActionReport {
            applied: self.applied[start..].to_vec(),
            duplicates: self.server.stats().duplicates,
            kill_switch: self.kill,
            rejected: self.server.stats().rejected,
            ..Default::default()
        })
    }
}

struct ClientRole {
    endpoint: String,
    /// Connected at the first SendCommands: the retry interval is a connect option.
    client: Option<CommandClient>,
}

impl Role for ClientRole {
    fn action(&mut self, action: pb::RoleAction) -> Res<pb::ActionReport> {
        let Some(Action::SendCommands(req)) = action.action else {
            return unsupported("command client", &action.action);
        };
        if self.client.is_none() {
            let options = CommandClientOptions {
                retry_interval: ms(req.retry_interval_ms, Duration::from_millis(250)),
                ..Default::default()
            };
            self.client = Some(CommandClient::connect_with(&self.endpoint, options)?);
        }
        let Some(client) = self.client.as_mut() else {
            return Err(Failure::Error("no command client".into()));
        };
        let timeout = ms(req.timeout_ms, Duration::from_secs(5));
        let mut report = pb::ActionReport::default();
        for spec in req.commands {
            let cmd = v1::StrategyCommand {
                command_id: spec.command_id.clone(),
                r#type: spec.r#type,
                symbol: spec.symbol,
                ..Default::default()
            };
            let t0 = Instant::now();
            match client.send(cmd, timeout) {
                Ok(ack) => report.acks.push(pb::Ack {
                    command_id: ack.command_id,
                    outcome: ack.outcome,
                    duplicate: ack.duplicate,
                    timed_out: false,
                    rtt_us: u64::try_from(t0.elapsed().as_micros()).unwrap_or(u64::MAX),
                }),
                Err(TransportError::Timeout(_)) => report.acks.push(pb::Ack {
                    command_id: spec.command_id,
                    timed_out: true,
                    ..Default::default()
                }),
                Err(e) => return Err(e.into()),
            }
        }
        Ok(report)
    }
}

struct RelayRole {
    input: zmq::Socket,
    output: zmq::Socket,
    downstream: bool,
    _context: zmq::Context,
}

impl RelayRole {
    fn new(start: &pb::StartRole) -> Res<Self> {
        let context = zmq::Context::new();
        let output = context.socket(zmq::XPUB)?;
        output.set_linger(500)?;
        output.bind(&start.out_endpoint)?;
        let input = context.socket(zmq::SUB)?;
        input.set_linger(0)?;
        input.set_rcvhwm(0)?;
        input.set_subscribe(b"")?;
        input.connect(&start.endpoint)?;
        Ok(RelayRole {
            input,
            output,
            downstream: false,
            _context: context,
        })
    }
}

impl Role for RelayRole {
    fn action(&mut self, action: pb::RoleAction) -> Res<pb::ActionReport> {
        let Some(Action::Relay(req)) = action.action else {
            return unsupported("relay", &action.action);
        };
        let idle_ms = i64::from(if req.idle_ms == 0 { 2000 } else { req.idle_ms });
        if !self.downstream {
            if self.output.poll(zmq::POLLIN, idle_ms * 5)? == 0 {
                return Err(Failure::Error(
                    "no downstream subscriber connected to the relay".into(),
                ));
            }
            self.output.recv_bytes(0)?;
            self.downstream = true;
        }
        let mut report = pb::ActionReport::default();
        while report.forwarded < u64::from(req.count) {
            if self.input.poll(zmq::POLLIN, idle_ms)? == 0 {
                break;
            }
            let frame = self.input.recv_bytes(0)?;
            // A relay checks the envelope only: no type check, no payload decoding.
            if wire::decode(&frame).is_err() {
                report.rejected += 1;
                continue;
            }
            self.output.send(frame, 0)?;
            report.forwarded += 1;
        }
        Ok(report)
    }
}

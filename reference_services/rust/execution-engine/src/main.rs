//! execution-engine: signals to orders, deterministic fills against the latest quotes,
//! positions, risk limits and acknowledged strategy commands (the rules:
//! [`tradewire_rules::engine`]; the process: reference_services/SPEC.md).
//!
//! ```text
//! execution-engine [--config PATH] [--fresh]
//! ```
//!
//! Threads: one per subscription (signals, then market data) and one for the command
//! server feed a channel; the main thread applies every event in arrival order
//! ([`tradewire_rules::Engine`], given the time since start) and publishes the results.
//!
//! **State.** The engine's state ([`tradewire_rules::EngineState`] as JSON) lives in the
//! command server's store, key [`STATE_KEY`], and is read back at start (`--fresh`: ignored
//! and overwritten). A command's effect commits in the same transaction as its id and ack,
//! before the ack leaves: the main thread applies it, hands the new state to the command
//! thread, and waits until that transaction is over before it goes on. The effects of
//! signals, quotes and timer ticks commit once per batch of events (everything already
//! queued, at most [`BATCH`]), before the batch's Order and Position updates are published:
//! no order id is published that a restart could give again, and no subscriber sees a
//! position the store does not hold.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tradewire::command_store::{CommandStore, StateWrites};
use tradewire::transport::{
    CommandServer, CommandServerOptions, Publisher, PublisherOptions, Start, SubscriberOptions,
};
use tradewire::v1::command_ack::Outcome;
use tradewire::v1::{MarketData, Order, Position, StrategyCommand, TradingSignal};
use tradewire_rules::{Engine, EngineState, Limits, Nanos, Output};
use tradewire_services::{
    ensure_ipc_dir, load_config, now_ns, parse_args_with_switches, remove_ipc, subscribe, Lifecycle,
};

const NAME: &str = "execution-engine";
/// The command store key holding the engine's state.
const STATE_KEY: &str = "execution-engine/state";
/// Events applied at most between two commits of the state.
const BATCH: usize = 256;

/// A command applied by the main thread: the ack's outcome and reason, and the engine's
/// state after it (JSON), to commit with the command's record.
type Applied = (Outcome, String, String);

enum Event {
    Signal(TradingSignal),
    Quote(MarketData),
    Command(StrategyCommand, mpsc::Sender<Applied>),
    Failed(String),
}

/// What the command thread reports once its server is bound: the shared store (None when
/// the command store is off) and the engine state it holds.
type Bound = (Option<Arc<Mutex<CommandStore>>>, Option<Vec<u8>>);

/// The state's line for the log: what a restarted engine goes on from.
fn describe(s: &EngineState) -> String {
    let positions: Vec<String> = s
        .positions
        .iter()
        .map(|p| format!("{} {:?} @ {:?}", p.symbol, p.book.quantity, p.book.avg_cost))
        .collect();
    let realized: f64 = s.positions.iter().map(|p| p.book.realized).sum();
    let paused = if s.paused_all {
        "all".to_owned()
    } else if s.paused.is_empty() {
        "none".to_owned()
    } else {
        s.paused.iter().cloned().collect::<Vec<_>>().join(",")
    };
    format!(
        "run {}, next order id {}-{}, positions [{}], open orders {}, realized P&L {:?}, \
         kill switch {}, paused {}, limits max_position_size {:?} max_daily_loss {:?} \
         order_quantity {:?}",
        s.run,
        s.run,
        s.orders_created + 1,
        positions.join(", "),
        s.open_orders.len(),
        realized,
        if s.kill_switch { "ENGAGED" } else { "off" },
        paused,
        s.limits.max_position_size,
        s.limits.max_daily_loss,
        s.limits.order_quantity,
    )
}

fn lock(store: &Mutex<CommandStore>) -> std::sync::MutexGuard<'_, CommandStore> {
    store.lock().unwrap_or_else(|e| e.into_inner())
}

/// One subscription of the engine, read on its own thread.
struct Link {
    name: &'static str,
    endpoint: String,
    opts: SubscriberOptions,
    /// Set once the subscription is live.
    live: Option<Arc<AtomicBool>>,
    /// Subscribe only once this is set (the engine's market data waits for signals).
    wait_for: Option<Arc<AtomicBool>>,
}

fn pump<M, F>(link: Link, stop: Arc<AtomicBool>, tx: mpsc::Sender<Event>, wrap: F) -> JoinHandle<()>
where
    M: tradewire::catalog::SchemaMessage + Send + 'static,
    F: Fn(M) -> Event + Send + 'static,
{
    let Link {
        name,
        endpoint,
        opts,
        live,
        wait_for,
    } = link;
    std::thread::Builder::new()
        .name(format!("ee-{name}"))
        .spawn(move || {
            if let Some(w) = wait_for {
                while !w.load(Ordering::Acquire) && !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
            let sub = match subscribe::<M>(&endpoint, opts, &stop) {
                Ok(Some(s)) => s,
                Ok(None) => return,
                Err(e) => {
                    let _ = tx.send(Event::Failed(format!(
                        "cannot subscribe to {endpoint}: {e}"
                    )));
                    return;
                }
            };
            eprintln!("{NAME}: subscribed to {name} at {endpoint}");
            if let Some(l) = live {
                l.store(true, Ordering::Release);
            }
            let mut sub = sub;
            while !stop.load(Ordering::Relaxed) {
                if let Some(got) = sub.recv(Duration::from_millis(100)) {
                    if tx.send(wrap(got.message)).is_err() {
                        return;
                    }
                }
            }
        })
        .unwrap_or_else(|e| {
            eprintln!("{NAME}: cannot start a thread: {e}");
            std::process::exit(1);
        })
}

fn main() {
    let args = parse_args_with_switches(NAME, &[], &["fresh"]);
    let cfg = load_config(NAME, &args);
    let life = Lifecycle::new(NAME);
    let stop = life.flag();
    let ep = cfg.endpoints.clone();
    for e in [&ep.orders, &ep.positions, &ep.commands] {
        ensure_ipc_dir(e);
    }
    let journaled = |channel: &str, endpoint: &str| PublisherOptions {
        journal: tradewire_services::journal_options(&cfg, channel, endpoint),
        ..Default::default()
    };
    let orders = Publisher::<Order>::bind_with(&ep.orders, journaled("orders", &ep.orders))
        .unwrap_or_else(|e| life.fail(format!("cannot bind {}: {e}", ep.orders)));
    let positions =
        Publisher::<Position>::bind_with(&ep.positions, journaled("positions", &ep.positions))
            .unwrap_or_else(|e| life.fail(format!("cannot bind {}: {e}", ep.positions)));

    let (tx, rx) = mpsc::channel::<Event>();

    // Command server: bound in its thread, which reports the bind before `ready`.
    let (bound_tx, bound_rx) = mpsc::channel::<Result<Bound, String>>();
    // Command thread -> main thread: the record of the command it last applied is
    // committed (or failed); the main thread goes on only then.
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let cmd_thread = {
        let (tx, stop, endpoint) = (tx.clone(), Arc::clone(&stop), ep.commands.clone());
        let options = CommandServerOptions {
            store: tradewire_services::command_store_options(&cfg, &endpoint),
            ..Default::default()
        };
        std::thread::Builder::new()
            .name("ee-commands".into())
            .spawn(move || {
                let mut server = match CommandServer::bind_with(&endpoint, options) {
                    Ok(s) => s,
                    Err(e) => {
                        let _ = bound_tx.send(Err(format!("cannot bind {endpoint}: {e}")));
                        return;
                    }
                };
                match server.state(STATE_KEY) {
                    Ok(state) => {
                        let _ = bound_tx.send(Ok((server.shared_store(), state)));
                    }
                    Err(e) => {
                        let _ = bound_tx.send(Err(format!("cannot read the engine state: {e}")));
                        return;
                    }
                }
                while !stop.load(Ordering::Relaxed) {
                    // The server records a command after its handler returns: the main
                    // thread is told at the next handler call or after the poll.
                    let mut owed = false;
                    let handled = server.poll_with_state(Duration::from_millis(50), |cmd, w| {
                        if std::mem::take(&mut owed) {
                            let _ = done_tx.send(());
                        }
                        let (reply_tx, reply_rx) = mpsc::channel();
                        if tx.send(Event::Command(cmd.clone(), reply_tx)).is_err() {
                            return (Outcome::Rejected, "engine stopping".into());
                        }
                        match reply_rx.recv() {
                            Ok((outcome, reason, state)) => {
                                w.put(STATE_KEY, state);
                                owed = true;
                                (outcome, reason)
                            }
                            Err(_) => (Outcome::Rejected, "engine stopping".into()),
                        }
                    });
                    if owed {
                        let _ = done_tx.send(());
                    }
                    if let Err(e) = handled {
                        if !stop.load(Ordering::Relaxed) {
                            eprintln!("{NAME}: command server: {e}");
                        }
                    }
                }
            })
            .unwrap_or_else(|e| life.fail(format!("cannot start a thread: {e}")))
    };
    let (store, stored) = match bound_rx.recv() {
        Ok(Ok(bound)) => bound,
        Ok(Err(e)) => life.fail(e),
        Err(_) => life.fail("command server thread ended"),
    };
    let store_path = store.as_ref().map(|s| lock(s).path().display().to_string());
    let limits = Limits {
        max_position_size: cfg.risk.max_position_size,
        max_daily_loss: cfg.risk.max_daily_loss,
        order_quantity: cfg.risk.order_quantity,
    };
    let fresh = args.switches.contains("fresh");
    let recovered = match (&stored, fresh) {
        (Some(bytes), false) => {
            let state = std::str::from_utf8(bytes)
                .map_err(|e| e.to_string())
                .and_then(EngineState::from_json)
                .unwrap_or_else(|e| {
                    life.fail(format!(
                        "cannot recover the engine state from {}: {e} (--fresh starts flat)",
                        store_path.as_deref().unwrap_or("?")
                    ))
                });
            Some(state)
        }
        _ => None,
    };
    let mut engine = match recovered {
        Some(state) => {
            eprintln!(
                "{NAME}: recovered state from {}: {}",
                store_path.as_deref().unwrap_or("?"),
                describe(&state)
            );
            if !cfg.execution.run_id.is_empty() && cfg.execution.run_id != state.run {
                eprintln!(
                    "{NAME}: execution.run_id {:?} ignored: the recovered run {:?} goes on \
                     (--fresh starts a new run)",
                    cfg.execution.run_id, state.run
                );
            }
            if state.limits != limits {
                eprintln!("{NAME}: risk limits as recovered (set by command), not as configured");
            }
            Engine::restore(state).unwrap_or_else(|e| life.fail(e))
        }
        None => {
            let run = if cfg.execution.run_id.is_empty() {
                format!("E{:x}", now_ns() / 1_000_000)
            } else {
                cfg.execution.run_id.clone()
            };
            match (&store_path, fresh && stored.is_some()) {
                (Some(p), true) => {
                    eprintln!("{NAME}: --fresh: starting flat, the state in {p} is discarded")
                }
                (Some(p), false) => eprintln!("{NAME}: no state in {p}: starting flat"),
                (None, _) => eprintln!(
                    "{NAME}: command store off: starting flat, the state is not persisted"
                ),
            }
            Engine::new(run, limits)
        }
    };
    let restarted = stored.is_some() && !fresh;
    eprintln!("{NAME}: run id {}", engine.run_id());
    let mut written = engine.state().to_json();
    if let Some(store) = &store {
        if let Err(e) = write_state(store, &written) {
            life.fail(format!("cannot write the engine state: {e}"));
        }
    }

    let signals_live = Arc::new(AtomicBool::new(false));
    let sig_thread = pump::<TradingSignal, _>(
        Link {
            name: "signals",
            endpoint: ep.signals.clone(),
            // A recovered engine takes every signal the bridge still holds (those published
            // while it was down included) and ignores those not newer than the last one it
            // applied per symbol; a flat one starts from the live stream, acting on no
            // signal older than itself.
            opts: SubscriberOptions {
                start: if restarted {
                    Start::Earliest
                } else {
                    Start::Latest
                },
                ..Default::default()
            },
            live: Some(Arc::clone(&signals_live)),
            wait_for: None,
        },
        Arc::clone(&stop),
        tx.clone(),
        Event::Signal,
    );
    let md_thread = pump::<MarketData, _>(
        Link {
            name: "market_data",
            endpoint: ep.market_data.clone(),
            opts: SubscriberOptions {
                start: Start::Earliest,
                ..Default::default()
            },
            live: None,
            wait_for: Some(Arc::clone(&signals_live)),
        },
        Arc::clone(&stop),
        tx.clone(),
        Event::Quote,
    );
    drop(tx);
    life.ready();

    let mut out: Vec<Output> = Vec::new();
    if restarted {
        // Published first: a subscriber that missed the crashed engine's last updates holds
        // the recovered positions at once.
        engine.position_snapshot(&mut out);
    }
    let mut failed: Option<String> = None;
    let started = Instant::now();
    'run: while !life.stopping() {
        let mut event = rx.recv_timeout(Duration::from_millis(50));
        let mut applied = 0;
        loop {
            let now = Nanos::try_from(started.elapsed().as_nanos()).unwrap_or(Nanos::MAX);
            match event {
                Ok(Event::Signal(s)) => engine.on_signal(s, now, &mut out),
                Ok(Event::Quote(q)) => engine.on_quote(&q, now, &mut out),
                Ok(Event::Command(cmd, reply)) => {
                    let (outcome, reason) = engine.on_command(&cmd, &mut out);
                    eprintln!(
                        "{NAME}: command {} {:?} symbol {:?}: {:?} {}",
                        cmd.command_id, cmd.r#type, cmd.symbol, outcome, reason
                    );
                    let state = engine.state().to_json();
                    if reply.send((outcome, reason, state.clone())).is_ok() {
                        // Committed with the command (everything before it included).
                        if done_rx.recv().is_err() {
                            break 'run;
                        }
                        written = state;
                    }
                }
                Ok(Event::Failed(e)) => {
                    failed = Some(e);
                    break 'run;
                }
                Err(mpsc::RecvTimeoutError::Timeout) => engine.on_timer(now, &mut out),
                Err(mpsc::RecvTimeoutError::Disconnected) => break 'run,
            }
            applied += 1;
            if applied >= BATCH {
                break;
            }
            event = match rx.try_recv() {
                Ok(e) => Ok(e),
                Err(_) => break,
            };
        }
        if let Some(store) = &store {
            let state = engine.state().to_json();
            if state != written {
                if let Err(e) = write_state(store, &state) {
                    // Nothing of this batch is published: what subscribers saw never runs
                    // ahead of what a restart recovers.
                    failed = Some(format!("cannot write the engine state: {e}"));
                    break;
                }
                written = state;
            }
        }
        for o in out.drain(..) {
            let sent = match &o {
                Output::Order(m) => orders.publish(m).map(|_| ()),
                Output::Position(m) => positions.publish(m).map(|_| ()),
            };
            if let Err(e) = sent {
                failed = Some(format!("publish failed: {e}"));
            }
        }
        if failed.is_some() {
            break;
        }
    }
    life.request_stop();
    drop(rx);
    for t in [sig_thread, md_thread, cmd_thread] {
        let _ = t.join();
    }
    drop(orders);
    drop(positions);
    remove_ipc(&ep.orders, true);
    remove_ipc(&ep.positions, true);
    remove_ipc(&ep.commands, false);
    if let Some(e) = failed {
        life.fail(e);
    }
    life.summary(engine.summary());
}

/// Commits the engine state (JSON) outside any command.
fn write_state(store: &Mutex<CommandStore>, state: &str) -> Result<(), String> {
    let mut w = StateWrites::new();
    w.put(STATE_KEY, state.as_bytes().to_vec());
    lock(store).write_state(&w).map_err(|e| e.to_string())
}

//! execution-engine: signals to orders, deterministic fills against the latest quotes,
//! positions, risk limits and acknowledged strategy commands (the rules:
//! [`tradewire_rules::engine`]; the process: reference_services/SPEC.md).
//!
//! ```text
//! execution-engine [--config PATH]
//! ```
//!
//! Threads: one per subscription (signals, then market data) and one for the command
//! server feed a channel; the main thread applies every event in arrival order
//! ([`tradewire_rules::Engine`], given the time since start) and publishes the results.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tradewire::transport::{
    CommandServer, CommandServerOptions, Publisher, PublisherOptions, Start, SubscriberOptions,
};
use tradewire::v1::command_ack::Outcome;
use tradewire::v1::{MarketData, Order, Position, StrategyCommand, TradingSignal};
use tradewire_rules::{Engine, Limits, Nanos, Output};
use tradewire_services::{
    ensure_ipc_dir, load_config, now_ns, parse_args, remove_ipc, subscribe, Lifecycle,
};

const NAME: &str = "execution-engine";

enum Event {
    Signal(TradingSignal),
    Quote(MarketData),
    Command(StrategyCommand, mpsc::Sender<(Outcome, String)>),
    Failed(String),
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
    let args = parse_args(NAME, &[]);
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
    let (bound_tx, bound_rx) = mpsc::channel::<Result<(), String>>();
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
                    Ok(s) => {
                        let _ = bound_tx.send(Ok(()));
                        s
                    }
                    Err(e) => {
                        let _ = bound_tx.send(Err(format!("cannot bind {endpoint}: {e}")));
                        return;
                    }
                };
                while !stop.load(Ordering::Relaxed) {
                    let handled = server.poll(Duration::from_millis(50), |cmd| {
                        let (reply_tx, reply_rx) = mpsc::channel();
                        if tx.send(Event::Command(cmd.clone(), reply_tx)).is_err() {
                            return (Outcome::Rejected, "engine stopping".into());
                        }
                        reply_rx
                            .recv()
                            .unwrap_or((Outcome::Rejected, "engine stopping".into()))
                    });
                    if let Err(e) = handled {
                        if !stop.load(Ordering::Relaxed) {
                            eprintln!("{NAME}: command server: {e}");
                        }
                    }
                }
            })
            .unwrap_or_else(|e| life.fail(format!("cannot start a thread: {e}")))
    };
    match bound_rx.recv() {
        Ok(Ok(())) => {}
        Ok(Err(e)) => life.fail(e),
        Err(_) => life.fail("command server thread ended"),
    }

    let signals_live = Arc::new(AtomicBool::new(false));
    let sig_thread = pump::<TradingSignal, _>(
        Link {
            name: "signals",
            endpoint: ep.signals.clone(),
            // From the live stream: a restarted engine must not act again on signals it
            // may have acted on before (it keeps no position in the signal stream yet).
            opts: SubscriberOptions::default(),
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

    let run = if cfg.execution.run_id.is_empty() {
        format!("E{:x}", now_ns() / 1_000_000)
    } else {
        cfg.execution.run_id.clone()
    };
    eprintln!("{NAME}: run id {run}");
    let mut engine = Engine::new(
        run,
        Limits {
            max_position_size: cfg.risk.max_position_size,
            max_daily_loss: cfg.risk.max_daily_loss,
            order_quantity: cfg.risk.order_quantity,
        },
    );
    let mut out: Vec<Output> = Vec::new();
    let mut failed: Option<String> = None;
    let started = Instant::now();
    while !life.stopping() {
        let event = rx.recv_timeout(Duration::from_millis(50));
        let now = Nanos::try_from(started.elapsed().as_nanos()).unwrap_or(Nanos::MAX);
        match event {
            Ok(Event::Signal(s)) => engine.on_signal(s, now, &mut out),
            Ok(Event::Quote(q)) => engine.on_quote(&q, now, &mut out),
            Ok(Event::Command(cmd, reply)) => {
                let ack = engine.on_command(&cmd, &mut out);
                eprintln!(
                    "{NAME}: command {} {:?} symbol {:?}: {:?} {}",
                    cmd.command_id, cmd.r#type, cmd.symbol, ack.0, ack.1
                );
                let _ = reply.send(ack);
            }
            Ok(Event::Failed(e)) => {
                failed = Some(e);
                break;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => engine.on_timer(now, &mut out),
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
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

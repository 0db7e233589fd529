//! Service mode (reference_services/SPEC.md): subscribe to market data, update the 7
//! features per symbol, run the registry's model per tick once warm, publish TradingSignal on
//! `endpoints.signals` with the decision of [`tradewire_rules::decide`].

use std::collections::HashMap;
use std::time::Duration;

use serde_json::json;
use signal_bridge::TradingModelInference;
use tradewire::transport::{Publisher, PublisherOptions, Start, SubscriberOptions};
use tradewire::v1::trading_signal::SignalType;
use tradewire::v1::{MarketData, TradingSignal};
use tradewire_features::{FeatureState, FEATURE_NAMES};
use tradewire_rules::decide;
use tradewire_services::{
    ensure_ipc_dir, load_config, now_ns, parse_args, remove_ipc, subscribe, Latency, Lifecycle,
};

const NAME: &str = "signal-bridge";

#[derive(Default)]
struct Counts {
    ticks: u64,
    warming: u64,
    bad_ticks: u64,
    signals: u64,
    buy: u64,
    sell: u64,
    hold: u64,
}

pub fn run() {
    let args = parse_args(NAME, &[]);
    let cfg = load_config(NAME, &args);
    let life = Lifecycle::new(NAME);
    let mut model = TradingModelInference::from_registry_named(
        std::path::Path::new(&cfg.model.registry),
        &cfg.model.version,
        &cfg.model.name,
    )
    .unwrap_or_else(|e| life.fail(format!("cannot load the model: {e}")));
    eprintln!("{NAME}: model {}", model.path().display());
    let threshold = cfg.signal.threshold;

    let out_ep = cfg.endpoints.signals.clone();
    ensure_ipc_dir(&out_ep);
    let options = PublisherOptions {
        journal: tradewire_services::journal_options(&cfg, "signals", &out_ep),
        ..Default::default()
    };
    let publisher = Publisher::<TradingSignal>::bind_with(&out_ep, options)
        .unwrap_or_else(|e| life.fail(format!("cannot bind {out_ep}: {e}")));
    life.ready();

    let flag = life.flag();
    let in_ep = cfg.endpoints.market_data.clone();
    let opts = SubscriberOptions {
        start: Start::Earliest,
        ..Default::default()
    };
    let sub = subscribe::<MarketData>(&in_ep, opts, &flag)
        .unwrap_or_else(|e| life.fail(format!("cannot subscribe to {in_ep}: {e}")));
    if sub.is_some() {
        eprintln!("{NAME}: subscribed to {in_ep}");
    }

    let mut states: HashMap<String, FeatureState> = HashMap::new();
    let mut counts = Counts::default();
    let mut latency = Latency::default();
    let mut process = Latency::default();
    let mut gaps = 0u64;
    let mut failed: Option<String> = None;
    if let Some(mut sub) = sub {
        while !life.stopping() {
            let Some(got) = sub.recv(Duration::from_millis(100)) else {
                continue;
            };
            let t_recv = std::time::Instant::now();
            let tick = got.message;
            counts.ticks += 1;
            let state = states.entry(tick.symbol.clone()).or_default();
            let row = match state.update(tick.price, tick.volume) {
                Ok(Some(row)) => row,
                Ok(None) => {
                    counts.warming += 1;
                    continue;
                }
                Err(e) => {
                    counts.bad_ticks += 1;
                    eprintln!("{NAME}: bad tick for {}: {e}", tick.symbol);
                    continue;
                }
            };
            let probs = match model.predict(&row) {
                Ok(p) => p,
                Err(e) => {
                    failed = Some(format!("inference failed: {e}"));
                    break;
                }
            };
            let (kind, confidence) = decide(&probs, threshold);
            match kind {
                SignalType::Buy => counts.buy += 1,
                SignalType::Sell => counts.sell += 1,
                SignalType::Hold => counts.hold += 1,
            }
            let signal = TradingSignal {
                symbol: tick.symbol,
                signal: kind as i32,
                confidence,
                timestamp_us: tick.timestamp_us,
                features: FEATURE_NAMES
                    .iter()
                    .zip(row)
                    .map(|(k, v)| ((*k).to_owned(), v))
                    .collect(),
            };
            if let Err(e) = publisher.publish(&signal) {
                failed = Some(format!("publish failed: {e}"));
                break;
            }
            counts.signals += 1;
            latency.record(now_ns().saturating_sub(got.send_ts_ns) as f64 / 1000.0);
            process.record(t_recv.elapsed().as_nanos() as f64 / 1000.0);
        }
        gaps = sub.stats().gaps;
    }
    drop(publisher);
    remove_ipc(&out_ep, true);
    if let Some(e) = failed {
        life.fail(e);
    }
    life.summary(json!({
        "ticks": counts.ticks,
        "warming": counts.warming,
        "bad_ticks": counts.bad_ticks,
        "signals": counts.signals,
        "buy": counts.buy,
        "sell": counts.sell,
        "hold": counts.hold,
        "gaps": gaps,
        "latency_us": latency.summary(),
        "process_us": process.summary(),
    }));
}

//! market-data: publishes MarketData on `endpoints.market_data`, keyed by symbol, from a
//! seeded random walk or a CSV replay (the rules: [`tradewire_rules::walk`]; the process:
//! reference_services/SPEC.md).
//!
//! ```text
//! market-data [--config PATH] [--rate R] [--symbols A,B] [--seed S] [--count N]
//!             [--duration SECONDS] [--csv FILE]
//! ```

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;
use tradewire::transport::{Publisher, PublisherOptions};
use tradewire::v1::MarketData;
use tradewire_rules::{parse_csv, sim_timestamp_us, RandomWalk};
use tradewire_services::{ensure_ipc_dir, load_config, now_us, parse_args, remove_ipc, Lifecycle};

/// How long closing waits for frames still queued to slow subscribers (SPEC.md).
const END_LINGER: Duration = Duration::from_secs(5);

const NAME: &str = "market-data";
const FLAGS: [&str; 6] = ["rate", "symbols", "seed", "count", "duration", "csv"];

fn bad_flag(flag: &str, value: &str, want: &str) -> ! {
    eprintln!("{NAME}: --{flag} {value:?}: expected {want}");
    std::process::exit(2);
}

fn main() {
    let args = parse_args(NAME, &FLAGS);
    let mut cfg = load_config(NAME, &args);
    let md = &mut cfg.market_data;
    for (flag, value) in &args.flags {
        match flag.as_str() {
            "rate" => match value.parse::<f64>() {
                Ok(v) if v.is_finite() && v >= 0.0 => md.rate = v,
                _ => bad_flag(flag, value, "a number >= 0"),
            },
            "symbols" => {
                let syms: Vec<String> = value
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect();
                if syms.is_empty() || syms.iter().any(|s| s.starts_with('~')) {
                    bad_flag(flag, value, "a comma-separated list of symbols");
                }
                md.symbols = syms;
            }
            "seed" => match value.parse::<i64>() {
                Ok(v) => md.seed = v,
                Err(_) => bad_flag(flag, value, "an integer"),
            },
            "count" => match value.parse::<i64>() {
                Ok(v) if v >= 0 => md.count = v,
                _ => bad_flag(flag, value, "an integer >= 0"),
            },
            "duration" => match value.parse::<f64>() {
                Ok(v) if v.is_finite() && v >= 0.0 => md.duration = v,
                _ => bad_flag(flag, value, "a number >= 0"),
            },
            "csv" => md.csv = value.clone(),
            _ => unreachable!("parse_args allows only FLAGS"),
        }
    }
    let md = cfg.market_data.clone();
    let life = Lifecycle::new(NAME);

    let rows = if md.csv.is_empty() {
        None
    } else {
        let path = Path::new(&md.csv);
        let text = std::fs::read_to_string(path)
            .unwrap_or_else(|e| life.fail(format!("{}: cannot read: {e}", path.display())));
        Some(parse_csv(&text, &path.display().to_string()).unwrap_or_else(|e| life.fail(e)))
    };
    let endpoint = cfg.endpoints.market_data.clone();
    ensure_ipc_dir(&endpoint);
    // The stream's tail still reaches a subscriber that is behind when the stream ends:
    // closing waits up to END_LINGER for frames queued to it (SPEC.md).
    let options = PublisherOptions {
        linger: END_LINGER,
        journal: tradewire_services::journal_options(&cfg, "market_data", &endpoint),
        ..Default::default()
    };
    let publisher = Publisher::<MarketData>::bind_with(&endpoint, options)
        .unwrap_or_else(|e| life.fail(format!("cannot bind {endpoint}: {e}")));
    life.ready();

    let wait = u64::try_from(md.wait_subscribers).unwrap_or(0);
    let waiting = Instant::now();
    while publisher.stats().handshakes < wait && !life.stopping() {
        if md.wait_timeout > 0.0 && waiting.elapsed().as_secs_f64() >= md.wait_timeout {
            eprintln!(
                "{NAME}: {} of {wait} subscribers after {}s; starting anyway",
                publisher.stats().handshakes,
                md.wait_timeout
            );
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }

    let mut walk = RandomWalk::new(&md.symbols, md.seed, md.start_price, md.volatility);
    let count = u64::try_from(md.count).unwrap_or(0);
    let limit = match &rows {
        Some(r) if count == 0 || (r.len() as u64) < count => r.len() as u64,
        _ => count,
    };
    let duration = Duration::from_secs_f64(md.duration);
    let t0 = Instant::now();
    let mut i: u64 = 0;
    let mut failed: Option<String> = None;
    while !life.stopping() {
        if (limit > 0 || rows.is_some()) && i >= limit {
            break;
        }
        if !duration.is_zero() && t0.elapsed() >= duration {
            break;
        }
        if md.rate > 0.0 {
            let due = t0 + Duration::from_secs_f64(i as f64 / md.rate);
            let now = Instant::now();
            if now < due {
                std::thread::sleep((due - now).min(Duration::from_millis(5)));
                continue;
            }
        }
        let clock = if md.sim_start_us > 0 {
            sim_timestamp_us(md.sim_start_us, md.rate, i)
        } else {
            now_us()
        };
        let tick = match &rows {
            Some(r) => {
                let mut t = r[i as usize].clone();
                if t.timestamp_us == 0 {
                    t.timestamp_us = clock;
                }
                t
            }
            None => walk.tick(clock),
        };
        if let Err(e) = publisher.publish(&tick) {
            failed = Some(format!("publish failed: {e}"));
            break;
        }
        i += 1;
    }
    let seconds = t0.elapsed().as_secs_f64();
    // Late replay requests are still served for a moment.
    let grace = Instant::now() + Duration::from_millis(300);
    while Instant::now() < grace {
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(publisher);
    remove_ipc(&endpoint, true);
    if let Some(e) = failed {
        life.fail(e);
    }
    life.summary(json!({
        "published": i,
        "symbols": md.symbols,
        "seconds": seconds,
        "rate": if seconds > 0.0 { i as f64 / seconds } else { 0.0 },
    }));
}

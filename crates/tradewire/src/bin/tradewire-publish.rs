//! `tradewire-publish`: publishes synthetic MarketData (a seeded random walk per symbol)
//! on the `market_data` channel through the Rust transport, then prints a JSON summary.
//!
//! ```text
//! tradewire-publish --endpoint E --count N [--rate R] [--symbols A,B,C] [--ring N]
//!                   [--control C] [--wait-subscriber] [--wait-subscription]
//!                   [--wait-timeout-ms T] [--heartbeat-ms H] [--sndhwm N] [--seed S]
//!                   [--hold-ms H] [--hold-until-eof] [--print-ready]
//!                   [--journal DIR [--fsync never|interval|always] [--segment-bytes N]]
//!                   [--count-hwm-drops]
//!                   [--control-curve-secret S --control-curve-public P [--allow KEY]...]
//! ```
//!
//! `--rate 0` (default) publishes as fast as possible. `--wait-subscriber` waits until a
//! subscriber has completed the subscription handshake before publishing;
//! `--wait-subscription` until any subscriber is connected (also one that reconnects
//! after a publisher restart and so does no handshake). `--hold-ms` keeps serving
//! replay, snapshots and heartbeats that long after the last message; `--hold-until-eof`
//! until stdin reaches EOF (capped by `--hold-ms` when both are given).
//! `--print-ready` prints `{"ready":true,"publisher_id":"<16 hex>"}` once bound.
//! `--journal DIR` appends every frame to the journal in DIR (WIRE.md section 7.6): a
//! restart on the same DIR replays the previous run's numbers and names it in heartbeats.
//! `--count-hwm-drops` sets `ZMQ_XPUB_NODROP`: a frame a full subscriber queue refuses is
//! sent to none and counted `hwm_dropped` (WIRE.md 8.5). `--control-curve-secret` and
//! `--control-curve-public` (Z85) make the control socket a CURVE server that lets in
//! only the `--allow` client keys (WIRE.md 8.4); the summary counts refusals by kind.
//! The summary (last line on stdout): `{"count", "seconds", "msgs_per_sec", ...}`.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use tradewire::journal::{FsyncPolicy, JournalOptions, DEFAULT_FSYNC_INTERVAL};
use tradewire::transport::{json_string, CurveKeyPair, CurveServer, Publisher, PublisherOptions};
use tradewire::v1::MarketData;

const USAGE: &str = "usage: tradewire-publish --endpoint E --count N [--rate R] \
    [--symbols A,B,C] [--ring N] [--control C] [--wait-subscriber] [--wait-subscription] \
    [--wait-timeout-ms T] [--heartbeat-ms H] [--sndhwm N] [--seed S] [--hold-ms H] \
    [--hold-until-eof] [--print-ready] [--journal DIR [--fsync never|interval|always] \
    [--segment-bytes N]] [--count-hwm-drops] \
    [--control-curve-secret S --control-curve-public P [--allow KEY]...]";

struct Args {
    endpoint: String,
    count: u64,
    rate: f64,
    symbols: Vec<String>,
    options: PublisherOptions,
    wait_subscriber: bool,
    wait_subscription: bool,
    wait_timeout: Duration,
    seed: u64,
    hold: Duration,
    hold_until_eof: bool,
    print_ready: bool,
    count_hwm_drops: bool,
    curve_secret: Option<String>,
    curve_public: Option<String>,
    allow: Vec<String>,
}

fn parse() -> Result<Args, String> {
    let mut args = Args {
        endpoint: String::new(),
        count: 0,
        rate: 0.0,
        symbols: vec!["AAPL".into(), "MSFT".into(), "GOOG".into()],
        options: PublisherOptions::default(),
        wait_subscriber: false,
        wait_subscription: false,
        wait_timeout: Duration::from_secs(30),
        seed: 42,
        hold: Duration::ZERO,
        hold_until_eof: false,
        print_ready: false,
        count_hwm_drops: false,
        curve_secret: None,
        curve_public: None,
        allow: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let switch = match flag.as_str() {
            "--wait-subscriber" => Some(&mut args.wait_subscriber),
            "--wait-subscription" => Some(&mut args.wait_subscription),
            "--hold-until-eof" => Some(&mut args.hold_until_eof),
            "--print-ready" => Some(&mut args.print_ready),
            "--count-hwm-drops" => Some(&mut args.count_hwm_drops),
            _ => None,
        };
        if let Some(switch) = switch {
            *switch = true;
            continue;
        }
        if flag == "-h" || flag == "--help" {
            return Err(String::new());
        }
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let num = |v: &str| v.parse::<u64>().map_err(|e| format!("{flag} {v:?}: {e}"));
        match flag.as_str() {
            "--endpoint" => args.endpoint = value,
            "--count" => args.count = num(&value)?,
            "--rate" => {
                args.rate = value
                    .parse::<f64>()
                    .ok()
                    .filter(|r| r.is_finite() && *r >= 0.0)
                    .ok_or_else(|| format!("--rate {value:?}: not a rate >= 0"))?;
            }
            "--symbols" => {
                args.symbols = value
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect();
            }
            "--ring" => {
                args.options.ring_size =
                    usize::try_from(num(&value)?).map_err(|e| e.to_string())?;
            }
            "--control" => args.options.control_endpoint = Some(value),
            "--wait-timeout-ms" => args.wait_timeout = Duration::from_millis(num(&value)?),
            "--heartbeat-ms" => {
                args.options.heartbeat_interval = Duration::from_millis(num(&value)?.max(1));
            }
            "--sndhwm" => {
                args.options.sndhwm = i32::try_from(num(&value)?).map_err(|e| e.to_string())?;
            }
            "--journal" => {
                let j = args
                    .options
                    .journal
                    .get_or_insert_with(JournalOptions::default);
                j.dir = value.into();
            }
            "--fsync" => {
                let j = args
                    .options
                    .journal
                    .get_or_insert_with(JournalOptions::default);
                j.fsync = FsyncPolicy::parse(&value, DEFAULT_FSYNC_INTERVAL)?;
            }
            "--segment-bytes" => {
                let j = args
                    .options
                    .journal
                    .get_or_insert_with(JournalOptions::default);
                j.segment_bytes = num(&value)?;
            }
            "--seed" => args.seed = num(&value)?,
            "--hold-ms" => args.hold = Duration::from_millis(num(&value)?),
            "--control-curve-secret" => args.curve_secret = Some(value),
            "--control-curve-public" => args.curve_public = Some(value),
            "--allow" => args.allow.push(value),
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    if args.endpoint.is_empty() {
        return Err("--endpoint is required".into());
    }
    if args.symbols.is_empty() {
        return Err("--symbols needs at least one symbol".into());
    }
    args.options.count_hwm_drops = args.count_hwm_drops;
    match (args.curve_public.take(), args.curve_secret.take()) {
        (Some(public), Some(secret)) => {
            let keys = CurveKeyPair::from_z85(&public, &secret).map_err(|e| e.to_string())?;
            args.options.control_curve = Some(CurveServer {
                keys,
                allowed_clients: std::mem::take(&mut args.allow),
            });
        }
        (None, None) if args.allow.is_empty() => {}
        (None, None) => {
            return Err("--allow needs --control-curve-secret and --control-curve-public".into())
        }
        _ => return Err("--control-curve-secret and --control-curve-public go together".into()),
    }
    Ok(args)
}

/// xorshift64*: a seeded pseudo-random walk without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in [-1, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 52) as f64 - 1.0
    }
}

fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Returns at EOF on stdin, or after `cap` (when not zero).
fn hold_until_eof(cap: Duration) {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        let mut sink = [0u8; 256];
        let mut stdin = std::io::stdin();
        while matches!(std::io::Read::read(&mut stdin, &mut sink), Ok(n) if n > 0) {}
        let _ = tx.send(());
    });
    if cap.is_zero() {
        let _ = rx.recv();
    } else {
        let _ = rx.recv_timeout(cap);
    }
}

fn run(args: Args) -> Result<String, String> {
    let publisher = Publisher::<MarketData>::bind_with(&args.endpoint, args.options)
        .map_err(|e| format!("bind {}: {e}", args.endpoint))?;
    if args.print_ready {
        println!(
            "{{\"ready\":true,\"publisher_id\":\"{:016x}\"}}",
            publisher.publisher_id()
        );
        let _ = std::io::Write::flush(&mut std::io::stdout());
    }
    if args.wait_subscriber && !publisher.wait_for_subscriber(args.wait_timeout) {
        return Err(format!(
            "no subscriber completed the handshake within {:?}",
            args.wait_timeout
        ));
    }
    if args.wait_subscription && !publisher.wait_for_subscription(args.wait_timeout) {
        return Err(format!(
            "no subscriber connected within {:?}",
            args.wait_timeout
        ));
    }
    let mut rng = Rng(args.seed.max(1));
    let mut ticks: Vec<MarketData> = args
        .symbols
        .iter()
        .enumerate()
        .map(|(i, s)| MarketData {
            symbol: s.clone(),
            price: 100.0 + 10.0 * i as f64,
            exchange: "SIM".into(),
            ..Default::default()
        })
        .collect();
    let started = Instant::now();
    let mut timestamp_us = now_us();
    for i in 0..args.count {
        if args.rate > 0.0 {
            let due = started + Duration::from_secs_f64(i as f64 / args.rate);
            if let Some(ahead) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(ahead);
            }
        }
        if i % 1024 == 0 {
            timestamp_us = now_us();
        }
        let n = ticks.len();
        let t = &mut ticks[usize::try_from(i).unwrap_or(0) % n];
        t.price = (t.price * (1.0 + 0.0005 * rng.unit())).max(0.01);
        let spread = t.price * 0.0002;
        t.bid = t.price - spread / 2.0;
        t.ask = t.price + spread / 2.0;
        t.bid_size = ((rng.next() % 1000) + 1) as f64;
        t.ask_size = ((rng.next() % 1000) + 1) as f64;
        t.volume = ((rng.next() % 500) + 1) as f64;
        t.timestamp_us = timestamp_us;
        publisher.publish(t).map_err(|e| format!("publish: {e}"))?;
    }
    let seconds = started.elapsed().as_secs_f64();
    if args.hold_until_eof {
        hold_until_eof(args.hold);
    } else if !args.hold.is_zero() {
        std::thread::sleep(args.hold);
    }
    let stats = publisher.stats();
    let rate = if seconds > 0.0 {
        args.count as f64 / seconds
    } else {
        0.0
    };
    Ok(format!(
        "{{\"count\":{},\"seconds\":{seconds:.6},\"msgs_per_sec\":{rate:.1},\
         \"publisher_id\":\"{:016x}\",\"last_seq\":{},\"endpoint\":{},\"symbols\":{},\
         \"stats\":{{\"sent\":{},\"heartbeats\":{},\"handshakes\":{},\"replay_requests\":{},\
         \"replayed\":{},\"unrecoverable\":{},\"snapshots_served\":{},\"hwm_dropped\":{},\
         \"journaled\":{},\"replayed_from_journal\":{}}},\"curve_refused\":{{{}}}}}",
        args.count,
        publisher.publisher_id(),
        publisher.last_seq(),
        json_string(&args.endpoint),
        args.symbols.len(),
        stats.sent,
        stats.heartbeats,
        stats.handshakes,
        stats.replay_requests,
        stats.replayed,
        stats.unrecoverable,
        stats.snapshots_served,
        stats.hwm_dropped,
        stats.journaled,
        stats.replayed_from_journal,
        publisher
            .curve_refusals()
            .iter()
            .map(|(kind, n)| format!("{}:{n}", json_string(kind)))
            .collect::<Vec<_>>()
            .join(","),
    ))
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("tradewire-publish: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(args) {
        Ok(summary) => {
            println!("{summary}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("tradewire-publish: {e}");
            ExitCode::FAILURE
        }
    }
}

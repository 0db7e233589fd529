//! `tradewire-engine-demo`: a scripted engine process, the Rust twin of
//! `tests/peers/py_engine.py`: MarketData published at a fixed rate plus a command server,
//! in one process, for the kill-switch-under-load test (issue 4, test 3).
//!
//! ```text
//! tradewire-engine-demo --md E --commands C [--rate R] [--symbols A,B] [--ring N]
//! ```
//!
//! Prints `ready` once both endpoints are bound, then publishes until killed (or stdin
//! reaches EOF). On each KILL_SWITCH it prints `kill <command_id> <ticks published>
//! <ticks/s>` and acknowledges APPLIED; market data keeps flowing (the kill switch stops
//! trading, not the feed). At the end it prints `done <ticks published> <ticks/s>`.

use std::io::{self, Read, Write};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tradewire::transport::{CommandServer, Publisher, PublisherOptions};
use tradewire::v1::{command_ack::Outcome, strategy_command::CommandType, MarketData};

const USAGE: &str = "usage: tradewire-engine-demo --md E --commands C [--rate R] \
    [--symbols A,B] [--ring N]";

struct Args {
    md: String,
    commands: String,
    rate: f64,
    symbols: Vec<String>,
    options: PublisherOptions,
}

fn parse() -> Result<Args, String> {
    let mut args = Args {
        md: String::new(),
        commands: String::new(),
        rate: 100_000.0,
        symbols: vec!["AAPL".into()],
        options: PublisherOptions::default(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            return Err(String::new());
        }
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--md" => args.md = value,
            "--commands" => args.commands = value,
            "--rate" => {
                args.rate = value
                    .parse::<f64>()
                    .ok()
                    .filter(|r| r.is_finite() && *r > 0.0)
                    .ok_or_else(|| format!("--rate {value:?}: not a rate > 0"))?;
            }
            "--symbols" => {
                args.symbols = value
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect();
            }
            "--ring" => {
                args.options.ring_size = value
                    .parse()
                    .map_err(|e| format!("--ring {value:?}: {e}"))?;
            }
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    if args.md.is_empty() || args.commands.is_empty() {
        return Err("--md and --commands are required".into());
    }
    if args.symbols.is_empty() {
        return Err("--symbols needs at least one symbol".into());
    }
    Ok(args)
}

fn serve(
    mut server: CommandServer,
    published: &AtomicU64,
    started: Instant,
    stop: &AtomicBool,
) -> Result<(), String> {
    while !stop.load(Ordering::Acquire) {
        server
            .poll(Duration::from_millis(50), |cmd| {
                if cmd.r#type == CommandType::KillSwitch as i32 {
                    let n = published.load(Ordering::Relaxed);
                    let rate = n as f64 / started.elapsed().as_secs_f64().max(1e-9);
                    let mut out = io::stdout().lock();
                    let _ = writeln!(out, "kill {} {n} {rate:.0}", cmd.command_id);
                    let _ = out.flush();
                }
                (Outcome::Applied, String::new())
            })
            .map_err(|e| format!("command server: {e}"))?;
    }
    Ok(())
}

fn run(args: Args) -> Result<(), String> {
    let publisher = Publisher::<MarketData>::bind_with(&args.md, args.options)
        .map_err(|e| format!("bind {}: {e}", args.md))?;
    let server =
        CommandServer::bind(&args.commands).map_err(|e| format!("bind {}: {e}", args.commands))?;
    let published = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let serving = {
        let (published, stop) = (Arc::clone(&published), Arc::clone(&stop));
        std::thread::Builder::new()
            .name("commands".into())
            .spawn(move || serve(server, &published, started, &stop))
            .map_err(|e| e.to_string())?
    };
    {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut sink = [0u8; 64];
            let mut stdin = io::stdin();
            while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
            stop.store(true, Ordering::Release);
        });
    }
    println!("ready");
    let _ = io::stdout().flush();
    let mut ticks: Vec<MarketData> = args
        .symbols
        .iter()
        .map(|s| MarketData {
            symbol: s.clone(),
            exchange: "TEST".into(),
            ..Default::default()
        })
        .collect();
    let mut n = 0u64;
    while !stop.load(Ordering::Acquire) && !serving.is_finished() {
        let due = (started.elapsed().as_secs_f64() * args.rate) as u64;
        if n >= due {
            std::thread::sleep(Duration::from_micros(200));
            continue;
        }
        // At most 1 ms worth per slice, so the command thread and the clock stay in step.
        let slice = (due - n).min((args.rate / 1000.0).ceil() as u64 + 1);
        for _ in 0..slice {
            let len = ticks.len();
            let t = &mut ticks[usize::try_from(n).unwrap_or(0) % len];
            t.price = 100.0 + (n % 100) as f64 / 100.0;
            t.timestamp_us = i64::try_from(n).unwrap_or(i64::MAX);
            publisher.publish(t).map_err(|e| format!("publish: {e}"))?;
            n += 1;
        }
        published.store(n, Ordering::Relaxed);
    }
    stop.store(true, Ordering::Release);
    let result = match serving.join() {
        Ok(result) => result,
        Err(_) => Err("command thread panicked".into()),
    };
    let rate = n as f64 / started.elapsed().as_secs_f64().max(1e-9);
    println!("done {n} {rate:.0}");
    let _ = io::stdout().flush();
    result
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("tradewire-engine-demo: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tradewire-engine-demo: {e}");
            ExitCode::FAILURE
        }
    }
}

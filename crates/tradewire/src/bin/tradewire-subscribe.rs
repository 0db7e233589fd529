//! `tradewire-subscribe`: receives MarketData through the Rust transport and prints one
//! line per message and per transport event, for cross-language tests.
//!
//! ```text
//! tradewire-subscribe --endpoint E [--count N] [--symbols A,B] [--json] [--snapshot]
//!                     [--from-start] [--control C] [--idle-timeout-ms T] [--connect-timeout-ms T]
//!                     [--rcvhwm N] [--throttle-us U] [--throttle-every N]
//!                     [--count-lost] [--compact]
//! ```
//!
//! The first line says the subscription is live (`{"ready": true, "publisher_id": ...}`
//! with `--json`). With `--json`, messages are `{"publisher_id": "<16 hex>", "seq", "key_seq", "key",
//! "price", "flags"}` and events `{"event": "gap_detected", ...}` (the fields of the
//! Python SDK's `TransportEvent.as_dict()`); a last line `{"summary": {...}}` gives the
//! counters (`rejected_by_kind` splits `rejected` by WIRE.md error kind, `unknown_type`
//! included; `ignored` counts valid frames of other types or keys). Exits 0 after
//! `--count` messages (0 = until idle), 1 when the stream goes idle for
//! `--idle-timeout-ms` first, 2 on bad usage or a failed connect.
//! `--throttle-us` sleeps after each message (or after every `--throttle-every` N-th) to
//! simulate a slow consumer. With `--count-lost`, messages reported lost for good
//! (`unrecoverable_gap` events) count towards `--count`, so a stream with accounted loss
//! still completes. `--compact` prints messages as `<publisher hex> <seq> <key_seq>
//! <flags>` instead of JSON (events and the summary stay JSON), for million-message runs.
//! `--from-start` starts each publisher's stream at seq 1 (`Start::Earliest`): what it still
//! holds is replayed first.

use std::io::{self, BufWriter, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use tradewire::transport::{json_string, Start, Subscriber, SubscriberOptions};
use tradewire::v1::MarketData;

const USAGE: &str = "usage: tradewire-subscribe --endpoint E [--count N] [--symbols A,B] \
    [--json] [--snapshot] [--from-start] [--control C] [--idle-timeout-ms T] [--connect-timeout-ms T] \
    [--rcvhwm N] [--throttle-us U] [--throttle-every N] [--count-lost] [--compact]";

struct Args {
    endpoint: String,
    count: u64,
    json: bool,
    idle: Duration,
    throttle: Duration,
    throttle_every: u64,
    count_lost: bool,
    compact: bool,
    options: SubscriberOptions,
}

fn parse() -> Result<Args, String> {
    let mut args = Args {
        endpoint: String::new(),
        count: 0,
        json: false,
        idle: Duration::from_secs(10),
        throttle: Duration::ZERO,
        throttle_every: 1,
        count_lost: false,
        compact: false,
        options: SubscriberOptions::default(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--json" => {
                args.json = true;
                continue;
            }
            "--snapshot" => {
                args.options.snapshot = true;
                continue;
            }
            "--from-start" => {
                args.options.start = Start::Earliest;
                continue;
            }
            "--count-lost" => {
                args.count_lost = true;
                continue;
            }
            "--compact" => {
                args.compact = true;
                continue;
            }
            "-h" | "--help" => return Err(String::new()),
            _ => {}
        }
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let num = |v: &str| v.parse::<u64>().map_err(|e| format!("{flag} {v:?}: {e}"));
        match flag.as_str() {
            "--endpoint" => args.endpoint = value,
            "--count" => args.count = num(&value)?,
            "--symbols" => {
                args.options.keys = value
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect();
            }
            "--control" => args.options.control_endpoint = Some(value),
            "--idle-timeout-ms" => args.idle = Duration::from_millis(num(&value)?),
            "--connect-timeout-ms" => {
                args.options.connect_timeout = Duration::from_millis(num(&value)?);
            }
            "--rcvhwm" => {
                args.options.rcvhwm = i32::try_from(num(&value)?).map_err(|e| e.to_string())?;
            }
            "--throttle-us" => args.throttle = Duration::from_micros(num(&value)?),
            "--throttle-every" => args.throttle_every = num(&value)?.max(1),
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    if args.endpoint.is_empty() {
        return Err("--endpoint is required".into());
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("tradewire-subscribe: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let mut sub = match Subscriber::<MarketData>::connect_with(&args.endpoint, args.options) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("tradewire-subscribe: {e}");
            return ExitCode::from(2);
        }
    };
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    // The subscription is live: anything published from now on is received.
    let ready = format!(
        "{{\"ready\":true,\"publisher_id\":\"{:016x}\"}}",
        sub.publisher_id().unwrap_or(0)
    );
    let _ = writeln!(out, "{}", if args.json { ready } else { "ready".into() });
    let _ = out.flush();
    let started = Instant::now();
    let mut received = 0u64;
    let mut complete = args.count == 0;
    loop {
        let lost = if args.count_lost {
            sub.stats().unrecoverable
        } else {
            0
        };
        if args.count > 0 && received + lost >= args.count {
            complete = true;
            break;
        }
        // Flush whenever the stream pauses, so a reader sees every line without delay.
        let got = match sub.recv(Duration::ZERO) {
            Some(r) => Some(r),
            None => {
                let _ = out.flush();
                sub.recv(args.idle)
            }
        };
        for event in sub.drain_events() {
            let line = if args.json {
                event.to_json()
            } else {
                format!(
                    "event {} {}..={} key={:?} publisher={:016x} {}",
                    event.kind.name(),
                    event.first,
                    event.last,
                    event.key,
                    event.publisher_id,
                    event.detail
                )
            };
            let _ = writeln!(out, "{line}");
        }
        let Some(r) = got else {
            let _ = out.flush();
            break;
        };
        received += 1;
        let line = if args.compact {
            format!(
                "{:016x} {} {} {}",
                r.publisher_id, r.seq, r.key_seq, r.flags
            )
        } else if args.json {
            format!(
                "{{\"publisher_id\":\"{:016x}\",\"seq\":{},\"key_seq\":{},\"key\":{},\
                 \"price\":{},\"flags\":{}}}",
                r.publisher_id,
                r.seq,
                r.key_seq,
                json_string(&r.key),
                r.message.price,
                r.flags
            )
        } else {
            format!(
                "{:016x} seq={} key_seq={} {} {}",
                r.publisher_id, r.seq, r.key_seq, r.key, r.message.price
            )
        };
        let _ = writeln!(out, "{line}");
        if !args.throttle.is_zero() && received.is_multiple_of(args.throttle_every) {
            std::thread::sleep(args.throttle);
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let s = sub.stats();
    let rejected: u64 = s.rejected.values().sum();
    let rejected_by_kind = s
        .rejected
        .iter()
        .map(|(kind, n)| format!("\"{kind}\":{n}"))
        .collect::<Vec<_>>()
        .join(",");
    let _ = writeln!(
        out,
        "{{\"summary\":{{\"received\":{received},\"seconds\":{seconds:.6},\"gaps\":{},\
         \"missed\":{},\"recovered\":{},\"unrecoverable\":{},\"duplicates\":{},\
         \"rejected\":{rejected},\"rejected_by_kind\":{{{rejected_by_kind}}},\
         \"ignored\":{},\"heartbeats\":{},\"restarts\":{},\"peer_lost\":{},\
         \"unknown_tails\":{},\"checks\":{},\"complete\":{complete}}}}}",
        s.gaps,
        s.missed,
        s.recovered,
        s.unrecoverable,
        s.duplicates,
        s.ignored,
        s.heartbeats,
        s.restarts,
        s.peer_lost,
        s.unknown_tails,
        s.checks,
    );
    let _ = out.flush();
    if complete {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

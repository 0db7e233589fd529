//! `tradewire-command-server`: a StrategyCommand server (ROUTER, WIRE.md §7.5) through
//! the Rust transport, optionally CURVE-secured with an allow list of client keys, for
//! cross-language tests and as a reference.
//!
//! ```text
//! tradewire-command-server --endpoint E [--count N] [--duration-ms T] [--exit-on-eof]
//!                          [--curve-secret S --curve-public P [--allow KEY]...]
//!                          [--store PATH [--store-window-s S] [--store-fsync on|off]]
//!                          [--handler-ms MS]
//! ```
//!
//! With `--store` the applied ids and their acks are kept in that durable store
//! (`tradewire::command_store`; window 24 h, fsync on by default): a restarted server
//! answers a retry with the original ack, `duplicate: true`. The handler is then a
//! durable one: each application is recorded as handler state
//! `applications/<n, 20 digits>` = the command id, committed with the id and ack, so the
//! store counts every application, a crash right after one included. `--handler-ms`
//! makes every application take that long (a slow engine).
//!
//! Keys are Z85 (40 characters). With `--curve-secret`/`--curve-public` the server
//! accepts only clients whose public key is given by an `--allow` (none: every client
//! is refused); refusals are logged on stderr with the key. Every new command is applied
//! (outcome APPLIED) and acknowledged; copies are acknowledged as duplicates.
//!
//! stdout, one JSON object per line: `{"ready":true,"endpoint":"<bound>","curve":B}` once
//! bound, `{"applied":"<command_id>","type":"KILL_SWITCH","symbol":"..."}` per command
//! applied, and a last `{"summary":{...}}` (`rejected_by_kind` splits `rejected` by kind:
//! a WIRE.md error kind, `bad_framing` or `wrong_channel`). Exits 0 after `--count`
//! commands (0 = no limit), after `--duration-ms`, or at EOF on stdin with
//! `--exit-on-eof`; 2 on bad usage or a failed bind.

use std::io::{self, Read, Write};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tradewire::command_store::CommandStoreOptions;
use tradewire::transport::{
    json_string, CommandServer, CommandServerOptions, CurveKeyPair, CurveServer,
};
use tradewire::v1::{command_ack::Outcome, strategy_command::CommandType};

/// Handler state key prefix of the application records.
const APPLICATIONS: &str = "applications/";

const USAGE: &str = "usage: tradewire-command-server --endpoint E [--count N] \
    [--duration-ms T] [--exit-on-eof] [--curve-secret S --curve-public P [--allow KEY]...] \
    [--store PATH [--store-window-s S] [--store-fsync on|off]] [--handler-ms MS]";

struct Args {
    endpoint: String,
    count: u64,
    duration: Option<Duration>,
    exit_on_eof: bool,
    secret: Option<String>,
    public: Option<String>,
    allow: Vec<String>,
    store: Option<String>,
    store_window: Duration,
    store_fsync: bool,
    handler_delay: Duration,
}

fn parse() -> Result<Args, String> {
    let mut args = Args {
        endpoint: String::new(),
        count: 0,
        duration: None,
        exit_on_eof: false,
        secret: None,
        public: None,
        allow: Vec::new(),
        store: None,
        store_window: tradewire::command_store::DEFAULT_WINDOW,
        store_fsync: true,
        handler_delay: Duration::ZERO,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--exit-on-eof" => {
                args.exit_on_eof = true;
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
            "--duration-ms" => args.duration = Some(Duration::from_millis(num(&value)?)),
            "--curve-secret" => args.secret = Some(value),
            "--curve-public" => args.public = Some(value),
            "--allow" => args.allow.push(value),
            "--store" => args.store = Some(value),
            "--store-window-s" => args.store_window = Duration::from_secs(num(&value)?),
            "--store-fsync" => {
                args.store_fsync = match value.as_str() {
                    "on" => true,
                    "off" => false,
                    _ => return Err(format!("{flag} {value:?}: want on or off")),
                }
            }
            "--handler-ms" => args.handler_delay = Duration::from_millis(num(&value)?),
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    if args.endpoint.is_empty() {
        return Err("--endpoint is required".into());
    }
    if args.secret.is_some() != args.public.is_some() {
        return Err("--curve-secret and --curve-public go together".into());
    }
    if !args.allow.is_empty() && args.secret.is_none() {
        return Err("--allow needs --curve-secret and --curve-public".into());
    }
    Ok(args)
}

fn run(args: Args) -> Result<(), (u8, String)> {
    let curve = match (&args.public, &args.secret) {
        (Some(public), Some(secret)) => Some(CurveServer {
            keys: CurveKeyPair::from_z85(public, secret).map_err(|e| (2, e.to_string()))?,
            allowed_clients: args.allow.clone(),
        }),
        _ => None,
    };
    let secured = curve.is_some();
    let store = args.store.as_ref().map(|path| CommandStoreOptions {
        window: args.store_window,
        fsync: args.store_fsync,
        ..CommandStoreOptions::new(path)
    });
    let mut server = CommandServer::bind_with(
        &args.endpoint,
        CommandServerOptions {
            curve,
            store,
            ..Default::default()
        },
    )
    .map_err(|e| (2, format!("bind {}: {e}", args.endpoint)))?;
    let bound = server
        .bound_endpoint()
        .unwrap_or_else(|_| args.endpoint.clone());
    let stdout = io::stdout();
    let mut out = stdout.lock();
    let _ = writeln!(
        out,
        "{{\"ready\":true,\"endpoint\":{},\"curve\":{secured}}}",
        json_string(&bound)
    );
    let _ = out.flush();
    let eof = Arc::new(AtomicBool::new(false));
    if args.exit_on_eof {
        let eof = Arc::clone(&eof);
        std::thread::spawn(move || {
            let mut sink = [0u8; 256];
            let mut stdin = io::stdin();
            while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
            eof.store(true, Ordering::Release);
        });
    }
    // The next application number: one past the highest the store holds.
    let mut applications = server
        .state_items(APPLICATIONS)
        .map_err(|e| (1, format!("store: {e}")))?
        .last()
        .and_then(|(key, _)| key[APPLICATIONS.len()..].parse::<u64>().ok())
        .map_or(0, |n| n + 1);
    let durable = args.store.is_some();
    let started = Instant::now();
    let mut applied = 0u64;
    loop {
        if args.count > 0 && applied >= args.count {
            break;
        }
        if args.duration.is_some_and(|d| started.elapsed() >= d) || eof.load(Ordering::Acquire) {
            break;
        }
        let mut lines = Vec::new();
        server
            .poll_with_state(Duration::from_millis(20), |cmd, state| {
                if !args.handler_delay.is_zero() {
                    std::thread::sleep(args.handler_delay);
                }
                if durable {
                    state.put(
                        format!("{APPLICATIONS}{applications:020}"),
                        cmd.command_id.as_bytes(),
                    );
                    applications += 1;
                }
                let kind = CommandType::try_from(cmd.r#type)
                    .map_or("UNKNOWN", |t| t.as_str_name())
                    .to_owned();
                lines.push(format!(
                    "{{\"applied\":{},\"type\":\"{kind}\",\"symbol\":{}}}",
                    json_string(&cmd.command_id),
                    json_string(&cmd.symbol)
                ));
                (Outcome::Applied, String::new())
            })
            .map_err(|e| (1, format!("poll: {e}")))?;
        applied += lines.len() as u64;
        for line in lines {
            let _ = writeln!(out, "{line}");
        }
        let _ = out.flush();
    }
    let s = server.stats();
    let keys: Vec<String> = server
        .curve_rejected_keys()
        .iter()
        .map(|k| json_string(k))
        .collect();
    let rejected_by_kind = s
        .rejected_by_kind
        .iter()
        .map(|(kind, n)| format!("\"{kind}\":{n}"))
        .collect::<Vec<_>>()
        .join(",");
    let _ = writeln!(
        out,
        "{{\"summary\":{{\"applied\":{},\"duplicates\":{},\"rejected\":{},\
         \"rejected_by_kind\":{{{rejected_by_kind}}},\"ack_failed\":{},\
         \"store_errors\":{},\"curve_accepted\":{},\"curve_rejected\":{},\"rejected_keys\":[{}]}}}}",
        s.applied,
        s.duplicates,
        s.rejected,
        s.ack_failed,
        s.store_errors,
        server.curve_accepted(),
        server.curve_rejected(),
        keys.join(",")
    );
    let _ = out.flush();
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("tradewire-command-server: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err((code, e)) => {
            eprintln!("tradewire-command-server: {e}");
            ExitCode::from(code)
        }
    }
}

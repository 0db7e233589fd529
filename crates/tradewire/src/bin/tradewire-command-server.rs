//! `tradewire-command-server`: a StrategyCommand server (ROUTER, WIRE.md §7.5) through
//! the Rust transport, optionally CURVE-secured with an allow list of client keys, for
//! cross-language tests and as a reference.
//!
//! ```text
//! tradewire-command-server --endpoint E [--count N] [--duration-ms T] [--exit-on-eof]
//!                          [--curve-secret S --curve-public P [--allow KEY]...]
//! ```
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

use tradewire::transport::{
    json_string, CommandServer, CommandServerOptions, CurveKeyPair, CurveServer,
};
use tradewire::v1::{command_ack::Outcome, strategy_command::CommandType};

const USAGE: &str = "usage: tradewire-command-server --endpoint E [--count N] \
    [--duration-ms T] [--exit-on-eof] [--curve-secret S --curve-public P [--allow KEY]...]";

struct Args {
    endpoint: String,
    count: u64,
    duration: Option<Duration>,
    exit_on_eof: bool,
    secret: Option<String>,
    public: Option<String>,
    allow: Vec<String>,
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
    let mut server = CommandServer::bind_with(
        &args.endpoint,
        CommandServerOptions {
            curve,
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
            .poll(Duration::from_millis(20), |cmd| {
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
         \"curve_accepted\":{},\"curve_rejected\":{},\"rejected_keys\":[{}]}}}}",
        s.applied,
        s.duplicates,
        s.rejected,
        s.ack_failed,
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

//! `tradewire-command`: sends one StrategyCommand through the Rust transport's command
//! client (DEALER, WIRE.md §7.5) and prints its acknowledgement, for cross-language tests.
//!
//! ```text
//! tradewire-command --endpoint E [--type kill_switch] [--symbol S] [--command-id ID]
//!                   [--deadline-ms T] [--retry-ms R]
//!                   [--curve-secret S --curve-public P --server-key K]
//! ```
//!
//! `--type` is a CommandType name (`kill_switch`, `pause_trading`, `resume_trading`,
//! `update_risk_limits`; default `kill_switch`). Keys are Z85. The client resends until
//! the ack arrives or the deadline (default 5000 ms) passes.
//!
//! stdout on success (exit 0), one line: `{"command_id", "outcome": "APPLIED",
//! "reason", "duplicate", "engine_timestamp_us", "ack_ms", "retries"}`. No ack before the
//! deadline: a message on stderr, exit 1. Bad usage: exit 2.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use tradewire::transport::{
    json_string, CommandClient, CommandClientOptions, CurveClient, CurveKeyPair, TransportError,
};
use tradewire::v1::{command_ack::Outcome, strategy_command::CommandType, StrategyCommand};

const USAGE: &str = "usage: tradewire-command --endpoint E [--type kill_switch] [--symbol S] \
    [--command-id ID] [--deadline-ms T] [--retry-ms R] \
    [--curve-secret S --curve-public P --server-key K]";

struct Args {
    endpoint: String,
    command: StrategyCommand,
    deadline: Duration,
    options: CommandClientOptions,
}

fn parse() -> Result<Args, String> {
    let mut args = Args {
        endpoint: String::new(),
        command: StrategyCommand {
            r#type: CommandType::KillSwitch as i32,
            ..Default::default()
        },
        deadline: Duration::from_secs(5),
        options: CommandClientOptions::default(),
    };
    let (mut secret, mut public, mut server) = (None, None, None);
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            return Err(String::new());
        }
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let num = |v: &str| v.parse::<u64>().map_err(|e| format!("{flag} {v:?}: {e}"));
        match flag.as_str() {
            "--endpoint" => args.endpoint = value,
            "--type" => {
                let t = CommandType::from_str_name(&value.to_ascii_uppercase())
                    .ok_or_else(|| format!("--type {value:?}: not a CommandType"))?;
                args.command.r#type = t as i32;
            }
            "--symbol" => args.command.symbol = value,
            "--command-id" => args.command.command_id = value,
            "--deadline-ms" => args.deadline = Duration::from_millis(num(&value)?),
            "--retry-ms" => {
                args.options.retry_interval = Duration::from_millis(num(&value)?.max(1));
            }
            "--curve-secret" => secret = Some(value),
            "--curve-public" => public = Some(value),
            "--server-key" => server = Some(value),
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    if args.endpoint.is_empty() {
        return Err("--endpoint is required".into());
    }
    match (secret, public, server) {
        (Some(secret), Some(public), Some(server_public)) => {
            args.options.curve = Some(CurveClient {
                keys: CurveKeyPair::from_z85(&public, &secret).map_err(|e| e.to_string())?,
                server_public,
            });
        }
        (None, None, None) => {}
        _ => return Err("--curve-secret, --curve-public and --server-key go together".into()),
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("tradewire-command: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let mut client = match CommandClient::connect_with(&args.endpoint, args.options) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("tradewire-command: {e}");
            return ExitCode::from(2);
        }
    };
    let sent = Instant::now();
    match client.send(args.command, args.deadline) {
        Ok(ack) => {
            let ack_ms = sent.elapsed().as_secs_f64() * 1000.0;
            let outcome = Outcome::try_from(ack.outcome).map_or("UNKNOWN", |o| o.as_str_name());
            println!(
                "{{\"command_id\":{},\"outcome\":\"{outcome}\",\"reason\":{},\"duplicate\":{},\
                 \"engine_timestamp_us\":{},\"ack_ms\":{ack_ms:.3},\"retries\":{}}}",
                json_string(&ack.command_id),
                json_string(&ack.reason),
                ack.duplicate,
                ack.engine_timestamp_us,
                client.stats().retries
            );
            ExitCode::SUCCESS
        }
        Err(e @ TransportError::Timeout(_)) => {
            eprintln!("tradewire-command: {e}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("tradewire-command: {e}");
            ExitCode::from(3)
        }
    }
}

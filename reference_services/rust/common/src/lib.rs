//! The process contract shared by the tradewire reference services
//! (reference_services/SPEC.md): arguments, configuration, ready/summary JSON lines, SIGTERM
//! and SIGINT, ipc cleanup, subscriptions that wait for their publisher, latency summaries.
//! Their rules are the crate `tradewire-rules`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;
use tradewire::catalog::SchemaMessage;
use tradewire::transport::{Subscriber, SubscriberOptions, TransportError};
use tradewire_config::Config;

/// Microseconds since the Unix epoch.
pub fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Nanoseconds since the Unix epoch.
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Command-line arguments: `--config PATH` plus the service's own `--flag VALUE`s and
/// `--switch`es.
#[derive(Debug, Default)]
pub struct Args {
    pub config: Option<PathBuf>,
    pub flags: BTreeMap<String, String>,
    pub switches: BTreeSet<String>,
}

/// Parses `--config PATH` and the `allowed` flags (each takes a value); exits 2 with a
/// usage message on anything else.
pub fn parse_args(service: &str, allowed: &[&str]) -> Args {
    parse_args_with_switches(service, allowed, &[])
}

/// As [`parse_args`], also accepting the `switches` (flags without a value).
pub fn parse_args_with_switches(service: &str, allowed: &[&str], switches: &[&str]) -> Args {
    let usage = || {
        let extra: Vec<String> = allowed.iter().map(|f| format!(" [--{f} VALUE]")).collect();
        let sw: Vec<String> = switches.iter().map(|f| format!(" [--{f}]")).collect();
        format!(
            "usage: {service} [--config PATH]{}{}",
            extra.concat(),
            sw.concat()
        )
    };
    let mut args = Args::default();
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        if a == "-h" || a == "--help" {
            println!("{}", usage());
            std::process::exit(0);
        }
        let (name, inline) = match a.split_once('=') {
            Some((n, v)) => (n.to_owned(), Some(v.to_owned())),
            None => (a.clone(), None),
        };
        let Some(flag) = name.strip_prefix("--") else {
            fail_usage(service, &format!("unexpected argument {a:?}"), &usage());
        };
        if switches.contains(&flag) {
            if inline.is_some() {
                fail_usage(service, &format!("--{flag} takes no value"), &usage());
            }
            args.switches.insert(flag.to_owned());
            continue;
        }
        if flag != "config" && !allowed.contains(&flag) {
            fail_usage(service, &format!("unknown option --{flag}"), &usage());
        }
        let value = match inline.or_else(|| it.next()) {
            Some(v) => v,
            None => fail_usage(service, &format!("--{flag} needs a value"), &usage()),
        };
        if flag == "config" {
            args.config = Some(PathBuf::from(value));
        } else {
            args.flags.insert(flag.to_owned(), value);
        }
    }
    args
}

fn fail_usage(service: &str, msg: &str, usage: &str) -> ! {
    eprintln!("{service}: {msg}\n{usage}");
    std::process::exit(2);
}

/// The configuration, or exit 2 with the error (it names the file and the field).
pub fn load_config(service: &str, args: &Args) -> Config {
    match Config::load(args.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{service}: configuration error: {e}");
            std::process::exit(2);
        }
    }
}

/// Prints one JSON line on stdout and flushes it.
pub fn print_line(value: &serde_json::Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{value}");
    let _ = out.flush();
}

/// A service's lifecycle: stop flag (SIGTERM/SIGINT), ready and summary lines.
#[derive(Debug, Clone)]
pub struct Lifecycle {
    pub name: &'static str,
    stop: Arc<AtomicBool>,
}

impl Lifecycle {
    /// Installs the SIGTERM and SIGINT handlers (they only set the stop flag).
    pub fn new(name: &'static str) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
            if let Err(e) = signal_hook::flag::register(sig, Arc::clone(&stop)) {
                eprintln!("{name}: cannot install a signal handler: {e}");
                std::process::exit(1);
            }
        }
        Lifecycle { name, stop }
    }

    /// Whether a stop was asked for.
    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Asks every loop to stop.
    pub fn request_stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// The flag, for other threads.
    pub fn flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.stop)
    }

    /// `{"service": NAME, "impl": "rust", "ready": true}`.
    pub fn ready(&self) {
        print_line(&json!({"service": self.name, "impl": "rust", "ready": true}));
        eprintln!("{}: ready", self.name);
    }

    /// `{"service": NAME, "summary": {...}}`.
    pub fn summary(&self, summary: serde_json::Value) {
        print_line(&json!({"service": self.name, "summary": summary}));
    }

    /// Prints `error` on stderr and exits 1 (no summary line).
    pub fn fail(&self, error: impl std::fmt::Display) -> ! {
        eprintln!("{}: {error}", self.name);
        std::process::exit(1);
    }
}

/// Removes the ipc file of `endpoint` (and of its derived control endpoint when
/// `control`); other transports have no file.
pub fn remove_ipc(endpoint: &str, control: bool) {
    if let Some(path) = endpoint.strip_prefix("ipc://") {
        let _ = std::fs::remove_file(path);
        if control {
            let _ = std::fs::remove_file(format!("{path}.ctl"));
        }
    }
}

/// Creates the parent directory of an ipc endpoint's file, if missing.
pub fn ensure_ipc_dir(endpoint: &str) {
    if let Some(path) = endpoint.strip_prefix("ipc://") {
        if let Some(dir) = std::path::Path::new(path).parent() {
            let _ = std::fs::create_dir_all(dir);
        }
    }
}

/// Connects a subscriber, retrying the handshake every half second until its publisher
/// answers or `stop` is set (`None`). Errors other than a handshake timeout are returned.
pub fn subscribe<M: SchemaMessage>(
    endpoint: &str,
    mut opts: SubscriberOptions,
    stop: &AtomicBool,
) -> Result<Option<Subscriber<M>>, TransportError> {
    opts.connect_timeout = Duration::from_millis(500);
    loop {
        if stop.load(Ordering::Relaxed) {
            return Ok(None);
        }
        match Subscriber::<M>::connect_with(endpoint, opts.clone()) {
            Ok(s) => return Ok(Some(s)),
            Err(TransportError::Timeout(_)) | Err(TransportError::Zmq(zmq::Error::EINTR)) => {
                continue
            }
            Err(e) => return Err(e),
        }
    }
}

/// Latency samples (µs) and their percentiles.
#[derive(Debug, Default)]
pub struct Latency {
    samples: Vec<f64>,
    next: usize,
    count: u64,
}

/// Samples kept (the most recent ones).
const LATENCY_KEPT: usize = 200_000;

impl Latency {
    pub fn record(&mut self, us: f64) {
        self.count += 1;
        if self.samples.len() < LATENCY_KEPT {
            self.samples.push(us);
        } else {
            self.samples[self.next] = us;
            self.next = (self.next + 1) % LATENCY_KEPT;
        }
    }

    /// `{p50, p99, max, n}` (0 when empty).
    pub fn summary(&self) -> serde_json::Value {
        let mut s = self.samples.clone();
        s.sort_by(f64::total_cmp);
        let q = |f: f64| -> f64 {
            if s.is_empty() {
                0.0
            } else {
                s[((s.len() - 1) as f64 * f).round() as usize]
            }
        };
        json!({"p50": q(0.5), "p99": q(0.99), "max": q(1.0), "n": self.count})
    }
}

/// The publisher journal options of `[journal]` for the publisher of `channel` bound at
/// `endpoint`, or None when journals are off (the values were checked at load).
pub fn journal_options(
    cfg: &tradewire_config::Config,
    channel: &str,
    endpoint: &str,
) -> Option<tradewire::journal::JournalOptions> {
    use tradewire::journal::{FsyncPolicy, JournalOptions};
    let j = &cfg.journal;
    let dir = j.dir_for(channel, endpoint)?;
    let interval = Duration::from_millis(u64::try_from(j.fsync_interval_ms).unwrap_or(1));
    Some(JournalOptions {
        dir,
        segment_bytes: u64::try_from(j.segment_bytes).unwrap_or(1024),
        retention_bytes: u64::try_from(j.retention_bytes).unwrap_or(0),
        retention_age: Duration::from_secs_f64(j.retention_age_s.max(0.0)),
        fsync: FsyncPolicy::parse(&j.fsync, interval).unwrap_or(FsyncPolicy::Never),
    })
}

/// The durable command store options of `[command_store]` for the command server bound at
/// `endpoint`, or None when the store is off (as the Python twins'
/// `cfg.command_store.options_for`).
pub fn command_store_options(
    cfg: &tradewire_config::Config,
    endpoint: &str,
) -> Option<tradewire::command_store::CommandStoreOptions> {
    let c = &cfg.command_store;
    let path = c.path_for(endpoint)?;
    Some(tradewire::command_store::CommandStoreOptions {
        window: Duration::from_secs_f64(c.window_s.max(1.0)),
        fsync: c.fsync,
        ..tradewire::command_store::CommandStoreOptions::new(path)
    })
}

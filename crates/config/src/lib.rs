//! # tradewire-config
//!
//! The shared configuration file `tradewire.toml`, read by the Rust services exactly as
//! Python's `tradewire.config` reads it (reference_services/SPEC.md section 2):
//!
//! * [`Config::load`]: the given path, else `$TRADEWIRE_CONFIG`, else `./tradewire.toml`;
//!   a missing default file means the built-in defaults ([`Config::default`], the values
//!   of the repository's file).
//! * Every key can be overridden by `TRADEWIRE__<SECTION>__<KEY>` (any case). Strings are
//!   taken as they are, numbers and booleans parsed, lists given as a JSON array or a
//!   comma-separated list. Unknown sections, keys and variables are errors.
//! * A bad value is a [`ConfigError`] naming the file, the field and, when it came from
//!   the environment, the variable.
//! * Relative paths (`model.registry`, `market_data.csv`) are resolved against the
//!   directory of the file; the loaded configuration holds them absolute.
//!
//! ```no_run
//! let config = tradewire_config::Config::load(None)?;
//! println!("{}", config.endpoints.market_data);
//! # Ok::<(), tradewire_config::ConfigError>(())
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use toml::{Table, Value};

/// Prefix of the override variables: `TRADEWIRE__SECTION__KEY`.
pub const ENV_PREFIX: &str = "TRADEWIRE__";
/// Variable naming the configuration file.
pub const ENV_FILE_VAR: &str = "TRADEWIRE_CONFIG";
/// The file read when none is named.
pub const DEFAULT_FILE: &str = "tradewire.toml";

/// The configuration cannot be used; the message names the file and the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// `[endpoints]`: where each channel is bound (ipc://, tcp:// or inproc://).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Endpoints {
    pub market_data: String,
    pub signals: String,
    pub orders: String,
    pub positions: String,
    pub commands: String,
}

impl Default for Endpoints {
    fn default() -> Self {
        let at = |name: &str| format!("ipc:///tmp/tradewire/{name}");
        Endpoints {
            market_data: at("market_data"),
            signals: at("signals"),
            orders: at("orders"),
            positions: at("positions"),
            commands: at("commands"),
        }
    }
}

impl Endpoints {
    /// The endpoint of `channel` (`market_data`, `signals`, ...).
    pub fn get(&self, channel: &str) -> Option<&str> {
        Some(match channel {
            "market_data" => &self.market_data,
            "signals" => &self.signals,
            "orders" => &self.orders,
            "positions" => &self.positions,
            "commands" => &self.commands,
            _ => return None,
        })
    }
}

/// `[market_data]`: the market-data service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MarketData {
    pub symbols: Vec<String>,
    pub rate: f64,
    pub seed: i64,
    pub start_price: f64,
    pub csv: String,
    pub volatility: f64,
    pub sim_start_us: i64,
    pub count: i64,
    pub duration: f64,
    pub wait_subscribers: i64,
    pub wait_timeout: f64,
}

impl Default for MarketData {
    fn default() -> Self {
        MarketData {
            symbols: vec!["AAPL".into(), "MSFT".into(), "GOOG".into()],
            rate: 1000.0,
            seed: 42,
            start_price: 100.0,
            csv: String::new(),
            volatility: 0.004,
            sim_start_us: 0,
            count: 0,
            duration: 0.0,
            wait_subscribers: 0,
            wait_timeout: 10.0,
        }
    }
}

/// `[model]`: which registered model the signal bridge runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Model {
    pub registry: String,
    pub name: String,
    pub version: String,
}

impl Default for Model {
    fn default() -> Self {
        Model {
            registry: "models/registry.json".into(),
            name: "trading_model".into(),
            version: "latest".into(),
        }
    }
}

/// `[signal]`: the signal rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Signal {
    pub threshold: f64,
}

impl Default for Signal {
    fn default() -> Self {
        Signal { threshold: 0.6 }
    }
}

/// `[risk]`: limits the execution engine enforces.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Risk {
    pub max_position_size: f64,
    pub max_daily_loss: f64,
    pub order_quantity: f64,
}

impl Default for Risk {
    fn default() -> Self {
        Risk {
            max_position_size: 1000.0,
            max_daily_loss: 10000.0,
            order_quantity: 100.0,
        }
    }
}

/// `[execution]`: the execution engine.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Execution {
    pub run_id: String,
}

/// `[budgets]`: latency budgets in microseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Budgets {
    pub tick_to_signal_p99_us: i64,
    pub kill_switch_ack_p99_us: i64,
}

impl Default for Budgets {
    fn default() -> Self {
        Budgets {
            tick_to_signal_p99_us: 5000,
            kill_switch_ack_p99_us: 2000,
        }
    }
}

/// `[journal]`: the publishers' on-disk journal (WIRE.md section 7.6).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Journal {
    /// Publishers journal their frames (replay past the ring and past a restart).
    pub enabled: bool,
    /// Directory of the journals, one sub-directory per channel; empty:
    /// `<temp dir>/tradewire/journal/<endpoint>` (`tradewire::journal::default_dir`).
    pub dir: String,
    /// A new segment file starts at this size.
    pub segment_bytes: i64,
    /// The oldest segments are deleted while a journal is larger (0: no bound).
    pub retention_bytes: i64,
    /// Segments whose newest frame is older are deleted (0: no bound).
    pub retention_age_s: f64,
    /// `never`, `interval` or `always`.
    pub fsync: String,
    /// The interval of `fsync = "interval"`.
    pub fsync_interval_ms: i64,
}

impl Default for Journal {
    fn default() -> Self {
        Journal {
            enabled: true,
            dir: String::new(),
            segment_bytes: 64 * 1024 * 1024,
            retention_bytes: 1024 * 1024 * 1024,
            retention_age_s: 86400.0,
            fsync: "interval".into(),
            fsync_interval_ms: 100,
        }
    }
}

/// `<temp dir>/tradewire/<kind>/<endpoint, chars outside [A-Za-z0-9._-] as _><suffix>`,
/// as `tradewire::journal::default_state_path` names it (this crate does not depend on
/// tradewire): the default place of a journal or command store.
fn default_state_path(kind: &str, endpoint: &str, suffix: &str) -> PathBuf {
    let name: String = endpoint
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    std::env::temp_dir()
        .join("tradewire")
        .join(kind)
        .join(format!("{name}{suffix}"))
}

impl Journal {
    /// The journal directory of the publisher of `channel` bound at `endpoint`, or None
    /// when journals are off.
    pub fn dir_for(&self, channel: &str, endpoint: &str) -> Option<PathBuf> {
        if !self.enabled {
            None
        } else if self.dir.is_empty() {
            Some(default_state_path("journal", endpoint, ""))
        } else {
            Some(Path::new(&self.dir).join(channel))
        }
    }
}

/// `[command_store]`: the command servers' durable record of applied command ids
/// (WIRE.md section 7.5).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CommandStore {
    /// Command servers keep applied ids (and their acks) durably.
    pub enabled: bool,
    /// The store file; empty: `<temp dir>/tradewire/commands/<endpoint>.sqlite`
    /// (`tradewire::command_store::default_path`).
    pub path: String,
    /// How long an applied id is remembered, seconds (>= 1).
    pub window_s: f64,
    /// Commits reach the disk (not only the operating system) before the ack leaves.
    pub fsync: bool,
}

impl Default for CommandStore {
    fn default() -> Self {
        CommandStore {
            enabled: true,
            path: String::new(),
            window_s: 86400.0,
            fsync: true,
        }
    }
}

impl CommandStore {
    /// The store file of the command server bound at `endpoint`, or None when the store
    /// is off.
    pub fn path_for(&self, endpoint: &str) -> Option<PathBuf> {
        if !self.enabled {
            None
        } else if self.path.is_empty() {
            Some(default_state_path("commands", endpoint, ".sqlite"))
        } else {
            Some(PathBuf::from(&self.path))
        }
    }
}

/// The whole file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub endpoints: Endpoints,
    pub market_data: MarketData,
    pub model: Model,
    pub signal: Signal,
    pub risk: Risk,
    pub execution: Execution,
    pub budgets: Budgets,
    pub journal: Journal,
    pub command_store: CommandStore,
    /// The file read (absolute); `None` when only defaults (and the environment) apply.
    #[serde(skip)]
    pub file: Option<PathBuf>,
}

/// Where a value came from, for error messages.
struct Origin<'a> {
    file: &'a str,
    env: BTreeMap<(String, String), (String, String)>,
}

impl Origin<'_> {
    fn err(&self, section: &str, key: &str, msg: impl fmt::Display) -> ConfigError {
        let mut text = format!("{}: {section}.{key}: {msg}", self.file);
        if let Some((name, value)) = self.env.get(&(section.to_owned(), key.to_owned())) {
            text.push_str(&format!(" (from environment {name}={value:?})"));
        }
        ConfigError(text)
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "a string",
        Value::Integer(_) => "an integer",
        Value::Float(_) => "a float",
        Value::Boolean(_) => "a boolean",
        Value::Datetime(_) => "a datetime",
        Value::Array(_) => "an array",
        Value::Table(_) => "a table",
    }
}

/// The string of an environment variable as a value of the type of `like`.
fn parse_env(text: &str, like: &Value) -> Result<Value, String> {
    match like {
        Value::String(_) => Ok(Value::String(text.to_owned())),
        Value::Integer(_) => text
            .trim()
            .parse::<i64>()
            .map(Value::Integer)
            .map_err(|_| format!("expected an integer, got {text:?}")),
        Value::Float(_) => text
            .trim()
            .parse::<f64>()
            .map(Value::Float)
            .map_err(|_| format!("expected a number, got {text:?}")),
        Value::Boolean(_) => match text.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(Value::Boolean(true)),
            "false" | "0" | "no" | "off" => Ok(Value::Boolean(false)),
            _ => Err(format!("expected a boolean, got {text:?}")),
        },
        Value::Array(_) => {
            let t = text.trim();
            let items: Vec<String> = if t.starts_with('[') {
                serde_json::from_str(t).map_err(|e| format!("not a JSON array of strings: {e}"))?
            } else {
                t.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            };
            Ok(Value::Array(items.into_iter().map(Value::String).collect()))
        }
        other => Err(format!(
            "cannot override {} from the environment",
            type_name(other)
        )),
    }
}

/// `value` checked against the type of the default `like` (integers accepted as floats).
fn conform(value: Value, like: &Value) -> Result<Value, String> {
    match (like, value) {
        (Value::Float(_), Value::Integer(i)) => Ok(Value::Float(i as f64)),
        (Value::Array(_), Value::Array(items)) => {
            for item in &items {
                if !item.is_str() {
                    return Err(format!(
                        "expected an array of strings, found {} in it",
                        type_name(item)
                    ));
                }
            }
            Ok(Value::Array(items))
        }
        (like, value) if std::mem::discriminant(like) == std::mem::discriminant(&value) => {
            Ok(value)
        }
        (like, value) => Err(format!(
            "expected {}, got {} ({value})",
            type_name(like),
            type_name(&value)
        )),
    }
}

fn endpoint_ok(v: &str) -> bool {
    ["ipc://", "tcp://", "inproc://"]
        .iter()
        .any(|p| v.starts_with(p))
}

impl Config {
    /// The file to read and whether it was named explicitly (argument or environment).
    pub fn path(path: Option<&Path>) -> (PathBuf, bool) {
        if let Some(p) = path.filter(|p| !p.as_os_str().is_empty()) {
            return (p.to_path_buf(), true);
        }
        match std::env::var(ENV_FILE_VAR) {
            Ok(p) if !p.is_empty() => (PathBuf::from(p), true),
            _ => (PathBuf::from(DEFAULT_FILE), false),
        }
    }

    /// Reads `path` (see [`Config::path`]) with the process environment's overrides.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        Self::load_with_env(path, std::env::vars())
    }

    /// As [`Config::load`], with the given environment instead of the process's.
    pub fn load_with_env<I>(path: Option<&Path>, env: I) -> Result<Config, ConfigError>
    where
        I: IntoIterator<Item = (String, String)>,
    {
        let (file, explicit) = Self::path(path);
        let (mut table, source) = if file.is_file() {
            let text = std::fs::read_to_string(&file)
                .map_err(|e| ConfigError(format!("{}: cannot read: {e}", file.display())))?;
            let table: Table = text.parse().map_err(|e: toml::de::Error| {
                ConfigError(format!(
                    "{}: not valid TOML: {}",
                    file.display(),
                    e.to_string().trim_end()
                ))
            })?;
            let abs = std::fs::canonicalize(&file).unwrap_or_else(|_| file.clone());
            (table, Some(abs))
        } else if explicit {
            return Err(ConfigError(format!(
                "{}: no such configuration file",
                file.display()
            )));
        } else {
            (Table::new(), None)
        };
        let where_ = match &source {
            Some(_) => file.display().to_string(),
            None => "(defaults, no configuration file)".to_owned(),
        };
        let schema = match Value::try_from(Config::default()) {
            Ok(Value::Table(t)) => t,
            _ => unreachable!("the defaults serialize to a table"),
        };
        let mut origin = Origin {
            file: &where_,
            env: BTreeMap::new(),
        };

        // Unknown sections and keys, and types, of the file.
        for (section, body) in &table {
            let Some(Value::Table(known)) = schema.get(section) else {
                return Err(ConfigError(format!("{where_}: {section}: unknown section")));
            };
            let Value::Table(body) = body else {
                return Err(ConfigError(format!(
                    "{where_}: {section}: expected a table, got {}",
                    type_name(body)
                )));
            };
            for key in body.keys() {
                if !known.contains_key(key) {
                    return Err(origin.err(section, key, "unknown key"));
                }
            }
        }

        // Environment overrides.
        let mut overrides: Vec<(String, String, String, String)> = Vec::new();
        for (name, value) in env {
            if !name.to_ascii_uppercase().starts_with(ENV_PREFIX) {
                continue;
            }
            let rest = name[ENV_PREFIX.len()..].to_ascii_lowercase();
            let parts: Vec<&str> = rest.split("__").collect();
            let sections: Vec<&str> = schema.keys().map(String::as_str).collect();
            let [section, key] = parts[..] else {
                return Err(ConfigError(format!(
                    "{name}: not a configuration key (want {ENV_PREFIX}<SECTION>__<KEY>, \
                     sections: {})",
                    sections.join(", ")
                )));
            };
            let Some(Value::Table(known)) = schema.get(section) else {
                return Err(ConfigError(format!(
                    "{name}: not a configuration key (want {ENV_PREFIX}<SECTION>__<KEY>, \
                     sections: {})",
                    sections.join(", ")
                )));
            };
            if !known.contains_key(key) {
                let keys: Vec<&str> = known.keys().map(String::as_str).collect();
                return Err(ConfigError(format!(
                    "{name}: no key {section}.{key} (keys: {})",
                    keys.join(", ")
                )));
            }
            overrides.push((section.to_owned(), key.to_owned(), name, value));
        }
        overrides.sort();
        for (section, key, name, value) in overrides {
            origin
                .env
                .insert((section.clone(), key.clone()), (name, value.clone()));
            let like = &schema[&section][&key];
            let parsed = parse_env(&value, like).map_err(|m| origin.err(&section, &key, m))?;
            let body = table
                .entry(section.clone())
                .or_insert_with(|| Value::Table(Table::new()));
            if let Value::Table(body) = body {
                body.insert(key, parsed);
            }
        }

        // Types.
        for (section, body) in table.iter_mut() {
            if let Value::Table(body) = body {
                for (key, value) in body.iter_mut() {
                    let like = &schema[section][key];
                    let v = std::mem::replace(value, Value::Boolean(false));
                    *value = conform(v, like).map_err(|m| origin.err(section, key, m))?;
                }
            }
        }

        let mut config: Config = Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError(format!("{where_}: {e}")))?;
        config.validate(&origin)?;

        let base = match &source {
            Some(f) => f.parent().map(Path::to_path_buf).unwrap_or_default(),
            None => std::env::current_dir().unwrap_or_default(),
        };
        let absolute = |p: &str| -> String {
            if p.is_empty() || Path::new(p).is_absolute() {
                p.to_owned()
            } else {
                base.join(p).display().to_string()
            }
        };
        config.model.registry = absolute(&config.model.registry);
        config.market_data.csv = absolute(&config.market_data.csv);
        config.journal.dir = absolute(&config.journal.dir);
        config.command_store.path = absolute(&config.command_store.path);
        config.file = source;
        Ok(config)
    }

    fn validate(&self, o: &Origin<'_>) -> Result<(), ConfigError> {
        let e = &self.endpoints;
        for (key, v) in [
            ("market_data", &e.market_data),
            ("signals", &e.signals),
            ("orders", &e.orders),
            ("positions", &e.positions),
            ("commands", &e.commands),
        ] {
            if !endpoint_ok(v) {
                return Err(o.err(
                    "endpoints",
                    key,
                    format!("{v:?} is not an ipc://, tcp:// or inproc:// endpoint"),
                ));
            }
        }
        let md = &self.market_data;
        if md.symbols.is_empty() {
            return Err(o.err("market_data", "symbols", "at least one symbol is needed"));
        }
        for s in &md.symbols {
            if s.is_empty() || s.starts_with('~') || s.contains('\0') {
                return Err(o.err(
                    "market_data",
                    "symbols",
                    format!("bad symbol {s:?} (empty, '~'-prefixed or NUL)"),
                ));
            }
        }
        let finite = |section: &str, key: &str, v: f64, ok: bool, want: &str| {
            if v.is_finite() && ok {
                Ok(())
            } else {
                Err(o.err(section, key, format!("must be {want}, got {v:?}")))
            }
        };
        finite(
            "market_data",
            "rate",
            md.rate,
            md.rate >= 0.0,
            "a number >= 0",
        )?;
        finite(
            "market_data",
            "start_price",
            md.start_price,
            md.start_price > 0.0,
            "a number > 0",
        )?;
        finite(
            "market_data",
            "volatility",
            md.volatility,
            md.volatility >= 0.0,
            "a number >= 0",
        )?;
        finite(
            "market_data",
            "wait_timeout",
            md.wait_timeout,
            md.wait_timeout >= 0.0,
            "a number >= 0",
        )?;
        finite(
            "market_data",
            "duration",
            md.duration,
            md.duration >= 0.0,
            "a number >= 0",
        )?;
        for (key, v) in [
            ("sim_start_us", md.sim_start_us),
            ("count", md.count),
            ("wait_subscribers", md.wait_subscribers),
        ] {
            if v < 0 {
                return Err(o.err("market_data", key, format!("must be >= 0, got {v}")));
            }
        }
        let t = self.signal.threshold;
        finite(
            "signal",
            "threshold",
            t,
            t > 0.0 && t < 1.0,
            "a number in (0, 1)",
        )?;
        let r = &self.risk;
        for (key, v) in [
            ("max_position_size", r.max_position_size),
            ("max_daily_loss", r.max_daily_loss),
            ("order_quantity", r.order_quantity),
        ] {
            finite("risk", key, v, v > 0.0, "a number > 0")?;
        }
        for (key, v) in [
            ("tick_to_signal_p99_us", self.budgets.tick_to_signal_p99_us),
            (
                "kill_switch_ack_p99_us",
                self.budgets.kill_switch_ack_p99_us,
            ),
        ] {
            if v < 0 {
                return Err(o.err("budgets", key, format!("must be >= 0, got {v}")));
            }
        }
        let j = &self.journal;
        if j.segment_bytes < 1024 {
            return Err(o.err(
                "journal",
                "segment_bytes",
                format!("must be >= 1024, got {}", j.segment_bytes),
            ));
        }
        if j.retention_bytes < 0 {
            return Err(o.err(
                "journal",
                "retention_bytes",
                format!("must be >= 0, got {}", j.retention_bytes),
            ));
        }
        finite(
            "journal",
            "retention_age_s",
            j.retention_age_s,
            j.retention_age_s >= 0.0,
            "a number >= 0",
        )?;
        if !["never", "interval", "always"].contains(&j.fsync.as_str()) {
            return Err(o.err(
                "journal",
                "fsync",
                format!(
                    "must be \"never\", \"interval\" or \"always\", got {:?}",
                    j.fsync
                ),
            ));
        }
        if j.fsync == "interval" && j.fsync_interval_ms <= 0 {
            return Err(o.err(
                "journal",
                "fsync_interval_ms",
                format!(
                    "must be > 0 with fsync \"interval\", got {}",
                    j.fsync_interval_ms
                ),
            ));
        }
        let w = self.command_store.window_s;
        finite("command_store", "window_s", w, w >= 1.0, "a number >= 1")?;
        Ok(())
    }

    /// Every section and key as JSON (`file` included), as `config show --json` prints.
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or(serde_json::Value::Null);
        if let serde_json::Value::Object(map) = &mut v {
            map.insert(
                "file".into(),
                self.file
                    .as_ref()
                    .map_or(serde_json::Value::Null, |f| f.display().to_string().into()),
            );
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    fn write(dir: &Path, text: &str) -> PathBuf {
        std::fs::create_dir_all(dir).unwrap();
        let p = dir.join("tw.toml");
        std::fs::write(&p, text).unwrap();
        p
    }

    fn tmp(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("tw-config-{name}-{}", std::process::id()))
    }

    #[test]
    fn repo_file_equals_defaults() {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tradewire.toml");
        let mut c = Config::load_with_env(Some(&repo), env(&[])).unwrap();
        let d = Config::load_with_env(Some(&repo), env(&[])).unwrap();
        assert_eq!(c.market_data.symbols, ["AAPL", "MSFT", "GOOG"]);
        assert!(c.model.registry.ends_with("models/registry.json"));
        assert!(Path::new(&c.model.registry).is_absolute());
        c.file = None;
        c.model.registry = Model::default().registry;
        let mut want = Config::default();
        want.model.registry = c.model.registry.clone();
        assert_eq!(c, want);
        assert!(d.file.is_some());
    }

    #[test]
    fn env_overrides_and_errors() {
        let p = write(&tmp("env"), "[risk]\nmax_position_size = 10\n");
        let c = Config::load_with_env(
            Some(&p),
            env(&[
                ("TRADEWIRE__RISK__ORDER_QUANTITY", "5"),
                ("tradewire__market_data__symbols", "A, B"),
                ("TRADEWIRE__ENDPOINTS__MARKET_DATA", "ipc:///tmp/x/md"),
                ("OTHER", "1"),
            ]),
        )
        .unwrap();
        assert_eq!(c.risk.max_position_size, 10.0);
        assert_eq!(c.risk.order_quantity, 5.0);
        assert_eq!(c.market_data.symbols, ["A", "B"]);
        assert_eq!(c.endpoints.market_data, "ipc:///tmp/x/md");
        let c = Config::load_with_env(
            Some(&p),
            env(&[("TRADEWIRE__MARKET_DATA__SYMBOLS", "[\"X\"]")]),
        )
        .unwrap();
        assert_eq!(c.market_data.symbols, ["X"]);

        let e = Config::load_with_env(
            Some(&p),
            env(&[("TRADEWIRE__RISK__MAX_POSITION_SIZE", "abc")]),
        )
        .unwrap_err()
        .0;
        assert!(
            e.contains("tw.toml: risk.max_position_size: expected a number"),
            "{e}"
        );
        assert!(e.contains("TRADEWIRE__RISK__MAX_POSITION_SIZE"), "{e}");
        let e = Config::load_with_env(Some(&p), env(&[("TRADEWIRE__RISK__MAX_POSITON", "1")]))
            .unwrap_err()
            .0;
        assert!(e.contains("no key risk.max_positon"), "{e}");
        let e = Config::load_with_env(Some(&p), env(&[("TRADEWIRE__RISK", "1")]))
            .unwrap_err()
            .0;
        assert!(e.contains("not a configuration key"), "{e}");
        let e = Config::load_with_env(Some(&p), env(&[("TRADEWIRE__RISK__MAX_DAILY_LOSS", "-1")]))
            .unwrap_err()
            .0;
        assert!(
            e.contains("risk.max_daily_loss: must be a number > 0"),
            "{e}"
        );
    }

    #[test]
    fn file_errors_name_file_and_field() {
        let dir = tmp("bad");
        let cases = [
            (
                "[risk]\nmax_position_size = \"x\"\n",
                "risk.max_position_size: expected a float",
            ),
            ("[foo]\na = 1\n", "foo: unknown section"),
            ("[endpoints]\nbogus = 1\n", "endpoints.bogus: unknown key"),
            (
                "[endpoints]\nsignals = \"http://x\"\n",
                "endpoints.signals: \"http://x\" is not",
            ),
            (
                "[market_data]\nsymbols = []\n",
                "market_data.symbols: at least one",
            ),
            (
                "[market_data]\nseed = 1.5\n",
                "market_data.seed: expected an integer",
            ),
            (
                "[signal]\nthreshold = 1.5\n",
                "signal.threshold: must be a number in (0, 1)",
            ),
            ("[risk\n", "not valid TOML"),
            (
                "[journal]\nfsync = \"sometimes\"\n",
                "journal.fsync: must be \"never\", \"interval\" or \"always\"",
            ),
            (
                "[journal]\nsegment_bytes = 10\n",
                "journal.segment_bytes: must be >= 1024",
            ),
            (
                "[journal]\nretention_age_s = -1\n",
                "journal.retention_age_s: must be a number >= 0",
            ),
            (
                "[command_store]\nwindow_s = 0.5\n",
                "command_store.window_s: must be a number >= 1",
            ),
            (
                "[command_store]\nfsync = \"yes\"\n",
                "command_store.fsync: expected a boolean",
            ),
        ];
        for (text, want) in cases {
            let p = write(&dir, text);
            let e = Config::load_with_env(Some(&p), env(&[])).unwrap_err().0;
            assert!(e.contains("tw.toml"), "{e}");
            assert!(e.contains(want), "{text:?}: {e}");
        }
        let e = Config::load_with_env(Some(&dir.join("missing.toml")), env(&[]))
            .unwrap_err()
            .0;
        assert!(
            e.contains("missing.toml: no such configuration file"),
            "{e}"
        );
    }

    #[test]
    fn relative_paths_follow_the_file() {
        let dir = tmp("rel");
        let p = write(
            &dir,
            "[model]\nregistry = \"m/r.json\"\n[market_data]\ncsv = \"t.csv\"\n",
        );
        let c = Config::load_with_env(Some(&p), env(&[])).unwrap();
        let dir = std::fs::canonicalize(&dir).unwrap();
        assert_eq!(Path::new(&c.model.registry), dir.join("m/r.json"));
        assert_eq!(Path::new(&c.market_data.csv), dir.join("t.csv"));
        let p = write(&dir, "[command_store]\npath = \"state/c.sqlite\"\n");
        let c = Config::load_with_env(Some(&p), env(&[])).unwrap();
        assert_eq!(
            c.command_store.path_for("ipc:///x"),
            Some(dir.join("state/c.sqlite"))
        );
        assert_eq!(c.to_json()["risk"]["order_quantity"], 100.0);
    }
}

//! Durable record of the commands a command server applied (WIRE.md section 7.5): per
//! command id, the acknowledgement sent and when it was applied, so a server restarted on
//! the same store answers a retried command with the original ack (`duplicate: true`)
//! instead of applying it again. One implementation for both SDKs: the Python
//! `CommandServer` reaches it through `tradewire._wire.CommandStore`.
//!
//! The store is an embedded SQLite database (the `rusqlite` crate, SQLite compiled in), one
//! file per command server, in WAL mode:
//!
//! ```text
//! applied_commands(command_id TEXT PRIMARY KEY, ack BLOB, applied_us INTEGER)  -- + index on applied_us
//! handler_state(key TEXT PRIMARY KEY, value BLOB)
//! ```
//!
//! `ack` is the serialized CommandAck exactly as first sent (`duplicate` false);
//! `applied_us` is the server's wall clock, microseconds since the Unix epoch.
//!
//! **Guarantee.** [`CommandStore::record`] commits the id, its ack and the handler's
//! [`StateWrites`] in one SQLite transaction, and a command server sends the ack only after
//! that commit returned. Hence, for a command id within the window:
//!
//! - a handler whose whole effect is in `StateWrites` (state read back with
//!   [`CommandStore::state`] after a restart) gets exactly-once: the effect and the id
//!   commit together or not at all; a crash before the commit leaves neither, and the
//!   retry applies the command to the state as it was;
//! - a handler with effects outside the store (memory, other files, messages sent) gets
//!   at-most-once once the record is committed; a crash after the handler ran and before
//!   the commit returned (one transaction, microseconds with `fsync` off) loses the record,
//!   so the retry is applied again.
//!
//! With `fsync` on (`synchronous=FULL`) the commit is on disk before the ack leaves and
//! survives a crash of the machine; off (`synchronous=NORMAL`) it is in the operating
//! system when the ack leaves and survives a `kill -9` of the server, not a power loss.
//!
//! **Window.** An id is remembered for `window` after it was applied (by the wall clock;
//! a clock stepped back keeps ids longer, stepped forward forgets them sooner). Expired
//! ids are ignored by lookups at once and deleted a bounded number at a time: at most
//! `prune_batch` rows per recorded command and per [`CommandStore::prune`] call, so no
//! call does work proportional to the store's size.
//!
//! **One owner.** The file is opened in SQLite's exclusive locking mode and written at
//! open: a second server opening the same store fails with [`StoreError::Busy`] instead of
//! interleaving with the first. The lock dies with the process, `kill -9` included.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

/// How long ids are remembered by default: 24 hours.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(24 * 3600);
/// Expired rows deleted at most per recorded command or per `prune` call.
pub const DEFAULT_PRUNE_BATCH: usize = 64;
/// The schema version kept in SQLite's `user_version`.
const SCHEMA_VERSION: i64 = 1;

/// The store cannot be opened or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another process holds the store (SQLite's exclusive lock).
    #[error("command store {0} is in use by another process")]
    Busy(PathBuf),
    /// A file or SQLite error.
    #[error("command store {path}: {message}")]
    Sqlite {
        /// The store file.
        path: PathBuf,
        /// What failed.
        message: String,
    },
    /// The options are not usable.
    #[error("command store: {0}")]
    Invalid(String),
}

/// Where and how a command server keeps its applied ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandStoreOptions {
    /// The SQLite file; created with its directory when missing.
    pub path: PathBuf,
    /// How long an applied id is remembered (at least 1 s).
    pub window: Duration,
    /// Commit with `synchronous=FULL` (on disk before the ack leaves) instead of `NORMAL`
    /// (in the operating system before the ack leaves).
    pub fsync: bool,
    /// Expired rows deleted at most per recorded command or `prune` call (at least 1).
    pub prune_batch: usize,
}

impl CommandStoreOptions {
    /// Options for the store at `path` with the defaults: a 24 h window, fsync on.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        CommandStoreOptions {
            path: path.into(),
            window: DEFAULT_WINDOW,
            fsync: true,
            prune_batch: DEFAULT_PRUNE_BATCH,
        }
    }
}

/// The store file of a command server bound at `endpoint` when no path is configured:
/// `<temp dir>/tradewire/commands/<endpoint, chars outside [A-Za-z0-9._-] as _>.sqlite`,
/// beside the journals' default (`tradewire::journal::default_dir`).
pub fn default_path(endpoint: &str) -> PathBuf {
    crate::journal::default_state_path("commands", endpoint, ".sqlite")
}

/// A command found in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCommand {
    /// The serialized CommandAck first sent for it.
    pub ack: Vec<u8>,
    /// When it was applied, microseconds since the Unix epoch (server clock).
    pub applied_us: i64,
}

/// Handler state to commit in the same transaction as a command's id and ack: `put`
/// replaces a key's value, `delete` removes it; applied in call order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StateWrites {
    writes: Vec<(String, Option<Vec<u8>>)>,
}

impl StateWrites {
    /// No writes.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `key` to `value`.
    pub fn put(&mut self, key: impl Into<String>, value: impl Into<Vec<u8>>) {
        self.writes.push((key.into(), Some(value.into())));
    }

    /// Removes `key`.
    pub fn delete(&mut self, key: impl Into<String>) {
        self.writes.push((key.into(), None));
    }

    /// True when nothing was written.
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }

    /// The writes, in call order (`None`: delete).
    pub fn iter(&self) -> impl Iterator<Item = (&str, Option<&[u8]>)> {
        self.writes.iter().map(|(k, v)| (k.as_str(), v.as_deref()))
    }

    /// Forgets every write.
    pub fn clear(&mut self) {
        self.writes.clear();
    }
}

/// Store counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommandStoreStats {
    /// Commands recorded.
    pub recorded: u64,
    /// Lookups that found an id within the window.
    pub hits: u64,
    /// Expired rows deleted.
    pub pruned: u64,
}

/// An open store (see the module documentation).
pub struct CommandStore {
    conn: Connection,
    path: PathBuf,
    window_us: i64,
    prune_batch: i64,
    stats: CommandStoreStats,
}

impl std::fmt::Debug for CommandStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommandStore")
            .field("path", &self.path)
            .finish()
    }
}

impl CommandStore {
    /// Opens (creating) the store and takes its exclusive lock.
    pub fn open(options: &CommandStoreOptions) -> Result<Self, StoreError> {
        if options.window < Duration::from_secs(1) {
            return Err(StoreError::Invalid(format!(
                "window must be at least 1 s, got {:?}",
                options.window
            )));
        }
        if options.prune_batch == 0 {
            return Err(StoreError::Invalid("prune_batch must be at least 1".into()));
        }
        let path = options.path.clone();
        let err = |e: rusqlite::Error| sqlite_error(&path, e);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Sqlite {
                path: path.clone(),
                message: format!("cannot create {}: {e}", dir.display()),
            })?;
        }
        let conn = Connection::open(&path).map_err(err)?;
        // Exclusive before the first access: WAL then needs no shared-memory index and the
        // lock, once taken by the first write below, is held until the connection closes.
        conn.pragma_update(None, "locking_mode", "EXCLUSIVE")
            .map_err(err)?;
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
            .map_err(err)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Sqlite {
                path,
                message: format!("journal_mode WAL refused (got {mode})"),
            });
        }
        let sync = if options.fsync { "FULL" } else { "NORMAL" };
        conn.pragma_update(None, "synchronous", sync).map_err(err)?;
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(err)?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::Sqlite {
                path,
                message: format!(
                    "schema version {version} is newer than this build's {SCHEMA_VERSION}"
                ),
            });
        }
        conn.execute_batch(
            "BEGIN IMMEDIATE;
             CREATE TABLE IF NOT EXISTS applied_commands (
                 command_id TEXT PRIMARY KEY NOT NULL,
                 ack BLOB NOT NULL,
                 applied_us INTEGER NOT NULL
             ) WITHOUT ROWID;
             CREATE INDEX IF NOT EXISTS applied_commands_by_time
                 ON applied_commands (applied_us);
             CREATE TABLE IF NOT EXISTS handler_state (
                 key TEXT PRIMARY KEY NOT NULL,
                 value BLOB NOT NULL
             ) WITHOUT ROWID;
             PRAGMA user_version = 1;
             COMMIT;",
        )
        .map_err(err)?;
        Ok(CommandStore {
            conn,
            path,
            window_us: i64::try_from(options.window.as_micros()).unwrap_or(i64::MAX),
            prune_batch: i64::try_from(options.prune_batch).unwrap_or(i64::MAX),
            stats: CommandStoreStats::default(),
        })
    }

    /// The store file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The command `command_id` if it was applied within the window before `now_us`.
    pub fn lookup(
        &mut self,
        command_id: &str,
        now_us: i64,
    ) -> Result<Option<StoredCommand>, StoreError> {
        let found = self
            .conn
            .prepare_cached(
                "SELECT ack, applied_us FROM applied_commands
                 WHERE command_id = ?1 AND applied_us >= ?2",
            )
            .and_then(|mut st| {
                st.query_row(
                    params![command_id, now_us.saturating_sub(self.window_us)],
                    |r| {
                        Ok(StoredCommand {
                            ack: r.get(0)?,
                            applied_us: r.get(1)?,
                        })
                    },
                )
                .optional()
            })
            .map_err(|e| sqlite_error(&self.path, e))?;
        if found.is_some() {
            self.stats.hits += 1;
        }
        Ok(found)
    }

    /// Commits `command_id` with its `ack` (serialized CommandAck), `applied_us` and the
    /// handler's `state` writes in one transaction, and deletes up to `prune_batch` expired
    /// ids in it. When this returns Ok the record is durable as `fsync` promises; on Err
    /// nothing of it is.
    pub fn record(
        &mut self,
        command_id: &str,
        ack: &[u8],
        applied_us: i64,
        state: &StateWrites,
    ) -> Result<(), StoreError> {
        let path = self.path.clone();
        let err = |e: rusqlite::Error| sqlite_error(&path, e);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err)?;
        tx.prepare_cached(
            "INSERT OR REPLACE INTO applied_commands (command_id, ack, applied_us)
             VALUES (?1, ?2, ?3)",
        )
        .and_then(|mut st| st.execute(params![command_id, ack, applied_us]))
        .map_err(err)?;
        write_state_in(&tx, state).map_err(err)?;
        let pruned = prune_in(&tx, applied_us - self.window_us, self.prune_batch).map_err(err)?;
        tx.commit().map_err(err)?;
        self.stats.recorded += 1;
        self.stats.pruned += pruned as u64;
        Ok(())
    }

    /// Commits handler state outside any command (e.g. effects of other inputs).
    pub fn write_state(&mut self, state: &StateWrites) -> Result<(), StoreError> {
        let path = self.path.clone();
        let err = |e: rusqlite::Error| sqlite_error(&path, e);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err)?;
        write_state_in(&tx, state).map_err(err)?;
        tx.commit().map_err(err)
    }

    /// Deletes up to `prune_batch` ids applied more than the window before `now_us`;
    /// returns how many.
    pub fn prune(&mut self, now_us: i64) -> Result<usize, StoreError> {
        let path = self.path.clone();
        let n = prune_in(&self.conn, now_us - self.window_us, self.prune_batch)
            .map_err(|e| sqlite_error(&path, e))?;
        self.stats.pruned += n as u64;
        Ok(n)
    }

    /// The committed value of handler state `key`.
    pub fn state(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.conn
            .prepare_cached("SELECT value FROM handler_state WHERE key = ?1")
            .and_then(|mut st| st.query_row(params![key], |r| r.get(0)).optional())
            .map_err(|e| sqlite_error(&self.path, e))
    }

    /// Every committed handler state key starting with `prefix`, with its value, in key
    /// order.
    pub fn state_items(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let run = || -> rusqlite::Result<Vec<(String, Vec<u8>)>> {
            let mut st = self.conn.prepare_cached(
                "SELECT key, value FROM handler_state WHERE key >= ?1 ORDER BY key",
            )?;
            let mut out = Vec::new();
            let mut rows = st.query(params![prefix])?;
            while let Some(row) = rows.next()? {
                let key: String = row.get(0)?;
                if !key.starts_with(prefix) {
                    break;
                }
                out.push((key, row.get(1)?));
            }
            Ok(out)
        };
        run().map_err(|e| sqlite_error(&self.path, e))
    }

    /// Ids held (expired ones not yet pruned included).
    pub fn len(&self) -> Result<u64, StoreError> {
        self.conn
            .query_row("SELECT COUNT(*) FROM applied_commands", [], |r| {
                r.get::<_, i64>(0)
            })
            .map(|n| u64::try_from(n).unwrap_or(0))
            .map_err(|e| sqlite_error(&self.path, e))
    }

    /// True when no id is held.
    pub fn is_empty(&self) -> Result<bool, StoreError> {
        self.len().map(|n| n == 0)
    }

    /// The counters.
    pub fn stats(&self) -> &CommandStoreStats {
        &self.stats
    }
}

/// Applies a handler's staged state writes inside the caller's transaction.
fn write_state_in(conn: &Connection, state: &StateWrites) -> rusqlite::Result<()> {
    for (key, value) in state.iter() {
        match value {
            Some(v) => conn
                .prepare_cached("INSERT OR REPLACE INTO handler_state (key, value) VALUES (?1, ?2)")
                .and_then(|mut st| st.execute(params![key, v])),
            None => conn
                .prepare_cached("DELETE FROM handler_state WHERE key = ?1")
                .and_then(|mut st| st.execute(params![key])),
        }?;
    }
    Ok(())
}

fn prune_in(conn: &Connection, before_us: i64, limit: i64) -> rusqlite::Result<usize> {
    conn.prepare_cached(
        "DELETE FROM applied_commands WHERE command_id IN (
             SELECT command_id FROM applied_commands WHERE applied_us < ?1
             ORDER BY applied_us LIMIT ?2)",
    )?
    .execute(params![before_us, limit])
}

fn sqlite_error(path: &Path, e: rusqlite::Error) -> StoreError {
    let busy = matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    );
    if busy {
        StoreError::Busy(path.to_path_buf())
    } else {
        StoreError::Sqlite {
            path: path.to_path_buf(),
            message: e.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "tw-command-store-{name}-{}-{}",
            std::process::id(),
            crate::transport::random_hex(8)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        dir.join("store.sqlite")
    }

    fn options(path: &Path) -> CommandStoreOptions {
        CommandStoreOptions {
            fsync: false,
            ..CommandStoreOptions::new(path)
        }
    }

    const HOUR_US: i64 = 3600 * 1_000_000;

    #[test]
    fn records_survive_reopen() {
        let path = tmp("reopen");
        {
            let mut s = CommandStore::open(&options(&path)).unwrap();
            assert!(s.lookup("a", 1_000).unwrap().is_none());
            let mut w = StateWrites::new();
            w.put("engine", b"v1".to_vec());
            s.record("a", b"ack-a", 1_000, &w).unwrap();
            assert_eq!(s.stats().recorded, 1);
        }
        let mut s = CommandStore::open(&options(&path)).unwrap();
        let got = s.lookup("a", 2_000).unwrap().unwrap();
        assert_eq!((got.ack.as_slice(), got.applied_us), (&b"ack-a"[..], 1_000));
        assert_eq!(s.state("engine").unwrap().as_deref(), Some(&b"v1"[..]));
        assert_eq!(s.len().unwrap(), 1);
    }

    #[test]
    fn window_is_by_time_not_count() {
        let path = tmp("window");
        let mut s = CommandStore::open(&options(&path)).unwrap();
        let t0 = 10 * HOUR_US;
        s.record("first", b"x", t0, &StateWrites::new()).unwrap();
        for i in 0..10_050 {
            s.record(&format!("id-{i}"), b"y", t0 + i, &StateWrites::new())
                .unwrap();
        }
        // 10,050 other ids later, still within 24 h: remembered.
        assert!(s.lookup("first", t0 + 23 * HOUR_US).unwrap().is_some());
        // Past the window: forgotten by lookups at once, then pruned in bounded batches.
        assert!(s.lookup("first", t0 + 25 * HOUR_US).unwrap().is_none());
        let n = s.prune(t0 + 25 * HOUR_US).unwrap();
        assert_eq!(n, DEFAULT_PRUNE_BATCH);
        s.record("late", b"z", t0 + 25 * HOUR_US, &StateWrites::new())
            .unwrap();
        assert_eq!(s.len().unwrap(), 10_052 - 2 * DEFAULT_PRUNE_BATCH as u64);
        while s.prune(t0 + 25 * HOUR_US).unwrap() > 0 {}
        assert_eq!(s.len().unwrap(), 1);
        assert!(s.lookup("late", t0 + 25 * HOUR_US).unwrap().is_some());
    }

    #[test]
    fn expired_id_is_applied_again() {
        let path = tmp("expired");
        let mut s = CommandStore::open(&options(&path)).unwrap();
        s.record("a", b"old", 0, &StateWrites::new()).unwrap();
        let later = 25 * HOUR_US;
        assert!(s.lookup("a", later).unwrap().is_none());
        s.record("a", b"new", later, &StateWrites::new()).unwrap();
        assert_eq!(s.lookup("a", later).unwrap().unwrap().ack, b"new");
    }

    #[test]
    fn state_writes_commit_with_the_record() {
        let path = tmp("state");
        let mut s = CommandStore::open(&options(&path)).unwrap();
        let mut w = StateWrites::new();
        w.put("app/1", b"a".to_vec());
        w.put("app/2", b"b".to_vec());
        w.put("other", b"c".to_vec());
        s.record("c1", b"ack", 5, &w).unwrap();
        let mut w = StateWrites::new();
        w.delete("app/1");
        w.put("app/3", b"d".to_vec());
        s.record("c2", b"ack", 6, &w).unwrap();
        let items = s.state_items("app/").unwrap();
        assert_eq!(
            items,
            vec![
                ("app/2".to_owned(), b"b".to_vec()),
                ("app/3".to_owned(), b"d".to_vec())
            ]
        );
        let mut w = StateWrites::new();
        w.put("other", b"e".to_vec());
        s.write_state(&w).unwrap();
        assert_eq!(s.state("other").unwrap().as_deref(), Some(&b"e"[..]));
        assert_eq!(s.state("missing").unwrap(), None);
    }

    #[test]
    fn second_owner_is_refused() {
        let path = tmp("busy");
        let _first = CommandStore::open(&options(&path)).unwrap();
        let e = CommandStore::open(&options(&path)).unwrap_err();
        assert!(matches!(e, StoreError::Busy(_)), "{e}");
        assert!(e.to_string().contains("in use by another process"), "{e}");
    }

    #[test]
    fn bad_options_are_refused() {
        let path = tmp("bad");
        let mut o = options(&path);
        o.window = Duration::from_millis(10);
        assert!(matches!(
            CommandStore::open(&o).unwrap_err(),
            StoreError::Invalid(_)
        ));
        let mut o = options(&path);
        o.prune_batch = 0;
        assert!(matches!(
            CommandStore::open(&o).unwrap_err(),
            StoreError::Invalid(_)
        ));
    }

    #[test]
    fn default_path_sanitizes_the_endpoint() {
        let p = default_path("ipc:///tmp/tw/commands");
        assert!(p.ends_with("tradewire/commands/ipc____tmp_tw_commands.sqlite"));
    }
}

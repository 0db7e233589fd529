//! Publisher journal: an append-only on-disk log of the frames one publisher sent, so a
//! replay can reach past the in-memory ring and past a restart (WIRE.md section 7.6).
//!
//! A journal is a directory of segment files `NNNNNNNNNNNNNNNNNNNN.twj` (the number grows
//! by one per segment). A segment starts with the 8-byte magic `TWJOURN1`, then records:
//!
//! ```text
//! +--------------------+--------------------------+--------------------------------+
//! | len: u32 LE        | crc32: u32 LE            | frame (len bytes)              |
//! +--------------------+--------------------------+--------------------------------+
//! ```
//!
//! `frame` is the tradewire frame exactly as published (flags 0); `crc32` (IEEE, the
//! `crc32fast` crate) covers the frame. Everything replay needs (publisher id, seq, key,
//! key_seq, send time) is read from the frame's envelope header.
//!
//! Every segment holds the frames of one publisher id, in increasing `seq`; a journal
//! opened for writing never appends to a segment written before it was opened, so a
//! restarted publisher starts a segment of its own. Opening scans every segment, checks
//! each record's CRC and envelope, and truncates a segment at its first bad record: a
//! record torn by a `kill -9` mid-write (or by a crash of the machine with fsync policy
//! `never`/`interval`) is lost, nothing before it. The scan builds the in-memory index a
//! lookup uses: per segment its publisher id, first/last seq, a sparse seq -> offset
//! index and, per key, the first/last key_seq with a sparse key_seq -> offset index; a
//! lookup opens only the segments whose ranges overlap the request, from the nearest
//! indexed offset. Reads ([`JournalReader`]) go through their own file handles, one
//! record at a time, so a long range never sits in memory and the writer is not held.
//!
//! A segment that will not be written again (the journal rolled to a new one, or was
//! closed, or it was scanned at open) gets an index file `NNNNNNNNNNNNNNNNNNNN.twi`: the
//! scan's result (publisher id, seq range, record count, the sparse indexes) with the
//! segment's size and modification time, little-endian u64s, a CRC32 at the end. Open
//! reads it instead of scanning the segment when size and time still match; otherwise
//! (the segment was being written at a crash, or changed since) it scans. A full journal
//! (1 GiB) thus opens in milliseconds instead of seconds. The index is derived data:
//! deleting it costs one scan, never a record.
//!
//! Retention deletes whole segments, oldest first, while the journal is over its size
//! bound or the segment's newest frame is older than the age bound; the segment being
//! written is never deleted.
//!
//! Why a format of our own: the crates that offer an append-only log either index
//! records by their own offset only (commitlog-style crates), so a lookup by
//! (publisher id, key, key_seq) would still need this index on top, or are full
//! key-value stores (sled, redb, rocksdb) whose write amplification and compaction buy
//! nothing for a log that is only ever appended and dropped from the front. The format
//! above is a length, a CRC and the frame.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::wire;

/// First bytes of every segment file.
pub const SEGMENT_MAGIC: [u8; 8] = *b"TWJOURN1";
/// File name suffix of segments.
pub const SEGMENT_SUFFIX: &str = ".twj";
/// File name suffix of a segment's index file.
pub const INDEX_SUFFIX: &str = ".twi";
/// First bytes of an index file.
const INDEX_MAGIC: [u8; 8] = *b"TWJINDX1";
/// Bytes before a record's frame: length and CRC32.
pub const RECORD_HEADER: usize = 8;
/// Default segment size at which a new segment is started.
pub const DEFAULT_SEGMENT_BYTES: u64 = 64 * 1024 * 1024;
/// Default bound of the whole journal's size.
pub const DEFAULT_RETENTION_BYTES: u64 = 1024 * 1024 * 1024;
/// Default bound of the age of the newest frame of a segment.
pub const DEFAULT_RETENTION_AGE: Duration = Duration::from_secs(24 * 3600);
/// Default interval of [`FsyncPolicy::Interval`].
pub const DEFAULT_FSYNC_INTERVAL: Duration = Duration::from_millis(100);
/// A record longer than this is corruption (largest valid frame, with room to spare).
const MAX_RECORD: usize = 256 * 1024 * 1024;
/// One sparse index entry per this many records (of the segment, or of one key).
const SPARSE_EVERY: u64 = 256;
/// Read buffer of a [`JournalReader`].
const READ_BUFFER: usize = 64 * 1024;

/// When appended records are forced to the disk (`fsync`). Records reach the operating
/// system at every append whatever the policy, so a killed process loses at most the
/// record it was writing; the policy is about a crash of the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// Never: the operating system writes back when it wants.
    Never,
    /// By [`Journal::tick`] (or [`Journal::due_sync`]) at least this long after the last
    /// one; the writer calls it periodically, appends never wait for the disk.
    Interval(Duration),
    /// After every append.
    Always,
}

impl FsyncPolicy {
    /// `never`, `interval` (with `interval`) or `always`, as configuration files spell it.
    pub fn parse(name: &str, interval: Duration) -> Result<Self, String> {
        match name {
            "never" => Ok(FsyncPolicy::Never),
            "always" => Ok(FsyncPolicy::Always),
            "interval" if interval.is_zero() => {
                Err("fsync \"interval\" needs an interval > 0".into())
            }
            "interval" => Ok(FsyncPolicy::Interval(interval)),
            other => Err(format!(
                "fsync must be \"never\", \"interval\" or \"always\", got {other:?}"
            )),
        }
    }
}

/// Journal configuration. `Default` has no directory: set `dir`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalOptions {
    /// The journal's directory (created when missing); one publisher per directory.
    pub dir: PathBuf,
    /// A new segment is started when the next record would make the current one larger.
    pub segment_bytes: u64,
    /// Oldest segments are deleted while the journal is larger (0: no bound).
    pub retention_bytes: u64,
    /// Segments whose newest frame is older are deleted (zero: no bound).
    pub retention_age: Duration,
    /// When appends are forced to the disk.
    pub fsync: FsyncPolicy,
}

impl Default for JournalOptions {
    fn default() -> Self {
        JournalOptions {
            dir: PathBuf::new(),
            segment_bytes: DEFAULT_SEGMENT_BYTES,
            retention_bytes: DEFAULT_RETENTION_BYTES,
            retention_age: DEFAULT_RETENTION_AGE,
            fsync: FsyncPolicy::Interval(DEFAULT_FSYNC_INTERVAL),
        }
    }
}

impl JournalOptions {
    /// Options for `dir`, defaults otherwise.
    pub fn in_dir(dir: impl Into<PathBuf>) -> Self {
        JournalOptions {
            dir: dir.into(),
            ..Default::default()
        }
    }
}

/// The journal directory a publisher bound at `endpoint` uses when none is configured:
/// `<temp dir>/tradewire/journal/<endpoint with every char outside [A-Za-z0-9._-] as _>`
/// (not next to an ipc socket: services leave their socket directory empty on exit).
pub fn default_dir(endpoint: &str) -> PathBuf {
    default_state_path("journal", endpoint, "")
}

/// `<temp dir>/tradewire/<kind>/<endpoint, chars outside [A-Za-z0-9._-] as _><suffix>`:
/// where a process keeps durable state of an endpoint when no path is configured.
pub(crate) fn default_state_path(kind: &str, endpoint: &str, suffix: &str) -> PathBuf {
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

/// What the journal holds of one publisher id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublisherRange {
    /// The publisher id.
    pub publisher_id: u64,
    /// Oldest seq still held.
    pub first_seq: u64,
    /// Newest seq held.
    pub last_seq: u64,
    /// Newest key_seq held per key (keyed channels; empty key excluded).
    pub last_key_seq: BTreeMap<String, u64>,
    /// Send time of the newest frame, ns since the Unix epoch.
    pub last_send_ns: u64,
}

/// Counters of one open journal.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JournalStats {
    /// Records appended since open.
    pub appended: u64,
    /// Bytes appended since open (records with their headers).
    pub appended_bytes: u64,
    /// `fsync` calls made.
    pub fsyncs: u64,
    /// Segments deleted by retention since open.
    pub segments_deleted: u64,
    /// Bytes cut off at open (torn or corrupt tails).
    pub truncated_bytes: u64,
    /// Records found at open.
    pub recovered_records: u64,
    /// Segments whose index was read from their index file at open, not scanned.
    pub indexed_segments: u64,
}

/// First / last key_seq of one key in a segment, with a sparse key_seq -> offset index.
#[derive(Debug, Clone, Default)]
struct KeyIndex {
    first: u64,
    last: u64,
    count: u64,
    sparse: Vec<(u64, u64)>,
}

/// The in-memory index of one segment file.
#[derive(Debug)]
struct Segment {
    path: PathBuf,
    /// Bytes of whole records (and the magic) in the file.
    size: u64,
    publisher_id: u64,
    first_seq: u64,
    last_seq: u64,
    last_send_ns: u64,
    records: u64,
    /// (seq, offset of its record), every `SPARSE_EVERY` records.
    sparse: Vec<(u64, u64)>,
    keys: HashMap<String, KeyIndex>,
}

impl Segment {
    fn new(path: PathBuf) -> Self {
        Segment {
            path,
            size: SEGMENT_MAGIC.len() as u64,
            publisher_id: 0,
            first_seq: 0,
            last_seq: 0,
            last_send_ns: 0,
            records: 0,
            sparse: Vec::new(),
            keys: HashMap::new(),
        }
    }

    /// Adds the record of `env` at `offset`, `len` bytes long, to the index.
    fn index(&mut self, env: &wire::Envelope<'_>, offset: u64, len: u64) {
        if self.records == 0 {
            self.publisher_id = env.publisher_id;
            self.first_seq = env.seq;
        }
        if self.records.is_multiple_of(SPARSE_EVERY) {
            self.sparse.push((env.seq, offset));
        }
        self.records += 1;
        self.last_seq = env.seq;
        self.last_send_ns = env.send_ts_ns;
        self.size = offset + len;
        if !env.key.is_empty() {
            let k = match self.keys.get_mut(env.key) {
                Some(k) => k,
                None => self.keys.entry(env.key.to_owned()).or_default(),
            };
            if k.count == 0 {
                k.first = env.key_seq;
            }
            if k.count % SPARSE_EVERY == 0 {
                k.sparse.push((env.key_seq, offset));
            }
            k.count += 1;
            k.last = env.key_seq;
        }
    }

    /// Whether `env` may follow this segment's records.
    fn accepts(&self, env: &wire::Envelope<'_>) -> bool {
        self.records == 0 || (env.publisher_id == self.publisher_id && env.seq > self.last_seq)
    }
}

/// Offset of the last sparse entry numbered at most `from` (else `start`).
fn sparse_offset(sparse: &[(u64, u64)], from: u64, start: u64) -> u64 {
    let i = sparse.partition_point(|&(n, _)| n <= from);
    if i == 0 {
        start
    } else {
        sparse[i - 1].1
    }
}

fn segment_name(number: u64) -> String {
    format!("{number:020}{SEGMENT_SUFFIX}")
}

/// A file's modification time, in ns since the epoch (0 when the system has none).
fn modified_ns(meta: &fs::Metadata) -> u64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// The index file of segment `path`: same name, [`INDEX_SUFFIX`].
fn index_path(path: &Path) -> PathBuf {
    path.with_extension(&INDEX_SUFFIX[1..])
}

/// Writes the index of a segment no longer written (`NNN.twi`, module documentation),
/// so the next open reads it instead of scanning the segment. Written to a temporary
/// file and renamed: a crash leaves no half index.
fn write_index(seg: &Segment) -> io::Result<()> {
    fn pairs(out: &mut Vec<u8>, v: &[(u64, u64)]) {
        out.extend_from_slice(&(v.len() as u64).to_le_bytes());
        for (a, b) in v {
            out.extend_from_slice(&a.to_le_bytes());
            out.extend_from_slice(&b.to_le_bytes());
        }
    }
    let mut out = Vec::with_capacity(256 + 16 * seg.sparse.len());
    out.extend_from_slice(&INDEX_MAGIC);
    for v in [
        modified_ns(&fs::metadata(&seg.path)?),
        seg.size,
        seg.publisher_id,
        seg.first_seq,
        seg.last_seq,
        seg.last_send_ns,
        seg.records,
    ] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    pairs(&mut out, &seg.sparse);
    let mut keys: Vec<_> = seg.keys.iter().collect();
    keys.sort_by(|a, b| a.0.cmp(b.0));
    out.extend_from_slice(&(keys.len() as u64).to_le_bytes());
    for (key, k) in keys {
        out.extend_from_slice(&(key.len() as u64).to_le_bytes());
        out.extend_from_slice(key.as_bytes());
        for v in [k.first, k.last, k.count] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        pairs(&mut out, &k.sparse);
    }
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    let path = index_path(&seg.path);
    let tmp = path.with_extension("twi.tmp");
    fs::write(&tmp, &out)?;
    fs::rename(&tmp, &path)
}

/// The index of segment `path` from its index file, when there is one that is whole
/// and describes the segment as it is on disk (`file_len` bytes).
fn read_index(path: &Path, meta: &fs::Metadata) -> Option<Segment> {
    struct Cursor<'a>(&'a [u8]);
    impl Cursor<'_> {
        fn u64(&mut self) -> Option<u64> {
            let (head, rest) = self.0.split_first_chunk::<8>()?;
            self.0 = rest;
            Some(u64::from_le_bytes(*head))
        }
        fn pairs(&mut self) -> Option<Vec<(u64, u64)>> {
            let n = usize::try_from(self.u64()?).ok()?;
            if n > self.0.len() / 16 {
                return None;
            }
            (0..n).map(|_| Some((self.u64()?, self.u64()?))).collect()
        }
    }
    let bytes = fs::read(index_path(path)).ok()?;
    let (body, crc) = bytes.split_last_chunk::<4>()?;
    if crc32fast::hash(body) != u32::from_le_bytes(*crc) {
        return None;
    }
    let body = body.strip_prefix(&INDEX_MAGIC)?;
    let mut c = Cursor(body);
    let mut seg = Segment::new(path.to_path_buf());
    let modified = c.u64()?;
    seg.size = c.u64()?;
    if seg.size != meta.len() || modified != modified_ns(meta) {
        return None; // changed since (or not the segment it was written for)
    }
    seg.publisher_id = c.u64()?;
    seg.first_seq = c.u64()?;
    seg.last_seq = c.u64()?;
    seg.last_send_ns = c.u64()?;
    seg.records = c.u64()?;
    seg.sparse = c.pairs()?;
    let keys = c.u64()?;
    for _ in 0..keys {
        let len = usize::try_from(c.u64()?).ok()?;
        if len > c.0.len() {
            return None;
        }
        let (key, rest) = c.0.split_at(len);
        c.0 = rest;
        let key = std::str::from_utf8(key).ok()?.to_owned();
        let k = KeyIndex {
            first: c.u64()?,
            last: c.u64()?,
            count: c.u64()?,
            sparse: c.pairs()?,
        };
        seg.keys.insert(key, k);
    }
    c.0.is_empty().then_some(seg)
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg.into())
}

/// Reads one record from `r` into `buf`: Ok(true) when a whole record with a good CRC
/// was read, Ok(false) at a clean end of file, Err(InvalidData) for a torn or bad one.
fn read_record(r: &mut impl Read, buf: &mut Vec<u8>) -> io::Result<bool> {
    let mut head = [0u8; RECORD_HEADER];
    let mut got = 0;
    while got < RECORD_HEADER {
        match r.read(&mut head[got..]) {
            Ok(0) if got == 0 => return Ok(false),
            Ok(0) => return Err(io::Error::new(io::ErrorKind::InvalidData, "torn header")),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
    let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
    if len == 0 || len > MAX_RECORD {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "bad length"));
    }
    buf.clear();
    buf.resize(len, 0);
    r.read_exact(buf).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => io::Error::new(io::ErrorKind::InvalidData, "torn frame"),
        _ => e,
    })?;
    if crc32fast::hash(buf) != crc {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "bad crc"));
    }
    Ok(true)
}

/// Name of the lock file in a journal directory.
pub const LOCK_FILE: &str = "LOCK";

/// Locks `dir` for one writer; the error names the process holding it.
fn lock_dir(dir: &Path) -> io::Result<File> {
    let path = dir.join(LOCK_FILE);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                format!(
                    "{} is in use by another publisher{}: one journal directory per publisher",
                    dir.display(),
                    if holder.is_empty() {
                        String::new()
                    } else {
                        format!(" (process {holder})")
                    }
                ),
            ));
        }
        Err(fs::TryLockError::Error(e)) => return Err(e),
    }
    file.set_len(0)?;
    file.write_all(std::process::id().to_string().as_bytes())?;
    Ok(file)
}

/// Scans segment `path`: its index, and the number of bytes after the last good record
/// (cut off by the caller).
fn scan_segment(path: &Path) -> io::Result<(Segment, u64)> {
    let file = File::open(path)?;
    let file_len = file.metadata()?.len();
    let mut r = BufReader::with_capacity(READ_BUFFER, file);
    let mut seg = Segment::new(path.to_path_buf());
    let mut magic = [0u8; 8];
    if file_len < magic.len() as u64 {
        // Torn while being created: nothing in it.
        seg.size = 0;
        return Ok((seg, file_len));
    }
    r.read_exact(&mut magic)?;
    if magic != SEGMENT_MAGIC {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: not a tradewire journal segment", path.display()),
        ));
    }
    let mut buf = Vec::new();
    let mut offset = seg.size;
    loop {
        match read_record(&mut r, &mut buf) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) if e.kind() == io::ErrorKind::InvalidData => break,
            Err(e) => return Err(e),
        }
        let Ok(env) = wire::decode_with_limit(&buf, usize::MAX) else {
            break;
        };
        if !seg.accepts(&env) {
            break;
        }
        let len = (RECORD_HEADER + buf.len()) as u64;
        seg.index(&env, offset, len);
        offset += len;
    }
    let cut = file_len - seg.size;
    Ok((seg, cut))
}

impl Drop for Journal {
    /// Writes the index of the segment being written (it is never written again), so the
    /// next open need not scan it. A process killed before this leaves it to be scanned.
    fn drop(&mut self) {
        if let (Some(_), Some(seg)) = (&self.file, self.segments.back()) {
            if seg.records > 0 {
                let _ = write_index(seg);
            }
        }
    }
}

/// An fsync handed out by [`Journal::due_sync`]: a handle on the segment being written.
#[derive(Debug)]
pub struct DueSync(File);

impl DueSync {
    /// Forces what was appended to that segment to the disk.
    pub fn run(self) -> io::Result<()> {
        self.0.sync_data()
    }
}

/// An append-only journal of one publisher's frames (module documentation).
#[derive(Debug)]
pub struct Journal {
    options: JournalOptions,
    /// `LOCK` in the directory, locked (`flock`) while this journal is open: one writer
    /// per directory. The lock goes with the process, `kill -9` included.
    _lock: File,
    /// Oldest first; the last one is being written when `file` is set.
    segments: VecDeque<Segment>,
    file: Option<File>,
    next_number: u64,
    dirty: bool,
    last_sync: Instant,
    record: Vec<u8>,
    stats: JournalStats,
}

impl Journal {
    /// Opens (creating) the journal in `options.dir`: scans every segment, cuts off torn
    /// or corrupt tails, deletes empty segments, applies retention.
    pub fn open(options: JournalOptions) -> io::Result<Journal> {
        if options.dir.as_os_str().is_empty() {
            return Err(invalid("journal directory not set"));
        }
        if options.segment_bytes < 1024 {
            return Err(invalid(format!(
                "segment_bytes must be at least 1024, got {}",
                options.segment_bytes
            )));
        }
        if let FsyncPolicy::Interval(d) = options.fsync {
            if d.is_zero() {
                return Err(invalid("fsync interval must be > 0"));
            }
        }
        fs::create_dir_all(&options.dir)?;
        let lock = lock_dir(&options.dir)?;
        let mut numbers = Vec::new();
        for entry in fs::read_dir(&options.dir)? {
            let name = entry?.file_name();
            let Some(name) = name.to_str() else { continue };
            let Some(stem) = name.strip_suffix(SEGMENT_SUFFIX) else {
                continue;
            };
            if let Ok(n) = stem.parse::<u64>() {
                numbers.push(n);
            }
        }
        numbers.sort_unstable();
        let mut stats = JournalStats::default();
        let mut segments = VecDeque::new();
        for &n in &numbers {
            let path = options.dir.join(segment_name(n));
            if let Some(seg) = read_index(&path, &fs::metadata(&path)?) {
                stats.indexed_segments += 1;
                stats.recovered_records += seg.records;
                segments.push_back(seg);
                continue;
            }
            let (seg, cut) = scan_segment(&path)?;
            if cut > 0 {
                stats.truncated_bytes += cut;
                OpenOptions::new()
                    .write(true)
                    .open(&path)?
                    .set_len(seg.size)?;
            }
            if seg.records == 0 {
                fs::remove_file(&path)?;
                let _ = fs::remove_file(index_path(&path));
                continue;
            }
            stats.recovered_records += seg.records;
            // Never written again (a journal opened for writing starts a segment of its
            // own): the next open reads this index instead of the segment.
            write_index(&seg)?;
            segments.push_back(seg);
        }
        let mut journal = Journal {
            _lock: lock,
            next_number: numbers.last().map_or(1, |n| n + 1),
            options,
            segments,
            file: None,
            dirty: false,
            last_sync: Instant::now(),
            record: Vec::new(),
            stats,
        };
        journal.apply_retention(now_ns())?;
        Ok(journal)
    }

    /// The options it was opened with.
    pub fn options(&self) -> &JournalOptions {
        &self.options
    }

    /// A copy of the counters.
    pub fn stats(&self) -> JournalStats {
        self.stats.clone()
    }

    /// Bytes of all segments.
    pub fn size(&self) -> u64 {
        self.segments.iter().map(|s| s.size).sum()
    }

    /// Number of segment files.
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// Appends one published frame (its envelope says publisher id, seq, key, key_seq).
    /// A frame of another publisher id than the last one starts a new segment; within
    /// one id, `seq` must grow.
    pub fn append(&mut self, frame: &[u8]) -> io::Result<()> {
        let env = wire::decode_with_limit(frame, usize::MAX)
            .map_err(|e| invalid(format!("not a frame: {e}")))?;
        if env.seq == 0 {
            return Err(invalid("control frames (seq 0) are not journaled"));
        }
        let len = u32::try_from(frame.len())
            .ok()
            .filter(|&l| l as usize <= MAX_RECORD)
            .ok_or_else(|| invalid("frame too large for the journal"))?;
        let rec_len = (RECORD_HEADER + frame.len()) as u64;
        let fits = match (self.file.is_some(), self.segments.back()) {
            (true, Some(seg)) => {
                seg.records == 0 || seg.size + rec_len <= self.options.segment_bytes
            }
            _ => false,
        };
        let same_id = self
            .segments
            .back()
            .is_some_and(|s| s.records == 0 || s.publisher_id == env.publisher_id);
        if !fits || !same_id {
            self.roll()?;
        }
        let seg = self
            .segments
            .back_mut()
            .ok_or_else(|| invalid("no segment"))?;
        if !seg.accepts(&env) {
            return Err(invalid(format!(
                "seq {} of publisher {:016x} after {}",
                env.seq, env.publisher_id, seg.last_seq
            )));
        }
        self.record.clear();
        self.record.extend_from_slice(&len.to_le_bytes());
        self.record
            .extend_from_slice(&crc32fast::hash(frame).to_le_bytes());
        self.record.extend_from_slice(frame);
        let file = self.file.as_mut().ok_or_else(|| invalid("not writing"))?;
        // One write per record: a killed process leaves at most this record torn.
        file.write_all(&self.record)?;
        let offset = seg.size;
        seg.index(&env, offset, rec_len);
        self.stats.appended += 1;
        self.stats.appended_bytes += rec_len;
        self.dirty = true;
        if self.options.fsync == FsyncPolicy::Always {
            self.sync()?;
        }
        Ok(())
    }

    /// Periodic work: the interval fsync (when due), and retention by age. The interval
    /// fsync is never made by [`Journal::append`]: whoever appends must call this (or
    /// [`Journal::due_sync`]) at least once per interval.
    pub fn tick(&mut self) -> io::Result<()> {
        if let Some(due) = self.due_sync()? {
            due.run()?;
        }
        self.apply_retention(now_ns())
    }

    /// The interval fsync, when due, as a job to run without holding the journal: the
    /// appending thread goes on while the disk catches up. Counted as done when handed out.
    pub fn due_sync(&mut self) -> io::Result<Option<DueSync>> {
        let FsyncPolicy::Interval(d) = self.options.fsync else {
            return Ok(None);
        };
        if !self.dirty || self.last_sync.elapsed() < d {
            return Ok(None);
        }
        let Some(file) = &self.file else {
            return Ok(None);
        };
        let file = file.try_clone()?;
        self.dirty = false;
        self.last_sync = Instant::now();
        self.stats.fsyncs += 1;
        Ok(Some(DueSync(file)))
    }

    /// Forces appended records to the disk.
    pub fn sync(&mut self) -> io::Result<()> {
        if let Some(file) = &self.file {
            if self.dirty {
                file.sync_data()?;
                self.stats.fsyncs += 1;
            }
        }
        self.dirty = false;
        self.last_sync = Instant::now();
        Ok(())
    }

    /// Starts a new segment file (after syncing the current one unless policy `never`).
    fn roll(&mut self) -> io::Result<()> {
        if self.options.fsync != FsyncPolicy::Never {
            self.sync()?;
        }
        if let Some(seg) = self.segments.back() {
            if self.file.is_some() && seg.records == 0 {
                // An empty segment just started (another id came first): reuse it.
                return Ok(());
            }
            if self.file.is_some() {
                write_index(seg)?;
            }
        }
        let number = self.next_number;
        self.next_number += 1;
        let path = self.options.dir.join(segment_name(number));
        let mut file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)?;
        file.write_all(&SEGMENT_MAGIC)?;
        self.file = Some(file);
        self.segments.push_back(Segment::new(path));
        if self.options.fsync != FsyncPolicy::Never {
            // The new file's directory entry, so a crash cannot lose a whole segment.
            if let Ok(dir) = File::open(&self.options.dir) {
                let _ = dir.sync_all();
            }
        }
        self.apply_retention(now_ns())
    }

    /// Deletes the oldest segments while over the size bound or older than the age
    /// bound; never the segment being written, nor the last one.
    fn apply_retention(&mut self, now: u64) -> io::Result<()> {
        let age = u64::try_from(self.options.retention_age.as_nanos()).unwrap_or(u64::MAX);
        let mut total = self.size();
        while self.segments.len() > 1 {
            let oldest = &self.segments[0];
            let too_big = self.options.retention_bytes > 0 && total > self.options.retention_bytes;
            let too_old = age > 0 && oldest.last_send_ns.saturating_add(age) < now;
            if !too_big && !too_old {
                break;
            }
            match fs::remove_file(&oldest.path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
            let _ = fs::remove_file(index_path(&oldest.path));
            total -= oldest.size;
            self.segments.pop_front();
            self.stats.segments_deleted += 1;
        }
        Ok(())
    }

    /// What the journal holds of `publisher_id`, if anything.
    pub fn publisher(&self, publisher_id: u64) -> Option<PublisherRange> {
        let mut out: Option<PublisherRange> = None;
        for seg in self
            .segments
            .iter()
            .filter(|s| s.publisher_id == publisher_id && s.records > 0)
        {
            let r = out.get_or_insert_with(|| PublisherRange {
                publisher_id,
                first_seq: seg.first_seq,
                ..Default::default()
            });
            r.last_seq = seg.last_seq;
            r.last_send_ns = seg.last_send_ns;
            for (key, k) in &seg.keys {
                r.last_key_seq.insert(key.clone(), k.last);
            }
        }
        out
    }

    /// Every publisher id held, oldest first (by its newest frame).
    pub fn publishers(&self) -> Vec<PublisherRange> {
        let mut ids: Vec<u64> = Vec::new();
        for seg in self.segments.iter().rev().filter(|s| s.records > 0) {
            if !ids.contains(&seg.publisher_id) {
                ids.push(seg.publisher_id);
            }
        }
        ids.iter()
            .rev()
            .filter_map(|&id| self.publisher(id))
            .collect()
    }

    /// The publisher id (other than `current`) that wrote last, with what is held of it:
    /// the previous run of a restarted publisher.
    pub fn previous(&self, current: u64) -> Option<PublisherRange> {
        let id = self
            .segments
            .iter()
            .rev()
            .find(|s| s.records > 0 && s.publisher_id != current)?
            .publisher_id;
        self.publisher(id)
    }

    /// A reader of the frames of `publisher_id` numbered `from..=to`: by `seq`, or by
    /// `key_seq` of `key` when `key` is not empty. Only the segments whose ranges
    /// overlap are read, from their nearest indexed offset; records appended after this
    /// call are not seen.
    pub fn read(&self, publisher_id: u64, key: &str, from: u64, to: u64) -> JournalReader {
        let mut pieces = VecDeque::new();
        for seg in self
            .segments
            .iter()
            .filter(|s| s.publisher_id == publisher_id && s.records > 0)
        {
            let start = SEGMENT_MAGIC.len() as u64;
            let offset = if key.is_empty() {
                if seg.last_seq < from || seg.first_seq > to {
                    continue;
                }
                sparse_offset(&seg.sparse, from, start)
            } else {
                match seg.keys.get(key) {
                    Some(k) if k.last >= from && k.first <= to => {
                        sparse_offset(&k.sparse, from, start)
                    }
                    _ => continue,
                }
            };
            pieces.push_back(Piece {
                path: seg.path.clone(),
                start: offset,
                end: seg.size,
            });
        }
        JournalReader {
            pieces,
            current: None,
            publisher_id,
            key: key.to_owned(),
            from,
            to,
            done: false,
            buf: Vec::new(),
        }
    }
}

/// A byte range of one segment to read.
#[derive(Debug)]
struct Piece {
    path: PathBuf,
    start: u64,
    end: u64,
}

/// Frames of one publisher id in a number range, read lazily, one record at a time, in
/// increasing number (see [`Journal::read`]). Independent of the [`Journal`]: a segment
/// deleted by retention before the reader reaches it is skipped (its numbers never come).
#[derive(Debug)]
pub struct JournalReader {
    pieces: VecDeque<Piece>,
    current: Option<(BufReader<File>, u64)>,
    publisher_id: u64,
    key: String,
    from: u64,
    to: u64,
    done: bool,
    buf: Vec<u8>,
}

impl JournalReader {
    /// The next frame of the range with its number (seq, or key_seq when keyed), or
    /// None at the end. A damaged segment ends that segment's part of the range.
    pub fn next_frame(&mut self) -> Option<(u64, Vec<u8>)> {
        while !self.done {
            let Some((reader, left)) = &mut self.current else {
                let piece = self.pieces.pop_front()?;
                let Ok(mut file) = File::open(&piece.path) else {
                    continue;
                };
                if file.seek(SeekFrom::Start(piece.start)).is_err() {
                    continue;
                }
                let left = piece.end.saturating_sub(piece.start);
                self.current = Some((BufReader::with_capacity(READ_BUFFER, file), left));
                continue;
            };
            if *left < RECORD_HEADER as u64 {
                self.current = None;
                continue;
            }
            match read_record(reader, &mut self.buf) {
                Ok(true) => {}
                _ => {
                    self.current = None;
                    continue;
                }
            }
            *left = left.saturating_sub((RECORD_HEADER + self.buf.len()) as u64);
            let Ok(env) = wire::decode_with_limit(&self.buf, usize::MAX) else {
                self.current = None;
                continue;
            };
            if env.publisher_id != self.publisher_id {
                self.current = None;
                continue;
            }
            let number = if self.key.is_empty() {
                env.seq
            } else if env.key == self.key {
                env.key_seq
            } else {
                continue;
            };
            if number < self.from {
                continue;
            }
            if number > self.to {
                self.done = true;
                return None;
            }
            return Some((number, std::mem::take(&mut self.buf)));
        }
        None
    }
}

impl Iterator for JournalReader {
    type Item = (u64, Vec<u8>);

    fn next(&mut self) -> Option<Self::Item> {
        self.next_frame()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Dir(PathBuf);

    impl Dir {
        fn new() -> Self {
            static N: AtomicUsize = AtomicUsize::new(0);
            let dir = std::env::temp_dir().join(format!(
                "tw-journal-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = fs::remove_dir_all(&dir);
            Dir(dir)
        }

        fn options(&self) -> JournalOptions {
            JournalOptions {
                fsync: FsyncPolicy::Never,
                ..JournalOptions::in_dir(&self.0)
            }
        }

        fn segments(&self) -> Vec<PathBuf> {
            let mut v: Vec<PathBuf> = fs::read_dir(&self.0)
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|x| x == "twj"))
                .collect();
            v.sort();
            v
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn frame(pid: u64, seq: u64, key: &str, key_seq: u64, ts: u64) -> Vec<u8> {
        let payload = vec![seq as u8; 20];
        wire::Envelope {
            channel: "market_data",
            key,
            flags: 0,
            type_id: 1,
            fingerprint: 7,
            publisher_id: pid,
            seq,
            key_seq,
            send_ts_ns: ts,
            payload: &payload,
        }
        .to_vec()
        .unwrap()
    }

    /// `n` frames of `pid`, keys A/B alternating; returns them.
    fn fill(j: &mut Journal, pid: u64, n: u64) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let (mut a, mut b) = (0, 0);
        for seq in 1..=n {
            let (key, ks) = if seq % 2 == 1 {
                a += 1;
                ("A", a)
            } else {
                b += 1;
                ("B", b)
            };
            let f = frame(pid, seq, key, ks, now_ns());
            j.append(&f).unwrap();
            out.push(f);
        }
        out
    }

    #[test]
    fn one_writer_per_directory() {
        let dir = Dir::new();
        let first = Journal::open(dir.options()).unwrap();
        let err = Journal::open(dir.options()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        let msg = err.to_string();
        assert!(msg.contains("in use by another publisher"), "{msg}");
        assert!(
            msg.contains(&format!("process {}", std::process::id())),
            "{msg}"
        );
        drop(first);
        Journal::open(dir.options()).unwrap();
    }

    #[test]
    fn round_trip_and_reopen() {
        let d = Dir::new();
        let mut j = Journal::open(d.options()).unwrap();
        let frames = fill(&mut j, 11, 1000);
        let got: Vec<_> = j.read(11, "", 1, 1000).collect();
        assert_eq!(got.len(), 1000);
        for (i, (n, f)) in got.iter().enumerate() {
            assert_eq!(*n, i as u64 + 1);
            assert_eq!(f, &frames[i]);
        }
        let mid: Vec<u64> = j.read(11, "", 300, 310).map(|(n, _)| n).collect();
        assert_eq!(mid, (300..=310).collect::<Vec<_>>());
        assert_eq!(j.read(12, "", 1, 10).count(), 0);
        drop(j);

        let mut j = Journal::open(d.options()).unwrap();
        assert_eq!(j.stats().recovered_records, 1000);
        assert_eq!(j.stats().truncated_bytes, 0);
        let p = j.previous(22).unwrap();
        assert_eq!((p.publisher_id, p.first_seq, p.last_seq), (11, 1, 1000));
        assert_eq!(p.last_key_seq.get("A"), Some(&500));
        assert_eq!(p.last_key_seq.get("B"), Some(&500));
        // A new id after a reopen goes to a segment of its own.
        fill(&mut j, 22, 10);
        assert_eq!(j.segment_count(), 2);
        assert_eq!(j.previous(22).unwrap().publisher_id, 11);
        assert_eq!(j.previous(11).unwrap().publisher_id, 22);
        let ids: Vec<u64> = j.publishers().iter().map(|p| p.publisher_id).collect();
        assert_eq!(ids, [11, 22]);
        assert_eq!(j.read(11, "", 999, 2000).count(), 2);
        assert!(j.append(&frame(22, 5, "A", 1, 0)).is_err(), "seq must grow");
    }

    #[test]
    fn torn_tail_is_cut_off() {
        let d = Dir::new();
        let mut j = Journal::open(d.options()).unwrap();
        fill(&mut j, 5, 100);
        drop(j);
        let seg = d.segments().pop().unwrap();
        let len = fs::metadata(&seg).unwrap().len();
        // A record cut mid-frame, as a kill -9 inside write() can leave it.
        let extra = frame(5, 101, "A", 51, 0);
        let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
        f.write_all(&(extra.len() as u32).to_le_bytes()).unwrap();
        f.write_all(&crc32fast::hash(&extra).to_le_bytes()).unwrap();
        f.write_all(&extra[..extra.len() / 2]).unwrap();
        drop(f);
        let mut j = Journal::open(d.options()).unwrap();
        assert_eq!(fs::metadata(&seg).unwrap().len(), len);
        assert_eq!(j.stats().truncated_bytes as usize, 8 + extra.len() / 2);
        assert_eq!(j.publisher(5).unwrap().last_seq, 100);
        // A flipped bit in the last record: that record goes, the rest stays.
        drop(j);
        let mut bytes = fs::read(&seg).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        fs::write(&seg, &bytes).unwrap();
        // A change within the file system's timestamp granularity keeps size and time:
        // without its index the segment is scanned.
        fs::remove_file(index_path(&seg)).unwrap();
        j = Journal::open(d.options()).unwrap();
        assert_eq!(j.publisher(5).unwrap().last_seq, 99);
        assert_eq!(j.read(5, "", 1, 200).count(), 99);
        // Appending goes on after the cut.
        j.append(&frame(6, 1, "A", 1, now_ns())).unwrap();
        assert_eq!(j.read(6, "", 1, 1).count(), 1);
        // A torn header (3 bytes) is cut too.
        drop(j);
        let seg = d.segments().pop().unwrap();
        let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
        f.write_all(&[1, 2, 3]).unwrap();
        drop(f);
        let j = Journal::open(d.options()).unwrap();
        assert_eq!(j.stats().truncated_bytes, 3);
        assert_eq!(j.publisher(6).unwrap().last_seq, 1);
    }

    #[test]
    fn index_files_spare_the_scan() {
        let d = Dir::new();
        let opts = JournalOptions {
            segment_bytes: 8 * 1024,
            ..d.options()
        };
        let mut j = Journal::open(opts.clone()).unwrap();
        fill(&mut j, 5, 500);
        let segments = j.segment_count() as u64;
        assert!(segments > 3, "{segments}");
        drop(j);
        let summary = |j: &Journal| {
            (
                j.publishers(),
                j.read(5, "", 1, 500).map(|(n, _)| n).collect::<Vec<_>>(),
                j.read(5, "B", 1, 500).map(|(n, _)| n).collect::<Vec<_>>(),
                j.size(),
            )
        };
        let indexed = Journal::open(opts.clone()).unwrap();
        assert_eq!(indexed.stats().indexed_segments, segments);
        assert_eq!(indexed.stats().recovered_records, 500);
        let want = summary(&indexed);
        assert_eq!(want.1, (1..=500).collect::<Vec<_>>());
        drop(indexed);
        // Without index files, or with a damaged one, the same from a scan.
        let first = d.segments()[0].clone();
        let mut bytes = fs::read(index_path(&first)).unwrap();
        bytes[20] ^= 0x01;
        fs::write(index_path(&first), &bytes).unwrap();
        let damaged = Journal::open(opts.clone()).unwrap();
        assert_eq!(damaged.stats().indexed_segments, segments - 1);
        assert_eq!(summary(&damaged), want);
        drop(damaged);
        for seg in d.segments() {
            let _ = fs::remove_file(index_path(&seg));
        }
        let scanned = Journal::open(opts).unwrap();
        assert_eq!(scanned.stats().indexed_segments, 0);
        assert_eq!(summary(&scanned), want);
    }

    #[test]
    fn segments_roll_and_retention_by_size() {
        let d = Dir::new();
        let opts = JournalOptions {
            segment_bytes: 8 * 1024,
            retention_bytes: 32 * 1024,
            ..d.options()
        };
        let mut j = Journal::open(opts.clone()).unwrap();
        fill(&mut j, 9, 2000);
        assert!(j.size() <= 32 * 1024 + 8 * 1024, "{}", j.size());
        assert!(j.stats().segments_deleted > 0);
        let r = j.publisher(9).unwrap();
        assert!(r.first_seq > 1);
        assert_eq!(r.last_seq, 2000);
        let got: Vec<u64> = j.read(9, "", 1, 2000).map(|(n, _)| n).collect();
        assert_eq!(got, (r.first_seq..=2000).collect::<Vec<_>>());
        for seg in &j.segments {
            assert!(seg.size <= 8 * 1024);
        }
        assert_eq!(d.segments().len(), j.segment_count());
    }

    #[test]
    fn retention_by_age() {
        let d = Dir::new();
        let small = JournalOptions {
            segment_bytes: 4 * 1024,
            retention_age: Duration::ZERO,
            ..d.options()
        };
        let mut j = Journal::open(small.clone()).unwrap();
        let old = now_ns() - 3_600_000_000_000;
        for seq in 1..=200 {
            j.append(&frame(3, seq, "", seq, old)).unwrap();
        }
        let before = j.segment_count();
        assert!(before > 2, "{before}");
        drop(j);
        let aged = JournalOptions {
            retention_age: Duration::from_secs(60),
            ..small
        };
        // Opening applies retention: every old segment but the last one goes.
        let mut j = Journal::open(aged).unwrap();
        assert_eq!(j.segment_count(), 1);
        assert_eq!(d.segments().len(), 1);
        assert!(j.publisher(3).unwrap().first_seq > 150);
        assert_eq!(j.publisher(3).unwrap().last_seq, 200);
        // Writing starts a new segment; the old last one goes then.
        for seq in 201..=260 {
            j.append(&frame(3, seq, "", seq, now_ns())).unwrap();
        }
        j.tick().unwrap();
        assert_eq!(j.publisher(3).unwrap().first_seq, 201);
        let got: Vec<u64> = j.read(3, "", 1, 300).map(|(n, _)| n).collect();
        assert_eq!(got, (201..=260).collect::<Vec<_>>());
    }

    #[test]
    fn lookup_by_key() {
        let d = Dir::new();
        let mut j = Journal::open(JournalOptions {
            segment_bytes: 16 * 1024,
            ..d.options()
        })
        .unwrap();
        let frames = fill(&mut j, 4, 3000);
        assert!(j.segment_count() > 3);
        let got: Vec<(u64, Vec<u8>)> = j.read(4, "B", 700, 710).collect();
        let nums: Vec<u64> = got.iter().map(|(n, _)| *n).collect();
        assert_eq!(nums, (700..=710).collect::<Vec<_>>());
        // key B's key_seq k is channel seq 2k.
        assert_eq!(got[0].1, frames[2 * 700 - 1]);
        assert_eq!(j.read(4, "C", 1, 10).count(), 0);
        // Only the overlapping segments are planned.
        let plan = j.read(4, "A", 1490, 1500);
        assert!(plan.pieces.len() <= 2, "{}", plan.pieces.len());
        assert_eq!(plan.count(), 11);
    }
}

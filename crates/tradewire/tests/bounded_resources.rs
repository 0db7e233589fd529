//! Bounded memory and counted rejects under hostile input, against the Rust binaries in
//! their own processes: real sockets, real frames, memory read from /proc.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tradewire::catalog::SchemaMessage;
use tradewire::v1;
use tradewire::wire::{self, Envelope};

const MB: u64 = 1 << 20;
const GROWTH_LIMIT: u64 = 64 * MB;

fn status_bytes(pid: u32, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"));
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<u64>()
        .unwrap()
        * 1024
}

/// The next frame `sock` receives; fails with `what` when none comes before `deadline`
/// (a hang guard: the peers answer within milliseconds when healthy).
fn recv_before(sock: &zmq::Socket, deadline: Instant, what: &str) -> Vec<u8> {
    loop {
        assert!(Instant::now() < deadline, "{what}");
        if sock.poll(zmq::POLLIN, 1000).unwrap() > 0 {
            return sock.recv_bytes(0).unwrap();
        }
    }
}

fn frame(key: &str, type_id: u16, fingerprint: u64, seq: u64, payload: &[u8]) -> Vec<u8> {
    let env = Envelope {
        channel: "market_data",
        key,
        flags: 0,
        type_id,
        fingerprint,
        publisher_id: 7,
        seq,
        key_seq: seq,
        send_ts_ns: 0,
        payload,
    };
    let mut out = Vec::new();
    env.encode_into(&mut out).unwrap();
    out
}

/// A frame announcing `len` payload bytes and carrying them.
fn oversized(len: usize) -> Vec<u8> {
    let md = v1::MarketData::TYPE;
    let mut out = frame("AAPL", md.type_id, md.fingerprint, 1, b"");
    let at = out.len() - 4;
    out[at..].copy_from_slice(&u32::try_from(len).unwrap().to_le_bytes());
    out.resize(out.len() + len, 0);
    out
}

struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A hand-made publisher sends `tradewire-subscribe` garbage of every kind, then a 256 MB
/// frame: every bad frame is counted by kind (unknown types as `unknown_type`), the
/// process's peak memory stays within 64 MB of its idle figure.
#[test]
fn subscriber_counts_garbage_by_kind_and_bounds_an_oversized_frame() {
    let dir = common::TempDir::new();
    let endpoint = dir.endpoint("md.ipc");
    let ctx = zmq::Context::new();
    let xpub = ctx.socket(zmq::XPUB).unwrap();
    xpub.set_sndhwm(0).unwrap();
    xpub.set_linger(0).unwrap();
    xpub.bind(&endpoint).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_tradewire-subscribe"))
        .args([
            "--endpoint",
            &endpoint,
            "--json",
            "--idle-timeout-ms",
            "8000",
        ])
        .args(["--connect-timeout-ms", "30000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = Reaped(child);
    let pid = child.0.id();
    let hb = v1::Heartbeat::TYPE;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let event = recv_before(&xpub, deadline, "no sync subscription");
        if event.first() == Some(&1) && event.windows(6).any(|w| w == b"~sync~") {
            let topic = &event[1..event.len() - 1];
            let key = std::str::from_utf8(&topic[b"market_data/".len()..]).unwrap();
            let mut beat = Vec::new();
            wire::encode_message(
                "market_data",
                key,
                &v1::Heartbeat::default(),
                7,
                0,
                0,
                0,
                0,
                &mut beat,
            )
            .unwrap();
            xpub.send(beat, 0).unwrap();
            break;
        }
    }
    let mut stdout = BufReader::new(child.0.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert!(line.contains("\"ready\":true"), "{line}");
    let idle = status_bytes(pid, "VmHWM");

    let md = v1::MarketData::TYPE;
    let bad_pb = [0xffu8; 4]; // a varint that never ends: no message parses it
    let good = frame("AAPL", md.type_id, md.fingerprint, 1, b"");
    let mut bad_magic = good.clone();
    let at = good.iter().position(|&b| b == 0).unwrap() + 1;
    bad_magic[at] = b'X';
    let kinds: Vec<(&str, Vec<u8>)> = vec![
        ("bad_magic", bad_magic),
        ("unknown_type", frame("AAPL", 999, 0, 1, b"")),
        ("unknown_type", frame("", 999, 0, 0, b"")),
        (
            "bad_payload",
            frame("AAPL", md.type_id, md.fingerprint, 1, &bad_pb),
        ),
        (
            "bad_payload",
            frame("", hb.type_id, hb.fingerprint, 0, &bad_pb),
        ),
        (
            "bad_payload",
            frame("", v1::SnapshotEnd::TYPE.type_id, 0, 0, &bad_pb),
        ),
    ];
    let n = 12_000;
    let mut expected = std::collections::BTreeMap::new();
    for i in 0..n {
        let (kind, f) = &kinds[i % kinds.len()];
        xpub.send(&f[..], 0).unwrap();
        *expected.entry(*kind).or_insert(0u64) += 1;
    }
    xpub.send(oversized(256 * MB as usize), 0).unwrap();
    std::thread::sleep(Duration::from_secs(4));
    let grown = status_bytes(pid, "VmHWM").saturating_sub(idle);

    let mut rest = String::new();
    for l in stdout.lines() {
        rest = l.unwrap();
    }
    let _ = child.0.wait();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.0.stderr.take().unwrap(), &mut stderr).unwrap();
    println!("subscriber peak grew {:.1} MB", grown as f64 / MB as f64);
    assert!(grown < GROWTH_LIMIT, "grew {} MB", grown / MB);
    let summary: serde_json::Value = serde_json::from_str(&rest).unwrap();
    let by_kind = &summary["summary"]["rejected_by_kind"];
    for (kind, count) in &expected {
        assert_eq!(by_kind[*kind].as_u64(), Some(*count), "{kind}: {summary}");
    }
    assert_eq!(
        summary["summary"]["rejected"].as_u64(),
        Some(n as u64),
        "{summary}"
    );
    let warnings = stderr.lines().filter(|l| l.contains("WARNING")).count();
    assert!(
        (1..=12).contains(&warnings),
        "{warnings} warning lines:\n{stderr}"
    );
}

/// 20 replay requests for a full 100,000-frame ring from peers that never read: the
/// `tradewire-publish` process grows by less than 64 MB and still answers a reading peer.
#[test]
fn unread_full_ring_replays_leave_publisher_memory_bounded() {
    let dir = common::TempDir::new();
    let endpoint = dir.endpoint("md.ipc");
    let child = Command::new(env!("CARGO_BIN_EXE_tradewire-publish"))
        .args([
            "--endpoint",
            &endpoint,
            "--count",
            "100000",
            "--ring",
            "100000",
        ])
        .args([
            "--symbols",
            "AAPL",
            "--hold-until-eof",
            "--hold-ms",
            "120000",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut child = Reaped(child);
    let pid = child.0.id();
    let ctx = zmq::Context::new();
    // The publisher's id and last seq, from the Heartbeat answering a sync subscription.
    let deadline = Instant::now() + Duration::from_secs(120);
    let (publisher_id, last) = loop {
        assert!(
            Instant::now() < deadline,
            "the publisher did not publish its 100,000"
        );
        let sub = ctx.socket(zmq::SUB).unwrap();
        sub.set_linger(0).unwrap();
        sub.connect(&endpoint).unwrap();
        sub.set_subscribe(b"market_data/~sync~0000000000000000\0")
            .unwrap();
        if sub.poll(zmq::POLLIN, 5000).unwrap() > 0 {
            let f = sub.recv_bytes(0).unwrap();
            let env = wire::decode(&f).unwrap();
            let hb: v1::Heartbeat = wire::decode_message(&env).unwrap();
            if hb.last_seq == 100_000 {
                break (env.publisher_id, hb.last_seq);
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let idle = status_bytes(pid, "VmHWM");
    let request = |from: u64| {
        let req = v1::ReplayRequest {
            channel: "market_data".into(),
            publisher_id,
            key: String::new(),
            from_seq: from,
            to_seq: last,
        };
        let mut out = Vec::new();
        wire::encode_message("market_data", "", &req, 1, 0, 0, 0, 0, &mut out).unwrap();
        out
    };
    let control = format!("{endpoint}.ctl");
    let peers: Vec<zmq::Socket> = (0..20)
        .map(|_| {
            let d = ctx.socket(zmq::DEALER).unwrap();
            d.set_linger(0).unwrap();
            d.connect(&control).unwrap();
            d.send(request(1), 0).unwrap();
            d
        })
        .collect();
    std::thread::sleep(Duration::from_secs(8));
    let grown = status_bytes(pid, "VmHWM").saturating_sub(idle);

    let reader = ctx.socket(zmq::DEALER).unwrap();
    reader.set_linger(0).unwrap();
    reader.connect(&control).unwrap();
    reader.send(request(last - 9), 0).unwrap();
    let mut seqs = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let f = recv_before(&reader, deadline, "no ReplayEnd for a reading peer");
        let env = wire::decode(&f).unwrap();
        if env.type_id == v1::ReplayEnd::TYPE.type_id {
            break;
        }
        seqs.push(env.seq);
    }
    drop(peers);
    let _ = child.0.stdin.take().unwrap().write_all(b"");
    println!("publisher peak grew {:.1} MB", grown as f64 / MB as f64);
    assert!(grown < GROWTH_LIMIT, "grew {} MB", grown / MB);
    assert_eq!(seqs, (last - 9..=last).collect::<Vec<_>>());
}

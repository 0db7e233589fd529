//! The publisher journal (WIRE.md section 7.6) with real processes: a `tradewire-publish`
//! journaling is killed with SIGKILL mid-stream, a new one is started on the same journal
//! directory, and a plain DEALER asks the NEW publisher to replay the OLD publisher id's
//! range. Also: numbers evicted from the ring are replayed from the journal, and frames
//! refused at the send high-water mark are counted `hwm_dropped`.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use tradewire::catalog::SchemaMessage;
use tradewire::journal::JournalOptions;
use tradewire::transport::{Publisher, PublisherOptions};
use tradewire::v1::{self, MarketData};
use tradewire::wire::{self, FLAG_REPLAY};

mod common;
use common::TempDir;

const CHANNEL: &str = "market_data";

fn start_publisher(
    endpoint: &str,
    journal: &Path,
    args: &[&str],
) -> (Child, BufReader<ChildStdout>, u64) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tradewire-publish"))
        .args(["--endpoint", endpoint, "--print-ready", "--journal"])
        .arg(journal)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let hex = line
        .split("\"publisher_id\":\"")
        .nth(1)
        .and_then(|r| r.get(..16))
        .unwrap_or_else(|| panic!("no ready line: {line:?}"));
    (child, out, u64::from_str_radix(hex, 16).unwrap())
}

/// Every frame of one replay answer, up to and including its ReplayEnd.
fn replay(
    dealer: &zmq::Socket,
    publisher_id: u64,
    key: &str,
    from: u64,
    to: u64,
) -> (Vec<Vec<u8>>, v1::ReplayEnd) {
    let req = v1::ReplayRequest {
        channel: CHANNEL.into(),
        publisher_id,
        key: key.into(),
        from_seq: from,
        to_seq: to,
    };
    let mut frame = Vec::new();
    wire::encode_message(CHANNEL, "", &req, 1, 0, 0, 0, 0, &mut frame).unwrap();
    dealer.send(&frame[..], 0).unwrap();
    let mut frames = Vec::new();
    loop {
        assert!(
            dealer.poll(zmq::POLLIN, 10_000).unwrap() > 0,
            "no answer after {} frames",
            frames.len()
        );
        let reply = dealer.recv_bytes(0).unwrap();
        let env = wire::decode(&reply).unwrap();
        if env.type_id == v1::ReplayEnd::TYPE.type_id {
            return (frames, wire::decode_message(&env).unwrap());
        }
        frames.push(reply);
    }
}

/// The numbers (seq, or key_seq when `key` is set) of `frames`, checking each is a
/// replayed frame of `publisher_id`.
fn numbers(frames: &[Vec<u8>], publisher_id: u64, key: &str) -> Vec<u64> {
    frames
        .iter()
        .map(|f| {
            let env = wire::decode(f).unwrap();
            assert_eq!(env.publisher_id, publisher_id);
            assert_ne!(env.flags & FLAG_REPLAY, 0);
            if key.is_empty() {
                env.seq
            } else {
                assert_eq!(env.key, key);
                env.key_seq
            }
        })
        .collect()
}

/// The handshake Heartbeat of a plain SUB on a sync topic (WIRE.md 7.1).
fn handshake(ctx: &zmq::Context, endpoint: &str) -> (u64, v1::Heartbeat) {
    let sub = ctx.socket(zmq::SUB).unwrap();
    sub.set_linger(0).unwrap();
    sub.connect(endpoint).unwrap();
    sub.set_subscribe(format!("{CHANNEL}/~sync~00000000000000aa\0").as_bytes())
        .unwrap();
    assert!(sub.poll(zmq::POLLIN, 10_000).unwrap() > 0, "no handshake");
    let frame = sub.recv_bytes(0).unwrap();
    let env = wire::decode(&frame).unwrap();
    (env.publisher_id, wire::decode_message(&env).unwrap())
}

#[test]
fn kill_9_restart_replays_the_old_id_from_the_journal() {
    let dir = TempDir::new();
    let endpoint = dir.endpoint("md");
    let journal = std::env::temp_dir().join(format!("tw-journal-it-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&journal);
    let ctx = zmq::Context::new();

    // The old publisher streams until it is killed; a SUB records what went live.
    let (mut old, _old_out, old_id) = start_publisher(
        &endpoint,
        &journal,
        &[
            "--count",
            "100000000",
            "--rate",
            "50000",
            "--symbols",
            "AAPL,MSFT,GOOG",
            "--segment-bytes",
            "65536",
            "--wait-subscription",
            "--fsync",
            "never",
        ],
    );
    let sub = ctx.socket(zmq::SUB).unwrap();
    sub.set_linger(0).unwrap();
    sub.set_rcvhwm(0).unwrap();
    sub.connect(&endpoint).unwrap();
    sub.set_subscribe(format!("{CHANNEL}/").as_bytes()).unwrap();
    let mut live: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while live.len() < 20_000 {
        assert!(Instant::now() < deadline, "only {} live frames", live.len());
        if sub.poll(zmq::POLLIN, 1000).unwrap() == 0 {
            continue;
        }
        let frame = sub.recv_bytes(0).unwrap();
        let env = wire::decode(&frame).unwrap();
        if env.seq > 0 {
            assert_eq!(env.publisher_id, old_id);
            live.insert(env.seq, frame);
        }
    }
    old.kill().unwrap(); // SIGKILL
    old.wait().unwrap();
    while sub.poll(zmq::POLLIN, 200).unwrap() > 0 {
        let frame = sub.recv_bytes(0).unwrap();
        let env = wire::decode(&frame).unwrap();
        if env.seq > 0 {
            live.insert(env.seq, frame);
        }
    }
    let live_max = *live.keys().last().unwrap();

    // The new publisher, same journal: its heartbeat names the old id and its last seq.
    let (mut new, mut new_out, new_id) =
        start_publisher(&endpoint, &journal, &["--count", "0", "--hold-until-eof"]);
    assert_ne!(new_id, old_id);
    let (hb_id, beat) = handshake(&ctx, &endpoint);
    assert_eq!(hb_id, new_id);
    assert_eq!(beat.previous_publisher_id, old_id);
    let last = beat.previous_last_seq;
    assert!(last >= live_max, "journal last {last} < live {live_max}");
    let keyed: u64 = beat.previous_last_key_seq.values().sum();
    assert_eq!(keyed, last, "{:?}", beat.previous_last_key_seq);

    // A plain DEALER asks the NEW publisher for the OLD id's whole range (and beyond).
    let dealer = ctx.socket(zmq::DEALER).unwrap();
    dealer.set_linger(0).unwrap();
    dealer.connect(&format!("{endpoint}.ctl")).unwrap();
    let (frames, end) = replay(&dealer, old_id, "", 1, last + 1000);
    let got = numbers(&frames, old_id, "");
    assert_eq!(
        got,
        (1..=last).collect::<Vec<_>>(),
        "every number exactly once"
    );
    assert_eq!(end.last_seq, last);
    assert!(!end.unknown_publisher);
    assert_eq!((end.unrecoverable_from, end.unrecoverable_to), (0, 0));
    assert_eq!(u64::from(end.replayed), last);
    // What went live is what the journal gives back, byte for byte (flags aside).
    let mut silent_loss = 0;
    for (seq, frame) in &live {
        let mut replayed = frames[usize::try_from(*seq - 1).unwrap()].clone();
        wire::decode(&replayed).unwrap();
        let flags_at = frame.iter().position(|&b| b == 0).unwrap() + 4;
        replayed[flags_at] = frame[flags_at];
        if &replayed != frame {
            silent_loss += 1;
        }
    }
    assert_eq!(silent_loss, 0);

    // By key: every key_seq of AAPL exactly once.
    let aapl = beat.previous_last_key_seq["AAPL"];
    let (frames, end) = replay(&dealer, old_id, "AAPL", 1, aapl);
    assert_eq!(
        numbers(&frames, old_id, "AAPL"),
        (1..=aapl).collect::<Vec<_>>()
    );
    assert_eq!(end.last_seq, aapl);

    // An id the journal never saw is still unknown.
    let (frames, end) = replay(&dealer, 0x1234, "", 1, 10);
    assert!(frames.is_empty());
    assert!(end.unknown_publisher);

    drop(new.stdin.take()); // EOF: the publisher prints its summary and exits
    let mut summary = String::new();
    new_out.read_line(&mut summary).unwrap();
    assert!(new.wait().unwrap().success());
    assert!(
        summary.contains(&format!("\"replayed_from_journal\":{}", last + aapl)),
        "{summary}"
    );
    let _ = std::fs::remove_dir_all(&journal);
}

fn tick(symbol: &str) -> MarketData {
    MarketData {
        symbol: symbol.into(),
        price: 1.0,
        ..Default::default()
    }
}

fn ring_publisher(dir: &TempDir, journal: Option<&Path>) -> Publisher<MarketData> {
    Publisher::<MarketData>::bind_with(
        &dir.endpoint("ring"),
        PublisherOptions {
            ring_size: 100,
            journal: journal.map(JournalOptions::in_dir),
            ..Default::default()
        },
    )
    .unwrap()
}

#[test]
fn numbers_evicted_from_the_ring_come_from_the_journal() {
    let dir = TempDir::new();
    let journal = std::env::temp_dir().join(format!("tw-journal-ring-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&journal);
    let publisher = ring_publisher(&dir, Some(&journal));
    for i in 0..1000 {
        publisher
            .publish(&tick(if i % 2 == 0 { "A" } else { "B" }))
            .unwrap();
    }
    let ctx = zmq::Context::new();
    let dealer = ctx.socket(zmq::DEALER).unwrap();
    dealer.set_linger(0).unwrap();
    dealer.connect(publisher.control_endpoint()).unwrap();
    let id = publisher.publisher_id();
    let (frames, end) = replay(&dealer, id, "", 1, 1000);
    assert_eq!(numbers(&frames, id, ""), (1..=1000).collect::<Vec<_>>());
    assert_eq!((end.unrecoverable_from, end.last_seq), (0, 1000));
    assert_eq!(publisher.stats().replayed_from_journal, 900);
    // Keyed: B's key_seq 1..=500; the ring holds its last 50.
    let (frames, end) = replay(&dealer, id, "B", 1, 500);
    assert_eq!(numbers(&frames, id, "B"), (1..=500).collect::<Vec<_>>());
    assert_eq!(end.unrecoverable_from, 0);
    assert_eq!(publisher.stats().replayed_from_journal, 900 + 450);
    assert_eq!(publisher.stats().journaled, 1000);
    drop(publisher);
    let _ = std::fs::remove_dir_all(&journal);

    // Without a journal the same request reports the evicted numbers unrecoverable.
    let publisher = ring_publisher(&dir, None);
    for _ in 0..1000 {
        publisher.publish(&tick("A")).unwrap();
    }
    dealer.disconnect(&dir.endpoint("ring.ctl")).unwrap();
    dealer.connect(publisher.control_endpoint()).unwrap();
    let id = publisher.publisher_id();
    let (frames, end) = replay(&dealer, id, "", 1, 1000);
    assert_eq!(numbers(&frames, id, ""), (901..=1000).collect::<Vec<_>>());
    assert_eq!((end.unrecoverable_from, end.unrecoverable_to), (1, 900));
}

#[test]
fn frames_refused_at_the_high_water_mark_are_counted() {
    let dir = TempDir::new();
    let endpoint = dir.endpoint("hwm");
    let publisher = Publisher::<MarketData>::bind_with(
        &endpoint,
        PublisherOptions {
            sndhwm: 10,
            count_hwm_drops: true,
            ..Default::default()
        },
    )
    .unwrap();
    let ctx = zmq::Context::new();
    let sub = ctx.socket(zmq::SUB).unwrap();
    sub.set_linger(0).unwrap();
    sub.set_rcvhwm(10).unwrap();
    sub.connect(&endpoint).unwrap();
    sub.set_subscribe(format!("{CHANNEL}/A\0").as_bytes())
        .unwrap();
    assert!(publisher.wait_for_subscription(Duration::from_secs(5)));
    let sent = 50_000u64;
    for _ in 0..sent {
        publisher.publish(&tick("A")).unwrap();
    }
    let stats = publisher.stats();
    assert_eq!(stats.sent, sent);
    assert!(
        stats.hwm_dropped > 0,
        "a SUB that does not read must fill up"
    );
    let mut received = 0u64;
    while sub.poll(zmq::POLLIN, 500).unwrap() > 0 {
        let frame = sub.recv_bytes(0).unwrap();
        if wire::decode(&frame).unwrap().seq > 0 {
            received += 1;
        }
    }
    // Every frame is either received or counted: nothing vanishes silently.
    assert_eq!(received + stats.hwm_dropped, sent, "{stats:?}");
}

//! Transport integration tests on real ZMQ sockets over ipc in a temporary directory.

use std::time::{Duration, Instant};

use tradewire::command_store::CommandStoreOptions;
use tradewire::transport::{
    CommandClient, CommandClientOptions, CommandServer, CommandServerOptions, Event, EventKind,
    Publisher, PublisherOptions, Received, Subscriber, SubscriberOptions, TransportError,
    NO_ID_REASON, TO_LAST,
};
use tradewire::v1::{self, command_ack::Outcome, MarketData};
use tradewire::wire;

mod common;
use common::TempDir;

fn tick(symbol: &str, price: f64) -> MarketData {
    MarketData {
        symbol: symbol.into(),
        price,
        ..Default::default()
    }
}

fn recv_n(sub: &mut Subscriber<MarketData>, n: usize) -> Vec<Received<MarketData>> {
    let mut out = Vec::new();
    while out.len() < n {
        match sub.recv(Duration::from_secs(5)) {
            Some(r) => out.push(r),
            None => {
                let events = sub.drain_events();
                panic!(
                    "only {} of {n} messages; stats {:?}; events {events:?}",
                    out.len(),
                    sub.stats()
                )
            }
        }
    }
    out
}

fn kinds(events: &[Event]) -> Vec<EventKind> {
    events.iter().map(|e| e.kind).collect()
}

fn keys(keys: &[&str]) -> SubscriberOptions {
    SubscriberOptions {
        keys: keys.iter().map(|k| (*k).to_owned()).collect(),
        ..Default::default()
    }
}

#[test]
fn key_filter_delivers_only_subscribed_keys() {
    let dir = TempDir::new();
    let ep = dir.endpoint("md");
    let publisher = Publisher::<MarketData>::bind(&ep).unwrap();
    let mut sub = Subscriber::<MarketData>::connect_with(&ep, keys(&["AAPL"])).unwrap();
    for i in 0..50 {
        publisher.publish(&tick("AAPLX", f64::from(i))).unwrap();
        publisher.publish(&tick("MSFT", f64::from(i))).unwrap();
        publisher.publish(&tick("AAPL", f64::from(i))).unwrap();
    }
    let got = recv_n(&mut sub, 50);
    assert!(got
        .iter()
        .all(|r| r.key == "AAPL" && r.message.symbol == "AAPL"));
    assert_eq!(
        got.iter().map(|r| r.key_seq).collect::<Vec<_>>(),
        (1..=50).collect::<Vec<_>>()
    );
    assert_eq!(
        got.iter().map(|r| r.seq).collect::<Vec<_>>(),
        (1..=50).map(|i| i * 3).collect::<Vec<_>>()
    );
    assert!(got
        .iter()
        .all(|r| r.publisher_id == publisher.publisher_id()));
    assert!(sub.recv(Duration::from_millis(50)).is_none());
    assert_eq!(sub.stats().gaps, 0);
    assert!(sub.drain_events().is_empty());

    // Unfiltered: every key, by channel seq.
    let mut all = Subscriber::<MarketData>::connect(&ep).unwrap();
    let base = publisher.last_seq();
    for i in 0..30 {
        publisher
            .publish(&tick(["A", "B", "C"][i % 3], 1.0))
            .unwrap();
    }
    let got = recv_n(&mut all, 30);
    assert_eq!(
        got.iter().map(|r| r.seq).collect::<Vec<_>>(),
        (base + 1..=base + 30).collect::<Vec<_>>()
    );
    assert_eq!(all.stats().gaps, 0);
}

#[test]
fn handshake_first_message_after_connect_is_always_received() {
    let dir = TempDir::new();
    let ep = dir.endpoint("md");
    let publisher = Publisher::<MarketData>::bind(&ep).unwrap();
    for trial in 0..1000u32 {
        let opts = if trial % 2 == 0 {
            SubscriberOptions::default()
        } else {
            keys(&["AAPL"])
        };
        let mut sub = Subscriber::<MarketData>::connect_with(&ep, opts).unwrap();
        let seq = publisher.publish(&tick("AAPL", f64::from(trial))).unwrap();
        let got = sub
            .recv(Duration::from_secs(2))
            .unwrap_or_else(|| panic!("trial {trial}: first message lost"));
        assert_eq!(got.seq, seq, "trial {trial}");
        assert_eq!(got.message.price, f64::from(trial));
    }
    assert_eq!(publisher.stats().handshakes, 1000);
}

#[test]
fn connect_without_publisher_times_out() {
    let dir = TempDir::new();
    let ep = dir.endpoint("nobody");
    let started = Instant::now();
    let err = Subscriber::<MarketData>::connect_with(
        &ep,
        SubscriberOptions {
            connect_timeout: Duration::from_millis(200),
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(matches!(err, TransportError::Timeout(_)), "{err}");
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[test]
fn gap_is_filled_by_replay() {
    let dir = TempDir::new();
    let ep = dir.endpoint("md");
    let publisher = Publisher::<MarketData>::bind(&ep).unwrap();
    let mut sub = Subscriber::<MarketData>::connect_with(
        &ep,
        SubscriberOptions {
            lose_live: Some(|seq| (10..=19).contains(&seq)),
            ..Default::default()
        },
    )
    .unwrap();
    for i in 0..100 {
        publisher.publish(&tick("AAPL", f64::from(i))).unwrap();
    }
    let got = recv_n(&mut sub, 100);
    assert_eq!(
        got.iter().map(|r| r.seq).collect::<Vec<_>>(),
        (1..=100).collect::<Vec<_>>()
    );
    assert!(got
        .iter()
        .all(|r| r.is_replay() == (10..=19).contains(&r.seq)));
    let events = sub.drain_events();
    assert_eq!(
        kinds(&events),
        [EventKind::GapDetected, EventKind::GapRecovered]
    );
    assert_eq!((events[1].first, events[1].last), (10, 19));
    let stats = sub.stats();
    assert_eq!((stats.gaps, stats.missed, stats.recovered), (1, 10, 10));
    assert_eq!(stats.unrecoverable, 0);
    assert_eq!(stats.test_lost, 10);
    assert_eq!(publisher.stats().replayed, 10);
}

#[test]
fn gap_is_filled_per_key_when_filtered() {
    let dir = TempDir::new();
    let ep = dir.endpoint("md");
    let publisher = Publisher::<MarketData>::bind(&ep).unwrap();
    let mut sub = Subscriber::<MarketData>::connect_with(
        &ep,
        SubscriberOptions {
            keys: vec!["A".into()],
            // Channel seqs 21..=40: A's key_seqs 11..=20 (A has the odd seqs).
            lose_live: Some(|seq| (21..=40).contains(&seq)),
            ..Default::default()
        },
    )
    .unwrap();
    for i in 0..100 {
        publisher
            .publish(&tick(if i % 2 == 0 { "A" } else { "B" }, 1.0))
            .unwrap();
    }
    let got = recv_n(&mut sub, 50);
    assert_eq!(
        got.iter().map(|r| r.key_seq).collect::<Vec<_>>(),
        (1..=50).collect::<Vec<_>>()
    );
    let events = sub.drain_events();
    assert_eq!(
        kinds(&events),
        [EventKind::GapDetected, EventKind::GapRecovered]
    );
    assert_eq!(
        (events[1].key.as_str(), events[1].first, events[1].last),
        ("A", 11, 20)
    );
}

#[test]
fn ring_too_small_reports_the_exact_unrecoverable_range() {
    let dir = TempDir::new();
    let ep = dir.endpoint("md");
    let publisher = Publisher::<MarketData>::bind_with(
        &ep,
        PublisherOptions {
            ring_size: 30,
            ..Default::default()
        },
    )
    .unwrap();
    let mut sub = Subscriber::<MarketData>::connect_with(
        &ep,
        SubscriberOptions {
            lose_live: Some(|seq| (5..=30).contains(&seq)),
            ..Default::default()
        },
    )
    .unwrap();
    // Everything is published before the subscriber reads: the ring holds 21..=50.
    for i in 0..50 {
        publisher.publish(&tick("AAPL", f64::from(i))).unwrap();
    }
    let got = recv_n(&mut sub, 34);
    let seqs: Vec<u64> = got.iter().map(|r| r.seq).collect();
    let expected: Vec<u64> = (1..=4).chain(21..=50).collect();
    assert_eq!(seqs, expected);
    let events = sub.drain_events();
    assert_eq!(
        kinds(&events),
        [EventKind::GapDetected, EventKind::UnrecoverableGap]
    );
    assert_eq!((events[0].first, events[0].last), (5, 30));
    assert_eq!((events[1].first, events[1].last), (5, 20));
    assert!(events[1].detail.contains("no longer held"), "{events:?}");
    let stats = sub.stats();
    assert_eq!(
        (stats.missed, stats.recovered, stats.unrecoverable),
        (26, 10, 16)
    );
    assert_eq!(publisher.stats().unrecoverable, 16);
}

#[test]
fn tail_loss_is_detected_by_heartbeat() {
    let dir = TempDir::new();
    let ep = dir.endpoint("md");
    let publisher = Publisher::<MarketData>::bind_with(
        &ep,
        PublisherOptions {
            heartbeat_interval: Duration::from_millis(100),
            ..Default::default()
        },
    )
    .unwrap();
    let mut sub = Subscriber::<MarketData>::connect_with(
        &ep,
        SubscriberOptions {
            lose_live: Some(|seq| seq >= 6),
            keys: vec!["AAPL".into()],
            ..Default::default()
        },
    )
    .unwrap();
    for i in 0..10 {
        publisher.publish(&tick("AAPL", f64::from(i))).unwrap();
    }
    let got = recv_n(&mut sub, 10);
    assert_eq!(
        got.iter().map(|r| r.key_seq).collect::<Vec<_>>(),
        (1..=10).collect::<Vec<_>>()
    );
    let events = sub.drain_events();
    assert_eq!(
        kinds(&events),
        [EventKind::GapDetected, EventKind::GapRecovered]
    );
    assert_eq!((events[0].first, events[0].last), (6, 10));
    assert!(sub.stats().heartbeats >= 2);
}

#[test]
fn publisher_restart_is_detected_and_new_stream_recovered() {
    let dir = TempDir::new();
    let ep = dir.endpoint("md");
    let fast_beat = || PublisherOptions {
        heartbeat_interval: Duration::from_millis(100),
        ..Default::default()
    };
    let first = Publisher::<MarketData>::bind_with(&ep, fast_beat()).unwrap();
    let first_id = first.publisher_id();
    let mut sub = Subscriber::<MarketData>::connect(&ep).unwrap();
    for i in 0..5 {
        first.publish(&tick("AAPL", f64::from(i))).unwrap();
    }
    assert_eq!(recv_n(&mut sub, 5).last().map(|r| r.seq), Some(5));
    drop(first);

    let second = Publisher::<MarketData>::bind_with(&ep, fast_beat()).unwrap();
    assert_ne!(second.publisher_id(), first_id);
    // Published before the subscriber has reconnected: recovered from the new ring.
    for i in 0..7 {
        second.publish(&tick("AAPL", f64::from(i))).unwrap();
    }
    let got = recv_n(&mut sub, 7);
    assert_eq!(
        got.iter().map(|r| r.seq).collect::<Vec<_>>(),
        (1..=7).collect::<Vec<_>>()
    );
    assert!(got.iter().all(|r| r.publisher_id == second.publisher_id()));
    let events = sub.drain_events();
    let restart = events
        .iter()
        .find(|e| e.kind == EventKind::PublisherRestart)
        .unwrap_or_else(|| panic!("no restart event: {events:?}"));
    assert_eq!(restart.publisher_id, second.publisher_id());
    assert!(restart.detail.contains(&format!("{first_id:016x}")));
    // Without a journal the new publisher cannot say whether the old one sent more
    // than the 5 delivered: reported as an open-ended range, counted apart.
    let lost: Vec<_> = events
        .iter()
        .filter(|e| e.kind == EventKind::UnrecoverableGap)
        .map(|e| (e.publisher_id, e.first, e.last))
        .collect();
    assert_eq!(lost, [(first_id, 6, TO_LAST)], "{events:?}");
    assert_eq!(sub.stats().unknown_tails, 1);
    assert_eq!(sub.stats().unrecoverable, 0);
    assert_eq!(sub.stats().restarts, 1);
}

#[test]
fn peer_lost_and_back() {
    let dir = TempDir::new();
    let ep = dir.endpoint("md");
    let opts = || PublisherOptions {
        heartbeat_interval: Duration::from_millis(50),
        ..Default::default()
    };
    let publisher = Publisher::<MarketData>::bind_with(&ep, opts()).unwrap();
    let mut sub = Subscriber::<MarketData>::connect_with(
        &ep,
        SubscriberOptions {
            peer_timeout: Duration::from_millis(300),
            ..Default::default()
        },
    )
    .unwrap();
    // Heartbeats keep the peer alive.
    assert!(sub.recv(Duration::from_millis(500)).is_none());
    assert!(sub.drain_events().is_empty());
    drop(publisher);
    let started = Instant::now();
    while sub.stats().peer_lost == 0 && started.elapsed() < Duration::from_secs(3) {
        assert!(sub.recv(Duration::from_millis(100)).is_none());
    }
    let lost_after = started.elapsed();
    assert!(lost_after < Duration::from_millis(1_000), "{lost_after:?}");
    assert_eq!(kinds(&sub.drain_events()), [EventKind::PeerLost]);

    let publisher = Publisher::<MarketData>::bind_with(&ep, opts()).unwrap();
    publisher.publish(&tick("AAPL", 1.0)).unwrap();
    let got = sub.recv(Duration::from_secs(3)).expect("stream back");
    assert_eq!(got.publisher_id, publisher.publisher_id());
    let events = kinds(&sub.drain_events());
    assert!(events.contains(&EventKind::PeerBack), "{events:?}");
    assert!(events.contains(&EventKind::PublisherRestart), "{events:?}");
}

#[test]
fn late_join_from_snapshot() {
    let dir = TempDir::new();
    let ep = dir.endpoint("md");
    let publisher = Publisher::<MarketData>::bind(&ep).unwrap();
    for i in 0..30 {
        publisher
            .publish(&tick(["A", "B", "C"][i % 3], i as f64))
            .unwrap();
    }
    let mut sub = Subscriber::<MarketData>::connect_with(
        &ep,
        SubscriberOptions {
            snapshot: true,
            ..Default::default()
        },
    )
    .unwrap();
    publisher.publish(&tick("A", 100.0)).unwrap();
    let got = recv_n(&mut sub, 4);
    let snap: Vec<(&str, f64, bool)> = got[..3]
        .iter()
        .map(|r| (r.key.as_str(), r.message.price, r.is_snapshot()))
        .collect();
    assert_eq!(
        snap,
        [("A", 27.0, true), ("B", 28.0, true), ("C", 29.0, true)]
    );
    assert_eq!((got[3].seq, got[3].message.price), (31, 100.0));
    assert!(!got[3].is_snapshot());
    assert_eq!(sub.stats().gaps, 0);
    assert!(sub.recv(Duration::from_millis(50)).is_none());

    // Filtered snapshot.
    let mut only_b = Subscriber::<MarketData>::connect_with(
        &ep,
        SubscriberOptions {
            snapshot: true,
            keys: vec!["B".into()],
            ..Default::default()
        },
    )
    .unwrap();
    publisher.publish(&tick("B", 200.0)).unwrap();
    let got = recv_n(&mut only_b, 2);
    assert_eq!((got[0].key_seq, got[0].message.price), (10, 28.0));
    assert_eq!((got[1].key_seq, got[1].message.price), (11, 200.0));
}

#[test]
fn malformed_frames_are_counted_and_the_subscriber_keeps_running() {
    let dir = TempDir::new();
    let ep = dir.endpoint("raw");
    // A hand-made publisher: raw XPUB answering the handshake, then junk and one good frame.
    let ctx = zmq::Context::new();
    let xpub = ctx.socket(zmq::XPUB).unwrap();
    xpub.bind(&ep).unwrap();
    let router = ctx.socket(zmq::ROUTER).unwrap();
    router.bind(&format!("{ep}.ctl")).unwrap();
    let server = std::thread::spawn(move || {
        let frame = |key: &str, msg: &dyn Fn(&mut Vec<u8>, &str)| {
            let mut out = Vec::new();
            msg(&mut out, key);
            out
        };
        let beat = |out: &mut Vec<u8>, key: &str| {
            wire::encode_message(
                "market_data",
                key,
                &v1::Heartbeat::default(),
                7,
                0,
                0,
                1,
                0,
                out,
            )
            .unwrap();
        };
        loop {
            let event = xpub.recv_bytes(0).unwrap();
            let topic = &event[1..];
            if event[0] == 1 && topic.windows(6).any(|w| w == b"~sync~") {
                let key = std::str::from_utf8(&topic[12..topic.len() - 1]).unwrap();
                xpub.send(frame(key, &beat), 0).unwrap();
                break;
            }
        }
        let mut good = Vec::new();
        wire::encode_message(
            "market_data",
            "AAPL",
            &tick("AAPL", 1.5),
            7,
            1,
            1,
            1,
            0,
            &mut good,
        )
        .unwrap();
        let mut bad_magic = good.clone();
        bad_magic[17] = b'X';
        let mut bad_payload = good.clone();
        let n = bad_payload.len();
        bad_payload[n - 9] = 0xff; // the price field's tag
        for junk in [
            b"market_data/".to_vec(),
            b"market_data/AAPL\0TW".to_vec(),
            bad_magic,
            bad_payload,
            [&good[..], b"x"].concat(),
        ] {
            xpub.send(junk, 0).unwrap();
        }
        xpub.send(good, 0).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        drop(router);
    });
    let mut sub = Subscriber::<MarketData>::connect(&ep).unwrap();
    let got = sub.recv(Duration::from_secs(2)).expect("the good frame");
    assert_eq!(got.message.price, 1.5);
    let stats = sub.stats().clone();
    let total: u64 = stats.rejected.values().sum();
    assert_eq!(total, 5, "{:?}", stats.rejected);
    for kind in ["truncated", "bad_magic", "bad_payload", "trailing_bytes"] {
        assert!(
            stats.rejected.contains_key(kind),
            "{kind}: {:?}",
            stats.rejected
        );
    }
    assert!(stats.last_error.is_some());
    server.join().unwrap();
}

#[test]
fn commands_are_applied_once_with_acks() {
    let dir = TempDir::new();
    let ep = dir.endpoint("cmd");
    let mut server = CommandServer::bind(&ep).unwrap();
    let ep2 = ep.clone();
    let client = std::thread::spawn(move || {
        let mut client = CommandClient::connect(&ep2).unwrap();
        let mut acks = Vec::new();
        for i in 0..5 {
            let cmd = v1::StrategyCommand {
                r#type: v1::strategy_command::CommandType::PauseTrading as i32,
                symbol: format!("S{i}"),
                ..Default::default()
            };
            acks.push(client.send(cmd, Duration::from_secs(5)).unwrap());
        }
        acks
    });
    let mut applied = Vec::new();
    while applied.len() < 5 {
        server
            .poll(Duration::from_millis(100), |cmd| {
                applied.push(cmd.symbol.clone());
                (Outcome::Applied, String::new())
            })
            .unwrap();
    }
    let acks = client.join().unwrap();
    assert_eq!(applied, ["S0", "S1", "S2", "S3", "S4"]);
    assert!(acks
        .iter()
        .all(|a| a.outcome == Outcome::Applied as i32 && !a.duplicate));
    assert!(acks.iter().all(|a| a.engine_timestamp_us > 0));
}

#[test]
fn command_sent_before_the_server_is_up_is_applied_once() {
    let dir = TempDir::new();
    let ep = dir.endpoint("cmd");
    let ep2 = ep.clone();
    let client = std::thread::spawn(move || {
        let mut client = CommandClient::connect_with(
            &ep2,
            CommandClientOptions {
                retry_interval: Duration::from_millis(50),
                ..Default::default()
            },
        )
        .unwrap();
        let kill = v1::StrategyCommand {
            r#type: v1::strategy_command::CommandType::KillSwitch as i32,
            command_id: "kill-1".into(),
            ..Default::default()
        };
        let ack = client.send(kill, Duration::from_secs(5)).unwrap();
        (ack, client.stats().clone())
    });
    // The client has been retrying into the void for a while.
    std::thread::sleep(Duration::from_millis(400));
    let mut server = CommandServer::bind(&ep).unwrap();
    let mut applied = 0;
    let started = Instant::now();
    while !client.is_finished() && started.elapsed() < Duration::from_secs(5) {
        server
            .poll(Duration::from_millis(50), |cmd| {
                assert_eq!(cmd.command_id, "kill-1");
                applied += 1;
                (Outcome::Applied, "all orders cancelled".into())
            })
            .unwrap();
    }
    let (ack, stats) = client.join().unwrap();
    assert_eq!(ack.command_id, "kill-1");
    assert_eq!(ack.outcome, Outcome::Applied as i32);
    assert!(stats.retries >= 3, "{stats:?}");
    // Drain the remaining queued copies: all acknowledged as duplicates, none applied.
    while server
        .poll(Duration::from_millis(100), |_| {
            applied += 1;
            (Outcome::Applied, String::new())
        })
        .unwrap()
        > 0
    {}
    assert_eq!(applied, 1);
    assert!(server.stats().duplicates >= 1, "{:?}", server.stats());
    assert_eq!(server.stats().applied, 1);
}

/// Sends `command` from a raw DEALER and returns its ack.
fn raw_command(dealer: &zmq::Socket, command: &v1::StrategyCommand) -> v1::CommandAck {
    let mut frame = Vec::new();
    wire::encode_message("commands", "", command, 7, 1, 1, 1, 0, &mut frame).unwrap();
    dealer.send(frame, 0).unwrap();
    let reply = dealer.recv_bytes(0).unwrap();
    wire::decode_message::<v1::CommandAck>(&wire::decode(&reply).unwrap()).unwrap()
}

fn serve_until<F>(server: &mut CommandServer, done: F, applied: &mut Vec<String>)
where
    F: Fn(&[String]) -> bool,
{
    let started = Instant::now();
    while !done(applied) && started.elapsed() < Duration::from_secs(5) {
        server
            .poll_with_state(Duration::from_millis(20), |cmd, state| {
                applied.push(cmd.command_id.clone());
                state.put(format!("applied/{}", cmd.command_id), b"1".to_vec());
                (Outcome::Applied, "done".into())
            })
            .unwrap();
    }
}

#[test]
fn a_restarted_server_on_its_store_answers_retries_as_duplicates() {
    let dir = TempDir::new();
    let ep = dir.endpoint("cmd");
    let options = CommandServerOptions {
        store: Some(CommandStoreOptions {
            fsync: false,
            ..CommandStoreOptions::new(dir.path().join("commands.sqlite"))
        }),
        ..Default::default()
    };
    let ctx = zmq::Context::new();
    let dealer = ctx.socket(zmq::DEALER).unwrap();
    dealer.set_rcvtimeo(5000).unwrap();
    dealer.connect(&ep).unwrap();
    let kill = v1::StrategyCommand {
        r#type: v1::strategy_command::CommandType::KillSwitch as i32,
        command_id: "kill-1".into(),
        ..Default::default()
    };
    let mut applied = Vec::new();
    let first = {
        let mut server = CommandServer::bind_with(&ep, options.clone()).unwrap();
        let ep2 = ep.clone();
        let sender = std::thread::spawn(move || {
            let mut client = CommandClient::connect(&ep2).unwrap();
            let kill = v1::StrategyCommand {
                r#type: v1::strategy_command::CommandType::KillSwitch as i32,
                command_id: "kill-1".into(),
                ..Default::default()
            };
            client.send(kill, Duration::from_secs(5)).unwrap()
        });
        serve_until(&mut server, |a| !a.is_empty(), &mut applied);
        let first = sender.join().unwrap();
        // A second server on the same store is refused while this one holds it.
        let other = dir.endpoint("other");
        let err = CommandServer::bind_with(&other, options.clone()).unwrap_err();
        assert!(
            err.to_string().contains("in use by another process"),
            "{err}"
        );
        first
    };
    // Restarted on the same store: the retry is a duplicate with the original ack, the
    // state committed with the first application is there, the handler is not called.
    let mut server = CommandServer::bind_with(&ep, options).unwrap();
    assert_eq!(
        server.state("applied/kill-1").unwrap().as_deref(),
        Some(&b"1"[..])
    );
    let sent = std::thread::spawn(move || {
        let again = raw_command(&dealer, &kill);
        let refused = raw_command(&dealer, &v1::StrategyCommand::default());
        (again, refused)
    });
    let started = Instant::now();
    while !sent.is_finished() && started.elapsed() < Duration::from_secs(5) {
        server
            .poll(Duration::from_millis(20), |cmd| {
                panic!("{} applied again after the restart", cmd.command_id)
            })
            .unwrap();
    }
    let (again, refused) = sent.join().unwrap();
    assert_eq!(applied, ["kill-1"]);
    assert!(!first.duplicate && again.duplicate);
    assert_eq!(
        (again.outcome, &again.reason, again.engine_timestamp_us),
        (first.outcome, &first.reason, first.engine_timestamp_us)
    );
    assert_eq!(refused.outcome, Outcome::Rejected as i32);
    assert_eq!(refused.reason, NO_ID_REASON);
    assert_eq!(
        server.stats().rejected_by_kind.get("no_command_id"),
        Some(&1)
    );
    assert_eq!(server.stats().applied, 0);
}

#[test]
fn a_shared_store_commits_state_from_another_thread_beside_the_commands() {
    let dir = TempDir::new();
    let ep = dir.endpoint("cmd");
    let options = CommandServerOptions {
        store: Some(CommandStoreOptions {
            fsync: false,
            ..CommandStoreOptions::new(dir.path().join("commands.sqlite"))
        }),
        ..Default::default()
    };
    let mut server = CommandServer::bind_with(&ep, options).unwrap();
    let shared = server.shared_store().unwrap();
    // Another thread writes while the server serves: both land in the one file.
    let writer = std::thread::spawn(move || {
        for i in 0..50 {
            let mut w = tradewire::command_store::StateWrites::new();
            w.put("engine", format!("v{i}").into_bytes());
            shared.lock().unwrap().write_state(&w).unwrap();
        }
    });
    let ep2 = ep.clone();
    let sender = std::thread::spawn(move || {
        let mut client = CommandClient::connect(&ep2).unwrap();
        let cmd = v1::StrategyCommand {
            command_id: "c-1".into(),
            ..Default::default()
        };
        client.send(cmd, Duration::from_secs(5)).unwrap()
    });
    let mut applied = Vec::new();
    serve_until(&mut server, |a| !a.is_empty(), &mut applied);
    writer.join().unwrap();
    assert!(!sender.join().unwrap().duplicate);
    assert_eq!(
        server.state("engine").unwrap().as_deref(),
        Some(&b"v49"[..])
    );
    assert_eq!(
        server.state("applied/c-1").unwrap().as_deref(),
        Some(&b"1"[..])
    );
    assert_eq!(server.store().unwrap().len().unwrap(), 1);
}

#[test]
fn command_without_server_times_out() {
    let dir = TempDir::new();
    let ep = dir.endpoint("cmd");
    let mut client = CommandClient::connect(&ep).unwrap();
    let started = Instant::now();
    let err = client
        .send(v1::StrategyCommand::default(), Duration::from_millis(300))
        .unwrap_err();
    assert!(matches!(err, TransportError::Timeout(_)), "{err}");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(client.stats().timeouts, 1);
}

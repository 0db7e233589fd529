//! CURVE on the command channel (issue 4, test 6): a server with an allow list applies
//! commands of listed clients only; unknown keys and plain clients get nothing applied,
//! and every refused key is logged on stderr.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tradewire::transport::{
    curve_available, CommandClient, CommandClientOptions, CommandServer, CommandServerOptions,
    CurveClient, CurveKeyPair, CurveServer, TransportError,
};
use tradewire::v1::{self, command_ack::Outcome};

fn kill(id: &str) -> v1::StrategyCommand {
    v1::StrategyCommand {
        r#type: v1::strategy_command::CommandType::KillSwitch as i32,
        command_id: id.into(),
        ..Default::default()
    }
}

fn client(endpoint: &str, curve: Option<CurveClient>) -> CommandClient {
    CommandClient::connect_with(
        endpoint,
        CommandClientOptions {
            retry_interval: Duration::from_millis(100),
            curve,
            ..Default::default()
        },
    )
    .unwrap()
}

#[test]
fn curve_server_applies_only_allowed_keys() {
    assert!(curve_available(), "libzmq built without CURVE");
    let server_keys = CurveKeyPair::generate().unwrap();
    let friend = CurveKeyPair::generate().unwrap();
    let stranger = CurveKeyPair::generate().unwrap();
    let server = CommandServer::bind_with(
        "tcp://127.0.0.1:*",
        CommandServerOptions {
            curve: Some(CurveServer {
                keys: server_keys.clone(),
                allowed_clients: vec![friend.public().to_owned()],
            }),
            ..Default::default()
        },
    )
    .unwrap();
    let endpoint = server.bound_endpoint().unwrap();
    let applied = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let serving = {
        let (applied, stop) = (Arc::clone(&applied), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut server = server;
            while !stop.load(Ordering::Acquire) {
                server
                    .poll(Duration::from_millis(20), |cmd| {
                        applied.lock().unwrap().push(cmd.command_id.clone());
                        (Outcome::Applied, String::new())
                    })
                    .unwrap();
            }
            server
        })
    };

    let ack = client(
        &endpoint,
        Some(CurveClient {
            keys: friend.clone(),
            server_public: server_keys.public().to_owned(),
        }),
    )
    .send(kill("friend"), Duration::from_secs(5))
    .unwrap();
    assert_eq!(ack.command_id, "friend");
    assert_eq!(ack.outcome, Outcome::Applied as i32);

    let mut bad = client(
        &endpoint,
        Some(CurveClient {
            keys: stranger.clone(),
            server_public: server_keys.public().to_owned(),
        }),
    );
    let err = bad
        .send(kill("stranger"), Duration::from_millis(800))
        .unwrap_err();
    assert!(matches!(err, TransportError::Timeout(_)), "{err}");

    let mut plain = client(&endpoint, None);
    let err = plain
        .send(kill("plain"), Duration::from_millis(800))
        .unwrap_err();
    assert!(matches!(err, TransportError::Timeout(_)), "{err}");

    // A client that trusts another server key never completes the handshake either.
    let impostor = CurveKeyPair::generate().unwrap();
    let mut wrong_server = client(
        &endpoint,
        Some(CurveClient {
            keys: friend.clone(),
            server_public: impostor.public().to_owned(),
        }),
    );
    assert!(wrong_server
        .send(kill("wrong-server"), Duration::from_millis(500))
        .is_err());

    stop.store(true, Ordering::Release);
    let server = serving.join().unwrap();
    assert_eq!(*applied.lock().unwrap(), ["friend"]);
    assert!(server.curve_accepted() >= 1);
    assert!(server.curve_rejected() >= 1, "the stranger was not refused");
    assert!(server
        .curve_rejected_keys()
        .iter()
        .all(|k| k == stranger.public()));
    assert!(server
        .curve_rejected_keys()
        .contains(&stranger.public().to_owned()));
    // Every refusal is counted by kind, also those that never reach the ZAP handler
    // (a refused client may try its handshake again: at least one each).
    let refusals = server.curve_refusals();
    for kind in ["unknown_client", "no_curve", "bad_server_key"] {
        assert!(
            refusals.get(kind).is_some_and(|&n| n >= 1),
            "{kind}: {refusals:?}"
        );
    }
}

#[test]
fn curve_keys_are_validated() {
    let keys = CurveKeyPair::generate().unwrap();
    let err = CommandServer::bind_with(
        "tcp://127.0.0.1:*",
        CommandServerOptions {
            curve: Some(CurveServer {
                keys: keys.clone(),
                allowed_clients: vec!["not a key".into()],
            }),
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(matches!(err, TransportError::Config(_)), "{err}");
    assert!(err.to_string().contains("Z85"), "{err}");
    // A context holds one authenticator: a second CURVE server in it is refused clearly.
    let ctx = tradewire::transport::Context::new();
    let curve = CurveServer {
        keys,
        allowed_clients: Vec::new(),
    };
    let options = CommandServerOptions {
        curve: Some(curve),
        context: Some(ctx),
        ..Default::default()
    };
    let _first = CommandServer::bind_with("tcp://127.0.0.1:*", options.clone()).unwrap();
    let err = CommandServer::bind_with("tcp://127.0.0.1:*", options).unwrap_err();
    assert!(err.to_string().contains("own context"), "{err}");
}

/// The refusal is logged by the server process, with the refused key.
#[test]
fn command_server_binary_logs_rejected_keys() {
    let server_keys = CurveKeyPair::generate().unwrap();
    let friend = CurveKeyPair::generate().unwrap();
    let stranger = CurveKeyPair::generate().unwrap();
    let mut proc = Command::new(env!("CARGO_BIN_EXE_tradewire-command-server"))
        .args(["--endpoint", "tcp://127.0.0.1:*", "--exit-on-eof"])
        .args(["--curve-secret", server_keys.secret()])
        .args(["--curve-public", server_keys.public()])
        .args(["--allow", friend.public()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(proc.stdout.take().unwrap());
    let mut ready = String::new();
    stdout.read_line(&mut ready).unwrap();
    let endpoint = ready
        .split("\"endpoint\":\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or_else(|| panic!("not a ready line: {ready:?}"))
        .to_owned();
    assert!(ready.contains("\"curve\":true"), "{ready}");

    let server_public = server_keys.public().to_owned();
    let ok = client(
        &endpoint,
        Some(CurveClient {
            keys: friend,
            server_public: server_public.clone(),
        }),
    )
    .send(kill("friend"), Duration::from_secs(5))
    .unwrap();
    assert_eq!(ok.outcome, Outcome::Applied as i32);
    let refused = client(
        &endpoint,
        Some(CurveClient {
            keys: stranger.clone(),
            server_public,
        }),
    )
    .send(kill("stranger"), Duration::from_millis(800));
    assert!(refused.is_err());

    drop(proc.stdin.take()); // EOF: the server prints its summary and exits
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    let mut stderr = String::new();
    proc.stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(proc.wait().unwrap().success(), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "rejected CURVE client {} on {endpoint}: key not in the allow list",
            stranger.public()
        )),
        "{stderr}"
    );
    assert!(rest.contains("{\"applied\":\"friend\""), "{rest}");
    assert!(!rest.contains("\"applied\":\"stranger\""), "{rest}");
    assert!(rest.contains("\"curve_rejected\":"), "{rest}");
}

/// Publisher control sockets with CURVE (WIRE.md 8.4): replays reach the allowed key
/// only; a plain subscriber and one with an unknown key get the live stream and report
/// what they could not replay as an unrecoverable range; each refusal is counted.
#[test]
fn curve_publisher_control_serves_allowed_keys_only() {
    use tradewire::transport::{
        EventKind, Publisher, PublisherOptions, Start, Subscriber, SubscriberOptions,
    };
    use tradewire::v1::MarketData;

    const BEFORE: u64 = 100;
    const LIVE: u64 = 50;
    let server_keys = CurveKeyPair::generate().unwrap();
    let friend = CurveKeyPair::generate().unwrap();
    let stranger = CurveKeyPair::generate().unwrap();
    let dir = std::env::temp_dir().join(format!("tw-ctl-curve-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ep = format!("ipc://{}/md", dir.display());
    let publisher = Publisher::<MarketData>::bind_with(
        &ep,
        PublisherOptions {
            control_curve: Some(CurveServer {
                keys: server_keys.clone(),
                allowed_clients: vec![friend.public().to_owned()],
            }),
            heartbeat_interval: Duration::from_millis(100),
            ..Default::default()
        },
    )
    .unwrap();
    let tick = |i: u64| MarketData {
        symbol: "AAPL".into(),
        price: 100.0 + i as f64,
        ..Default::default()
    };
    for i in 0..BEFORE {
        publisher.publish(&tick(i)).unwrap();
    }
    let connect = |curve: Option<CurveClient>| {
        Subscriber::<MarketData>::connect_with(
            &ep,
            SubscriberOptions {
                start: Start::Earliest,
                replay_timeout: Duration::from_millis(500),
                control_curve: curve,
                ..Default::default()
            },
        )
        .unwrap()
    };
    let client = |keys: &CurveKeyPair| CurveClient {
        keys: keys.clone(),
        server_public: server_keys.public().to_owned(),
    };
    let mut subs = [
        connect(Some(client(&friend))),
        connect(None),
        connect(Some(client(&stranger))),
    ];
    for i in BEFORE..BEFORE + LIVE {
        publisher.publish(&tick(i)).unwrap();
    }
    for (n, sub) in subs.iter_mut().enumerate() {
        let mut seqs = Vec::new();
        let mut lost = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while seqs.last() != Some(&(BEFORE + LIVE)) && std::time::Instant::now() < deadline {
            if let Some(r) = sub.recv(Duration::from_millis(100)) {
                seqs.push(r.seq);
            }
        }
        for e in sub.drain_events() {
            if e.kind == EventKind::UnrecoverableGap {
                lost.push((e.first, e.last));
            }
        }
        if n == 0 {
            assert_eq!(seqs, (1..=BEFORE + LIVE).collect::<Vec<_>>());
            assert!(lost.is_empty(), "{lost:?}");
        } else {
            assert_eq!(seqs, (BEFORE + 1..=BEFORE + LIVE).collect::<Vec<_>>());
            assert_eq!(lost, vec![(1, BEFORE)], "subscriber {n}");
        }
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let refused = publisher.curve_refusals();
        if refused.get("no_curve").copied().unwrap_or(0) >= 1
            && refused.get("unknown_client").copied().unwrap_or(0) >= 1
        {
            assert!(refused
                .keys()
                .all(|k| ["no_curve", "unknown_client"].contains(k)));
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{refused:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(subs);
    drop(publisher);
    let _ = std::fs::remove_dir_all(&dir);
}

//! Dropping an endpoint is bounded by its linger (default 500 ms) even when frames are
//! still queued for a peer that is gone or stuck (issue 4). Each endpoint owns its ZMQ
//! context by default, so its drop terminates the context, which is where libzmq waits
//! for pending sends: without a linger that wait has no end.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use tradewire::transport::{
    CommandClient, CommandClientOptions, Publisher, PublisherOptions, TransportError,
    DEFAULT_LINGER,
};
use tradewire::v1::{self, MarketData};

mod common;
use common::TempDir;

/// Drops `endpoint` on another thread; how long the drop took, or None when it had not
/// returned after `limit` (the thread is then left blocked).
fn timed_drop<T: Send + 'static>(endpoint: T, limit: Duration) -> Option<Duration> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let started = Instant::now();
        drop(endpoint);
        let _ = tx.send(started.elapsed());
    });
    rx.recv_timeout(limit).ok()
}

/// A client whose retries of one command are queued for a server that never appears.
fn client_with_queued_frames(endpoint: &str, linger: Duration) -> CommandClient {
    let mut client = CommandClient::connect_with(
        endpoint,
        CommandClientOptions {
            retry_interval: Duration::from_millis(20),
            linger,
            ..Default::default()
        },
    )
    .unwrap();
    let err = client
        .send(v1::StrategyCommand::default(), Duration::from_millis(200))
        .unwrap_err();
    assert!(matches!(err, TransportError::Timeout(_)), "{err}");
    assert!(client.stats().retries >= 3, "{:?}", client.stats());
    client
}

/// A lower bound as well as an upper one: the drop really had frames to wait for (so the
/// test is not trivially fast), and the linger is what ended the wait.
fn assert_bounded_by_linger(took: Option<Duration>, what: &str) {
    let took = took.unwrap_or_else(|| panic!("dropping the {what} did not return within 5 s"));
    assert!(
        took >= DEFAULT_LINGER.mul_f64(0.8),
        "the {what} had nothing pending (drop took {took:?}): the test would prove nothing"
    );
    assert!(took < Duration::from_secs(5), "{what} drop took {took:?}");
}

#[test]
fn command_client_drop_is_bounded_when_the_server_is_gone() {
    let dir = TempDir::new();
    let client = client_with_queued_frames(&dir.endpoint("nobody"), DEFAULT_LINGER);
    assert_bounded_by_linger(timed_drop(client, Duration::from_secs(5)), "command client");
}

#[test]
fn without_a_linger_the_same_drop_would_hang() {
    // The control for the test above: with a linger of an hour the drop is still
    // blocked after 1.5 s (its thread is left behind, blocked until the process exits).
    let dir = TempDir::new();
    let client = client_with_queued_frames(&dir.endpoint("nobody"), Duration::from_secs(3600));
    assert_eq!(timed_drop(client, Duration::from_millis(1500)), None);
}

#[test]
fn publisher_drop_is_bounded_when_the_subscriber_is_stuck() {
    let dir = TempDir::new();
    let ep = dir.endpoint("md");
    let publisher = Publisher::<MarketData>::bind_with(
        &ep,
        PublisherOptions {
            sndhwm: 0, // unlimited: everything the subscriber does not take stays queued
            ..Default::default()
        },
    )
    .unwrap();
    // A subscriber that never reads (its own context, so it stays connected).
    let context = zmq::Context::new();
    let stuck = context.socket(zmq::SUB).unwrap();
    stuck.set_rcvhwm(1).unwrap();
    stuck.set_linger(0).unwrap();
    stuck.set_subscribe(b"").unwrap();
    stuck.connect(&ep).unwrap();
    assert!(publisher.wait_for_subscription(Duration::from_secs(5)));
    let tick = MarketData {
        symbol: "AAPL".into(),
        price: 1.0,
        exchange: "TEST".into(),
        ..Default::default()
    };
    for _ in 0..200_000 {
        publisher.publish(&tick).unwrap();
    }
    assert_bounded_by_linger(timed_drop(publisher, Duration::from_secs(5)), "publisher");
    drop(stuck);
}

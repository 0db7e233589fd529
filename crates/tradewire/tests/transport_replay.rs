//! Replay runs in the background of `Subscriber::recv` (WIRE.md §7.2): the live stream
//! keeps being read while a replay is outstanding, one request per stream is outstanding
//! at a time, and gaps seen meanwhile are folded into the next request. The subscriber's
//! control endpoint is a relay in the test, so the requests can be watched and held back.

use std::time::{Duration, Instant};

use tradewire::catalog::SchemaMessage;
use tradewire::transport::{EventKind, Publisher, Received, Subscriber, SubscriberOptions};
use tradewire::v1::{self, MarketData};
use tradewire::wire;

mod common;
use common::TempDir;

fn tick(price: f64) -> MarketData {
    MarketData {
        symbol: "AAPL".into(),
        price,
        ..Default::default()
    }
}

/// Stands between the subscriber and the publisher's control endpoint.
struct Relay {
    router: zmq::Socket,
    upstream: zmq::Socket,
    _ctx: zmq::Context,
}

impl Relay {
    fn new(listen: &str, upstream: &str) -> Self {
        let ctx = zmq::Context::new();
        let router = ctx.socket(zmq::ROUTER).unwrap();
        router.set_linger(0).unwrap();
        router.bind(listen).unwrap();
        let dealer = ctx.socket(zmq::DEALER).unwrap();
        dealer.set_linger(0).unwrap();
        dealer.connect(upstream).unwrap();
        Relay {
            router,
            upstream: dealer,
            _ctx: ctx,
        }
    }

    /// The next request the subscriber sent, if one arrives within `wait`.
    fn request(&self, wait: Duration) -> Option<(Vec<u8>, Vec<u8>, v1::ReplayRequest)> {
        if self
            .router
            .poll(zmq::POLLIN, i64::try_from(wait.as_millis()).unwrap())
            .unwrap()
            == 0
        {
            return None;
        }
        let parts = self.router.recv_multipart(0).unwrap();
        let env = wire::decode(&parts[1]).unwrap();
        let req = wire::decode_message::<v1::ReplayRequest>(&env).unwrap();
        Some((parts[0].clone(), parts[1].clone(), req))
    }

    /// Forwards a request to the publisher and its whole answer back.
    fn forward(&self, identity: &[u8], frame: &[u8]) {
        self.upstream.send(frame, 0).unwrap();
        loop {
            let reply = self.upstream.recv_bytes(0).unwrap();
            let env = wire::decode(&reply).unwrap();
            let end = env.type_id == v1::ReplayEnd::TYPE.type_id;
            self.router.send(identity, zmq::SNDMORE).unwrap();
            self.router.send(&reply[..], 0).unwrap();
            if end {
                return;
            }
        }
    }
}

fn recv_until(sub: &mut Subscriber<MarketData>, seq: u64) -> Vec<Received<MarketData>> {
    let mut out = Vec::new();
    while out.last().map(|r: &Received<MarketData>| r.seq) != Some(seq) {
        let r = sub.recv(Duration::from_secs(5)).unwrap_or_else(|| {
            panic!(
                "stuck after {:?}: {:?}",
                out.last().map(|r| r.seq),
                sub.stats()
            )
        });
        out.push(r);
    }
    out
}

#[test]
fn later_gaps_are_folded_into_the_next_request_and_live_data_keeps_flowing() {
    let dir = TempDir::new();
    let ep = dir.endpoint("md");
    let publisher = Publisher::<MarketData>::bind(&ep).unwrap();
    let relay = Relay::new(&dir.endpoint("relay"), publisher.control_endpoint());
    let mut sub = Subscriber::<MarketData>::connect_with(
        &ep,
        SubscriberOptions {
            control_endpoint: Some(dir.endpoint("relay")),
            lose_live: Some(|s| (10..=19).contains(&s) || (30..=39).contains(&s) || s == 45),
            replay_timeout: Duration::from_secs(10),
            ..Default::default()
        },
    )
    .unwrap();
    for i in 0..100 {
        publisher.publish(&tick(f64::from(i))).unwrap();
    }
    let got = recv_until(&mut sub, 9);
    assert_eq!(got.len(), 9);
    // The first replay is held back by the relay: recv waits for it without blocking
    // on it, and reads the whole live stream meanwhile.
    let started = Instant::now();
    assert!(sub.recv(Duration::from_millis(100)).is_none());
    assert!(started.elapsed() < Duration::from_millis(600));
    assert!(sub.stats().received >= 79, "{:?}", sub.stats());
    let (id, frame, first) = relay.request(Duration::from_secs(1)).expect("a request");
    assert_eq!((first.from_seq, first.to_seq), (10, 19));
    assert!(
        relay.request(Duration::from_millis(100)).is_none(),
        "one request outstanding per stream"
    );
    relay.forward(&id, &frame);
    // 10..=29 now; then the gaps seen meanwhile (30..=39 and 45) in one request.
    let got = recv_until(&mut sub, 29);
    assert_eq!(
        got.iter().map(|r| r.seq).collect::<Vec<_>>(),
        (10..=29).collect::<Vec<_>>()
    );
    assert!(got.iter().all(|r| r.is_replay() == (r.seq <= 19)));
    assert!(sub.recv(Duration::from_millis(50)).is_none());
    let (id, frame, second) = relay
        .request(Duration::from_secs(1))
        .expect("the next request");
    assert_eq!((second.from_seq, second.to_seq), (30, 45));
    relay.forward(&id, &frame);
    let got = recv_until(&mut sub, 100);
    assert_eq!(
        got.iter().map(|r| r.seq).collect::<Vec<_>>(),
        (30..=100).collect::<Vec<_>>()
    );
    let events = sub.drain_events();
    let summary: Vec<(EventKind, u64, u64)> =
        events.iter().map(|e| (e.kind, e.first, e.last)).collect();
    assert_eq!(
        summary,
        [
            (EventKind::GapDetected, 10, 19),
            (EventKind::GapDetected, 30, 39),
            (EventKind::GapDetected, 45, 45),
            (EventKind::GapRecovered, 10, 19),
            (EventKind::GapRecovered, 30, 45),
        ]
    );
    let stats = sub.stats();
    assert_eq!(
        (stats.gaps, stats.missed, stats.replay_requests),
        (3, 21, 2)
    );
    assert_eq!(stats.recovered, 21);
    assert_eq!(stats.unrecoverable, 0);
    // 40..=44 were held and came again in the folded request's replay.
    assert_eq!(stats.duplicates, 5);
}

#[test]
fn an_unanswered_replay_times_out_without_blocking_recv() {
    let dir = TempDir::new();
    let ep = dir.endpoint("md");
    let publisher = Publisher::<MarketData>::bind(&ep).unwrap();
    // Nobody forwards: the request is never answered.
    let relay = Relay::new(&dir.endpoint("relay"), publisher.control_endpoint());
    let timeout = Duration::from_millis(400);
    let mut sub = Subscriber::<MarketData>::connect_with(
        &ep,
        SubscriberOptions {
            control_endpoint: Some(dir.endpoint("relay")),
            lose_live: Some(|s| (10..=19).contains(&s)),
            replay_timeout: timeout,
            ..Default::default()
        },
    )
    .unwrap();
    for i in 0..50 {
        publisher.publish(&tick(f64::from(i))).unwrap();
    }
    recv_until(&mut sub, 9);
    let started = Instant::now();
    assert!(sub.recv(Duration::from_millis(20)).is_none());
    assert!(started.elapsed() < Duration::from_millis(300));
    assert!(relay.request(Duration::from_secs(1)).is_some());
    let got = recv_until(&mut sub, 50);
    assert!(started.elapsed() >= timeout);
    assert_eq!(
        got.iter().map(|r| r.seq).collect::<Vec<_>>(),
        (20..=50).collect::<Vec<_>>()
    );
    let events = sub.drain_events();
    let lost: Vec<_> = events
        .iter()
        .filter(|e| e.kind == EventKind::UnrecoverableGap)
        .collect();
    assert_eq!(lost.len(), 1, "{events:?}");
    assert_eq!((lost[0].first, lost[0].last), (10, 19));
    assert!(lost[0].detail.contains("no ReplayEnd"), "{events:?}");
    assert_eq!(sub.stats().unrecoverable, 10);
}

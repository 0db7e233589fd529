"""Cross-language transport (WIRE.md section 7): the Rust binaries `tradewire-publish` and
`tradewire-subscribe` against the Python SDK, in both directions, over ipc."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import rust_cli as rc

from tradewire.channels import MarketDataPublisher, MarketDataSubscriber
from tradewire.messages import MarketData


@pytest.fixture
def endpoint(tmp_path: Path) -> str:
    return f"ipc://{tmp_path}/md"


# -- Rust publisher -> Python subscriber ------------------------------------------------


def test_rust_publisher_to_python_subscriber(rust_bin_dir: Path, endpoint: str) -> None:
    n = 20_000
    proc = rc.publish(rust_bin_dir, endpoint, "--count", str(n), "--symbols", "AAPL,MSFT,GOOG",
                    "--wait-subscriber", "--hold-ms", "1500")  # fmt: skip
    try:
        with MarketDataSubscriber(endpoint, subscribe_timeout=10) as sub:
            got = [sub.recv(timeout=5) for _ in range(n)]
    finally:
        summary = rc.summary(proc)
    assert all(g is not None for g in got)
    seqs = [g.envelope.seq for g in got if g]
    assert seqs == list(range(1, n + 1))
    assert {g.envelope.publisher_id for g in got if g} == {int(summary["publisher_id"], 16)}
    assert [g.message.symbol for g in got[:4] if g] == ["AAPL", "MSFT", "GOOG", "AAPL"]
    assert all(g.message.price > 0 and g.message.exchange == "SIM" for g in got if g)
    assert summary["count"] == n and summary["last_seq"] == n
    assert summary["stats"]["handshakes"] == 1


def test_rust_publisher_to_python_subscriber_filtered(rust_bin_dir: Path, endpoint: str) -> None:
    n = 3_000
    proc = rc.publish(rust_bin_dir, endpoint, "--count", str(n), "--symbols", "AAPL,MSFT,GOOG",
                    "--wait-subscriber", "--hold-ms", "1500")  # fmt: skip
    try:
        with MarketDataSubscriber(endpoint, keys=["MSFT"], subscribe_timeout=10) as sub:
            got = [sub.recv(timeout=5) for _ in range(n // 3)]
            extra = sub.recv(timeout=0.2)
    finally:
        rc.summary(proc)
    assert extra is None
    assert all(g is not None and g.message.symbol == "MSFT" for g in got)
    assert [g.envelope.key_seq for g in got if g] == list(range(1, n // 3 + 1))
    assert [g.envelope.seq for g in got if g] == list(range(2, n + 1, 3))


def test_rust_replay_serves_a_throttled_python_subscriber(
    rust_bin_dir: Path, endpoint: str
) -> None:
    """Tiny high-water marks and a slow reader make the stream drop; the Rust publisher's
    replay ring fills every gap, so each message arrives exactly once, in order."""
    n = 20_000
    proc = rc.publish(rust_bin_dir, endpoint, "--count", str(n), "--sndhwm", "50",
                    "--wait-subscriber", "--hold-ms", "3000")  # fmt: skip
    try:
        with MarketDataSubscriber(endpoint, rcvhwm=50, subscribe_timeout=10) as sub:
            got = []
            for i in range(n):
                if i < 2_000 and i % 100 == 0:
                    time.sleep(0.005)
                got.append(sub.recv(timeout=5))
            stats = sub.stats
    finally:
        summary = rc.summary(proc)
    assert [g.envelope.seq for g in got if g] == list(range(1, n + 1))
    assert stats.unrecoverable == 0
    assert stats.gaps > 0, "the test did not provoke any loss"
    assert summary["stats"]["replay_requests"] > 0
    # Replayed frames the subscriber also got live are counted as its duplicates.
    assert summary["stats"]["replayed"] == stats.recovered + stats.duplicates


# -- Python publisher -> Rust subscriber ------------------------------------------------


def test_python_publisher_to_rust_subscriber(rust_bin_dir: Path, endpoint: str) -> None:
    n = 5_000
    with MarketDataPublisher(endpoint) as pub:
        proc = rc.subscribe(rust_bin_dir, endpoint, "--count", str(n))
        symbols = ["AAPL", "MSFT", "GOOG"]
        seqs = [pub.publish(MarketData(symbol=symbols[i % 3], price=100 + i)) for i in range(n)]
        messages, events, summary = rc.lines(proc)
    assert seqs == list(range(1, n + 1))
    assert [m["seq"] for m in messages] == seqs
    assert {m["publisher_id"] for m in messages} == {f"{pub.publisher_id:016x}"}
    assert [m["price"] for m in messages[:3]] == [100, 101, 102]
    assert [m["key"] for m in messages[:3]] == symbols
    assert events == []
    assert summary["received"] == n and summary["gaps"] == 0 and summary["rejected"] == 0


def test_python_publisher_to_rust_subscriber_filtered(rust_bin_dir: Path, endpoint: str) -> None:
    n = 3_000
    with MarketDataPublisher(endpoint) as pub:
        proc = rc.subscribe(rust_bin_dir, endpoint, "--count", str(n // 3), "--symbols", "GOOG")
        for i in range(n):
            pub.publish(MarketData(symbol=["AAPL", "MSFT", "GOOG"][i % 3], price=1 + i))
        messages, events, summary = rc.lines(proc)
    assert {m["key"] for m in messages} == {"GOOG"}
    assert [m["key_seq"] for m in messages] == list(range(1, n // 3 + 1))
    assert [m["seq"] for m in messages] == list(range(3, n + 1, 3))
    assert events == [] and summary["gaps"] == 0


def test_python_replay_serves_a_throttled_rust_subscriber(
    rust_bin_dir: Path, endpoint: str
) -> None:
    """Loss provoked by tiny high-water marks and a slow Rust reader is recovered from the
    Python publisher's replay ring: every message exactly once, in order."""
    n = 20_000
    with MarketDataPublisher(endpoint, sndhwm=50) as pub:
        proc = rc.subscribe(rust_bin_dir, endpoint, "--count", str(n), "--rcvhwm", "50",
                          "--throttle-us", "20")  # fmt: skip
        for i in range(n):
            pub.publish(MarketData(symbol="AAPL", price=1 + i))
        messages, events, summary = rc.lines(proc)
    assert [m["seq"] for m in messages] == list(range(1, n + 1))
    assert summary["unrecoverable"] == 0
    assert summary["gaps"] > 0, "the test did not provoke any loss"
    assert {e["event"] for e in events} <= {"gap_detected", "gap_recovered"}
    assert summary["recovered"] == sum(m["flags"] & 1 for m in messages)


def test_python_publisher_heartbeats_reach_rust(rust_bin_dir: Path, endpoint: str) -> None:
    """Rust subscriber sees the Python publisher's idle heartbeats (keeps the peer alive)."""
    with MarketDataPublisher(endpoint, heartbeat_interval=0.1) as pub:
        proc = rc.subscribe(rust_bin_dir, endpoint, "--count", "1", "--idle-timeout-ms", "5000")
        time.sleep(0.5)  # idle: heartbeats flow
        pub.publish(MarketData(symbol="AAPL", price=1))
        messages, events, summary = rc.lines(proc)
    assert [m["seq"] for m in messages] == [1]
    assert summary["heartbeats"] >= 3
    assert events == []

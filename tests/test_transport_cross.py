"""The transport between real processes, Python <-> Rust in both directions (WIRE.md
section 7): pub/sub and keyed filtering over tcp (the control/replay endpoint derived as
port + 1 by both implementations), the slow-joiner guarantee across processes, and a
Rust subscriber that survives malformed frames and counts them by kind."""

from __future__ import annotations

import json
import socket
import struct
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import rust_cli as rc
from test_rust_transport import (
    test_python_publisher_to_rust_subscriber_filtered as python_to_rust_filtered,
)
from test_rust_transport import (
    test_rust_publisher_to_python_subscriber_filtered as rust_to_python_filtered,
)

from tradewire import wire
from tradewire.channels import MarketDataPublisher, MarketDataSubscriber
from tradewire.messages import MarketData
from tradewire.transport._base import control_endpoint

SYMBOLS = ["AAPL", "MSFT", "GOOG"]


def _port_pair_free(port: int) -> bool:
    for p in (port, port + 1):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", p))
            except OSError:
                return False
    return True


@pytest.fixture
def endpoint() -> str:
    """tcp://127.0.0.1:P with P and P + 1 (the derived control endpoint) both free."""
    for _ in range(100):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port < 65535 and _port_pair_free(port):
            return f"tcp://127.0.0.1:{port}"
    pytest.fail("no two consecutive free tcp ports")


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.communicate(timeout=10)


def _publish(rust_bin_dir: Path, endpoint: str, *args: str) -> subprocess.Popen[str]:
    return rc.publish(rust_bin_dir, endpoint, *args, stdin=True)


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[str]]]:
    """Processes started by a test; whatever still runs at the end is killed."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        _stop(proc)


def test_tcp_control_endpoint_is_port_plus_one(endpoint: str) -> None:
    port = int(endpoint.rpartition(":")[2])
    assert control_endpoint(endpoint) == f"tcp://127.0.0.1:{port + 1}"


# -- 1. tcp pub/sub, both directions --------------------------------------------------


def test_tcp_rust_publisher_to_python_subscriber(rust_bin_dir: Path, endpoint: str) -> None:
    n = 10_000
    proc = _publish(rust_bin_dir, endpoint, "--count", str(n), "--symbols", ",".join(SYMBOLS),
                    "--wait-subscriber", "--hold-ms", "1500")  # fmt: skip
    try:
        with MarketDataSubscriber(endpoint, subscribe_timeout=10) as sub:
            got = [sub.recv(timeout=5) for _ in range(n)]
            extra = sub.recv(timeout=0.2)
    finally:
        summary = rc.summary(proc)
    assert all(g is not None for g in got) and extra is None
    assert [g.envelope.seq for g in got if g] == list(range(1, n + 1))
    assert {g.envelope.publisher_id for g in got if g} == {int(summary["publisher_id"], 16)}
    assert [g.message.symbol for g in got[:4] if g] == [*SYMBOLS, "AAPL"]
    assert summary["count"] == n and summary["stats"]["handshakes"] == 1


def test_tcp_rust_publisher_to_python_subscriber_filtered(
    rust_bin_dir: Path, endpoint: str
) -> None:
    rust_to_python_filtered(rust_bin_dir, endpoint)  # the ipc scenario, over tcp


def test_tcp_rust_replay_over_derived_control_endpoint(rust_bin_dir: Path, endpoint: str) -> None:
    """Loss provoked by tiny high-water marks is repaired through the Rust publisher's
    control ROUTER, which the Python subscriber finds at the derived tcp port + 1."""
    n = 20_000
    proc = _publish(rust_bin_dir, endpoint, "--count", str(n), "--sndhwm", "50",
                    "--wait-subscriber", "--hold-ms", "3000")  # fmt: skip
    try:
        with MarketDataSubscriber(endpoint, rcvhwm=50, subscribe_timeout=10) as sub:
            got = []
            for i in range(n):
                if i < 2_000 and i % 100 == 0:
                    time.sleep(0.005)  # a slow reader, to provoke loss (not a readiness wait)
                got.append(sub.recv(timeout=5))
            stats = sub.stats
    finally:
        summary = rc.summary(proc)
    assert [g.envelope.seq for g in got if g] == list(range(1, n + 1))
    assert stats.gaps > 0, "the test did not provoke any loss"
    assert stats.unrecoverable == 0
    assert summary["stats"]["replay_requests"] > 0


def test_tcp_python_publisher_to_rust_subscriber(rust_bin_dir: Path, endpoint: str) -> None:
    n = 5_000
    with MarketDataPublisher(endpoint) as pub:
        proc = rc.subscribe(rust_bin_dir, endpoint, "--count", str(n))
        try:
            seqs = [pub.publish(MarketData(symbol=SYMBOLS[i % 3], price=100 + i)) for i in range(n)]
            messages, events, summary = rc.lines(proc)
        finally:
            _stop(proc)
    assert seqs == list(range(1, n + 1))
    assert [m["seq"] for m in messages] == seqs
    assert [m["price"] for m in messages] == [100 + i for i in range(n)]
    assert {m["publisher_id"] for m in messages} == {f"{pub.publisher_id:016x}"}
    assert [m["key"] for m in messages[:3]] == SYMBOLS
    assert events == []
    assert summary["received"] == n and summary["rejected"] == 0


def test_tcp_python_publisher_to_rust_subscriber_filtered(
    rust_bin_dir: Path, endpoint: str
) -> None:
    python_to_rust_filtered(rust_bin_dir, endpoint)  # the ipc scenario, over tcp


def test_tcp_python_replay_over_derived_control_endpoint(rust_bin_dir: Path, endpoint: str) -> None:
    """The Rust subscriber finds the Python publisher's replay ring at tcp port + 1."""
    n = 20_000
    with MarketDataPublisher(endpoint, sndhwm=50) as pub:
        proc = rc.subscribe(rust_bin_dir, endpoint, "--count", str(n), "--rcvhwm", "50",
                          "--throttle-us", "20")  # fmt: skip
        try:
            for i in range(n):
                pub.publish(MarketData(symbol="AAPL", price=1 + i))
            messages, events, summary = rc.lines(proc)
        finally:
            _stop(proc)
    assert [m["seq"] for m in messages] == list(range(1, n + 1))
    assert summary["gaps"] > 0, "the test did not provoke any loss"
    assert summary["unrecoverable"] == 0
    assert {e["event"] for e in events} <= {"gap_detected", "gap_recovered"}
    assert pub.stats.replay_requests > 0


# -- 2. slow joiner across processes --------------------------------------------------


def test_slow_joiner_rust_subscriber_processes(rust_bin_dir: Path, endpoint: str) -> None:
    """200 fresh Rust subscriber processes join a Python publisher one after another
    (1000 take ~11 s: every trial starts a process). As soon as one prints its ready
    line (its connect and handshake have returned) the publisher sends a marker; that
    marker must be the first and only message the subscriber prints. The publisher also
    counts one completed handshake per subscriber (wait_for_subscribers)."""
    trials = 200
    with MarketDataPublisher(endpoint) as pub:
        for k in range(1, trials + 1):
            proc = rc.subscribe(
                rust_bin_dir, endpoint, "--count", "1", "--idle-timeout-ms", "10000"
            )
            try:
                assert pub.wait_for_subscribers(k, timeout=10)
                pub.publish(MarketData(symbol="MARK", price=k))
                messages, events, summary = rc.lines(proc)
            finally:
                _stop(proc)
            assert [(m["seq"], m["price"]) for m in messages] == [(k, k)], f"trial {k}"
            assert events == [] and summary["gaps"] == 0, f"trial {k}"
        assert pub.stats.handshakes == trials


def test_slow_joiner_python_subscribers_of_a_rust_publisher(
    rust_bin_dir: Path, endpoint: str
) -> None:
    """1000 fresh Python subscribers join a Rust publisher process that publishes
    continuously (20k msg/s). The first message each receives after subscribe returns
    must be the one published right after its handshake: live (not replayed), and with
    no gap detected against the handshake's last_seq, for it and the message after."""
    trials = 1000
    rate = 20_000
    proc = _publish(rust_bin_dir, endpoint, "--count", str(rate * 100), "--rate", str(rate),
                    "--print-ready", "--hold-until-eof")  # fmt: skip
    try:
        assert proc.stdout is not None
        ready = proc.stdout.readline()
        assert ready and json.loads(ready)["ready"] is True, proc.stderr
        for k in range(trials):
            with MarketDataSubscriber(endpoint, subscribe_timeout=10) as sub:
                first, second = sub.recv(timeout=5), sub.recv(timeout=5)
                stats = sub.stats
            assert first is not None and second is not None, f"trial {k}"
            assert first.envelope.flags == 0 and second.envelope.flags == 0, f"trial {k}"
            assert second.envelope.seq == first.envelope.seq + 1, f"trial {k}"
            assert stats.gaps == 0 and stats.duplicates == 0, f"trial {k}: {stats}"
        assert proc.poll() is None, "the publisher stopped before the trials ended"
    finally:
        _stop(proc)


# -- 3. malformed frames at a Rust subscriber -----------------------------------------

_HEADER = struct.Struct("<2sBBHHQQQQQI")


def _malformed(pub: MarketDataPublisher) -> dict[str, list[bytes]]:
    """Invalid frames by the WIRE.md error kind a decoder must report for them. Each has
    a topic the subscriber is subscribed to, so it reaches the decoder."""
    mt = pub.channel.message
    topic = wire.topic(pub.channel.name, "AAPL")

    def header(**kw: Any) -> bytes:
        f = {"magic": b"TW", "version": 1, "type_id": mt.type_id, "payload_len": 0} | kw
        return _HEADER.pack(f["magic"], f["version"], 0, f["type_id"], 0, mt.fingerprint,
                            pub.publisher_id, 10**6, 10**6, time.time_ns(),
                            f["payload_len"])  # fmt: skip

    payload = MarketData(symbol="AAPL", price=1).SerializeToString()
    good = topic + header(payload_len=len(payload)) + payload
    return {
        "truncated": [
            topic + header()[:10],
            wire.channel_prefix(pub.channel.name) + b"/AA",
            good[:-2],
        ],
        "bad_topic": [wire.channel_prefix(pub.channel.name) + b"x" * 120 + b"\0" + header()],
        "bad_magic": [topic + header(magic=b"XW", payload_len=len(payload)) + payload],
        "unsupported_version": [topic + header(version=2, payload_len=len(payload)) + payload],
        "oversized": [topic + header(payload_len=0xFFFF_FFFF)],
        "trailing_bytes": [good + b"junk"],
        # a valid header announcing MarketData, then bytes that are no protobuf message
        "bad_payload": [topic + header(payload_len=3) + b"\x0a\xff\xff"],
    }


def test_rust_subscriber_survives_malformed_frames(rust_bin_dir: Path, endpoint: str) -> None:
    n = 200
    with MarketDataPublisher(endpoint) as pub:
        bad = _malformed(pub)
        frames = [f for kind in bad.values() for f in kind]
        for f in frames:  # the Python decoder agrees on every kind
            with pytest.raises(wire.WireError) as info:
                wire.parse_payload(wire.decode_frame(f), MarketData, strict=True)
            assert f in bad[info.value.kind]
        proc = rc.subscribe(rust_bin_dir, endpoint, "--count", str(n))
        try:
            for i in range(n):
                pub.publish(MarketData(symbol=SYMBOLS[i % 3], price=1 + i))
                if i % 10 == 0:
                    with pub._lock:  # the XPUB is shared with the control thread
                        pub._data.send(frames[(i // 10) % len(frames)])
            messages, events, summary = rc.lines(proc)
        finally:
            _stop(proc)
    injected: dict[str, int] = {}
    for j in range(n // 10):
        f = frames[j % len(frames)]
        kind = next(k for k, fs in bad.items() if f in fs)
        injected[kind] = injected.get(kind, 0) + 1
    assert set(injected) == set(bad), "every kind was injected"
    assert [m["seq"] for m in messages] == list(range(1, n + 1))
    assert [m["price"] for m in messages] == [1 + i for i in range(n)]
    assert events == [] and summary["gaps"] == 0
    assert summary["rejected"] == n // 10
    assert summary["rejected_by_kind"] == injected

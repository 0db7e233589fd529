"""Bounded memory and counted, rate-limited rejects under hostile input: each endpoint runs in
its own process, the faults are real frames on real sockets, memory is read from /proc."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import zmq

from tradewire import wire
from tradewire._gen import registry
from tradewire.channels import CommandsClient
from tradewire.messages import MarketData, StrategyCommand

pytestmark = pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")

MB = 1 << 20
BIG = 256 * MB  # far over the default 16 MiB max payload
GROWTH_LIMIT = 64 * MB


def _status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def _readline(proc: subprocess.Popen[str], timeout: float = 60.0) -> str:
    """One stdout line of `proc`; fails instead of hanging."""
    box: list[str] = []
    reader = threading.Thread(target=lambda: box.append(proc.stdout.readline()))  # type: ignore[union-attr]
    reader.start()
    reader.join(timeout)
    if not box or not box[0]:
        proc.kill()
        _, err = proc.communicate(timeout=30)
        raise AssertionError(f"no line from the child within {timeout}s; stderr:\n{err}")
    return box[0]


def _reap(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.communicate(timeout=30)  # closes the pipes


def _child(code: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def _oversized_frame(channel: str, payload_len: int) -> bytearray:
    """A frame whose header announces `payload_len` bytes and that carries them."""
    md = wire.message_type_of(MarketData)
    head = wire.pack_frame(wire.topic(channel, "AAPL"), md.type_id, md.fingerprint, 7, 1, 1, 0, b"")
    frame = bytearray(len(head) + payload_len)
    frame[: len(head)] = head
    frame[len(head) - 4 : len(head)] = payload_len.to_bytes(4, "little")
    return frame


SUBSCRIBER_CHILD = """
import json, logging, sys, time
from pathlib import Path
from tradewire.channels import MarketDataSubscriber

logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(message)s")
def hwm():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
sub = MarketDataSubscriber(sys.argv[1], subscribe_timeout=30, peer_timeout=60)
print(json.dumps({"ready": hwm()}), flush=True)
got = sub.recv(timeout=60)  # the good frame sent after the garbage
start = time.monotonic()
while time.monotonic() - start < float(sys.argv[2]):  # the big frame arrives meanwhile
    sub.recv(timeout=0.1)
sub.close()
print(json.dumps({"got": got.message.price if got else None, "hwm": hwm(),
                  "rejected": dict(sub.stats.rejected), "ignored": sub.stats.ignored}), flush=True)
"""


def _garbage(channel: str) -> tuple[list[bytes], Counter[str]]:
    """Bad frames of every kind a subscriber can see, and how each must be counted."""
    md = wire.message_type_of(MarketData)
    hb = registry.HEARTBEAT_TYPE
    topic = wire.topic(channel, "AAPL")
    keyless = wire.topic(channel)
    bad_pb = b"\xff\xff\xff\xff"  # a varint that never ends: no protobuf message parses it
    good = wire.pack_frame(topic, md.type_id, md.fingerprint, 7, 1, 1, 0, b"")
    kinds: list[tuple[str, bytes]] = [
        ("bad_magic", good.replace(b"TW", b"XX", 1)),
        ("truncated", good[:-10]),
        ("unknown_type", wire.pack_frame(topic, 999, 0, 7, 1, 1, 0, b"")),
        ("bad_payload", wire.pack_frame(topic, md.type_id, md.fingerprint, 7, 1, 1, 0, bad_pb)),
        ("bad_payload", wire.pack_frame(keyless, hb.type_id, hb.fingerprint, 7, 0, 0, 0, bad_pb)),
    ]
    for control in (
        registry.REPLAY_REQUEST_TYPE,
        registry.SNAPSHOT_REQUEST_TYPE,
        registry.SNAPSHOT_END_TYPE,
    ):  # control types a subscriber does not use: still counted when their payload is bad
        kinds.append(
            (
                "bad_payload",
                wire.pack_frame(keyless, control.type_id, control.fingerprint, 7, 0, 0, 0, bad_pb),
            )
        )
    frames: list[bytes] = []
    expected: Counter[str] = Counter()
    for i in range(20_000):
        kind, frame = kinds[i % len(kinds)]
        frames.append(frame)
        expected[kind] += 1
    return frames, expected


def test_subscriber_bounds_an_oversized_frame_and_counts_and_rate_limits_garbage(
    tmp_path: Path,
) -> None:
    """A hand-made publisher sends a subscriber process 20,000 bad frames, one good frame
    and a 256 MB frame: its peak memory stays within 64 MB of the idle figure, every bad
    frame is counted by kind, and the warnings come at most about one line a second."""
    endpoint = f"ipc://{tmp_path}/md.ipc"
    ctx = zmq.Context()
    xpub = ctx.socket(zmq.XPUB)
    xpub.setsockopt(zmq.SNDHWM, 0)
    xpub.setsockopt(zmq.LINGER, 0)
    xpub.bind(endpoint)
    hb = registry.HEARTBEAT_TYPE
    proc = _child(SUBSCRIBER_CHILD, endpoint, "3")
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # the subscription handshake, by hand
            if not xpub.poll(1000):
                continue
            event = xpub.recv()
            if event[:1] == b"\x01" and b"~sync~" in event:
                beat = registry.HEARTBEAT_TYPE.cls(channel="market_data", last_seq=0)
                xpub.send(
                    wire.pack_frame(
                        event[1:], hb.type_id, hb.fingerprint, 7, 0, 0, 0, beat.SerializeToString()
                    )
                )
                break
        idle = json.loads(_readline(proc))["ready"]
        frames, expected = _garbage("market_data")
        started = time.monotonic()
        for frame in frames:
            xpub.send(frame)
        xpub.send(
            wire.encode_message(
                "market_data",
                MarketData(symbol="AAPL", price=1.5),
                key="AAPL",
                publisher_id=7,
                seq=1,
                send_ts_ns=0,
            )
        )
        xpub.send(_oversized_frame("market_data", BIG), copy=False)
        report = json.loads(_readline(proc, timeout=90))
        elapsed = time.monotonic() - started
        _, err = proc.communicate(timeout=60)
    finally:
        _reap(proc)
        xpub.close()
        ctx.term()
    print(f"subscriber peak grew {(report['hwm'] - idle) / MB:.1f} MB, {len(frames)} bad frames")
    assert report["got"] == 1.5, report
    assert report["rejected"] == dict(expected), report
    assert report["hwm"] - idle < GROWTH_LIMIT, (report["hwm"] - idle) / MB
    warnings = [line for line in err.splitlines() if line.startswith("WARNING")]
    assert 1 <= len(warnings) <= elapsed + 2, (len(warnings), elapsed, warnings[:5])
    assert "unknown_type=" in "".join(warnings)


COMMAND_SERVER_CHILD = """
import json, sys
from pathlib import Path
from tradewire.channels import CommandsServer
from tradewire.messages import CommandAck

def hwm():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
stop = []
def handle(cmd):
    stop.append(cmd.command_id == "stop")
    return CommandAck(outcome=CommandAck.APPLIED)
with CommandsServer(sys.argv[1], handle) as server:
    print(json.dumps({"ready": hwm()}), flush=True)
    server.serve(until=lambda: any(stop))
    print(json.dumps({"hwm": hwm(), "rejected": dict(server.stats.rejected),
                      "received": server.stats.received}), flush=True)
"""


def test_command_server_drops_an_oversized_frame_before_buffering_it(tmp_path: Path) -> None:
    """A raw DEALER sends a command server process one 256 MB frame and three bad ones: its
    peak memory stays within 64 MB of the idle figure, the bad frames are counted, and a
    real client is served afterwards."""
    endpoint = f"ipc://{tmp_path}/cmd.ipc"
    proc = _child(COMMAND_SERVER_CHILD, endpoint)
    ctx = zmq.Context()
    try:
        idle = json.loads(_readline(proc))["ready"]
        bad = ctx.socket(zmq.DEALER)
        bad.setsockopt(zmq.LINGER, 0)
        bad.connect(endpoint)
        for frame in (b"junk", b"x" * 200, _oversized_frame("commands", 20 * MB)[:200]):
            bad.send(frame)
        big = ctx.socket(zmq.DEALER)
        big.setsockopt(zmq.LINGER, 0)
        big.connect(endpoint)
        big.send(_oversized_frame("commands", BIG), copy=False)
        time.sleep(3)  # time to take it all in, had it been accepted
        with CommandsClient(endpoint) as client:
            ack = client.send(
                StrategyCommand(type=StrategyCommand.KILL_SWITCH, command_id="stop"), timeout=30
            )
        report = json.loads(_readline(proc))
        proc.wait(timeout=60)
        bad.close()
        big.close()
    finally:
        _reap(proc)
        ctx.term()
    print(f"command server peak grew {(report['hwm'] - idle) / MB:.1f} MB")
    assert ack.command_id == "stop"
    assert report["hwm"] - idle < GROWTH_LIMIT, (report["hwm"] - idle) / MB
    assert sum(report["rejected"].values()) == 3, report
    assert report["rejected"].get("oversized") == 1, report


PUBLISHER_CHILD = """
import sys, time
from tradewire.channels import MarketDataPublisher
from tradewire.messages import MarketData

pub = MarketDataPublisher(sys.argv[1], ring_size=100_000)
for i in range(100_000):
    pub.publish(MarketData(symbol="AAPL", price=float(i)))
print("ready", flush=True)
sys.stdin.readline()
print(pub.stats.replay_requests, pub.stats.replays_refused, pub.stats.control_send_failed,
      flush=True)
pub.close()
"""


def test_unread_full_ring_replays_leave_publisher_memory_bounded(tmp_path: Path) -> None:
    """20 replay requests for the whole 100,000-frame ring from peers that never read: the
    publisher process grows by less than 64 MB and still answers a reading peer."""
    endpoint = f"ipc://{tmp_path}/md.ipc"
    proc = subprocess.Popen(
        [sys.executable, "-c", PUBLISHER_CHILD, endpoint],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    ctx = zmq.Context()
    peers: list[zmq.Socket[Any]] = []
    try:
        assert _readline(proc).strip() == "ready"
        idle = _status_kb(proc.pid, "VmHWM")
        rr = registry.REPLAY_REQUEST_TYPE
        for _ in range(20):
            dealer = ctx.socket(zmq.DEALER)
            dealer.setsockopt(zmq.LINGER, 0)
            dealer.connect(endpoint + ".ctl")
            peers.append(dealer)
        pub_id = _publisher_id(ctx, endpoint)
        for dealer in peers:
            request = rr.cls(channel="market_data", publisher_id=pub_id, from_seq=1, to_seq=100_000)
            dealer.send(
                wire.encode_message("market_data", request, publisher_id=1, seq=0, send_ts_ns=0)
            )
        time.sleep(8)  # the answers go out as far as the unread peers let them
        grown = _status_kb(proc.pid, "VmHWM") - idle
        reader = ctx.socket(zmq.DEALER)
        reader.setsockopt(zmq.LINGER, 0)
        reader.connect(endpoint + ".ctl")
        request = rr.cls(
            channel="market_data", publisher_id=pub_id, from_seq=99_991, to_seq=100_000
        )
        reader.send(
            wire.encode_message("market_data", request, publisher_id=1, seq=0, send_ts_ns=0)
        )
        answers: list[wire.Envelope] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(e.type_id == 9 for e in answers):
            if reader.poll(1000):
                answers.append(wire.decode_frame(reader.recv()))
        reader.close()
        out, _ = proc.communicate("\n", timeout=60)
    finally:
        for dealer in peers:
            dealer.close()
        _reap(proc)
        ctx.term()
    print(f"publisher peak grew {grown / MB:.1f} MB; {out.split()}")
    assert grown < GROWTH_LIMIT, grown / MB
    assert [e.seq for e in answers[:-1]] == list(range(99_991, 100_001)), len(answers)
    requests, refused, abandoned = map(int, out.split())
    assert requests == 21 and refused == 0, out
    assert abandoned >= 1, out  # an unread answer is given up, not kept


def _publisher_id(ctx: zmq.Context[Any], endpoint: str) -> int:
    """The publisher's id, from the Heartbeat answering a sync subscription."""
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.connect(endpoint)
    sync = wire.topic("market_data", "~sync~" + "0" * 16)
    sub.subscribe(sync)
    try:
        assert sub.poll(30_000), "no handshake heartbeat"
        return wire.decode_frame(sub.recv()).publisher_id
    finally:
        sub.close()

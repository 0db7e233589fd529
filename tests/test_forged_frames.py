"""Forged frames with valid headers, injected between a real publisher process and a
subscriber (Python in this process, Rust in its own): a far-ahead seq, a flipped publisher
id, a heartbeat claiming a far-ahead last seq. None may stop the real stream, none may be
delivered, nothing may be delivered twice, each is counted as disowned."""

from __future__ import annotations

import itertools
import json
import queue
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import zmq
from test_stress import PublisherProcess

from tradewire import wire
from tradewire.channels import MarketDataSubscriber
from tradewire.messages import Heartbeat, MarketData

TOTAL = 6_000
RATE = 2_000  # msg/s: the stream lasts 3 s, the forgeries land in its middle
FORGED_PRICE = -1.0


class Relay:
    """An XSUB/XPUB forwarder (subscriptions up, frames down) that can slip extra frames
    into the downstream, as a compromised or buggy hop between publisher and subscriber."""

    def __init__(self, upstream: str, downstream: str) -> None:
        self._inject: queue.Queue[bytes] = queue.Queue()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(upstream, downstream))
        self._thread.start()
        assert self._ready.wait(10), "relay did not start"

    def _run(self, upstream: str, downstream: str) -> None:
        ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
        xpub = ctx.socket(zmq.XPUB)
        xsub = ctx.socket(zmq.XSUB)
        try:
            xpub.setsockopt(zmq.XPUB_VERBOSE, 1)
            xpub.setsockopt(zmq.SNDHWM, 0)
            xpub.bind(downstream)
            xsub.connect(upstream)
            self._ready.set()
            poller = zmq.Poller()
            poller.register(xpub, zmq.POLLIN)
            poller.register(xsub, zmq.POLLIN)
            while not self._stop.is_set():
                for sock, _ in poller.poll(10):
                    frame = sock.recv()
                    (xsub if sock is xpub else xpub).send(frame)
                while not self._inject.empty():
                    xpub.send(self._inject.get())
        finally:
            xpub.close(linger=0)
            xsub.close(linger=0)

    def inject(self, frame: bytes) -> None:
        self._inject.put(frame)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)


def forged_frames(publisher_id: int, next_seq: int) -> list[bytes]:
    """The four forgeries: seq with bit 40 set, seq with bit 20 set, the publisher id
    with one bit flipped, and a Heartbeat claiming last_seq 2**40."""
    tick = MarketData(symbol="AAPL", price=FORGED_PRICE, exchange="FORGED")
    now = time.time_ns()

    def data(pid: int, seq: int) -> bytes:
        return wire.encode_message(
            "market_data", tick, key="AAPL", publisher_id=pid, seq=seq, send_ts_ns=now
        )

    beat = Heartbeat(channel="market_data", last_seq=1 << 40)
    return [
        data(publisher_id, next_seq | 1 << 40),
        data(publisher_id, next_seq | 1 << 20),
        data(publisher_id ^ 1 << 62, next_seq),
        wire.encode_message("market_data", beat, publisher_id=publisher_id, seq=0, send_ts_ns=now),
    ]


@pytest.fixture
def pipeline(tmp_path: Path) -> Iterator[tuple[PublisherProcess, Relay, str, str]]:
    endpoint = f"ipc://{tmp_path}/md"
    relayed = f"ipc://{tmp_path}/relay"
    publisher = PublisherProcess(endpoint, 100_000)
    relay = Relay(endpoint, relayed)
    try:
        yield publisher, relay, relayed, endpoint + ".ctl"
    finally:
        relay.close()
        publisher.stop()


def check_stream(seqs: list[int], arrivals: list[float], forged_at: float) -> None:
    assert seqs == list(range(1, TOTAL + 1)), "every real message exactly once, in order"
    after = [b - a for a, b in itertools.pairwise(arrivals) if a >= forged_at]
    assert after, "the forgeries must land while the stream flows"
    # the real stream flows past a forgery: no pause of a second (the publisher sends
    # every 0.5 ms; a stall would be a forged number holding back the real ones)
    print(f"longest pause between deliveries after the forgeries: {max(after) * 1000:.1f} ms")
    assert max(after) < 1.0, f"delivery stalled {max(after):.3f} s after the forgeries"


@pytest.mark.timeout(120)
def test_python_subscriber_disowns_forged_frames(
    pipeline: tuple[PublisherProcess, Relay, str, str],
) -> None:
    publisher, relay, relayed, control = pipeline
    seqs: list[int] = []
    arrivals: list[float] = []
    forged_at = float("inf")
    with MarketDataSubscriber(relayed, control=control) as sub:
        publisher.publish(TOTAL)
        deadline = time.monotonic() + 60
        while len(seqs) < TOTAL and time.monotonic() < deadline:
            got = sub.recv(timeout=1.0)
            if got is None:
                continue
            assert got.message.price != FORGED_PRICE, f"forged frame delivered: {got}"
            seqs.append(got.envelope.seq)
            arrivals.append(time.monotonic())
            if len(seqs) == TOTAL // 3:
                for frame in forged_frames(publisher.publisher_id, got.envelope.seq + 1):
                    relay.inject(frame)
                forged_at = time.monotonic()
        stats = sub.stats
        events = list(sub.events)
    assert publisher.published() == TOTAL
    check_stream(seqs, arrivals, forged_at)
    assert stats.rejected["disowned"] == 4, stats.as_dict()
    assert stats.duplicates == 0 and stats.unrecoverable == 0, stats.as_dict()
    assert not [e for e in events if e.kind != "peer_back"], events


@pytest.mark.timeout(120)
def test_rust_subscriber_disowns_forged_frames(
    pipeline: tuple[PublisherProcess, Relay, str, str], rust_bin_dir: Path
) -> None:
    publisher, relay, relayed, control = pipeline
    proc = subprocess.Popen(
        [
            str(rust_bin_dir / "tradewire-subscribe"),
            "--endpoint",
            relayed,
            "--control",
            control,
            "--json",
            "--count",
            str(TOTAL),
            "--idle-timeout-ms",
            "20000",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    lines: queue.Queue[tuple[float, str]] = queue.Queue()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put((time.monotonic(), line))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    seqs: list[int] = []
    arrivals: list[float] = []
    events: list[dict[str, object]] = []
    summary: dict[str, object] = {}
    forged_at = float("inf")
    try:
        assert json.loads(lines.get(timeout=30)[1]).get("ready"), "no ready line"
        publisher.publish(TOTAL)
        deadline = time.monotonic() + 60
        while not summary and time.monotonic() < deadline:
            try:
                at, line = lines.get(timeout=1.0)
            except queue.Empty:
                continue
            row = json.loads(line)
            if "summary" in row:
                summary = row["summary"]
            elif "event" in row:
                events.append(row)
            else:
                assert row["price"] != FORGED_PRICE, f"forged frame delivered: {row}"
                seqs.append(row["seq"])
                arrivals.append(at)
                if len(seqs) == TOTAL // 3:
                    for frame in forged_frames(publisher.publisher_id, row["seq"] + 1):
                        relay.inject(frame)
                    forged_at = time.monotonic()
    finally:
        if proc.poll() is None:
            proc.wait(timeout=30)
        reader.join(10)
        proc.stdout.close()
    assert publisher.published() == TOTAL
    assert proc.returncode == 0, summary
    check_stream(seqs, arrivals, forged_at)
    assert summary["rejected_by_kind"] == {"disowned": 4}, summary
    assert summary["duplicates"] == 0 and summary["unrecoverable"] == 0, summary
    assert not [e for e in events if e["event"] != "peer_back"], events

"""CURVE on publisher control sockets (WIRE.md 8.4): a publisher whose control socket
allows one client key serves replays to that client only; a subscriber without keys, or
with a key not allowed, still gets the live stream and reports the replay it could not
get as an unrecoverable range, and the publisher counts each refused handshake by kind.
Python and Rust publishers, Python subscribers (the Rust subscriber: the crate's
`transport_curve` tests)."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from tradewire.channels import MarketDataPublisher, MarketDataSubscriber
from tradewire.messages import MarketData
from tradewire.transport import CurveClient, CurveKeyPair, CurveServer

BEFORE = 200  # published before any subscriber: reachable by replay only
LIVE = 100
# Guards a hang only: replays over ipc take milliseconds.
DEADLINE = 20.0


def _tick(i: int) -> MarketData:
    return MarketData(symbol=("AAPL", "MSFT")[i % 2], price=100.0 + i, timestamp_us=i + 1)


def _collect(sub: MarketDataSubscriber, want: int) -> list[int]:
    seqs: list[int] = []
    deadline = time.monotonic() + DEADLINE
    while len(seqs) < want and time.monotonic() < deadline:
        got = sub.recv(timeout=0.2)
        if got is not None:
            seqs.append(got.envelope.seq)
    return seqs


def _lost(sub: MarketDataSubscriber) -> list[tuple[int, int]]:
    return [(e.first, e.last) for e in sub.events if e.kind == "unrecoverable_gap"]


def _wait(what: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + DEADLINE
    while not what():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _settle(sub: MarketDataSubscriber) -> list[int]:
    """Drives `sub` (its timers run inside `recv`) until it reports a lost range; what
    it delivered meanwhile."""
    seqs: list[int] = []
    deadline = time.monotonic() + DEADLINE
    while not _lost(sub) and time.monotonic() < deadline:
        got = sub.recv(timeout=0.1)
        if got is not None:
            seqs.append(got.envelope.seq)
    return seqs


def _subscribers(
    ep: str, server: CurveKeyPair, friend: CurveKeyPair, stranger: CurveKeyPair
) -> tuple[MarketDataSubscriber, MarketDataSubscriber, MarketDataSubscriber]:
    def connect(keys: CurveKeyPair | None) -> MarketDataSubscriber:
        curve = CurveClient(keys=keys, server_public=server.public) if keys else None
        return MarketDataSubscriber(
            ep,
            start="earliest",
            replay_timeout=1.0,
            subscribe_timeout=DEADLINE,
            control_curve=curve,
        )

    return connect(friend), connect(None), connect(stranger)


def _check_deliveries(
    allowed: MarketDataSubscriber, plain: MarketDataSubscriber, unknown: MarketDataSubscriber
) -> None:
    total = BEFORE + LIVE
    assert _collect(allowed, total) == list(range(1, total + 1))
    assert _lost(allowed) == []
    for refused in (plain, unknown):
        # What it could not replay is reported, never silently skipped; the live
        # stream is delivered after it.
        early = _settle(refused)
        assert _lost(refused) == [(1, BEFORE)], list(refused.events)
        assert early + _collect(refused, LIVE - len(early)) == list(range(BEFORE + 1, total + 1))


def test_python_publisher_serves_replays_to_allowed_keys_only(tmp_path: Path) -> None:
    server, friend, stranger = (CurveKeyPair.generate() for _ in range(3))
    ep = f"ipc://{tmp_path}/md"
    curve = CurveServer(keys=server, allowed_clients=frozenset({friend.public}))
    with MarketDataPublisher(ep, control_curve=curve, heartbeat_interval=0.2) as pub:
        for i in range(BEFORE):
            pub.publish(_tick(i))
        allowed, plain, unknown = _subscribers(ep, server, friend, stranger)
        try:
            for i in range(BEFORE, BEFORE + LIVE):
                pub.publish(_tick(i))
            _check_deliveries(allowed, plain, unknown)
            assert _wait(
                lambda: (
                    pub.curve_refusals().get("no_curve", 0) >= 1
                    and pub.curve_refusals().get("unknown_client", 0) >= 1
                )
            ), pub.curve_refusals()
            assert set(pub.curve_refusals()) <= {"no_curve", "unknown_client"}
        finally:
            for sub in (allowed, plain, unknown):
                sub.close()


def test_rust_publisher_serves_replays_to_allowed_keys_only(
    tmp_path: Path, rust_bin_dir: Path
) -> None:
    server, friend, stranger = (CurveKeyPair.generate() for _ in range(3))
    ep = f"ipc://{tmp_path}/md"
    cmd = [
        str(rust_bin_dir / "tradewire-publish"),
        *("--endpoint", ep, "--count", str(BEFORE), "--print-ready", "--hold-until-eof"),
        *("--symbols", "AAPL,MSFT", "--heartbeat-ms", "200"),
        *("--control-curve-secret", server.secret.decode()),
        *("--control-curve-public", server.public.decode()),
        *("--allow", friend.public.decode()),
    ]
    with subprocess.Popen(
        cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as proc:
        assert proc.stdout is not None and proc.stdin is not None
        ready = json.loads(proc.stdout.readline())
        assert ready["ready"] is True
        allowed, plain, unknown = _subscribers(ep, server, friend, stranger)
        try:
            # The Rust publisher sent its BEFORE ticks at once; nothing live follows, so
            # each subscriber's whole stream is what the control socket lets it replay.
            assert _collect(allowed, BEFORE) == list(range(1, BEFORE + 1))
            assert _lost(allowed) == []
            for refused in (plain, unknown):
                assert _settle(refused) == []
                assert _lost(refused) == [(1, BEFORE)], list(refused.events)
                assert refused.recv(timeout=0.2) is None
        finally:
            for sub in (allowed, plain, unknown):
                sub.close()
            proc.stdin.close()
        assert proc.stderr is not None
        out, err = proc.stdout.read(), proc.stderr.read()
        assert proc.wait(timeout=DEADLINE) == 0, err
        summary = json.loads(out.strip().splitlines()[-1])
        refusals = summary["curve_refused"]
        assert refusals.get("no_curve", 0) >= 1 and refusals.get("unknown_client", 0) >= 1, err
        assert set(refusals) <= {"no_curve", "unknown_client"}
        assert "only CURVE clients" in err or "without CURVE" in err

"""Transport.* and Relay.*: the runner plays one side with the Python SDK, the testee the other.

Every case names its pair (`runner:<role> x testee:<role>`); against a Rust testee these
are the Python x Rust combinations of the interop matrix, in both directions.
"""

from __future__ import annotations

import shutil
import struct
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import zmq

from tradewire import wire
from tradewire._gen import registry
from tradewire.conformance._gen import conformance_pb2 as pb
from tradewire.conformance.context import Case, CaseFailed, Context, check
from tradewire.transport import (
    CommandClient,
    CommandServer,
    JournalOptions,
    Publisher,
    Subscriber,
)
from tradewire.transport._base import now_ns

MD = registry.MARKET_DATA_TYPE.cls
CMD = registry.STRATEGY_COMMAND_TYPE.cls
ACK = registry.COMMAND_ACK_TYPE.cls
KEYS = ["AAPL", "MSFT", "GOOG"]


# -- runner-side helpers ----------------------------------------------------------------


class LossyPublisher(Publisher[Any]):
    """The runner's publisher that can lose frames on purpose: `send=False` keeps a frame in
    the replay ring without sending it (recoverable); `keep=False` forgets it too."""

    def publish_lossy(self, message: Any, *, send: bool = True, keep: bool = True) -> int:
        key: str = getattr(message, self._key_field) if self._key_field else ""
        topic = wire.topic(self.channel.name, key)
        with self._lock:
            self._seq = seq = self._seq + 1
            key_seq = self._key_seq[key] = self._key_seq.get(key, 0) + 1 if key else seq
            frame = wire.pack_frame(
                topic,
                self._type.type_id,
                self._type.fingerprint,
                self.publisher_id,
                seq,
                key_seq,
                now_ns(),
                message.SerializeToString(),
            )
            if self._journal is not None and keep:
                self._journal.append(frame)
            if send:
                self._data.send(frame)
            self._ring[(seq - 1) % self._ring_size] = (key, key_seq, frame) if keep else None
            if self._last_value is not None and keep:
                self._last_value[key] = frame
            self._last_send = time.monotonic()
        return seq

    def send_raw(self, frame: bytes) -> None:
        """A hand-made frame on the data socket, outside the publisher's numbering."""
        with self._lock:
            self._data.send(frame)


def tick(i: int, key: str) -> Any:
    return MD(symbol=key, price=float(i), timestamp_us=i)


def publish_ticks(
    pub: LossyPublisher,
    n: int,
    keys: list[str],
    start: int = 1,
    lose: Callable[[int], tuple[bool, bool]] | None = None,
) -> None:
    for i in range(start, start + n):
        send, keep = lose(i) if lose else (True, True)
        pub.publish_lossy(tick(i, keys[(i - 1) % len(keys)]), send=send, keep=keep)


def recv_all(sub: Subscriber[Any], n: int, timeout: float = 10.0) -> list[Any]:
    got: list[Any] = []
    deadline = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        r = sub.recv(timeout=max(0.01, deadline - time.monotonic()))
        if r is not None:
            got.append(r)
    return got


def contiguous(numbers: list[int], first: int, last: int, what: str) -> None:
    want = list(range(first, last + 1))
    if numbers == want:
        return
    missing = sorted(set(want) - set(numbers))
    extra = [x for x in numbers if x not in set(want)]
    dup = len(numbers) - len(set(numbers))
    raise CaseFailed(
        f"{what}: expected {first}..{last} in order; got {len(numbers)} numbers, missing "
        f"{missing[:10]}{'...' if len(missing) > 10 else ''}, unexpected {extra[:10]}, "
        f"{dup} duplicates, in order: {numbers == sorted(numbers)}"
    )


def payload_ok(d: pb.Delivered) -> None:
    msg = MD.FromString(d.payload)
    check(
        msg.symbol == d.key and msg.price == float(msg.timestamp_us) and msg.timestamp_us > 0,
        f"delivered payload does not match what was published: {msg}",
    )


def events(report: pb.ActionReport, *kinds: str) -> list[pb.TransportEvent]:
    return [e for e in report.events if e.kind in kinds]


def control_dealer(endpoint: str) -> zmq.Socket[bytes]:
    sock: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    return sock


def control_request(sock: zmq.Socket[bytes], message: Any, timeout: float = 5.0) -> list[bytes]:
    """Send one control request; collect answers up to and including the end frame."""
    sock.send(
        wire.encode_message("market_data", message, publisher_id=1, seq=0, send_ts_ns=now_ns())
    )
    ends = {registry.REPLAY_END_TYPE.type_id, registry.SNAPSHOT_END_TYPE.type_id}
    out = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not sock.poll(int((deadline - time.monotonic()) * 1000) + 1):
            continue
        frame = sock.recv()
        out.append(frame)
        if wire.decode_frame(frame).type_id in ends:
            return out
    raise CaseFailed(f"no end frame within {timeout}s (got {len(out)} frames)")


# -- testee publishes, runner subscribes -------------------------------------------------


def _testee_publisher(ctx: Context, keys: list[str] | None) -> None:
    ep = ctx.endpoint()
    ready = ctx.start(pb.PUBLISHER, endpoint=ep)
    n = 2400
    with Subscriber(ep, channel=registry.MARKET_DATA, keys=keys, subscribe_timeout=10) as sub:
        report = ctx.action(publish=pb.Publish(count=n, keys=KEYS))
        check(report.published == n, f"testee published {report.published} of {n}")
        want = n if keys is None else sum(1 for i in range(n) if KEYS[i % 3] in keys)
        got = recv_all(sub, want)
        extra = sub.recv(timeout=0.2)
        gaps = [e for e in sub.events if e.kind in ("gap_detected", "unrecoverable_gap")]
    ctx.stop()
    check(extra is None, "more messages than published")
    check(
        {g.envelope.publisher_id for g in got} == {ready.publisher_id},
        "publisher_id differs from the one the testee reported",
    )
    if keys is None:
        contiguous([g.envelope.seq for g in got], 1, n, "seq")
        for key in KEYS:
            contiguous(
                [g.envelope.key_seq for g in got if g.envelope.key == key],
                1,
                n // 3,
                f"key_seq of {key}",
            )
    else:
        check({g.envelope.key for g in got} <= set(keys), "received keys outside the filter")
        contiguous([g.envelope.key_seq for g in got], 1, want, "key_seq")
        seqs = [g.envelope.seq for g in got]
        check(
            seqs == [i + 1 for i in range(n) if KEYS[i % 3] in keys],
            "seq of filtered messages is not the channel sequence",
        )
    check(
        all(g.message.price == float(g.message.timestamp_us) for g in got),
        "payload fields differ from what the testee was asked to publish",
    )
    check(not gaps, f"a lossless link showed gaps: {gaps[:3]}")


def _replay_served(ctx: Context) -> None:
    ep = ctx.endpoint()
    ready = ctx.start(pb.PUBLISHER, endpoint=ep)
    with Subscriber(ep, channel=registry.MARKET_DATA, subscribe_timeout=10) as sub:
        ctx.action(publish=pb.Publish(count=30, keys=KEYS))
        originals = {g.envelope.seq: g.envelope.encode() for g in recv_all(sub, 30)}
    dealer = control_dealer(wire_control(ep))
    try:
        req = registry.REPLAY_REQUEST_TYPE.cls(
            channel="market_data", publisher_id=ready.publisher_id, from_seq=3, to_seq=7
        )
        frames = control_request(dealer, req)
        keyed = registry.REPLAY_REQUEST_TYPE.cls(
            channel="market_data", key="MSFT", publisher_id=ready.publisher_id, from_seq=2, to_seq=4
        )
        kframes = control_request(dealer, keyed)
        stranger = registry.REPLAY_REQUEST_TYPE.cls(
            channel="market_data", publisher_id=12345, from_seq=1, to_seq=2
        )
        sframes = control_request(dealer, stranger)
    finally:
        dealer.close()
    ctx.stop()
    data = [wire.decode_frame(f) for f in frames[:-1]]
    check([e.seq for e in data] == [3, 4, 5, 6, 7], f"replayed seqs {[e.seq for e in data]}")
    for e in data:
        check(e.flags & wire.FLAG_REPLAY, f"seq {e.seq} replayed without FLAG_REPLAY")
        check(
            e._replace(flags=0).encode() == originals[e.seq],
            f"replayed seq {e.seq} differs from the original frame beyond the flag",
        )
    end = wire.parse_payload(wire.decode_frame(frames[-1]), registry.REPLAY_END_TYPE.cls)
    check(end.replayed == 5 and end.unrecoverable_to == 0, f"ReplayEnd: {end}")
    kdata = [wire.decode_frame(f) for f in kframes[:-1]]
    check(
        [(e.key, e.key_seq) for e in kdata] == [("MSFT", 2), ("MSFT", 3), ("MSFT", 4)],
        f"keyed replay returned {[(e.key, e.key_seq) for e in kdata]}",
    )
    send = wire.parse_payload(wire.decode_frame(sframes[-1]), registry.REPLAY_END_TYPE.cls)
    check(
        len(sframes) == 1 and send.unknown_publisher,
        f"replay for an unknown publisher id: {len(sframes)} frames, {send}",
    )


def wire_control(ep: str) -> str:
    from tradewire.transport import control_endpoint

    return control_endpoint(ep)


def _replay_unrecoverable(ctx: Context) -> None:
    ep = ctx.endpoint()
    ready = ctx.start(pb.PUBLISHER, endpoint=ep, ring_size=10)
    with Subscriber(ep, channel=registry.MARKET_DATA, subscribe_timeout=10) as sub:
        ctx.action(publish=pb.Publish(count=50, keys=KEYS))
        recv_all(sub, 50)
    dealer = control_dealer(wire_control(ep))
    try:
        req = registry.REPLAY_REQUEST_TYPE.cls(
            channel="market_data", publisher_id=ready.publisher_id, from_seq=35, to_seq=45
        )
        frames = control_request(dealer, req)
    finally:
        dealer.close()
    ctx.stop()
    seqs = [wire.decode_frame(f).seq for f in frames[:-1]]
    end = wire.parse_payload(wire.decode_frame(frames[-1]), registry.REPLAY_END_TYPE.cls)
    check(seqs == list(range(41, 46)), f"replayed {seqs}, expected 41..45 (ring of 10)")
    check(
        (end.unrecoverable_from, end.unrecoverable_to) == (35, 40),
        f"ReplayEnd must name 35..40 unrecoverable: {end}",
    )


def _snapshot_from_testee(ctx: Context) -> None:
    ep = ctx.endpoint()
    ctx.start(pb.PUBLISHER, endpoint=ep)
    ctx.action(publish=pb.Publish(count=30, keys=KEYS))
    with Subscriber(ep, channel=registry.MARKET_DATA, snapshot=True, subscribe_timeout=10) as sub:
        snap = recv_all(sub, 3, timeout=5)
        ctx.action(publish=pb.Publish(count=3, keys=KEYS))
        live = recv_all(sub, 3, timeout=5)
    ctx.stop()
    check(
        sorted((g.envelope.key, g.envelope.seq) for g in snap)
        == [("AAPL", 28), ("GOOG", 30), ("MSFT", 29)],
        f"snapshot: {[(g.envelope.key, g.envelope.seq) for g in snap]}",
    )
    check(all(g.envelope.flags & wire.FLAG_SNAPSHOT for g in snap), "snapshot frames unflagged")
    check(
        [g.envelope.seq for g in live] == [31, 32, 33],
        f"live after snapshot: {[g.envelope.seq for g in live]}",
    )


def _heartbeats_from_testee(ctx: Context) -> None:
    ep = ctx.endpoint()
    ctx.start(pb.PUBLISHER, endpoint=ep, heartbeat_interval_ms=100)
    with Subscriber(ep, channel=registry.MARKET_DATA, subscribe_timeout=10) as sub:
        ctx.action(publish=pb.Publish(count=5, keys=KEYS))
        recv_all(sub, 5)
    sock: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.SUB)
    sock.setsockopt(zmq.LINGER, 0)
    sock.subscribe(wire.topic("market_data"))
    sock.connect(ep)
    beats = []
    try:
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            if sock.poll(50):
                beats.append(wire.decode_frame(sock.recv()))
    finally:
        sock.close()
    ctx.stop()
    check(len(beats) >= 4, f"{len(beats)} heartbeats in 1.5 s at a 100 ms interval")
    for env in beats:
        check(
            env.type_id == registry.HEARTBEAT_TYPE.type_id
            and env.seq == 0
            and env.key_seq == 0
            and env.key == "",
            f"not a heartbeat frame: {env}",
        )
        hb = wire.parse_payload(env, registry.HEARTBEAT_TYPE.cls)
        check(hb.last_seq == 5 and hb.channel == "market_data", f"heartbeat says {hb}")
        check(
            dict(hb.last_key_seq) == {"AAPL": 2, "MSFT": 2, "GOOG": 1},
            f"heartbeat last_key_seq {dict(hb.last_key_seq)}",
        )


# -- runner publishes, testee subscribes -------------------------------------------------


def _testee_subscriber(ctx: Context, keys: list[str] | None) -> None:
    ep = ctx.endpoint()
    n = 2400
    with LossyPublisher(ep, channel=registry.MARKET_DATA) as pub:
        ctx.start(pb.SUBSCRIBER, endpoint=ep, keys=keys or [])
        publish_ticks(pub, n, KEYS)
        want = n if keys is None else sum(1 for i in range(n) if KEYS[i % 3] in keys)
        report = ctx.action(collect=pb.Collect(count=want, idle_ms=1500, timeout_ms=20000))
        extra = ctx.action(collect=pb.Collect(count=1, idle_ms=200, timeout_ms=300))
    ctx.stop()
    check(not extra.messages, "delivered more messages than published")
    msgs = list(report.messages)
    if keys is None:
        contiguous([m.seq for m in msgs], 1, n, "delivered seq")
    else:
        check(
            {m.key for m in msgs} <= set(keys),
            f"keys outside the filter: {sorted({m.key for m in msgs} - set(keys))}",
        )
        contiguous([m.key_seq for m in msgs], 1, want, "delivered key_seq")
    check({m.publisher_id for m in msgs} == {pub.publisher_id}, "publisher_id not as sent")
    for m in msgs[:50]:
        payload_ok(m)
    bad = events(report, "gap_detected", "unrecoverable_gap")
    check(not bad, f"events on a lossless link: {bad[:3]}")


def _gap_recovered(ctx: Context) -> None:
    ep = ctx.endpoint()
    n = 300
    lost = {50, 51, 52, 120, 250}
    with LossyPublisher(ep, channel=registry.MARKET_DATA) as pub:
        ctx.start(pb.SUBSCRIBER, endpoint=ep)
        publish_ticks(pub, n, KEYS, lose=lambda i: (i not in lost, True))
        report = ctx.action(collect=pb.Collect(count=n, idle_ms=2000, timeout_ms=20000))
    ctx.stop()
    contiguous([m.seq for m in report.messages], 1, n, "delivered seq after replay")
    replayed = {m.seq for m in report.messages if m.flags & wire.FLAG_REPLAY}
    check(lost <= replayed, f"lost seqs {sorted(lost - replayed)} not delivered from replay")
    check(events(report, "gap_detected"), "no gap_detected event")
    check(not events(report, "unrecoverable_gap"), "recoverable gap reported unrecoverable")


def _gap_unrecoverable(ctx: Context) -> None:
    ep = ctx.endpoint()
    n = 100
    with LossyPublisher(ep, channel=registry.MARKET_DATA) as pub:
        ctx.start(pb.SUBSCRIBER, endpoint=ep, replay_timeout_ms=1000)
        publish_ticks(pub, n, KEYS, lose=lambda i: (i != 40, i != 40))
        report = ctx.action(collect=pb.Collect(count=n - 1, idle_ms=2500, timeout_ms=20000))
    ctx.stop()
    seqs = [m.seq for m in report.messages]
    check(
        seqs == [i for i in range(1, n + 1) if i != 40],
        f"expected 1..{n} without 40, got {len(seqs)} messages",
    )
    lost = [(e.first, e.last) for e in events(report, "unrecoverable_gap")]
    check(lost == [(40, 40)], f"unrecoverable_gap events {lost}, expected [(40, 40)]")


def _tail_gap(ctx: Context) -> None:
    ep = ctx.endpoint()
    with LossyPublisher(ep, channel=registry.MARKET_DATA, heartbeat_interval=0.1) as pub:
        ctx.start(pb.SUBSCRIBER, endpoint=ep)
        publish_ticks(pub, 10, KEYS, lose=lambda i: (i != 10, True))
        report = ctx.action(collect=pb.Collect(count=10, idle_ms=2000, timeout_ms=10000))
    ctx.stop()
    contiguous([m.seq for m in report.messages], 1, 10, "seq (10 lost, announced by heartbeat)")


def _snapshot_to_testee(ctx: Context) -> None:
    ep = ctx.endpoint()
    with LossyPublisher(ep, channel=registry.MARKET_DATA) as pub:
        publish_ticks(pub, 30, KEYS)
        ctx.start(pb.SUBSCRIBER, endpoint=ep, snapshot=True)
        publish_ticks(pub, 3, KEYS, start=31)
        report = ctx.action(collect=pb.Collect(count=6, idle_ms=1500, timeout_ms=10000))
    ctx.stop()
    got = [(m.key, m.seq, bool(m.flags & wire.FLAG_SNAPSHOT)) for m in report.messages]
    check(
        sorted(got[:3]) == [("AAPL", 28, True), ("GOOG", 30, True), ("MSFT", 29, True)],
        f"snapshot part: {got[:3]}",
    )
    check([s for _, s, _ in got[3:]] == [31, 32, 33], f"live part: {got[3:]}")


def _peer_loss(ctx: Context) -> None:
    ep = ctx.endpoint()
    pub = LossyPublisher(ep, channel=registry.MARKET_DATA, heartbeat_interval=0.1)
    try:
        ctx.start(pb.SUBSCRIBER, endpoint=ep, peer_timeout_ms=600)
        publish_ticks(pub, 3, KEYS)
        first = ctx.action(collect=pb.Collect(count=3, idle_ms=1000, timeout_ms=5000))
        time.sleep(0.3)
        check(not events(first, "peer_lost"), "peer_lost while heartbeats flow")
    finally:
        pub.close()
    lost = ctx.action(collect=pb.Collect(count=1, idle_ms=2000, timeout_ms=2500))
    ctx.stop()
    check(
        events(lost, "peer_lost"),
        f"no peer_lost within 2 s of a 600 ms peer timeout: {[e.kind for e in lost.events]}",
    )


def _restart(ctx: Context) -> None:
    ep = ctx.endpoint()
    pub = LossyPublisher(ep, channel=registry.MARKET_DATA, heartbeat_interval=0.1)
    try:
        ctx.start(pb.SUBSCRIBER, endpoint=ep, peer_timeout_ms=600)
        publish_ticks(pub, 5, KEYS)
        ctx.action(collect=pb.Collect(count=5, idle_ms=1000, timeout_ms=5000))
    finally:
        pub.close()
    with LossyPublisher(ep, channel=registry.MARKET_DATA, heartbeat_interval=0.1) as pub2:
        # Collect first: libzmq reconnects a SUB only while its owner calls into it. The
        # testee resends its subscriptions to the new publisher (no new handshake); publish
        # once they have arrived.
        ctx.submit(collect=pb.Collect(count=5, idle_ms=2000, timeout_ms=8000))
        check(pub2.wait_for_subscription(timeout=5.0), "the testee did not reconnect within 5 s")
        publish_ticks(pub2, 5, KEYS)
        report = ctx.report()
    ctx.stop()
    check(
        events(report, "publisher_restart"),
        f"no publisher_restart event: {[e.kind for e in report.events]}",
    )
    after = [m.seq for m in report.messages if m.publisher_id == pub2.publisher_id]
    check(after and after[-1] == 5, f"the new publisher's stream was not delivered: {after}")


FORGED_PRICE = -1.0


def _forged(publisher_id: int, next_seq: int) -> list[bytes]:
    """A far-ahead seq (bit 40, bit 20), a flipped publisher id, and a Heartbeat claiming
    last_seq 2**40: valid headers, numbers and ids the publisher never used (WIRE.md 9.1)."""
    md = MD(symbol="AAPL", price=FORGED_PRICE)
    now = now_ns()

    def data(pid: int, seq: int) -> bytes:
        return wire.encode_message(
            "market_data", md, key="AAPL", publisher_id=pid, seq=seq, send_ts_ns=now
        )

    beat = registry.HEARTBEAT_TYPE.cls(channel="market_data", last_seq=1 << 40)
    return [
        data(publisher_id, next_seq | 1 << 40),
        data(publisher_id, next_seq | 1 << 20),
        data(publisher_id ^ 1 << 62, next_seq),
        wire.encode_message("market_data", beat, publisher_id=publisher_id, seq=0, send_ts_ns=now),
    ]


def _forged_frames(ctx: Context) -> None:
    ep = ctx.endpoint()
    n = 600
    with LossyPublisher(ep, channel=registry.MARKET_DATA) as pub:
        ctx.start(pb.SUBSCRIBER, endpoint=ep)
        publish_ticks(pub, n // 2, KEYS)
        for frame in _forged(pub.publisher_id, n // 2 + 1):
            pub.send_raw(frame)
        publish_ticks(pub, n - n // 2, KEYS, start=n // 2 + 1)
        report = ctx.action(collect=pb.Collect(count=n, idle_ms=2000, timeout_ms=20000))
        extra = ctx.action(collect=pb.Collect(count=1, idle_ms=500, timeout_ms=600))
    ctx.stop()
    msgs = list(report.messages) + list(extra.messages)
    contiguous([m.seq for m in msgs], 1, n, "delivered seq around the forged frames")
    forged = [m.seq for m in msgs if MD.FromString(m.payload).price == FORGED_PRICE]
    check(not forged, f"forged frames delivered: {forged}")
    check({m.publisher_id for m in msgs} == {pub.publisher_id}, "a forged publisher id followed")
    rejected = max(report.rejected, extra.rejected)
    check(rejected == 4, f"{rejected} frames rejected, expected the 4 forged ones (disowned)")
    bad = events(report, "gap_detected", "unrecoverable_gap", "publisher_restart")
    check(not bad, f"forged frames produced events: {[(e.kind, e.first, e.last) for e in bad]}")


def _restart_tail_from_journal(ctx: Context) -> None:
    ep = ctx.endpoint()
    journal = tempfile.mkdtemp(prefix="tradewire-conformance-journal-")
    try:
        first = LossyPublisher(
            ep, channel=registry.MARKET_DATA, journal=JournalOptions(journal, fsync="never")
        )
        try:
            ctx.start(pb.SUBSCRIBER, endpoint=ep, peer_timeout_ms=600)
            publish_ticks(first, 5, KEYS)
            ctx.action(collect=pb.Collect(count=5, idle_ms=1000, timeout_ms=5000))
            # 6..10 are journaled but never reach the testee: the tail a crash leaves
            publish_ticks(first, 5, KEYS, start=6, lose=lambda i: (False, True))
        finally:
            first.close()
        with LossyPublisher(
            ep, channel=registry.MARKET_DATA, journal=JournalOptions(journal, fsync="never")
        ) as second:
            ctx.submit(collect=pb.Collect(count=10, idle_ms=2500, timeout_ms=10000))
            check(second.wait_for_subscription(timeout=5.0), "the testee did not reconnect in 5 s")
            publish_ticks(second, 5, KEYS)
            report = ctx.report()
        ctx.stop()
    finally:
        shutil.rmtree(journal, ignore_errors=True)
    old = [m.seq for m in report.messages if m.publisher_id == first.publisher_id]
    new = [m.seq for m in report.messages if m.publisher_id == second.publisher_id]
    check(old == [6, 7, 8, 9, 10], f"the previous publisher's tail from the journal: {old}")
    check(new == [1, 2, 3, 4, 5], f"the restarted publisher's stream: {new}")
    check(events(report, "publisher_restart"), "no publisher_restart event")
    lost = [(e.first, e.last) for e in events(report, "unrecoverable_gap")]
    check(not lost, f"unrecoverable_gap although the journal held everything: {lost}")


# -- start of stream and bounded frames (WIRE.md 9.2, 8.1) -----------------------------


def _start_at(ctx: Context, start_at: int) -> None:
    ep = ctx.endpoint()
    before, live = 300, 100
    with LossyPublisher(ep, channel=registry.MARKET_DATA) as pub:
        publish_ticks(pub, before, KEYS)
        ctx.start(pb.SUBSCRIBER, endpoint=ep, start_at=start_at)
        publish_ticks(pub, live, KEYS, start=before + 1)
        earliest = start_at == pb.START_EARLIEST
        want = before + live if earliest else live
        report = ctx.action(collect=pb.Collect(count=want, idle_ms=2000, timeout_ms=20000))
        extra = ctx.action(collect=pb.Collect(count=1, idle_ms=300, timeout_ms=400))
    ctx.stop()
    msgs = list(report.messages) + list(extra.messages)
    first = 1 if earliest else before + 1
    contiguous([m.seq for m in msgs], first, before + live, "delivered seq")
    for m in msgs:
        payload_ok(m)
    if earliest:
        unflagged = [m.seq for m in msgs if m.seq <= before and not m.flags & wire.FLAG_REPLAY]
        check(not unflagged, f"published before the subscriber, not FLAG_REPLAY: {unflagged[:10]}")
    lost = [(e.first, e.last) for e in events(report, "unrecoverable_gap")]
    check(not lost, f"unrecoverable_gap although the publisher held everything: {lost}")


def _publisher_after_subscriber(ctx: Context) -> None:
    """The testee subscriber waits for a publisher that starts later and publishes at once,
    before the subscription handshake can have completed: nothing may be missed silently."""
    ep = ctx.endpoint()
    n = 300
    ctx.start_async(pb.SUBSCRIBER, endpoint=ep, connect_timeout_ms=20000)
    time.sleep(0.3)  # the testee is connecting to an endpoint nobody has bound yet
    with LossyPublisher(ep, channel=registry.MARKET_DATA) as pub:
        publish_ticks(pub, n, KEYS)
        ctx.ready()
        report = ctx.action(collect=pb.Collect(count=n, idle_ms=2500, timeout_ms=20000))
    ctx.stop()
    delivered = [m.seq for m in report.messages]
    lost: set[int] = set()
    for e in events(report, "unrecoverable_gap"):
        lost.update(range(e.first, e.last + 1))
    silent = sorted(set(range(1, n + 1)) - set(delivered) - lost)
    check(
        not silent,
        f"{len(silent)} numbers neither delivered nor reported, first {silent[:10]} "
        f"(a subscriber that was waiting must start at seq 1)",
    )
    check(len(delivered) == len(set(delivered)), "a message was delivered twice")
    check(delivered == sorted(delivered), "delivered out of order")


def _frame_limits(ctx: Context) -> None:
    """A frame within ZMQ_MAXMSGSIZE whose payload is over `max_payload` is rejected and
    counted; a frame over ZMQ_MAXMSGSIZE (the limit plus the longest topic and the header)
    is dropped by libzmq with the connection, which the subscriber opens again: the stream
    goes on, the numbers sent meanwhile are replayed."""
    ep = ctx.endpoint()
    limit = 4096
    md = registry.MARKET_DATA_TYPE
    with LossyPublisher(ep, channel=registry.MARKET_DATA) as pub:
        ctx.start(pb.SUBSCRIBER, endpoint=ep, max_payload=limit, peer_timeout_ms=1000)
        publish_ticks(pub, 100, KEYS)

        def over(payload: bytes, seq: int) -> bytes:
            return wire.encode_frame(
                "market_data", "AAPL", md.type_id, md.fingerprint, pub.publisher_id, seq,
                seq, now_ns(), payload,
            )  # fmt: skip

        # Over max_payload, within the socket's limit (short topic): rejected `oversized`.
        pub.send_raw(over(b"\x0a\x04AAPL" + b"\xaa\x06" + b"\x00" * (limit + 40), 101))
        publish_ticks(pub, 100, KEYS, start=101)
        first = ctx.action(collect=pb.Collect(count=200, idle_ms=2000, timeout_ms=20000))
        # Far over any socket limit: libzmq closes the connection before buffering it.
        pub.send_raw(over(b"\x00" * (4 * 1024 * 1024), 201))
        publish_ticks(pub, 100, KEYS, start=201)
        # libzmq does not reconnect after a protocol error: the subscriber notices the
        # silence (peer_timeout), connects again and recovers 201..300 by replay.
        second = ctx.action(collect=pb.Collect(count=100, idle_ms=5000, timeout_ms=30000))
    ctx.stop()
    msgs = list(first.messages) + list(second.messages)
    contiguous([m.seq for m in msgs], 1, 300, "delivered seq around the oversized frames")
    for m in msgs:
        payload_ok(m)
    check(
        first.rejected == 1,
        f"{first.rejected} frames rejected, expected the one over max_payload ({limit})",
    )
    lost = [(e.first, e.last) for e in events(first, "unrecoverable_gap")]
    lost += [(e.first, e.last) for e in events(second, "unrecoverable_gap")]
    check(not lost, f"unrecoverable_gap although the publisher held everything: {lost}")


# -- commands ---------------------------------------------------------------------------


def _testee_server(ctx: Context) -> None:
    ep = ctx.endpoint()
    ctx.start(pb.COMMAND_SERVER, endpoint=ep)
    ids = [uuid.uuid4().hex for _ in range(5)]
    ctx.submit(serve=pb.Serve(count=5, idle_ms=3000))
    client: CommandClient[Any, Any]
    with CommandClient(ep, channel=registry.COMMANDS) as client:
        acks: list[Any] = [
            client.send(CMD(command_id=i, type=CMD.PAUSE_TRADING, symbol="AAPL"), timeout=5)
            for i in ids
        ]
    report = ctx.report()
    ctx.stop()
    check([a.command_id for a in acks] == ids, "ack command ids do not match")
    check(all(a.outcome == ACK.APPLIED and not a.duplicate for a in acks), f"acks {acks}")
    check(list(report.applied) == ids, f"server applied {list(report.applied)}")


def _raw_command(sock: zmq.Socket[bytes], command: Any, seq: int = 1) -> bytes:
    frame = wire.encode_message("commands", command, publisher_id=99, seq=seq, send_ts_ns=now_ns())
    sock.send(frame)
    return frame


def _acks_within(sock: zmq.Socket[bytes], window: float) -> list[Any]:
    out = []
    deadline = time.monotonic() + window
    while time.monotonic() < deadline:
        if sock.poll(20):
            out.append(wire.parse_payload(wire.decode_frame(sock.recv()), ACK))
    return out


def _idempotency(ctx: Context) -> None:
    ep = ctx.endpoint()
    ctx.start(pb.COMMAND_SERVER, endpoint=ep)
    ctx.submit(serve=pb.Serve(count=1, idle_ms=1500))
    sock = control_dealer(ep)
    try:
        cid = uuid.uuid4().hex
        frame = _raw_command(sock, CMD(command_id=cid, type=CMD.KILL_SWITCH))
        sock.send(frame)  # the same frame again: a retry
        acks = _acks_within(sock, 1.0)
    finally:
        sock.close()
    report = ctx.report()
    ctx.stop()
    check(len(acks) == 2, f"{len(acks)} acks for two copies of one command (expected 2)")
    check(
        [a.duplicate for a in acks] == [False, True],
        f"duplicate flags {[a.duplicate for a in acks]}",
    )
    check(all(a.command_id == cid and a.outcome == ACK.APPLIED for a in acks), f"acks {acks}")
    check(list(report.applied) == [cid], f"applied {list(report.applied)} for one command id")


def _restart_idempotency(ctx: Context) -> None:
    ep = ctx.endpoint()
    state = tempfile.mkdtemp(prefix="tradewire-conformance-commands-")
    cid = uuid.uuid4().hex
    sock = control_dealer(ep)
    try:
        ctx.start(pb.COMMAND_SERVER, endpoint=ep, state_dir=state)
        ctx.submit(serve=pb.Serve(count=1, idle_ms=1500))
        frame = _raw_command(sock, CMD(command_id=cid, type=CMD.PAUSE_TRADING, symbol="AAPL"))
        first = _acks_within(sock, 1.0)
        before = ctx.report()
        ctx.stop()
        # the same server restarted, then the retry of a command whose ack was lost
        ctx.start(pb.COMMAND_SERVER, endpoint=ep, state_dir=state)
        ctx.submit(serve=pb.Serve(count=1, idle_ms=1500))
        sock.send(frame)
        again = _acks_within(sock, 1.0)
        after = ctx.report()
        ctx.stop()
    finally:
        sock.close(linger=0)
        shutil.rmtree(state, ignore_errors=True)
    check(list(before.applied) == [cid], f"applied {list(before.applied)} before the restart")
    check(len(first) == 1 and not first[0].duplicate, f"acks before the restart: {first}")
    check(len(again) == 1, f"{len(again)} acks for the retry after the restart (expected 1)")
    check(
        list(after.applied) == [],
        f"the restarted server applied {list(after.applied)} again (a retry of a command "
        "applied before the restart)",
    )
    check(again[0].duplicate, f"the retry after the restart is not acked duplicate: {again[0]}")
    same = ("command_id", "outcome", "reason", "engine_timestamp_us")
    check(
        all(getattr(again[0], f) == getattr(first[0], f) for f in same),
        f"the retry's ack {again[0]} does not repeat the original {first[0]}",
    )


def _ack_once(ctx: Context) -> None:
    ep = ctx.endpoint()
    ctx.start(pb.COMMAND_SERVER, endpoint=ep)
    ctx.submit(serve=pb.Serve(count=3, idle_ms=1500))
    sock = control_dealer(ep)
    counts = []
    try:
        for k in range(3):
            _raw_command(sock, CMD(command_id=uuid.uuid4().hex, type=CMD.PAUSE_TRADING), k + 1)
            counts.append(len(_acks_within(sock, 0.3)))
    finally:
        sock.close()
    ctx.report()
    ctx.stop()
    check(counts == [1, 1, 1], f"acks per command frame: {counts} (expected exactly one each)")


def _kill_switch(ctx: Context) -> None:
    ep = ctx.endpoint()
    ctx.start(pb.COMMAND_SERVER, endpoint=ep)
    ctx.submit(serve=pb.Serve(count=1, idle_ms=3000))
    client: CommandClient[Any, Any]
    with CommandClient(ep, channel=registry.COMMANDS) as client:
        ack: Any = client.send(
            CMD(command_id="kill-1", type=CMD.KILL_SWITCH, reason="conformance"), timeout=5
        )
    report = ctx.report()
    ctx.stop()
    check(ack.outcome == ACK.APPLIED and ack.command_id == "kill-1", f"ack {ack}")
    check(report.kill_switch, "the server does not report the kill switch as engaged")


class _RunnerServer:
    """The runner's command server on a thread; `drop_first` ignores each id's first copy."""

    def __init__(self, ep: str, drop_first: bool = False) -> None:
        self.applied: list[str] = []
        self.copies: dict[str, int] = {}
        self.drop_first = drop_first
        self._stop = threading.Event()
        self.server: CommandServer[Any, Any] = CommandServer(
            ep, self._apply, channel=registry.COMMANDS
        )
        if drop_first:
            self.server._socket = _DropFirst(self.server._socket, self.copies)  # type: ignore[assignment]
        self.thread = threading.Thread(
            target=self.server.serve, args=(self._stop.is_set, 0.02), daemon=True
        )
        self.thread.start()

    def _apply(self, command: Any) -> Any:
        self.applied.append(command.command_id)
        return ACK(outcome=ACK.APPLIED)

    def close(self) -> None:
        self._stop.set()
        self.thread.join(timeout=3)
        self.server.close()


class _DropFirst:
    """Receives through the real socket; the first copy of each command id gets no answer."""

    def __init__(self, sock: Any, copies: dict[str, int]) -> None:
        self._sock = sock
        self._copies = copies

    def recv_multipart(self) -> list[bytes]:
        while True:
            parts: list[bytes] = self._sock.recv_multipart()
            try:
                cmd = wire.parse_payload(wire.decode_frame(parts[-1]), CMD)
            except wire.WireError:
                return parts
            n = self._copies[cmd.command_id] = self._copies.get(cmd.command_id, 0) + 1
            if n > 1:
                return parts
            if not self._sock.poll(200):
                return [b"", b""]  # counted as bad framing, answered by nobody

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def _testee_client(ctx: Context, drop_first: bool) -> None:
    ep = ctx.endpoint()
    server = _RunnerServer(ep, drop_first)
    try:
        ctx.start(pb.COMMAND_CLIENT, endpoint=ep)
        ids = [uuid.uuid4().hex for _ in range(4)]
        specs = [pb.CommandSpec(command_id=i, type=CMD.PAUSE_TRADING, symbol="AAPL") for i in ids]
        report = ctx.action(
            send_commands=pb.SendCommands(commands=specs, timeout_ms=5000, retry_interval_ms=100)
        )
        ctx.stop()
    finally:
        server.close()
    check([a.command_id for a in report.acks] == ids, f"acks {list(report.acks)}")
    check(
        all(a.outcome == ACK.APPLIED and not a.timed_out for a in report.acks),
        f"acks {list(report.acks)}",
    )
    check(server.applied == ids, f"runner server applied {server.applied}")
    if drop_first:
        check(
            all(server.copies.get(i, 0) >= 2 for i in ids),
            f"the testee did not retry with the same command id: {server.copies}",
        )


# -- relay ------------------------------------------------------------------------------


def relay_frames(vectors: list[bytes]) -> list[bytes]:
    """Frames a relay must forward unchanged: unknown fields (from the vectors), fields out of
    order, an overlong varint, a repeated scalar (last wins), an unknown type id."""
    md = registry.MARKET_DATA_TYPE

    def frame(payload: bytes, type_id: int = md.type_id, key: str = "AAPL") -> bytes:
        return wire.encode_frame("market_data", key, type_id, md.fingerprint, 5, 1, 1, 1, payload)

    crafted = [
        frame(b"\x11" + struct.pack("<d", 2.5) + b"\x0a\x04AAPL"),  # price before symbol
        frame(b"\x0a\x04AAPL\x20\x81\x80\x80\x00"),  # timestamp_us as an overlong varint
        frame(
            b"\x0a\x04AAPL\xa0\x06\x96\x01\x11" + struct.pack("<d", 3.0)
        ),  # unknown field in the middle
        frame(b"\x0a\x04AAPL\x0a\x04MSFT"),  # symbol twice
        frame(b"\xaa\x06\x03new", type_id=4242),  # a type id the relay does not know
    ]
    return [*vectors, *crafted]


def _relay(ctx: Context, vectors: list[bytes], garbage: bool) -> None:
    upstream = ctx.endpoint()
    downstream = ctx.endpoint()
    zctx: zmq.Context[Any] = zmq.Context.instance()
    pub: zmq.Socket[bytes] = zctx.socket(zmq.XPUB)
    pub.setsockopt(zmq.LINGER, 0)
    pub.bind(upstream)
    sub: zmq.Socket[bytes] = zctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    try:
        ctx.start(pb.RELAY_ROLE, endpoint=upstream, out_endpoint=downstream)
        check(pub.poll(10_000), "the relay never subscribed upstream")
        pub.recv()
        sub.subscribe(b"")
        sub.connect(downstream)
        frames = relay_frames(vectors)
        sent = list(frames)
        if garbage:
            sent = [*frames[:3], b"market_data/AAPL\0garbage", *frames[3:]]
        ctx.submit(relay=pb.Relay(count=len(frames), idle_ms=2000))
        for f in sent:
            pub.send(f)
        got: list[bytes] = []
        while len(got) < len(frames) and sub.poll(1500):  # until done or 1.5 s of silence
            got.append(sub.recv())
        report = ctx.report()
        ctx.stop()
    finally:
        pub.close()
        sub.close()
    sent_set = set(frames)
    changed = [g for g in got if g not in sent_set]
    check(
        not changed,
        f"{len(changed)} of {len(got)} relayed frames were changed by the relay; "
        f"first: {changed[0].hex() if changed else ''}",
    )
    check(got == frames, f"received {len(got)} of {len(frames)} frames (or out of order)")
    check(report.forwarded == len(frames), f"relay forwarded {report.forwarded} of {len(frames)}")


def cases(unknown_field_frames: list[bytes]) -> Iterator[Case]:
    pub = "runner:subscriber x testee:publisher"
    sub = "runner:publisher x testee:subscriber"
    srv = "runner:command-client x testee:command-server"
    cli = "runner:command-server x testee:command-client"
    yield Case(
        "Transport.PubSub.TesteePublisher",
        True,
        "2400 messages over 3 keys: seq and key_seq contiguous, no gaps",
        lambda c: _testee_publisher(c, None),
        pub,
    )
    yield Case(
        "Transport.PubSub.TesteeSubscriber",
        True,
        "2400 messages delivered once, in order, no gap events",
        lambda c: _testee_subscriber(c, None),
        sub,
    )
    yield Case(
        "Transport.KeyFilter.TesteePublisher",
        True,
        "a key-filtered subscriber sees only its key, key_seq contiguous",
        lambda c: _testee_publisher(c, ["MSFT"]),
        pub,
    )
    yield Case(
        "Transport.KeyFilter.TesteeSubscriber",
        True,
        "the testee filters on one key: only that key, key_seq contiguous",
        lambda c: _testee_subscriber(c, ["MSFT"]),
        sub,
    )
    yield Case(
        "Transport.Replay.Served",
        True,
        "ReplayRequest answered with the original frames + FLAG_REPLAY, then ReplayEnd; "
        "keyed ranges by key_seq; unknown publisher ids flagged",
        _replay_served,
        pub,
    )
    yield Case(
        "Transport.Replay.RingExhausted",
        True,
        "frames older than the ring are named unrecoverable in ReplayEnd",
        _replay_unrecoverable,
        pub,
    )
    yield Case(
        "Transport.Gap.Recovered",
        True,
        "frames lost in transit are detected and recovered by replay, delivered in order",
        _gap_recovered,
        sub,
    )
    yield Case(
        "Transport.Gap.UnrecoverableReported",
        True,
        "a frame the publisher no longer holds is reported as unrecoverable_gap, not silence",
        _gap_unrecoverable,
        sub,
    )
    yield Case(
        "Transport.Gap.TailByHeartbeat",
        False,
        "a lost last message is noticed from the next heartbeat and replayed",
        _tail_gap,
        sub,
    )
    yield Case(
        "Transport.Snapshot.TesteePublisher",
        True,
        "late join: latest frame per key with FLAG_SNAPSHOT, then live",
        _snapshot_from_testee,
        pub,
    )
    yield Case(
        "Transport.Snapshot.TesteeSubscriber",
        True,
        "the testee joins late from a snapshot, then follows live",
        _snapshot_to_testee,
        sub,
    )
    yield Case(
        "Transport.Heartbeat.TesteePublisher",
        True,
        "an idle publisher heartbeats on the keyless topic with last_seq / last_key_seq",
        _heartbeats_from_testee,
        pub,
    )
    yield Case(
        "Transport.PeerLoss.TesteeSubscriber",
        True,
        "the testee reports peer_lost when its publisher goes silent",
        _peer_loss,
        sub,
    )
    yield Case(
        "Transport.Plausibility.ForgedFrames",
        True,
        "a far-ahead seq, a flipped publisher id and a heartbeat claiming last_seq 2^40 are "
        "disowned (rejected), never delivered, never a gap or restart; the stream flows on",
        _forged_frames,
        sub,
    )
    yield Case(
        "Transport.Start.Earliest",
        True,
        "start earliest: everything the publisher held at the handshake is replayed first "
        "(FLAG_REPLAY), then live, once and in order",
        lambda c: _start_at(c, pb.START_EARLIEST),
        sub,
    )
    yield Case(
        "Transport.Start.Latest",
        True,
        "start latest: from the first number after the handshake, no gap reported for what "
        "came before",
        lambda c: _start_at(c, pb.START_LATEST),
        sub,
    )
    yield Case(
        "Transport.Start.PublisherAfterSubscriber",
        True,
        "a publisher that starts after the subscriber and publishes at once: every number "
        "delivered or reported, none silently skipped",
        _publisher_after_subscriber,
        sub,
    )
    yield Case(
        "Transport.Limits.OversizedFrames",
        True,
        "a payload over max_payload is rejected and counted; a frame over ZMQ_MAXMSGSIZE "
        "costs a reconnect, never the stream",
        _frame_limits,
        sub,
    )
    yield Case(
        "Transport.Restart.TailFromJournal",
        False,
        "after a restart the previous publisher's tail, never sent, is replayed from the "
        "restarted publisher's journal: no unrecoverable_gap",
        _restart_tail_from_journal,
        sub,
    )
    yield Case(
        "Transport.PeerLoss.PublisherRestart",
        False,
        "a new publisher_id on the endpoint is reported as publisher_restart and followed",
        _restart,
        sub,
    )
    yield Case(
        "Transport.Command.TesteeServer",
        True,
        "five commands acknowledged APPLIED with their ids, applied in order",
        _testee_server,
        srv,
    )
    yield Case(
        "Transport.Command.Idempotency",
        True,
        "a retried command id is applied once; the copy is acked duplicate=true",
        _idempotency,
        srv,
    )
    yield Case(
        "Transport.Command.RestartIdempotency",
        True,
        "a command applied before the server is stopped and started again (same state_dir) "
        "is not applied again on retry: its retry gets the original ack, duplicate=true",
        _restart_idempotency,
        srv,
    )
    yield Case(
        "Transport.Command.AckOncePerCopy",
        True,
        "each command frame gets exactly one acknowledgement",
        _ack_once,
        srv,
    )
    yield Case(
        "Transport.Command.KillSwitch",
        True,
        "KILL_SWITCH is acknowledged APPLIED and engages",
        _kill_switch,
        srv,
    )
    yield Case(
        "Transport.Command.TesteeClient",
        True,
        "the testee's commands reach a Python server and their acks come back",
        lambda c: _testee_client(c, False),
        cli,
    )
    yield Case(
        "Transport.Command.ClientRetries",
        True,
        "unanswered commands are resent with the same command id until acked",
        lambda c: _testee_client(c, True),
        cli,
    )
    yield Case(
        "Relay.PayloadUnchanged",
        True,
        "a relay forwards every frame byte for byte: unknown fields, non-canonical "
        "encodings, unknown type ids",
        lambda c: _relay(c, unknown_field_frames, False),
        "runner:publisher -> testee:relay -> runner:subscriber",
    )
    yield Case(
        "Relay.DropsMalformed",
        False,
        "a frame that is not an envelope is dropped; the others still pass unchanged",
        lambda c: _relay(c, unknown_field_frames, True),
        "runner:publisher -> testee:relay -> runner:subscriber",
    )

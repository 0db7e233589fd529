"""Subscriber: handshake, in-order delivery, gap replay, snapshots, peer loss (WIRE.md 7)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Generic, Literal, Self

import zmq
from google.protobuf.message import DecodeError

from tradewire import wire
from tradewire._gen import registry
from tradewire.catalog import Channel, Pattern
from tradewire.transport import _native
from tradewire.transport._base import (
    DEFAULT_HWM,
    DEFAULT_LINGER_MS,
    DEFAULT_WARN_INTERVAL,
    Endpoint,
    M,
    Received,
    TransportEvent,
    WarnLimiter,
    control_endpoint,
    now_ns,
    resolve_channel,
)
from tradewire.transport.publisher import SYNC_PREFIX
from tradewire.transport.security import CurveClient, secure_client

if TYPE_CHECKING:
    from tradewire._wire import Sequencer

log = logging.getLogger("tradewire.transport")

_HEARTBEAT_ID = registry.HEARTBEAT_TYPE.type_id
_REPLAY_END_ID = registry.REPLAY_END_TYPE.type_id
_TIMER_CHECK_S = 0.01
_new_received = tuple.__new__
_NEXT = 0  # Sequencer.data: the frame is next in order, deliver it directly
Start = Literal["latest", "earliest"]


class SubscribeTimeout(TimeoutError):
    """No publisher completed the subscription handshake in time."""


def _sequencer(**options: Any) -> Sequencer:
    """The Rust sequencer (tradewire._wire.Sequencer): both SDKs order, recover and check
    their streams with the same code."""
    try:
        from tradewire._wire import Sequencer
    except ImportError as exc:  # pragma: no cover - the wheel always carries it
        raise ImportError(
            "tradewire's Rust extension (tradewire._wire) is not built: subscribers need "
            "it; reinstall tradewire (its build compiles crates/wire-py)"
        ) from exc
    return Sequencer(**options)


class Subscriber(Endpoint, Generic[M]):
    """Connects to a publisher; `recv()` returns once-only, in-order messages, recovering gaps
    from the publisher's replay ring and reporting anything unrecoverable as an event."""

    def __init__(
        self,
        endpoint: str,
        *,
        keys: Iterable[str] | None = None,
        channel: Channel[M] | None = None,
        control: str | None = None,
        context: zmq.Context[Any] | None = None,
        snapshot: bool = False,
        subscribe_timeout: float | None = 10.0,
        peer_timeout: float = 3.0,
        replay_timeout: float = 2.0,
        rcvhwm: int = DEFAULT_HWM,
        strict_schema: bool = False,
        on_event: Callable[[TransportEvent], None] | None = None,
        resume_from: Mapping[int, int] | None = None,
        backfill: bool = False,
        start: Start = "latest",
        plausible_jump: int = 65_536,
        linger_ms: int = DEFAULT_LINGER_MS,
        max_events: int = 10_000,
        max_payload: int = wire.DEFAULT_MAX_PAYLOAD,
        warn_interval: float = DEFAULT_WARN_INTERVAL,
        control_curve: CurveClient | None = None,
    ) -> None:
        """`events` keeps the last `max_events` events; older ones are evicted and counted
        in `stats.events_dropped` (`on_event` sees every event).

        Frames with a payload over `max_payload` bytes are rejected (`oversized`); libzmq
        drops the connection of a peer sending a frame too large to be valid before
        buffering it. Rejected frames are logged at most once per `warn_interval` seconds,
        with counts by kind.

        `start`: where the stream of the publisher met at the handshake starts. "latest"
        after what it had published (unless it started after this subscriber began
        waiting for it: then from its first message); "earliest" from seq 1, everything
        it still holds replayed first (`backfill=True` is the same). `resume_from`
        (publisher_id -> last seq already processed) starts that publisher after the given
        seq; unfiltered only.

        A number more than `plausible_jump` beyond the highest one known, and a new
        publisher id, are checked with the publisher's control socket before they are
        believed; frames the publisher disowns are rejected (`disowned`, WIRE.md 9).

        `control_curve`: keys for a publisher whose control socket requires CURVE; without
        them such a publisher answers no replay, snapshot or check (WIRE.md 8.4)."""
        super().__init__(context, linger_ms)
        self._born = time.monotonic_ns()
        self._seq = _sequencer(
            start="earliest" if backfill else start,
            replay_timeout=replay_timeout,
            plausible_jump=plausible_jump,
        )
        for pid, last in (resume_from or {}).items():
            self._seq.resume_from(pid, last)
        self._seq_stats: dict[str, int] = {}
        self.channel: Channel[M] = resolve_channel(self, channel, Pattern.PUB_SUB)
        if snapshot and not self.channel.last_value:
            raise ValueError(f"channel {self.channel.name!r} keeps no last values to snapshot")
        self.keys = frozenset(keys) if keys is not None else None
        self.events: deque[TransportEvent] = deque(maxlen=max(1, max_events))
        self._on_event = on_event
        self._cls: type[M] = self.channel.message.cls
        self._full_name = self.channel.message.full_name
        self._fingerprint = self.channel.message.fingerprint
        self._type_id = self.channel.message.type_id
        self._strict = strict_schema
        self._max_payload = max_payload
        self._warn = WarnLimiter(log, f"rejected frames on {self.channel.name}", warn_interval)
        self._peer_timeout = peer_timeout
        self._replay_timeout = replay_timeout
        self._ready: deque[Received[M]] = deque()
        self._now = time.monotonic_ns()
        self._last_rx = time.monotonic()
        self._peer_lost = False
        self._batched = _native.rust_codec() is not None
        self._timers_due = 0.0  # while data keeps flowing, timers are checked this often
        self._sub = self._socket_of(zmq.SUB, max_payload)
        self._sub.setsockopt(zmq.RCVHWM, rcvhwm)
        self._sub.setsockopt(zmq.RECONNECT_IVL_MAX, 2000)
        if endpoint.startswith("tcp://"):
            self._sub.setsockopt(zmq.HEARTBEAT_IVL, 1000)
            self._sub.setsockopt(zmq.HEARTBEAT_TIMEOUT, int(peer_timeout * 1000))
        self._ctl = self._socket_of(zmq.DEALER, max_payload)
        self._ctl.setsockopt(zmq.RCVHWM, 0)  # replay answers are bounded by the publisher's ring
        if control_curve is not None:
            secure_client(self._ctl, control_curve)
        self._ctl.setsockopt(zmq.RECONNECT_IVL_MAX, 2000)
        self._ctl.connect(control or control_endpoint(endpoint))
        if self.keys is None:
            self._sub.subscribe(wire.channel_prefix(self.channel.name))
        else:
            self._sub.subscribe(wire.topic(self.channel.name))
            for key in sorted(self.keys):
                self._sub.subscribe(wire.topic(self.channel.name, key))
        self._endpoint = endpoint
        try:
            self._sub.connect(endpoint)
            self._handshake(subscribe_timeout)
            if snapshot:
                self._load_snapshot(subscribe_timeout)
        except BaseException:
            self.close()
            raise

    # -- public API --------------------------------------------------------------------

    def recv(self, timeout: float | None = None) -> Received[M] | None:
        """Next message in sequence order, or None after `timeout` seconds without one."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._ready:
            if self._batched:  # an empty Rust drain is far cheaper than a select
                self._drain(self._sub, from_replay=False)
                self._drain(self._ctl, from_replay=True)
                if self._ready:
                    if time.monotonic() >= self._timers_due:
                        self._check_timers()
                    break
            ready = zmq.select([self._sub, self._ctl], [], [], self._next_wake(deadline))[0]
            if self._sub in ready:
                self._drain(self._sub, from_replay=False)
            if self._ctl in ready:
                self._drain(self._ctl, from_replay=True)
            self._check_timers()
            if not self._ready and deadline is not None and time.monotonic() >= deadline:
                return None
        return self._ready.popleft()

    async def arecv(self, timeout: float | None = None) -> Received[M] | None:
        """asyncio form of recv(): waits on the sockets' file descriptors, never blocks
        the event loop."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else time.monotonic() + timeout
        wake = asyncio.Event()
        fds = [int(sock.getsockopt(zmq.FD)) for sock in (self._sub, self._ctl)]
        for fd in fds:
            loop.add_reader(fd, wake.set)
        try:
            while True:
                wake.clear()
                got = self.recv(timeout=0)  # drains both sockets (their FDs are edge-triggered)
                if got is not None:
                    return got
                wait = self._next_wake(deadline)
                if deadline is not None and wait is not None and wait <= 0:
                    return None
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), wait)
        finally:
            for fd in fds:
                loop.remove_reader(fd)

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Received[M]:
        got = await self.arecv()
        assert got is not None  # no timeout: arecv only returns a message
        return got

    def sockets(self) -> list[zmq.Socket[bytes]]:
        """The sockets to wait on (zmq.select / Poller) before calling recv(timeout=0)."""
        return [self._sub, self._ctl]

    def __iter__(self) -> Iterator[Received[M]]:
        while True:
            received = self.recv()
            if received is not None:
                yield received

    # -- handshake and snapshot ---------------------------------------------------------

    def _handshake(self, timeout: float | None) -> None:
        """Subscribe a sync topic last; its Heartbeat proves every subscription is live."""
        sync = wire.topic(self.channel.name, SYNC_PREFIX + secrets.token_hex(8))
        self._sub.subscribe(sync)
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while True:
                wait = None if deadline is None else deadline - time.monotonic()
                if wait is not None and wait <= 0:
                    raise SubscribeTimeout(
                        f"no publisher of {self.channel.name!r} answered the subscription "
                        f"handshake within {timeout}s"
                    )
                if not self._sub.poll(-1 if wait is None else int(wait * 1000) + 1):
                    continue
                frame = self._sub.recv()
                env = self._envelope(frame) if frame.startswith(sync) else None
                beat = self._control_message(env, registry.HEARTBEAT_TYPE.cls) if env else None
                if env is not None and beat is not None:
                    self._baseline(env.publisher_id, beat)
                    return
        finally:
            self._sub.unsubscribe(sync)
            self._last_rx = time.monotonic()

    def _baseline(self, publisher_id: int, beat: Any) -> None:
        # A publisher younger than our wait for it started after we did: everything it
        # published was missed, not skipped (uptime 0: a publisher that does not say).
        waited_us = (time.monotonic_ns() - self._born) // 1000
        newer = 0 < beat.uptime_us < waited_us
        self._seq.handshake(publisher_id, self._targets(beat), newer, time.monotonic_ns())
        self._after()

    def _targets(self, beat: Any) -> list[tuple[str, int]]:
        """A heartbeat's last number of each tracked stream."""
        if self.keys is None:
            return [("", beat.last_seq)]
        return [(key, beat.last_key_seq.get(key, 0)) for key in sorted(self.keys)]

    def _load_snapshot(self, timeout: float | None) -> None:
        """Latest value per key, then buffered live messages newer than the snapshot."""
        request = registry.SNAPSHOT_REQUEST_TYPE.cls(
            channel=self.channel.name, keys=sorted(self.keys or ())
        )
        # Never blocks: a control socket with no usable connection (its publisher down,
        # or a CURVE handshake it refused) leaves the request unanswered until the deadline.
        with contextlib.suppress(zmq.Again):
            self._ctl.send(
                wire.encode_message(
                    self.channel.name, request, publisher_id=1, seq=0, send_ts_ns=now_ns()
                ),
                zmq.NOBLOCK,
            )
        live: list[bytes] = []
        snap: list[Received[M]] = []
        deadline = time.monotonic() + (timeout or 10.0)
        while time.monotonic() < deadline:
            ready = zmq.select([self._sub, self._ctl], [], [], deadline - time.monotonic())[0]
            if self._sub in ready:
                live.append(self._sub.recv())
            if self._ctl not in ready:
                continue
            env = self._envelope(self._ctl.recv())
            if env is None:
                continue
            if env.type_id == self._type_id:
                got = self._decode(env)
                if got is not None:
                    snap.append(got)
                continue
            end = self._control_message(env, registry.SNAPSHOT_END_TYPE.cls)
            if end is None:
                continue
            pid = env.publisher_id
            if self.keys is None:
                self._seq.baseline(pid, "", end.seq)
            for got in snap:
                if self.keys is not None:
                    self._seq.baseline(pid, got.envelope.key, got.envelope.key_seq)
                self._ready.append(got)
                self.stats.received += 1
            self._alive()
            self._now = time.monotonic_ns()
            for frame in live:
                self._accept(frame, from_replay=False)
            self._after()
            return
        raise SubscribeTimeout(f"no snapshot of {self.channel.name!r} within {timeout}s")

    # -- frame handling ----------------------------------------------------------------

    def _drain(self, sock: zmq.Socket[bytes], from_replay: bool) -> None:
        items = _native.drain(sock, 1000)
        if not items:
            return
        self._alive()
        self._now = time.monotonic_ns()
        for item in items:
            self._accept(item, from_replay)
        self._after()

    def _alive(self) -> None:
        self._last_rx = time.monotonic()
        if self._peer_lost:
            self._mark_alive()

    def close(self) -> None:
        self._warn.flush()
        super().close()

    def _envelope(self, frame: bytes) -> wire.Envelope | None:
        try:
            return wire.decode_frame(frame, self._max_payload)
        except wire.WireError as exc:
            self._reject(exc)
            return None

    def _reject(self, exc: wire.WireError) -> None:
        self.stats.rejected[exc.kind] += 1
        self._warn.warn(exc.kind, str(exc))

    def _decode(self, env: wire.Envelope) -> Received[M] | None:
        """The channel's message (type id already checked), or None (counted) when the
        payload is bad or, in strict mode, from another schema revision."""
        try:
            message: M = self._cls.FromString(env.payload)
        except DecodeError as exc:
            self._reject(wire.BadPayload(f"payload is not a valid {self._full_name}: {exc}"))
            return None
        if env.fingerprint != self._fingerprint:
            if self._strict:
                self._reject(
                    wire.SchemaMismatch(
                        f"{self._full_name} fingerprint {env.fingerprint:#018x} != local "
                        f"{self._fingerprint:#018x}"
                    )
                )
                return None
            self.stats.schema_mismatch += 1
        return _new_received(Received, (message, env))  # Received(message, env), faster

    def _control_message(self, env: wire.Envelope, cls: type[Any]) -> Any | None:
        """A control message of type `cls`, or None when `env` carries another type."""
        if env.type_id != wire.message_type_of(cls).type_id:
            return None
        try:
            return wire.parse_payload(env, cls)
        except wire.WireError as exc:
            self._reject(exc)
            return None

    def _accept(self, item: bytes | wire.Envelope, from_replay: bool) -> None:
        """One received frame (its arrival already noted by `_alive`)."""
        env = self._envelope(item) if isinstance(item, bytes) else item
        if env is None:
            return
        if len(env.payload) > self._max_payload:  # decoded in Rust with the default limit
            self._reject(wire.Oversized(f"payload of {len(env.payload)} bytes"))
            return
        if env.type_id != self._type_id:
            self._control(env, from_replay)
            return
        got = self._decode(env)
        if got is None:
            return
        if self.keys is None:
            key, number = "", env.seq
        else:
            key, number = env.key, env.key_seq
        if from_replay:
            self._seq.replayed(env.publisher_id, key, number, got, self._now)
        elif self._seq.data(env.publisher_id, key, number, got, self._now) == _NEXT:
            self._ready.append(got)
            self.stats.received += 1

    def _after(self) -> None:
        """Takes what the sequencer made ready, sends its replay requests, reports its
        events and copies its counters."""
        seq = self._seq
        if seq.has_ready():
            got = seq.take_ready()
            self._ready.extend(got)
            self.stats.received += len(got)
        if seq.has_output():
            for pid, key, first, upto in seq.take_asks():
                self._send_replay_request(pid, key, first, upto)
            for kind, pid, key, first, last, detail in seq.take_events():
                self._event(kind, pid, key, first, last, detail)
        counts = seq.stats()
        if counts != self._seq_stats:
            self._seq_stats = counts
            stats = self.stats
            stats.duplicates = counts["duplicates"]
            stats.gaps = counts["gaps"]
            stats.missed = counts["missed"]
            stats.recovered = counts["recovered"]
            stats.unrecoverable = counts["unrecoverable"]
            stats.unknown_tails = counts["unknown_tails"]
            stats.restarts = counts["restarts"]
            stats.replay_requests = counts["replay_requests"]
            stats.checks = counts["checks"]
            stats.stale = counts["stale"]
            for kind in ("disowned", "unverified"):
                new = counts[kind] - stats.rejected[kind]
                if new > 0:
                    stats.rejected[kind] += new
                    self._warn.warn(kind, f"{new} frame(s) {kind} by the plausibility check")

    def _control(self, env: wire.Envelope, from_replay: bool) -> None:
        """Heartbeats (tail loss) and, from the control socket only, replay ends; other
        known types are ignored (counted), once their payload is known to be valid (else
        rejected like any bad frame). A ReplayEnd on the data socket answers nothing: it
        is ignored like any other type (WIRE.md 7.1)."""
        used = (_HEARTBEAT_ID, _REPLAY_END_ID) if from_replay else (_HEARTBEAT_ID,)
        if env.type_id not in used:
            try:
                wire.parse_payload(env)
            except wire.WireError as exc:
                self._reject(exc)
                return
            self.stats.ignored += 1
            return
        hb = self._control_message(env, registry.HEARTBEAT_TYPE.cls)
        if hb is not None:
            if env.key.startswith(SYNC_PREFIX):
                return
            self.stats.heartbeats += 1
            self._seq.heartbeat(env.publisher_id, self._targets(hb), self._now)
            return
        end = self._control_message(env, registry.REPLAY_END_TYPE.cls)
        if end is not None:
            self._seq.replay_end(
                env.publisher_id,
                end.publisher_id,
                end.key if self.keys is not None else "",
                end.from_seq,
                end.to_seq,
                end.unknown_publisher,
                end.last_seq,
                self._now,
            )

    def _send_replay_request(self, publisher_id: int, key: str, first: int, upto: int) -> None:
        request = registry.REPLAY_REQUEST_TYPE.cls(
            channel=self.channel.name,
            publisher_id=publisher_id,
            key=key,
            from_seq=first,
            to_seq=upto,
        )
        # A request that cannot be sent (no usable control connection) is given up by the
        # sequencer's timer, like one that is never answered.
        with contextlib.suppress(zmq.Again):
            self._ctl.send(
                wire.encode_message(
                    self.channel.name, request, publisher_id=1, seq=0, send_ts_ns=now_ns()
                ),
                zmq.NOBLOCK,
            )

    # -- timers ------------------------------------------------------------------------

    def _next_wake(self, deadline: float | None) -> float | None:
        now = time.monotonic()
        waits = [self._peer_timeout - (now - self._last_rx) if not self._peer_lost else None]
        due = self._seq.next_deadline()
        if due is not None:
            waits.append((due - time.monotonic_ns()) / 1e9)
        if deadline is not None:
            waits.append(deadline - now)
        known = [w for w in waits if w is not None]
        return max(0.0, min(known)) if known else None

    def _check_timers(self) -> None:
        now = time.monotonic()
        self._timers_due = now + _TIMER_CHECK_S
        if not self._peer_lost and now - self._last_rx > self._peer_timeout:
            self._peer_lost = True
            self._event(
                "peer_lost",
                self._seq.publisher_id or 0,
                "",
                0,
                0,
                f"nothing received for {self._peer_timeout}s",
            )
            self._reconnect()
        due = self._seq.next_deadline()
        now_ns = time.monotonic_ns()
        if due is not None and now_ns >= due:
            self._now = now_ns
            self._seq.timer(now_ns)
            self._after()

    def _reconnect(self) -> None:
        """Connects the data socket again. libzmq never reconnects a connection it closed
        itself, as it does over a frame above ZMQ_MAXMSGSIZE (WIRE.md 8.1): without this,
        one such frame would cut the subscriber off for good. The subscriptions go out
        again on the new connection; what was missed meanwhile is a gap, replayed."""
        with contextlib.suppress(zmq.ZMQError):  # the connection may be gone already
            self._sub.disconnect(self._endpoint)
        self._sub.connect(self._endpoint)

    def _mark_alive(self) -> None:
        self._last_rx = time.monotonic()
        if self._peer_lost:
            self._peer_lost = False
            self._event("peer_back", self._seq.publisher_id or 0)

    def _event(
        self,
        kind: str,
        publisher_id: int,
        key: str = "",
        first: int = 0,
        last: int = 0,
        detail: str = "",
    ) -> None:
        event = TransportEvent(kind, self.channel.name, publisher_id, key, first, last, detail)
        if len(self.events) == self.events.maxlen:
            self.stats.events_dropped += 1  # the oldest is evicted: counted, never silent
        self.events.append(event)
        if kind in ("unrecoverable_gap", "peer_lost", "publisher_restart"):
            log.warning("%s", event)
        if self._on_event is not None:
            self._on_event(event)

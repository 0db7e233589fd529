"""Subscriber: handshake, in-order delivery, gap replay, snapshots, peer loss (WIRE.md 7)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Self

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

log = logging.getLogger("tradewire.transport")

_HEARTBEAT_ID = registry.HEARTBEAT_TYPE.type_id
_REPLAY_END_ID = registry.REPLAY_END_TYPE.type_id
_TIMER_CHECK_S = 0.01
_new_received = tuple.__new__


class SubscribeTimeout(TimeoutError):
    """No publisher completed the subscription handshake in time."""


@dataclass
class _Stream:
    """Delivery state of one (publisher, key) sequence."""

    last: int  # every seq <= last is delivered or accounted lost
    held: dict[int, Received[Any]] = field(default_factory=dict)
    requested_upto: int = 0  # highest seq asked for (or being asked for) by replay
    replay_deadline: float | None = None  # set while one replay request is outstanding
    wanted_upto: int = 0  # gaps seen while a replay was outstanding, asked for next
    top: int = 0  # highest number received live or announced by a heartbeat

    def __post_init__(self) -> None:
        self.top = max(self.top, self.last)

    lost: list[tuple[int, int]] = field(default_factory=list)


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
        linger_ms: int = DEFAULT_LINGER_MS,
        max_events: int = 10_000,
        max_payload: int = wire.DEFAULT_MAX_PAYLOAD,
        warn_interval: float = DEFAULT_WARN_INTERVAL,
    ) -> None:
        """`events` keeps the last `max_events` events; older ones are evicted and counted
        in `stats.events_dropped` (`on_event` sees every event).

        Frames with a payload over `max_payload` bytes are rejected (`oversized`); libzmq
        drops the connection of a peer sending a frame too large to be valid before
        buffering it. Rejected frames are logged at most once per `warn_interval` seconds,
        with counts by kind.

        `resume_from` (publisher_id -> last seq already processed) and `backfill` (start
        a publisher not in it at seq 0) make the first messages come from the publisher's
        replay ring instead of starting at its current sequence; unfiltered only."""
        super().__init__(context, linger_ms)
        self._resume_from = dict(resume_from or {})
        self._backfill = backfill
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
        self._streams: dict[tuple[int, str], _Stream] = {}
        self._publisher_id = 0
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
        self._ctl.setsockopt(zmq.RECONNECT_IVL_MAX, 2000)
        self._ctl.connect(control or control_endpoint(endpoint))
        if self.keys is None:
            self._sub.subscribe(wire.channel_prefix(self.channel.name))
        else:
            self._sub.subscribe(wire.topic(self.channel.name))
            for key in sorted(self.keys):
                self._sub.subscribe(wire.topic(self.channel.name, key))
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
        self._publisher_id = publisher_id
        if self.keys is None:
            start = self._resume_from.get(publisher_id, 0 if self._backfill else None)
            if start is not None and start < beat.last_seq:
                # start earlier and treat the handshake like a heartbeat: the tail-loss
                # path asks the replay ring for start+1..last_seq
                self._streams[(publisher_id, "")] = _Stream(last=start)
                self._tail(publisher_id, "", beat.last_seq)
            else:
                self._streams[(publisher_id, "")] = _Stream(last=beat.last_seq)
        else:
            for key in self.keys:
                self._streams[(publisher_id, key)] = _Stream(last=beat.last_key_seq.get(key, 0))

    def _load_snapshot(self, timeout: float | None) -> None:
        """Latest value per key, then buffered live messages newer than the snapshot."""
        request = registry.SNAPSHOT_REQUEST_TYPE.cls(
            channel=self.channel.name, keys=sorted(self.keys or ())
        )
        self._ctl.send(
            wire.encode_message(
                self.channel.name, request, publisher_id=1, seq=0, send_ts_ns=now_ns()
            )
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
                self._streams[(pid, "")] = _Stream(last=end.seq)
            for got in snap:
                if self.keys is not None:
                    self._streams[(pid, got.envelope.key)] = _Stream(last=got.envelope.key_seq)
                self._ready.append(got)
            self._alive()
            for frame in live:
                self._accept(frame, from_replay=False)
            return
        raise SubscribeTimeout(f"no snapshot of {self.channel.name!r} within {timeout}s")

    # -- frame handling ----------------------------------------------------------------

    def _drain(self, sock: zmq.Socket[bytes], from_replay: bool) -> None:
        items = _native.drain(sock, 1000)
        if items:
            self._alive()
        for item in items:
            self._accept(item, from_replay)

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
            self._control(env)
            return
        got = self._decode(env)
        if got is None:
            return
        pid = env.publisher_id
        if pid != self._publisher_id:
            self._check_publisher(pid)
        if self.keys is None:
            key, number = "", env.seq
        else:
            key, number = env.key, env.key_seq
        stream = self._streams.get((pid, key))
        if stream is None:
            stream = self._streams[(pid, key)] = _Stream(last=0)
        if number == stream.last + 1 and not stream.held and not from_replay:  # the usual case
            stream.last = number
            if number > stream.top:
                stream.top = number
            self._ready.append(got)
            self.stats.received += 1
            if stream.lost:
                self._flush(stream)
            return
        if number <= stream.last or number in stream.held:
            self.stats.duplicates += 1
            return
        if from_replay:
            self.stats.recovered += 1
            if stream.replay_deadline is not None:  # progress: the replay is still flowing
                stream.replay_deadline = time.monotonic() + self._replay_timeout
        if number == stream.last + 1:
            if not from_replay:
                stream.top = max(stream.top, number)
            self._deliver(stream, got, number)
            return
        stream.held[number] = got
        if not from_replay:
            self._see(pid, key, stream, number)

    def _see(self, publisher_id: int, key: str, stream: _Stream, number: int) -> None:
        """A live number (or one a heartbeat announces): anything skipped is a new gap."""
        if number > stream.top + 1:
            self._request(publisher_id, key, stream, stream.top + 1, number - 1)
        stream.top = max(stream.top, number)

    def _control(self, env: wire.Envelope) -> None:
        """Heartbeats (tail loss) and replay ends; other known types are ignored (counted),
        once their payload is known to be valid (else rejected like any bad frame)."""
        if env.type_id not in (_HEARTBEAT_ID, _REPLAY_END_ID):
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
            self._check_publisher(env.publisher_id)
            if self.keys is None:
                self._tail(env.publisher_id, "", hb.last_seq)
            else:
                for key in self.keys:
                    self._tail(env.publisher_id, key, hb.last_key_seq.get(key, 0))
            return
        end = self._control_message(env, registry.REPLAY_END_TYPE.cls)
        if end is not None:
            self._replay_done(end)

    def _tail(self, publisher_id: int, key: str, last_published: int) -> None:
        stream = self._streams.setdefault((publisher_id, key), _Stream(last=0))
        if last_published > stream.top:
            self._see(publisher_id, key, stream, last_published + 1)
            stream.top = last_published

    def _request(self, publisher_id: int, key: str, stream: _Stream, first: int, upto: int) -> None:
        """Ask the publisher to replay first..upto; one request per stream is outstanding
        at a time, later gaps are folded into the next one."""
        first = max(first, stream.last + 1)
        if upto < first:
            return
        self.stats.gaps += 1
        self.stats.missed += upto - first + 1
        self._event("gap_detected", publisher_id, key, first, upto)
        if stream.replay_deadline is not None:
            stream.wanted_upto = max(stream.wanted_upto, upto)
            return
        self._send_replay_request(publisher_id, key, stream, first, upto)

    def _send_replay_request(
        self, publisher_id: int, key: str, stream: _Stream, first: int, upto: int
    ) -> None:
        stream.requested_upto = upto
        stream.replay_deadline = time.monotonic() + self._replay_timeout
        self.stats.replay_requests += 1
        request = registry.REPLAY_REQUEST_TYPE.cls(
            channel=self.channel.name,
            publisher_id=publisher_id,
            key=key,
            from_seq=first,
            to_seq=upto,
        )
        self._ctl.send(
            wire.encode_message(
                self.channel.name, request, publisher_id=1, seq=0, send_ts_ns=now_ns()
            )
        )

    def _next_request(self, publisher_id: int, key: str, stream: _Stream) -> None:
        """After a replay ends: ask for the gaps seen meanwhile, if any."""
        stream.replay_deadline = None
        first = max(stream.last, stream.requested_upto) + 1
        if stream.wanted_upto >= first:
            self._send_replay_request(publisher_id, key, stream, first, stream.wanted_upto)
        stream.wanted_upto = 0

    def _replay_done(self, end: Any) -> None:
        key = end.key if self.keys is not None else ""
        stream = self._streams.get((end.publisher_id, key))
        if stream is None:
            return
        if end.replayed:
            self._event(
                "gap_recovered",
                end.publisher_id,
                key,
                end.from_seq,
                end.to_seq,
                f"{end.replayed} messages replayed",
            )
        why = "publisher restarted" if end.unknown_publisher else "no longer in the replay ring"
        self._give_up(end.publisher_id, key, stream, end.from_seq, end.to_seq, why)
        self._next_request(end.publisher_id, key, stream)

    def _give_up(
        self, pid: int, key: str, stream: _Stream, first: int, last: int, why: str
    ) -> None:
        """Account every still-missing seq of first..last as lost, then deliver what follows."""
        start = None
        already = stream.lost
        for number in range(max(first, stream.last + 1), last + 2):
            missing = (
                number <= last
                and number not in stream.held
                and not any(a <= number <= b for a, b in already)
            )
            if missing and start is None:
                start = number
            elif not missing and start is not None:
                stream.lost.append((start, number - 1))
                self.stats.unrecoverable += number - start
                self._event("unrecoverable_gap", pid, key, start, number - 1, why)
                start = None
        self._flush(stream)

    def _deliver(self, stream: _Stream, got: Received[M], number: int) -> None:
        stream.last = number
        self._ready.append(got)
        self.stats.received += 1
        self._flush(stream)

    def _flush(self, stream: _Stream) -> None:
        if not stream.held and not stream.lost:
            return
        while True:
            nxt = stream.held.pop(stream.last + 1, None)
            if nxt is not None:
                stream.last += 1
                self._ready.append(nxt)
                self.stats.received += 1
                continue
            span = next((s for s in stream.lost if s[0] <= stream.last + 1 <= s[1]), None)
            if span is None:
                stream.lost = [s for s in stream.lost if s[1] > stream.last]
                return
            stream.last = span[1]

    def _check_publisher(self, publisher_id: int) -> None:
        if publisher_id == self._publisher_id:
            return
        if self._publisher_id:
            self._event(
                "publisher_restart",
                publisher_id,
                "",
                0,
                0,
                f"previous publisher {self._publisher_id:016x}",
            )
            for (pid, key), stream in list(self._streams.items()):
                if pid == self._publisher_id:
                    top = max([stream.requested_upto, *stream.held]) if stream.held else 0
                    if top > stream.last:
                        self._give_up(pid, key, stream, stream.last + 1, top, "publisher restarted")
                    del self._streams[(pid, key)]
        self._publisher_id = publisher_id

    # -- timers ------------------------------------------------------------------------

    def _next_wake(self, deadline: float | None) -> float | None:
        now = time.monotonic()
        waits = [self._peer_timeout - (now - self._last_rx) if not self._peer_lost else None]
        waits += [s.replay_deadline - now for s in self._streams.values() if s.replay_deadline]
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
                self._publisher_id,
                "",
                0,
                0,
                f"nothing received for {self._peer_timeout}s",
            )
        for (pid, key), stream in list(self._streams.items()):
            if stream.replay_deadline is not None and now > stream.replay_deadline:
                self._give_up(
                    pid, key, stream, stream.last + 1, stream.requested_upto, "replay timed out"
                )
                self._next_request(pid, key, stream)

    def _mark_alive(self) -> None:
        self._last_rx = time.monotonic()
        if self._peer_lost:
            self._peer_lost = False
            self._event("peer_back", self._publisher_id)

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

"""Publisher: XPUB data socket + ROUTER control socket (WIRE.md section 7)."""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections import deque
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic

import zmq

from tradewire import wire
from tradewire._gen import registry
from tradewire.catalog import Channel, Pattern
from tradewire.transport import _native
from tradewire.transport._base import (
    DEFAULT_CONTROL_SEND_TIMEOUT,
    DEFAULT_CONTROL_SNDHWM,
    DEFAULT_HWM,
    DEFAULT_LINGER_MS,
    DEFAULT_MAX_ACTIVE_REPLAYS,
    DEFAULT_MAX_QUEUED_REPLAYS,
    DEFAULT_WARN_INTERVAL,
    Endpoint,
    M,
    WarnLimiter,
    control_endpoint,
    now_ns,
    resolve_channel,
)
from tradewire.transport.journal import JournalOptions
from tradewire.transport.security import CurveGuard, CurveServer, secure_server

if TYPE_CHECKING:
    from tradewire._wire import Journal, JournalRange

log = logging.getLogger("tradewire.transport")

SYNC_PREFIX = "~sync~"
_HB = registry.HEARTBEAT_TYPE
_REPLAY_END = registry.REPLAY_END_TYPE
_SNAPSHOT_END = registry.SNAPSHOT_END_TYPE
_SEND_BATCH = 256  # frames one answer sends per turn of the control loop
_SCAN_CHUNK = 4096  # ring slots a replay looks at per hold of the lock
_MAX_QUEUED_TOTAL = 4096  # requests waiting, all peers together
_JOURNAL_CHUNK = 256  # journal records a replay reads per turn
_JOURNAL_TICK = 0.05  # seconds between the journal's periodic work (fsync, retention)


@dataclass(eq=False)
class _Answer:
    """The reply frames to one control request, produced lazily (a replay reads the ring
    as it goes) and sent as far as the peer's queue allows."""

    identity: bytes
    frames: Iterator[bytes]
    pending: bytes | None = None
    stalled_since: float | None = None
    done: bool = field(default=False)


@dataclass(eq=False)
class _Replay:
    """Progress of one replay answer: the next number due, the numbers lost, frames sent."""

    expected: int
    lost: list[tuple[int, int]] = field(default_factory=list)
    sent: int = 0


class Publisher(Endpoint, Generic[M]):
    """Binds and publishes one channel's messages with sequence numbers; serves replay,
    snapshots and the subscription handshake from a background thread."""

    def __init__(
        self,
        endpoint: str,
        *,
        channel: Channel[M] | None = None,
        control: str | None = None,
        context: zmq.Context[Any] | None = None,
        ring_size: int = 100_000,
        heartbeat_interval: float = 1.0,
        sndhwm: int = DEFAULT_HWM,
        linger_ms: int = DEFAULT_LINGER_MS,
        max_payload: int = wire.DEFAULT_MAX_PAYLOAD,
        control_sndhwm: int = DEFAULT_CONTROL_SNDHWM,
        max_active_replays: int = DEFAULT_MAX_ACTIVE_REPLAYS,
        max_queued_replays: int = DEFAULT_MAX_QUEUED_REPLAYS,
        control_send_timeout: float = DEFAULT_CONTROL_SEND_TIMEOUT,
        warn_interval: float = DEFAULT_WARN_INTERVAL,
        journal: JournalOptions | None = None,
        count_hwm_drops: bool = False,
        control_curve: CurveServer | None = None,
    ) -> None:
        """The control socket answers at most `max_active_replays` replay or snapshot
        requests at once (one per peer), reading the ring as it sends; it queues at most
        `control_sndhwm` frames per peer and `max_queued_replays` waiting requests per peer
        (more are refused: `stats.replays_refused`). An answer whose peer takes nothing for
        `control_send_timeout` seconds is abandoned (`stats.control_send_failed`). Control
        requests over `max_payload` bytes are dropped by libzmq with the peer's connection.

        `journal`: append every published frame to this on-disk journal (WIRE.md section
        7.6); replays then reach numbers evicted from the ring and the numbers of previous
        publisher ids found in the journal, and heartbeats name the previous id.

        `count_hwm_drops`: by default libzmq drops a frame a subscriber's full queue refuses
        for that subscriber alone, uncounted here (that subscriber sees and reports the gap).
        With True the XPUB has `ZMQ_XPUB_NODROP`: the frame goes to no subscriber, is
        counted `stats.hwm_dropped` and stays in the ring and journal for replay; one
        stalled subscriber then holds back the live stream of all (WIRE.md 8.5).

        `control_curve`: the control socket (replay, snapshot, checks) only serves CURVE
        clients whose keys it allows; refused handshakes are counted in
        `stats.curve_refused` and logged at most once per `warn_interval`. The data socket
        stays open to every subscriber (WIRE.md 8.4)."""
        if control_curve is not None and context is None:
            context = zmq.Context()  # its own ZAP handler: one authenticator per context
            self._own_context: zmq.Context[Any] | None = context
        else:
            self._own_context = None
        super().__init__(context, linger_ms)
        self.channel: Channel[M] = resolve_channel(self, channel, Pattern.PUB_SUB)
        self.publisher_id = secrets.randbits(64) | 1
        self._started = time.monotonic_ns()
        self._journal: Journal | None = journal.open() if journal is not None else None
        # The previous publisher id of this journal, named in every heartbeat.
        self._previous: JournalRange | None = (
            self._journal.previous(self.publisher_id) if self._journal is not None else None
        )
        self._pending_sync: list[bytes] = []  # handshakes refused at the HWM, retried
        self.endpoint = endpoint
        self.control_endpoint = control or control_endpoint(endpoint)
        self._type = self.channel.message
        self._serialize = wire.serializer(self._type.cls)
        self._key_field = self.channel.key_field
        self._topics: dict[str, bytes] = {}
        self._seq = 0
        self._key_seq: dict[str, int] = {}
        self._ring_size = max(1, ring_size)
        # Slot (seq - 1) % ring_size holds (key, key_seq, frame) of channel seq `seq`.
        self._ring: list[tuple[str, int, bytes] | None] = [None] * self._ring_size
        self._last_value: dict[str, bytes] | None = {} if self.channel.last_value else None
        self._heartbeat_interval = heartbeat_interval
        self._last_send = time.monotonic()
        self._lock = threading.Lock()
        self._subscribed = threading.Condition(self._lock)  # notified on subscription notices
        self._data = self._socket_of(zmq.XPUB)
        self._send = _native.frame_sender(self._data)  # pack + send, in Rust when built
        self._data.setsockopt(zmq.SNDHWM, sndhwm)
        # Counting: at the high-water mark a send fails with EAGAIN (`hwm_dropped`) instead
        # of libzmq dropping the frame for that subscriber alone.
        self._data.setsockopt(zmq.XPUB_NODROP, 1 if count_hwm_drops else 0)
        if endpoint.startswith("tcp://"):  # ZMTP heartbeats: drop dead peers, let them rejoin
            self._data.setsockopt(zmq.HEARTBEAT_IVL, 1000)
            self._data.setsockopt(zmq.HEARTBEAT_TIMEOUT, 3000)
        self._control = self._socket_of(zmq.ROUTER, max_payload)
        self._control.setsockopt(zmq.SNDHWM, max(1, control_sndhwm))
        self._control.setsockopt(zmq.ROUTER_MANDATORY, 1)  # a full peer queue: EAGAIN, no drop
        self._auth: CurveGuard | None = None
        if control_curve is not None:
            self._auth = secure_server(
                self._control,
                control_curve,
                self.control_endpoint,
                self.stats.curve_refused,
                warn_interval,
            )
        self._max_payload = max_payload
        self._max_active = max(1, max_active_replays)
        self._max_queued = max(1, max_queued_replays)
        self._send_timeout = control_send_timeout
        self._waiting: deque[_Answer] = deque()
        self._active: list[_Answer] = []
        self._per_peer: dict[bytes, int] = {}  # requests waiting or active, per peer
        self._warn = WarnLimiter(
            log, f"rejected control requests on {self.channel.name}", warn_interval
        )
        try:
            self._data.bind(endpoint)
            self._control.bind(self.control_endpoint)
        except zmq.ZMQError as exc:
            self._close_sockets()
            raise OSError(f"cannot bind {self.channel.name!r} publisher: {exc}") from exc
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._serve, name=f"tradewire-pub-{self.channel.name}", daemon=True
        )
        self._thread.start()

    # -- user thread -------------------------------------------------------------------

    def publish(self, message: M) -> int:
        """Send one message; returns its channel sequence number."""
        key: str = getattr(message, self._key_field) if self._key_field else ""
        topic = self._topics.get(key)
        if topic is None:
            topic = self._topics[key] = wire.topic(self.channel.name, key)
        payload = self._serialize(message)
        with self._lock:
            seq = self._seq + 1
            key_seq = self._key_seq.get(key, 0) + 1 if key else seq
            args = (
                topic,
                self._type.type_id,
                self._type.fingerprint,
                self.publisher_id,
                seq,
                key_seq,
                now_ns(),
                payload,
            )
            if self._journal is None:
                try:
                    frame = self._send(*args)
                except zmq.Again:  # a subscriber's queue is full: sent to none, counted
                    frame = wire.pack_frame(*args)
                    self.stats.hwm_dropped += 1
            else:
                # Journal first: what went out is always in the journal.
                frame = wire.pack_frame(*args)
                self._journal.append(frame)
                self.stats.journaled += 1
                try:
                    self._data.send(frame, zmq.NOBLOCK)
                except zmq.Again:
                    self.stats.hwm_dropped += 1
            self._seq = seq
            if key:
                self._key_seq[key] = key_seq
            self._ring[(seq - 1) % self._ring_size] = (key, key_seq, frame)
            if self._last_value is not None:
                self._last_value[key] = frame
            self._last_send = time.monotonic()
        self.stats.sent += 1
        return seq

    def wait_for_subscribers(self, n: int = 1, timeout: float | None = 10.0) -> bool:
        """Block until `n` subscribers have completed the subscription handshake (each
        handshake is one subscriber: its sync topic is unique), or `timeout` passes.
        Returns whether they did. Built on the XPUB's subscription notices, no polling."""
        with self._subscribed:
            return self._subscribed.wait_for(lambda: self.stats.handshakes >= n, timeout)

    def wait_for_subscription(self, timeout: float | None = 10.0) -> bool:
        """Block until any subscriber is connected: a completed handshake or any data
        subscription notice (a subscriber that reconnects after a publisher restart
        resends its subscriptions but does no new handshake). Returns whether one is."""
        with self._subscribed:
            return self._subscribed.wait_for(
                lambda: self.stats.handshakes > 0 or self.stats.subscriptions > 0, timeout
            )

    def close(self) -> None:
        """Stop the control thread and close both sockets (bounded by linger)."""
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout=2.0)
        self._warn.flush()
        if self._journal is not None:
            try:
                self._journal.sync()
            except OSError as exc:
                log.warning("journal of %s: final fsync failed: %s", self.channel.name, exc)
            self._journal = None  # closes its files and frees its directory for a successor
        self._close_sockets()

    def _close_sockets(self) -> None:
        if self._auth is not None:
            self._auth.stop()
            self._auth = None
        super().close()
        if self._own_context is not None:
            self._own_context.term()
            self._own_context = None

    def curve_refusals(self) -> dict[str, int]:
        """Refused CURVE handshakes at the control socket by kind, up to now."""
        return dict(self.stats.curve_refused)

    # -- control thread ----------------------------------------------------------------

    def _serve(self) -> None:
        poller = zmq.Poller()
        poller.register(self._control, zmq.POLLIN)
        if self._auth is not None:
            poller.register(self._auth.monitor, zmq.POLLIN)
        busy = False
        last_tick = time.monotonic()
        while not self._stop.is_set():
            try:
                ready = dict(poller.poll(0 if busy else 5))
                if self._auth is not None and self._auth.monitor in ready:
                    self._auth.check()
                if self._control in ready:
                    for _ in range(64):
                        try:
                            parts = self._control.recv_multipart(zmq.NOBLOCK)
                        except zmq.Again:
                            break
                        self._answer(parts)
                busy = self._send_answers()
                with self._lock:
                    self._drain_subscriptions()
                    self._maybe_heartbeat()
                if self._journal is not None and time.monotonic() - last_tick >= _JOURNAL_TICK:
                    last_tick = time.monotonic()
                    try:
                        self._journal.tick()
                    except OSError as exc:
                        self.stats.journal_errors += 1
                        self._warn.warn("journal_error", f"journal fsync/retention: {exc}")
            except zmq.ZMQError as exc:
                if self._stop.is_set() or exc.errno == zmq.ETERM:
                    return
                log.exception("publisher control loop on %s", self.channel.name)

    def _drain_subscriptions(self) -> None:
        """Answer sync-topic subscriptions with a Heartbeat on that topic (WIRE.md 7.1)."""
        pending, self._pending_sync = self._pending_sync, []
        for topic_bytes in pending:
            if self._send_sync(topic_bytes):
                self._subscribed.notify_all()
        while True:
            try:
                event = self._data.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            if not event or event[0] != 1:
                continue
            nul = event.find(b"\0")
            topic_bytes = event[1 : nul + 1] if nul > 0 else b""
            _, _, key = topic_bytes[:-1].decode(errors="replace").partition("/")
            if key.startswith(SYNC_PREFIX):
                self._send_sync(topic_bytes)
            else:
                self.stats.subscriptions += 1
            self._subscribed.notify_all()

    def _send_sync(self, topic_bytes: bytes) -> bool:
        """Sends the handshake Heartbeat on a sync topic; True when sent. Refused at the
        high-water mark (a full subscriber of the whole channel matches the sync topic
        too), it is queued for the next turn."""
        try:
            self._data.send(self._heartbeat_frame(topic_bytes), zmq.NOBLOCK)
        except zmq.Again:
            if len(self._pending_sync) < _MAX_QUEUED_TOTAL:
                self._pending_sync.append(topic_bytes)
            return False
        self.stats.handshakes += 1
        return True

    def _heartbeat_frame(self, topic_bytes: bytes) -> bytes:
        prev = self._previous
        beat = _HB.cls(
            channel=self.channel.name,
            last_seq=self._seq,
            timestamp_us=now_ns() // 1000,
            last_key_seq=self._key_seq if self._key_field else {},
            uptime_us=(time.monotonic_ns() - self._started) // 1000,
            previous_publisher_id=prev[0] if prev else 0,
            previous_last_seq=prev[2] if prev else 0,
            previous_last_key_seq=prev[3] if prev and self._key_field else {},
        )
        return wire.pack_frame(
            topic_bytes,
            _HB.type_id,
            _HB.fingerprint,
            self.publisher_id,
            0,
            0,
            now_ns(),
            beat.SerializeToString(deterministic=True),
        )

    def _maybe_heartbeat(self) -> None:
        if time.monotonic() - self._last_send < self._heartbeat_interval:
            return
        self._last_send = time.monotonic()
        try:  # a full subscriber queue refuses it; the next interval retries
            self._data.send(self._heartbeat_frame(wire.topic(self.channel.name)), zmq.NOBLOCK)
        except zmq.Again:
            return
        self.stats.heartbeats += 1

    def _answer(self, parts: list[bytes]) -> None:
        if len(parts) != 2:
            self._reject("bad_framing", f"{len(parts)} frames, expected identity + 1")
            return
        identity, frame = parts
        try:
            env = wire.decode_frame(frame, self._max_payload)
            request: Any = wire.parse_payload(env)
        except wire.WireError as exc:
            self._reject(exc.kind, str(exc))
            return
        if isinstance(request, registry.REPLAY_REQUEST_TYPE.cls):
            replies = self._replay(request)
        elif isinstance(request, registry.SNAPSHOT_REQUEST_TYPE.cls):
            replies = iter(self._snapshot(request))
        else:
            self._reject("unexpected_request", f"a {type(request).__name__} is not a request")
            return
        queued = self._per_peer.get(identity, 0)
        if queued >= self._max_queued or len(self._waiting) >= _MAX_QUEUED_TOTAL:
            self.stats.replays_refused += 1
            self._warn.warn("replays_refused", f"{queued} requests of one peer waiting")
            return
        self._per_peer[identity] = queued + 1
        self._waiting.append(_Answer(identity, replies))

    def _reject(self, kind: str, detail: str) -> None:
        self.stats.rejected[kind] += 1
        self._warn.warn(kind, detail)

    def _send_answers(self) -> bool:
        """Moves every active answer on as far as its peer's queue allows, then starts
        waiting ones in free slots (one per peer). True when some answer can go on now."""
        busy = False
        for answer in self._active:
            busy = self._send_some(answer) or busy
        if any(a.done for a in self._active):
            for answer in (a for a in self._active if a.done):
                left = self._per_peer.pop(answer.identity, 1) - 1
                if left:
                    self._per_peer[answer.identity] = left
            self._active = [a for a in self._active if not a.done]
        if self._waiting and len(self._active) < self._max_active:
            serving = {a.identity for a in self._active}
            for answer in list(self._waiting):
                if len(self._active) >= self._max_active:
                    break
                if answer.identity not in serving:
                    self._waiting.remove(answer)
                    self._active.append(answer)
                    serving.add(answer.identity)
                    busy = True
        return busy

    def _send_some(self, answer: _Answer) -> bool:
        """Sends up to a batch of `answer`'s frames; True when it may send more now."""
        for _ in range(_SEND_BATCH):
            if answer.pending is None:
                answer.pending = next(answer.frames, None)
                if answer.pending is None:
                    answer.done = True
                    return False
            try:
                self._control.send_multipart([answer.identity, answer.pending], zmq.NOBLOCK)
            except zmq.Again:  # the peer's queue is full (it reads slowly or not at all)
                now = time.monotonic()
                if answer.stalled_since is None:
                    answer.stalled_since = now
                elif now - answer.stalled_since > self._send_timeout:
                    self._abandon(answer, "its peer took nothing")
                return False
            except zmq.ZMQError as exc:  # EHOSTUNREACH: the peer is gone
                self._abandon(answer, str(exc))
                return False
            answer.pending = None
            answer.stalled_since = None
        return True

    def _abandon(self, answer: _Answer, why: str) -> None:
        answer.done = True
        self.stats.control_send_failed += 1
        self._warn.warn("control_send_failed", f"answer abandoned: {why}")

    def _replay(self, req: Any) -> Iterator[bytes]:
        """Frames of the requested range, then a ReplayEnd: from the ring, read as the
        frames go out, and the numbers the ring no longer holds from the journal (when
        there is one), in number order; a previous publisher id of the journal from the
        journal alone. Numbers found nowhere are reported lost."""
        self.stats.replay_requests += 1
        end = _REPLAY_END.cls(
            channel=req.channel,
            publisher_id=req.publisher_id,
            key=req.key,
            from_seq=req.from_seq,
            to_seq=req.to_seq,
        )
        state = _Replay(req.from_seq)
        journaled = None
        if req.publisher_id != self.publisher_id and self._journal is not None:
            journaled = self._journal.publisher(req.publisher_id)
        if not 1 <= req.from_seq <= req.to_seq:
            pass
        elif journaled is not None:
            _, _, last_seq, last_key_seq = journaled
            end.last_seq = last_key_seq.get(req.key, 0) if req.key else last_seq
            upto = min(req.to_seq, end.last_seq)
            if state.expected <= upto:
                yield from self._from_journal(req.publisher_id, req.key, upto, state)
        elif req.publisher_id != self.publisher_id:
            end.unknown_publisher = True
            state.lost.append((req.from_seq, req.to_seq))
        else:
            with self._lock:
                newest = self._seq
                end.last_seq = self._key_seq.get(req.key, 0) if req.key else newest
                upto = min(req.to_seq, end.last_seq)
            cursor: int | None = 1 if req.key else req.from_seq
            while cursor is not None and cursor <= newest and state.expected <= upto:
                chunk, cursor, expected, gap_to = self._ring_chunk(
                    req.key, cursor, min(newest, cursor + _SCAN_CHUNK - 1), state.expected, upto
                )
                state.expected = expected
                for frame in chunk:
                    yield wire.with_flags(frame, wire.FLAG_REPLAY)
                    state.sent += 1
                if gap_to is not None:  # no longer in the ring: the journal's turn
                    yield from self._from_journal(self.publisher_id, req.key, gap_to, state)
            if state.expected <= upto:  # overwritten while the answer was going out
                yield from self._from_journal(self.publisher_id, req.key, upto, state)
        if state.lost:
            end.unrecoverable_from, end.unrecoverable_to = state.lost[0][0], state.lost[-1][1]
        end.replayed = state.sent
        self.stats.replayed += state.sent
        yield self._control_frame(_REPLAY_END, end)

    def _from_journal(
        self, publisher_id: int, key: str, to: int, state: _Replay
    ) -> Generator[bytes, None, None]:
        """The journal's frames numbered state.expected..to, read a chunk at a time;
        numbers it does not hold (or all of them, without a journal) are lost."""
        if self._journal is not None:
            reader = self._journal.read(publisher_id, key, state.expected, to)
            while state.expected <= to:
                batch = reader.next_batch(_JOURNAL_CHUNK)
                if not batch:
                    break
                for number, frame in batch:
                    if number < state.expected:
                        continue
                    if number > state.expected:
                        state.lost.append((state.expected, number - 1))
                    yield wire.with_flags(frame, wire.FLAG_REPLAY)
                    state.sent += 1
                    self.stats.replayed_from_journal += 1
                    state.expected = number + 1
        if state.expected <= to:
            state.lost.append((state.expected, to))
            state.expected = to + 1

    def _ring_chunk(
        self, key: str, cursor: int, last: int, expected: int, upto: int
    ) -> tuple[list[bytes], int | None, int, int | None]:
        """The frames of `key` (by key_seq; by seq when keyless) numbered expected..upto
        among channel seqs cursor..last still held; the next cursor (None: past `upto`),
        the next number expected and, when the ring no longer holds expected..n-1 before
        the next held number n, n-1 (the cursor then points at n's slot again)."""
        frames: list[bytes] = []
        with self._lock:
            cursor = max(cursor, self._seq - self._ring_size + 1)
            while cursor <= last:
                slot = self._ring[(cursor - 1) % self._ring_size]
                cursor += 1
                if slot is None or (key and slot[0] != key):
                    continue
                number = slot[1] if key else cursor - 1
                if number < expected:
                    continue
                if number > upto:
                    return frames, None, expected, None
                if number > expected:
                    return frames, cursor - 1, expected, number - 1
                frames.append(slot[2])
                expected = number + 1
        return frames, cursor, expected, None

    def _snapshot(self, req: Any) -> list[bytes]:
        """The latest frame per requested key, then a SnapshotEnd with the channel seq."""
        self.stats.snapshots_served += 1
        with self._lock:
            latest = dict(self._last_value or {})
            seq = self._seq
        keys = list(req.keys) or sorted(latest)
        out = [wire.with_flags(latest[k], wire.FLAG_SNAPSHOT) for k in keys if k in latest]
        end = _SNAPSHOT_END.cls(
            channel=self.channel.name, publisher_id=self.publisher_id, seq=seq, count=len(out)
        )
        return [*out, self._control_frame(_SNAPSHOT_END, end)]

    def _control_frame(self, mtype: Any, message: Any) -> bytes:
        return wire.pack_frame(
            wire.topic(self.channel.name),
            mtype.type_id,
            mtype.fingerprint,
            self.publisher_id,
            0,
            0,
            now_ns(),
            message.SerializeToString(deterministic=True),
        )

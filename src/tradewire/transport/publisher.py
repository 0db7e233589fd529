"""Publisher: XPUB data socket + ROUTER control socket (WIRE.md section 7)."""

from __future__ import annotations

import logging
import secrets
import threading
import time
from typing import Any, Generic

import zmq

from tradewire import wire
from tradewire._gen import registry
from tradewire.catalog import Channel, Pattern
from tradewire.transport import _native
from tradewire.transport._base import (
    DEFAULT_HWM,
    DEFAULT_LINGER_MS,
    Endpoint,
    M,
    control_endpoint,
    now_ns,
    resolve_channel,
)

log = logging.getLogger("tradewire.transport")

SYNC_PREFIX = "~sync~"
_HB = registry.HEARTBEAT_TYPE
_REPLAY_END = registry.REPLAY_END_TYPE
_SNAPSHOT_END = registry.SNAPSHOT_END_TYPE


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
    ) -> None:
        super().__init__(context, linger_ms)
        self.channel: Channel[M] = resolve_channel(self, channel, Pattern.PUB_SUB)
        self.publisher_id = secrets.randbits(64) | 1
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
        if endpoint.startswith("tcp://"):  # ZMTP heartbeats: drop dead peers, let them rejoin
            self._data.setsockopt(zmq.HEARTBEAT_IVL, 1000)
            self._data.setsockopt(zmq.HEARTBEAT_TIMEOUT, 3000)
        self._control = self._socket_of(zmq.ROUTER)
        self._control.setsockopt(zmq.SNDHWM, 0)  # replies are bounded by the ring; never drop
        try:
            self._data.bind(endpoint)
            self._control.bind(self.control_endpoint)
        except zmq.ZMQError as exc:
            super().close()
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
            self._seq = seq = self._seq + 1
            key_seq = self._key_seq[key] = self._key_seq.get(key, 0) + 1 if key else seq
            frame = self._send(
                topic,
                self._type.type_id,
                self._type.fingerprint,
                self.publisher_id,
                seq,
                key_seq,
                now_ns(),
                payload,
            )
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
        super().close()

    # -- control thread ----------------------------------------------------------------

    def _serve(self) -> None:
        poller = zmq.Poller()
        poller.register(self._control, zmq.POLLIN)
        while not self._stop.is_set():
            try:
                ready = dict(poller.poll(5))
                if self._control in ready:
                    self._answer(self._control.recv_multipart())
                with self._lock:
                    self._drain_subscriptions()
                    self._maybe_heartbeat()
            except zmq.ZMQError as exc:
                if self._stop.is_set() or exc.errno == zmq.ETERM:
                    return
                log.exception("publisher control loop on %s", self.channel.name)

    def _drain_subscriptions(self) -> None:
        """Answer sync-topic subscriptions with a Heartbeat on that topic (WIRE.md 7.1)."""
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
                self._data.send(self._heartbeat_frame(topic_bytes))
                self.stats.handshakes += 1
            else:
                self.stats.subscriptions += 1
            self._subscribed.notify_all()

    def _heartbeat_frame(self, topic_bytes: bytes) -> bytes:
        beat = _HB.cls(
            channel=self.channel.name,
            last_seq=self._seq,
            timestamp_us=now_ns() // 1000,
            last_key_seq=self._key_seq if self._key_field else {},
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
        self._data.send(self._heartbeat_frame(wire.topic(self.channel.name)))
        self._last_send = time.monotonic()
        self.stats.heartbeats += 1

    def _answer(self, parts: list[bytes]) -> None:
        if len(parts) != 2:
            self.stats.rejected["bad_framing"] += 1
            return
        identity, frame = parts
        try:
            env = wire.decode_frame(frame)
            request: Any = wire.parse_payload(env)
        except wire.WireError as exc:
            self.stats.rejected[exc.kind] += 1
            log.warning("rejected control request on %s: %s", self.channel.name, exc)
            return
        if isinstance(request, registry.REPLAY_REQUEST_TYPE.cls):
            replies = self._replay(request)
        elif isinstance(request, registry.SNAPSHOT_REQUEST_TYPE.cls):
            replies = self._snapshot(request)
        else:
            self.stats.rejected["unexpected_request"] += 1
            return
        for reply in replies:
            self._control.send_multipart([identity, reply])

    def _replay(self, req: Any) -> list[bytes]:
        """Frames of the requested range still in the ring, then a ReplayEnd."""
        self.stats.replay_requests += 1
        end = _REPLAY_END.cls(
            channel=req.channel,
            publisher_id=req.publisher_id,
            key=req.key,
            from_seq=req.from_seq,
            to_seq=req.to_seq,
        )
        if req.publisher_id != self.publisher_id:
            end.unknown_publisher = True
            held: list[bytes] = []
            oldest: int | None = None
        else:
            held, oldest = self._held(req.key, req.from_seq, req.to_seq)
        out = [wire.with_flags(frame, wire.FLAG_REPLAY) for frame in held]
        lost_to = req.to_seq if oldest is None else min(req.to_seq, oldest - 1)
        if lost_to >= req.from_seq:
            end.unrecoverable_from, end.unrecoverable_to = req.from_seq, lost_to
        end.replayed = len(out)
        self.stats.replayed += len(out)
        return [*out, self._control_frame(_REPLAY_END, end)]

    def _held(self, key: str, first: int, last: int) -> tuple[list[bytes], int | None]:
        """Frames numbered first..last still in the ring, and the oldest number held for
        that stream (by key_seq of `key` when given, else by channel seq)."""
        with self._lock:
            newest = self._seq
            oldest = max(1, newest - self._ring_size + 1) if newest else None
            if not key:
                if oldest is None:
                    return [], None
                numbers = range(max(first, oldest), min(last, newest) + 1)
                slots = [self._ring[(n - 1) % self._ring_size] for n in numbers]
                return [slot[2] for slot in slots if slot is not None], oldest
            ring = [self._ring[(n - 1) % self._ring_size] for n in range(oldest or 1, newest + 1)]
        numbered = [(ks, f) for k, ks, f in filter(None, ring) if k == key]
        oldest_key = numbered[0][0] if numbered else None
        return [f for ks, f in numbered if first <= ks <= last], oldest_key

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

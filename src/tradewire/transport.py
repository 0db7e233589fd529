"""ZeroMQ runtime: publishers, subscribers, acknowledged commands.

The generated typed clients in `tradewire.channels` are thin subclasses that bind
`_channel`; these classes can also be used directly with `channel=`.
"""

from __future__ import annotations

import logging
import secrets
import time
import uuid
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, ClassVar, Generic, Self, TypeVar

import zmq
from google.protobuf.message import Message

from tradewire import wire
from tradewire.catalog import Channel, Pattern

log = logging.getLogger("tradewire.transport")

M = TypeVar("M", bound=Message)
Req = TypeVar("Req", bound=Message)
Rep = TypeVar("Rep", bound=Message)

DEFAULT_LINGER_MS = 500
DEFAULT_HWM = 100_000


class CommandTimeout(TimeoutError):
    """No acknowledgement arrived before the deadline."""


@dataclass
class Stats:
    """Counters every endpoint keeps; nothing is dropped without being counted here."""

    sent: int = 0
    received: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    gaps: int = 0
    missed: int = 0
    schema_mismatch: int = 0
    duplicates: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "received": self.received,
            "rejected": dict(self.rejected),
            "gaps": self.gaps,
            "missed": self.missed,
            "schema_mismatch": self.schema_mismatch,
            "duplicates": self.duplicates,
        }


@dataclass(frozen=True, slots=True)
class Received(Generic[M]):
    """A decoded message with the envelope it came in."""

    message: M
    envelope: wire.Envelope


def now_ns() -> int:
    return time.time_ns()


class _Endpoint:
    """Socket ownership shared by all roles: context, close, context manager."""

    _channel: ClassVar[Channel[Any]]

    def __init__(
        self,
        channel: Channel[Any] | None,
        pattern: Pattern,
        socket_type: int,
        context: zmq.Context[Any] | None,
        linger_ms: int,
    ) -> None:
        resolved = channel if channel is not None else getattr(type(self), "_channel", None)
        if resolved is None:
            raise TypeError(f"{type(self).__name__} needs channel=")
        if resolved.pattern is not pattern:
            raise ValueError(
                f"channel {resolved.name!r} is {resolved.pattern.name}, not {pattern.name}"
            )
        self.channel: Channel[Any] = resolved
        self.stats = Stats()
        self._context = context if context is not None else zmq.Context.instance()
        self._socket: zmq.Socket[bytes] = self._context.socket(socket_type)
        self._socket.setsockopt(zmq.LINGER, linger_ms)

    def close(self) -> None:
        """Close the socket; pending sends are kept at most `linger_ms`."""
        if not self._socket.closed:
            self._socket.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class Publisher(_Endpoint, Generic[M]):
    """Binds a PUB socket and publishes one channel's messages with sequence numbers."""

    def __init__(
        self,
        endpoint: str,
        *,
        channel: Channel[M] | None = None,
        context: zmq.Context[Any] | None = None,
        sndhwm: int = DEFAULT_HWM,
        linger_ms: int = DEFAULT_LINGER_MS,
    ) -> None:
        super().__init__(channel, Pattern.PUB_SUB, zmq.PUB, context, linger_ms)
        self.publisher_id = secrets.randbits(64) | 1
        self._socket.setsockopt(zmq.SNDHWM, sndhwm)
        self._socket.bind(endpoint)
        self.endpoint = endpoint
        self._seq = 0
        self._key_seq: dict[str, int] = {}
        self._type = wire.message_type(self.channel.message.type_id)

    def publish(self, message: M) -> int:
        """Send one message; returns its channel sequence number."""
        key = getattr(message, self.channel.key_field) if self.channel.key_field else ""
        self._seq += 1
        key_seq = self._key_seq.get(key, 0) + 1 if self.channel.key_field else self._seq
        self._key_seq[key] = key_seq
        frame = wire.encode_frame(
            self.channel.name,
            key,
            self._type.type_id,
            self._type.fingerprint,
            self.publisher_id,
            self._seq,
            key_seq,
            now_ns(),
            message.SerializeToString(),
        )
        self._socket.send(frame, copy=True)
        self.stats.sent += 1
        return self._seq


class Subscriber(_Endpoint, Generic[M]):
    """Connects a SUB socket to a publisher, optionally filtered to some keys."""

    def __init__(
        self,
        endpoint: str,
        *,
        keys: Iterable[str] | None = None,
        channel: Channel[M] | None = None,
        context: zmq.Context[Any] | None = None,
        rcvhwm: int = DEFAULT_HWM,
        strict_schema: bool = False,
        linger_ms: int = DEFAULT_LINGER_MS,
    ) -> None:
        super().__init__(channel, Pattern.PUB_SUB, zmq.SUB, context, linger_ms)
        self._socket.setsockopt(zmq.RCVHWM, rcvhwm)
        self.keys = frozenset(keys) if keys is not None else None
        if self.keys is None:
            self._socket.subscribe(wire.channel_prefix(self.channel.name))
        else:
            self._socket.subscribe(wire.topic(self.channel.name))
            for key in sorted(self.keys):
                self._socket.subscribe(wire.topic(self.channel.name, key))
        self._socket.connect(endpoint)
        self._cls: type[M] = self.channel.message.cls
        self._strict = strict_schema
        self._last_seq: dict[tuple[int, str], int] = {}

    def recv(self, timeout: float | None = None) -> Received[M] | None:
        """Next valid message, or None when `timeout` seconds pass without one.
        Malformed frames are counted in `stats.rejected` and skipped."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            wait_ms = -1 if deadline is None else max(0, int((deadline - time.monotonic()) * 1000))
            if not self._socket.poll(wait_ms, zmq.POLLIN):
                return None
            received = self._accept(self._socket.recv(copy=True))
            if received is not None:
                return received

    def __iter__(self) -> Iterator[Received[M]]:
        while True:
            received = self.recv()
            if received is not None:
                yield received

    def _accept(self, frame: bytes) -> Received[M] | None:
        try:
            env = wire.decode_frame(frame)
            if env.type_id == self.channel.message.type_id:
                message = wire.parse_payload(env, self._cls, strict=self._strict)
            else:
                wire.message_type(env.type_id)  # control message (heartbeat) or unknown
                return None
        except wire.WireError as exc:
            self.stats.rejected[exc.kind] += 1
            log.warning("rejected frame on %s: %s: %s", self.channel.name, exc.kind, exc)
            return None
        if env.fingerprint != self.channel.message.fingerprint:
            self.stats.schema_mismatch += 1
        self._track(env)
        self.stats.received += 1
        return Received(message, env)

    def _track(self, env: wire.Envelope) -> None:
        """Count gaps: by channel seq when unfiltered, by key seq when filtered."""
        filtered = self.keys is not None
        stream = (env.publisher_id, env.key if filtered else "")
        seq = env.key_seq if filtered else env.seq
        last = self._last_seq.get(stream)
        if last is not None and seq > last + 1:
            self.stats.gaps += 1
            self.stats.missed += seq - last - 1
        if last is None or seq > last:
            self._last_seq[stream] = seq


class CommandClient(_Endpoint, Generic[Req, Rep]):
    """Sends commands over DEALER and waits for their acknowledgement, retrying
    with the same command id until the deadline."""

    def __init__(
        self,
        endpoint: str,
        *,
        channel: Channel[Req] | None = None,
        context: zmq.Context[Any] | None = None,
        linger_ms: int = DEFAULT_LINGER_MS,
    ) -> None:
        super().__init__(channel, Pattern.COMMAND, zmq.DEALER, context, linger_ms)
        reply = self.channel.reply
        if reply is None:
            raise ValueError(f"command channel {self.channel.name!r} declares no reply")
        self._reply_cls: type[Rep] = reply.cls  # type: ignore[assignment]
        self._socket.connect(endpoint)
        self.client_id = secrets.randbits(64) | 1
        self._seq = 0

    def send(self, command: Req, *, timeout: float = 5.0, retry_interval: float = 0.25) -> Rep:
        """Send and wait for the ack; raises CommandTimeout after `timeout` seconds."""
        if not getattr(command, "command_id"):  # noqa: B009 - generic over the schema
            command.command_id = uuid.uuid4().hex  # type: ignore[attr-defined]
        command_id: str = command.command_id  # type: ignore[attr-defined]
        self._seq += 1
        frame = wire.encode_message(
            self.channel.name,
            command,
            publisher_id=self.client_id,
            seq=self._seq,
            send_ts_ns=now_ns(),
        )
        deadline = time.monotonic() + timeout
        while True:
            self._socket.send(frame)
            self.stats.sent += 1
            retry_at = min(deadline, time.monotonic() + retry_interval)
            while (left := retry_at - time.monotonic()) > 0:
                if not self._socket.poll(int(left * 1000) + 1, zmq.POLLIN):
                    continue
                ack = self._accept(self._socket.recv(), command_id)
                if ack is not None:
                    return ack
            if time.monotonic() >= deadline:
                raise CommandTimeout(
                    f"no ack for command {command_id} on {self.channel.name!r} within {timeout}s"
                )

    def _accept(self, frame: bytes, command_id: str) -> Rep | None:
        try:
            ack = wire.parse_payload(wire.decode_frame(frame), self._reply_cls)
        except wire.WireError as exc:
            self.stats.rejected[exc.kind] += 1
            log.warning("rejected reply on %s: %s: %s", self.channel.name, exc.kind, exc)
            return None
        self.stats.received += 1
        if ack.command_id != command_id:  # type: ignore[attr-defined]
            self.stats.duplicates += 1  # late ack of an earlier retry
            return None
        return ack


class CommandServer(_Endpoint, Generic[Req, Rep]):
    """Binds ROUTER, applies each command id once and acknowledges every copy."""

    def __init__(
        self,
        endpoint: str,
        handler: Callable[[Req], Rep],
        *,
        channel: Channel[Req] | None = None,
        context: zmq.Context[Any] | None = None,
        dedupe_window: int = 10_000,
        linger_ms: int = DEFAULT_LINGER_MS,
    ) -> None:
        super().__init__(channel, Pattern.COMMAND, zmq.ROUTER, context, linger_ms)
        self._handler = handler
        self._socket.bind(endpoint)
        self.endpoint = endpoint
        self.server_id = secrets.randbits(64) | 1
        self._cls: type[Req] = self.channel.message.cls
        self._applied: OrderedDict[str, Rep] = OrderedDict()
        self._window = dedupe_window

    def serve_once(self, timeout: float | None = None) -> bool:
        """Handle at most one command; False when none arrived within `timeout`."""
        wait_ms = -1 if timeout is None else int(timeout * 1000)
        if not self._socket.poll(wait_ms, zmq.POLLIN):
            return False
        parts = self._socket.recv_multipart()
        if len(parts) != 2:
            self.stats.rejected["bad_framing"] += 1
            return True
        identity, frame = parts
        try:
            command = wire.parse_payload(wire.decode_frame(frame), self._cls)
        except wire.WireError as exc:
            self.stats.rejected[exc.kind] += 1
            log.warning("rejected command on %s: %s: %s", self.channel.name, exc.kind, exc)
            return True
        self.stats.received += 1
        ack = self._ack_for(command)
        reply = wire.encode_message(
            self.channel.name, ack, publisher_id=self.server_id, seq=0, send_ts_ns=now_ns()
        )
        self._socket.send_multipart([identity, reply])
        self.stats.sent += 1
        return True

    def serve(self, until: Callable[[], bool], poll_interval: float = 0.05) -> None:
        """Serve until `until()` is true (checked every `poll_interval` seconds)."""
        while not until():
            self.serve_once(poll_interval)

    def _ack_for(self, command: Req) -> Rep:
        command_id: str = command.command_id  # type: ignore[attr-defined]
        if command_id and command_id in self._applied:
            self.stats.duplicates += 1
            repeat = type(self._applied[command_id])()
            repeat.CopyFrom(self._applied[command_id])
            if "duplicate" in repeat.DESCRIPTOR.fields_by_name:
                repeat.duplicate = True  # type: ignore[attr-defined]
            return repeat
        ack = self._handler(command)
        if "command_id" in ack.DESCRIPTOR.fields_by_name:
            ack.command_id = command_id  # type: ignore[attr-defined]
        if command_id:
            self._applied[command_id] = ack
            while len(self._applied) > self._window:
                self._applied.popitem(last=False)
        return ack

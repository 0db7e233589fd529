"""What every endpoint shares: stats, events, socket ownership, endpoint naming."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, ClassVar, Generic, NamedTuple, Self, TypeVar

import zmq
from google.protobuf.message import Message

from tradewire import wire
from tradewire.catalog import Channel, Pattern

M = TypeVar("M", bound=Message)

DEFAULT_LINGER_MS = 500
DEFAULT_HWM = 100_000


@dataclass
class Stats:
    """Counters every endpoint keeps; nothing is dropped without being counted here.

    `handshakes` / `subscriptions` (publishers): subscription handshakes answered and other
    subscription notices seen on the XPUB. `events_dropped` (subscribers): events evicted
    from the bounded `events` deque before anyone read them (`on_event` still saw them).
    """

    sent: int = 0
    received: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    gaps: int = 0
    missed: int = 0
    recovered: int = 0
    unrecoverable: int = 0
    duplicates: int = 0
    schema_mismatch: int = 0
    replay_requests: int = 0
    replayed: int = 0
    snapshots_served: int = 0
    heartbeats: int = 0
    handshakes: int = 0
    subscriptions: int = 0
    events_dropped: int = 0

    def as_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["rejected"] = dict(self.rejected)
        return out


class Received(NamedTuple, Generic[M]):
    """A decoded message with the envelope it came in."""

    message: M
    envelope: wire.Envelope


@dataclass(frozen=True, slots=True)
class TransportEvent:
    """Something the stream did that a consumer may need to know.

    kind: gap_detected, gap_recovered, unrecoverable_gap, publisher_restart,
    peer_lost, peer_back. `first`..`last` is the sequence range concerned (inclusive),
    by key_seq of `key` when the subscriber filters on keys.
    """

    kind: str
    channel: str
    publisher_id: int
    key: str = ""
    first: int = 0
    last: int = 0
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "event": self.kind,
            "channel": self.channel,
            "publisher_id": f"{self.publisher_id:016x}",
            "key": self.key,
            "first": self.first,
            "last": self.last,
            "detail": self.detail,
        }


def now_ns() -> int:
    return time.time_ns()


def control_endpoint(endpoint: str) -> str:
    """The publisher's control ROUTER endpoint derived from its data endpoint (WIRE.md 7)."""
    if endpoint.startswith("ipc://"):
        return endpoint + ".ctl"
    if endpoint.startswith("tcp://"):
        host, sep, port = endpoint[len("tcp://") :].rpartition(":")
        if sep and port.isdigit():
            return f"tcp://{host}:{int(port) + 1}"
    raise ValueError(
        f"cannot derive a control endpoint from {endpoint!r}: use ipc://PATH or "
        "tcp://HOST:PORT, or pass control_endpoint="
    )


def resolve_channel(owner: object, channel: Channel[Any] | None, pattern: Pattern) -> Channel[Any]:
    resolved = channel if channel is not None else getattr(type(owner), "_channel", None)
    if resolved is None:
        raise TypeError(f"{type(owner).__name__} needs channel=")
    if resolved.pattern is not pattern:
        raise ValueError(
            f"channel {resolved.name!r} is {resolved.pattern.name}, not {pattern.name}"
        )
    return resolved


class Endpoint:
    """Owns a ZMQ context reference and closes sockets within `linger_ms`."""

    _channel: ClassVar[Channel[Any]]

    def __init__(self, context: zmq.Context[Any] | None, linger_ms: int) -> None:
        self.stats = Stats()
        self._context = context if context is not None else zmq.Context.instance()
        self._linger_ms = linger_ms
        self._sockets: list[zmq.Socket[bytes]] = []

    def _socket_of(self, kind: int) -> zmq.Socket[bytes]:
        sock: zmq.Socket[bytes] = self._context.socket(kind)
        sock.setsockopt(zmq.LINGER, self._linger_ms)
        self._sockets.append(sock)
        return sock

    def close(self) -> None:
        """Close every socket; pending sends are kept at most `linger_ms`."""
        for sock in self._sockets:
            if not sock.closed:
                sock.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

"""What every endpoint shares: stats, events, socket ownership, endpoint naming."""

from __future__ import annotations

import logging
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
# Frames a publisher's control socket queues per peer before it stops sending to that peer.
DEFAULT_CONTROL_SNDHWM = 1_000
# Replay or snapshot answers a publisher sends at once; further requests wait their turn.
DEFAULT_MAX_ACTIVE_REPLAYS = 4
# Requests one peer may have waiting; more are refused and counted.
DEFAULT_MAX_QUEUED_REPLAYS = 64
# An answer whose peer takes nothing for this long is abandoned and counted.
DEFAULT_CONTROL_SEND_TIMEOUT = 2.0
DEFAULT_WARN_INTERVAL = 1.0


@dataclass
class Stats:
    """Counters every endpoint keeps; nothing is dropped without being counted here.

    `rejected`: frames refused, by WIRE.md kind (section 2) or transport kind (section 8).
    `ignored` (subscribers): valid frames of another known type, channel or key.
    `curve_refused` (CURVE servers): handshakes refused, by kind (section 8).
    `replays_refused` / `control_send_failed` (publishers): control requests over the
    per-peer queue bound, and answers abandoned because their peer took nothing in time.
    `handshakes` / `subscriptions` (publishers): subscription handshakes answered and other
    subscription notices seen on the XPUB. `events_dropped` (subscribers): events evicted
    from the bounded `events` deque before anyone read them (`on_event` still saw them).
    `unknown_tails` (subscribers): restarts after which nobody knew how far the previous
    publisher had got (no journal), reported as a range ending at 2**64-1 and not counted
    in `unrecoverable`. `checks` (subscribers): far-ahead numbers and new publisher ids
    checked with the publisher (WIRE.md 9); `rejected["disowned"]` counts what failed.
    `stale` (subscribers): frames of a previous publisher after its tail was settled.
    `hwm_dropped` (publishers): data frames a subscriber's full queue refused (sent to no
    subscriber, kept for replay; WIRE.md 8.5). `journaled` / `replayed_from_journal` /
    `journal_errors` (publishers with a journal): frames appended, frames of `replayed`
    read from the journal, and fsync/retention errors of the control thread.
    `store_errors` (command servers with a store): commands left unanswered because the
    store could not be read or written (the client retries).
    """

    sent: int = 0
    received: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    ignored: int = 0
    curve_refused: Counter[str] = field(default_factory=Counter)
    replays_refused: int = 0
    control_send_failed: int = 0
    gaps: int = 0
    missed: int = 0
    recovered: int = 0
    unrecoverable: int = 0
    unknown_tails: int = 0
    restarts: int = 0
    checks: int = 0
    stale: int = 0
    duplicates: int = 0
    schema_mismatch: int = 0
    replay_requests: int = 0
    replayed: int = 0
    snapshots_served: int = 0
    heartbeats: int = 0
    handshakes: int = 0
    subscriptions: int = 0
    events_dropped: int = 0
    hwm_dropped: int = 0
    journaled: int = 0
    replayed_from_journal: int = 0
    journal_errors: int = 0
    store_errors: int = 0

    def as_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["rejected"] = dict(self.rejected)
        out["curve_refused"] = dict(self.curve_refused)
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


class WarnLimiter:
    """Bad-input warnings of one socket: at most one log line per `interval` seconds,
    carrying the counts by kind since the previous line and the latest detail of each kind
    (a flood writes one line a second, and no kind hides behind another)."""

    def __init__(self, logger: logging.Logger, what: str, interval: float) -> None:
        self._log = logger
        self._what = what
        self._interval = interval
        self._pending: Counter[str] = Counter()
        self._details: dict[str, str] = {}
        self._next_at = 0.0

    def warn(self, kind: str, detail: str) -> None:
        self._pending[kind] += 1
        self._details[kind] = detail
        now = time.monotonic()
        if now >= self._next_at:
            self._emit(now)

    def flush(self) -> None:
        """Log what was counted since the last line, if anything."""
        if self._pending:
            self._emit(time.monotonic())

    def _emit(self, now: float) -> None:
        counts = "; ".join(
            f"{kind}={n} (last: {self._details[kind]})" for kind, n in sorted(self._pending.items())
        )
        self._log.warning("%s: %s", self._what, counts)
        self._pending.clear()
        self._details.clear()
        self._next_at = now + self._interval


class Endpoint:
    """Owns a ZMQ context reference and closes sockets within `linger_ms`."""

    _channel: ClassVar[Channel[Any]]

    def __init__(self, context: zmq.Context[Any] | None, linger_ms: int) -> None:
        self.stats = Stats()
        self._context = context if context is not None else zmq.Context.instance()
        self._linger_ms = linger_ms
        self._sockets: list[zmq.Socket[bytes]] = []

    def _socket_of(self, kind: int, max_payload: int | None = None) -> zmq.Socket[bytes]:
        """A socket of this endpoint; with `max_payload`, libzmq drops (and disconnects)
        any incoming frame that cannot be a tradewire frame within that payload limit
        before buffering it."""
        sock: zmq.Socket[bytes] = self._context.socket(kind)
        sock.setsockopt(zmq.LINGER, self._linger_ms)
        if max_payload is not None:
            sock.setsockopt(zmq.MAXMSGSIZE, wire.max_frame_size(max_payload))
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

"""Acknowledged commands over DEALER/ROUTER (WIRE.md 7.5).

A server given a store (`store=CommandStoreOptions(path)`, see
`tradewire.transport.command_store` for what a handler is guaranteed) remembers the ids
it applied, with the ack it sent, for the store's time window and across restarts;
without one it remembers the last `dedupe_window` ids in memory. Either way a command with
an empty `command_id` is answered REJECTED (`NO_ID_REASON`) and never applied: without an
id a retry cannot be told from a new command.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import zmq
from google.protobuf.message import Message

from tradewire import wire
from tradewire.catalog import Channel, Pattern
from tradewire.transport._base import (
    DEFAULT_LINGER_MS,
    DEFAULT_WARN_INTERVAL,
    Endpoint,
    WarnLimiter,
    now_ns,
    resolve_channel,
)
from tradewire.transport.command_store import CommandState, CommandStoreOptions
from tradewire.transport.security import (
    CurveClient,
    CurveServer,
    secure_client,
    secure_server,
)

if TYPE_CHECKING:
    from tradewire._wire import CommandStore

log = logging.getLogger("tradewire.transport")

Req = TypeVar("Req", bound=Message)
Rep = TypeVar("Rep", bound=Message)


NO_ID_REASON = (
    "command_id is empty: a command server applies only commands with an id (retries reuse it)"
)


class CommandTimeout(TimeoutError):
    """No acknowledgement arrived before the deadline."""


class CommandClient(Endpoint, Generic[Req, Rep]):
    """Sends commands over DEALER and waits for their acknowledgement, retrying
    with the same command id until the deadline."""

    def __init__(
        self,
        endpoint: str,
        *,
        channel: Channel[Req] | None = None,
        context: zmq.Context[Any] | None = None,
        curve: CurveClient | None = None,
        linger_ms: int = DEFAULT_LINGER_MS,
        max_payload: int = wire.DEFAULT_MAX_PAYLOAD,
        warn_interval: float = DEFAULT_WARN_INTERVAL,
    ) -> None:
        """Replies over `max_payload` bytes are rejected (libzmq drops the connection of a
        peer sending a frame too large to be valid); rejected replies are logged at most
        once per `warn_interval` seconds, with counts by kind."""
        super().__init__(context, linger_ms)
        self.channel: Channel[Req] = resolve_channel(self, channel, Pattern.COMMAND)
        self._max_payload = max_payload
        self._warn = WarnLimiter(log, f"rejected replies on {self.channel.name}", warn_interval)
        self._socket = self._socket_of(zmq.DEALER, max_payload)
        if curve is not None:
            secure_client(self._socket, curve)
        reply = self.channel.reply
        if reply is None:
            raise ValueError(f"command channel {self.channel.name!r} declares no reply")
        self._reply_cls: type[Rep] = reply.cls  # type: ignore[assignment]
        self._socket.connect(endpoint)
        self.client_id = secrets.randbits(64) | 1
        self._seq = 0

    def send(self, command: Req, *, timeout: float = 5.0, retry_interval: float = 0.25) -> Rep:
        """Send and wait for the ack; raises CommandTimeout after `timeout` seconds."""
        command_id, frame = self._frame_for(command)
        deadline = time.monotonic() + timeout
        while True:
            self._try_send(frame)
            retry_at = min(deadline, time.monotonic() + retry_interval)
            while (left := retry_at - time.monotonic()) > 0:
                if not self._socket.poll(int(left * 1000) + 1, zmq.POLLIN):
                    continue
                ack = self._accept(self._socket.recv(), command_id)
                if ack is not None:
                    return ack
            if time.monotonic() >= deadline:
                raise self._timeout(command_id, timeout)

    async def asend(
        self, command: Req, *, timeout: float = 5.0, retry_interval: float = 0.25
    ) -> Rep:
        """asyncio form of send(): same retries and deadline, waits on the socket's file
        descriptor so the event loop keeps running."""
        loop = asyncio.get_running_loop()
        command_id, frame = self._frame_for(command)
        deadline = time.monotonic() + timeout
        wake = asyncio.Event()
        fd = int(self._socket.getsockopt(zmq.FD))
        loop.add_reader(fd, wake.set)
        try:
            while True:
                self._try_send(frame)
                retry_at = min(deadline, time.monotonic() + retry_interval)
                while True:
                    wake.clear()
                    ack = self._drain(command_id)  # the FD is edge-triggered: read it all
                    if ack is not None:
                        return ack
                    left = retry_at - time.monotonic()
                    if left <= 0:
                        break
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(wake.wait(), left)
                if time.monotonic() >= deadline:
                    raise self._timeout(command_id, timeout)
        finally:
            loop.remove_reader(fd)

    def _frame_for(self, command: Req) -> tuple[str, bytes]:
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
        return command_id, frame

    def _try_send(self, frame: bytes) -> None:
        try:  # never block past the deadline: no peer (yet) means try again later
            self._socket.send(frame, zmq.NOBLOCK)
            self.stats.sent += 1
        except zmq.Again:
            self.stats.rejected["no_peer"] += 1

    def _drain(self, command_id: str) -> Rep | None:
        """Read every queued reply without blocking; the ack of `command_id` if among them."""
        while True:
            try:
                frame = self._socket.recv(zmq.NOBLOCK)
            except zmq.Again:
                return None
            ack = self._accept(frame, command_id)
            if ack is not None:
                return ack

    def _timeout(self, command_id: str, timeout: float) -> CommandTimeout:
        return CommandTimeout(
            f"no ack for command {command_id} on {self.channel.name!r} within {timeout}s"
        )

    def close(self) -> None:
        self._warn.flush()
        super().close()

    def _accept(self, frame: bytes, command_id: str) -> Rep | None:
        try:
            ack = wire.parse_payload(wire.decode_frame(frame, self._max_payload), self._reply_cls)
        except wire.WireError as exc:
            self.stats.rejected[exc.kind] += 1
            self._warn.warn(exc.kind, str(exc))
            return None
        self.stats.received += 1
        if ack.command_id != command_id:  # type: ignore[attr-defined]
            self.stats.duplicates += 1  # late ack of an earlier retry
            return None
        return ack


class CommandServer(Endpoint, Generic[Req, Rep]):
    """Binds ROUTER, applies each command id once and acknowledges every copy."""

    def __init__(
        self,
        endpoint: str,
        handler: Callable[[Req], Rep],
        *,
        channel: Channel[Req] | None = None,
        context: zmq.Context[Any] | None = None,
        dedupe_window: int = 10_000,
        store: CommandStoreOptions | None = None,
        curve: CurveServer | None = None,
        linger_ms: int = DEFAULT_LINGER_MS,
        max_payload: int = wire.DEFAULT_MAX_PAYLOAD,
        warn_interval: float = DEFAULT_WARN_INTERVAL,
    ) -> None:
        """Commands over `max_payload` bytes are rejected (libzmq drops the connection of a
        peer sending a frame too large to be valid, before buffering it). Rejected frames
        and refused CURVE handshakes are counted by kind (`stats.rejected`,
        `stats.curve_refused`) and logged at most once per `warn_interval` seconds each.

        `store`: keep applied ids and their acks durably (module docstring); the handler's
        durable state is then `self.state`. Without it the last `dedupe_window` ids are
        remembered in memory, and `self.state` is None."""
        if curve is not None and context is None:
            context = zmq.Context()  # its own ZAP handler: one authenticator per context
            self._own_context: zmq.Context[Any] | None = context
        else:
            self._own_context = None
        super().__init__(context, linger_ms)
        self.channel: Channel[Req] = resolve_channel(self, channel, Pattern.COMMAND)
        self._max_payload = max_payload
        self._warn = WarnLimiter(log, f"rejected commands on {self.channel.name}", warn_interval)
        self._socket = self._socket_of(zmq.ROUTER, max_payload)
        self._auth = (
            secure_server(self._socket, curve, endpoint, self.stats.curve_refused, warn_interval)
            if curve is not None
            else None
        )
        self._both = self._poller()
        self._handler = handler
        try:
            self._socket.bind(endpoint)
        except zmq.ZMQError as exc:
            self.close()
            raise OSError(f"cannot bind command server at {endpoint}: {exc}") from exc
        self.endpoint = endpoint
        self.server_id = secrets.randbits(64) | 1
        self._cls: type[Req] = self.channel.message.cls
        self._applied: OrderedDict[str, Rep] = OrderedDict()
        self._window = dedupe_window
        reply = self.channel.reply
        if reply is None:
            self.close()
            raise ValueError(f"command channel {self.channel.name!r} declares no reply")
        self._reply_cls: type[Rep] = reply.cls  # type: ignore[assignment]
        self._store_warn = WarnLimiter(
            log, f"command store errors on {self.channel.name}", warn_interval
        )
        self._store: CommandStore | None = None
        self.state: CommandState | None = None
        if store is not None:  # opened once bound: a second server fails before touching it
            try:
                self._store = store.open()
            except BaseException:
                self.close()
                raise
            self.state = CommandState(self._store)

    def close(self) -> None:
        if self._auth is not None:
            self._auth.stop()
            self._auth = None
        self._warn.flush()
        store = getattr(self, "_store", None)
        if store is not None:
            self._store_warn.flush()
            store.close()
            self._store = None
        super().close()
        if self._own_context is not None:
            self._own_context.term()
            self._own_context = None

    def serve_once(self, timeout: float | None = None) -> bool:
        """Handle at most one command; False when none arrived within `timeout`."""
        wait_ms = -1 if timeout is None else int(timeout * 1000)
        if self._auth is None:
            if not self._socket.poll(wait_ms, zmq.POLLIN):
                self._prune()
                return False
        else:
            ready = dict(self._both.poll(wait_ms))
            self._check_curve()
            if self._socket not in ready:
                self._prune()
                return False
        parts = self._socket.recv_multipart()
        if len(parts) != 2:
            self._reject("bad_framing", f"{len(parts)} frames, expected identity + 1")
            return True
        identity, frame = parts
        try:
            command = wire.parse_payload(wire.decode_frame(frame, self._max_payload), self._cls)
        except wire.WireError as exc:
            self._reject(exc.kind, str(exc))
            return True
        self.stats.received += 1
        ack = self._ack_for(command)
        if ack is None:
            return True  # the store failed: no ack, the client retries
        reply = wire.encode_message(
            self.channel.name, ack, publisher_id=self.server_id, seq=0, send_ts_ns=now_ns()
        )
        self._socket.send_multipart([identity, reply])
        self.stats.sent += 1
        return True

    def _reject(self, kind: str, detail: str) -> None:
        self.stats.rejected[kind] += 1
        self._warn.warn(kind, detail)

    def _poller(self) -> zmq.Poller:
        poller = zmq.Poller()
        poller.register(self._socket, zmq.POLLIN)
        if self._auth is not None:
            poller.register(self._auth.monitor, zmq.POLLIN)
        return poller

    def _check_curve(self) -> None:
        """Counts and logs the CURVE handshakes refused since the last look."""
        if self._auth is not None:
            self._auth.check()

    def curve_refusals(self) -> dict[str, int]:
        """Refused CURVE handshakes by kind, up to now (reads the monitor first)."""
        self._check_curve()
        return dict(self.stats.curve_refused)

    def serve(self, until: Callable[[], bool], poll_interval: float = 0.05) -> None:
        """Serve until `until()` is true (checked every `poll_interval` seconds)."""
        while not until():
            self.serve_once(poll_interval)

    async def aserve(self, until: Callable[[], bool] | None = None) -> None:
        """asyncio form of serve(): handles commands as they arrive until `until()` is true
        (checked after each wake-up, at least every 50 ms) or the task is cancelled; waits on
        the socket's file descriptor, so the event loop keeps running."""
        loop = asyncio.get_running_loop()
        wake = asyncio.Event()
        fd = int(self._socket.getsockopt(zmq.FD))
        loop.add_reader(fd, wake.set)
        try:
            while until is None or not until():
                wake.clear()
                while self.serve_once(timeout=0):  # the FD is edge-triggered: read it all
                    pass
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), 0.05)
        finally:
            loop.remove_reader(fd)

    def _prune(self) -> None:
        """Idle: expire a bounded batch of old ids."""
        if self._store is not None:
            try:
                self._store.prune(time.time_ns() // 1000)
            except OSError as exc:
                self._store_warn.warn("prune", str(exc))

    def _refusal(self) -> Rep:
        ack = self._reply_cls()
        fields = ack.DESCRIPTOR.fields_by_name
        if "outcome" in fields:
            ack.outcome = fields["outcome"].enum_type.values_by_name["REJECTED"].number  # type: ignore[attr-defined, union-attr]
        if "reason" in fields:
            ack.reason = NO_ID_REASON  # type: ignore[attr-defined]
        if "engine_timestamp_us" in fields:
            ack.engine_timestamp_us = now_ns() // 1000  # type: ignore[attr-defined]
        return ack

    def _repeat(self, first: Rep) -> Rep:
        self.stats.duplicates += 1
        repeat = type(first)()
        repeat.CopyFrom(first)
        if "duplicate" in repeat.DESCRIPTOR.fields_by_name:
            repeat.duplicate = True  # type: ignore[attr-defined]
        return repeat

    def _store_failed(self, exc: OSError) -> None:
        self.stats.store_errors += 1
        self._store_warn.warn("store", str(exc))

    def _ack_for(self, command: Req) -> Rep | None:
        command_id: str = command.command_id  # type: ignore[attr-defined]
        if not command_id:
            self._reject("no_command_id", "a command with an empty command_id")
            return self._refusal()
        store, state = self._store, self.state
        if store is not None:
            try:
                found = store.lookup(command_id, time.time_ns() // 1000)
            except OSError as exc:
                self._store_failed(exc)
                return None
            if found is not None:
                return self._repeat(self._reply_cls.FromString(found[0]))
        elif command_id in self._applied:
            return self._repeat(self._applied[command_id])
        if state is not None:
            state._begin()
        try:
            ack = self._handler(command)
        finally:
            staged = state._take() if state is not None else []
        fields = ack.DESCRIPTOR.fields_by_name
        if "command_id" in fields:
            ack.command_id = command_id  # type: ignore[attr-defined]
        applied_us = now_ns() // 1000
        if "engine_timestamp_us" in fields and not getattr(ack, "engine_timestamp_us"):  # noqa: B009
            ack.engine_timestamp_us = applied_us  # type: ignore[attr-defined]
        if store is not None:
            try:
                store.record(command_id, ack.SerializeToString(), applied_us, staged)
            except OSError as exc:
                self._store_failed(exc)
                return None
        else:
            self._applied[command_id] = ack
            while len(self._applied) > self._window:
                self._applied.popitem(last=False)
        return ack

"""The Python reference testee: answers conformance requests with the real Python SDK.

    python -m tradewire.conformance.testee [--break MODE ...]

Speaks the protocol of conformance/TESTEE.md on stdin/stdout. `--break` makes it wrong on
purpose, so tradewire's own tests can prove the suite catches each mistake:

- drop-every-1000th-seq: publishers skip every 1000th sequence number, subscribers do not
  deliver messages whose seq is a multiple of 1000
- bad-field-encoding: re-encoded payloads write doubles big-endian
- relay-reencode: the relay decodes and re-encodes payloads instead of forwarding bytes
- double-ack: the command server sends every acknowledgement twice
"""

from __future__ import annotations

import argparse
import logging
import struct
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import zmq
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

import tradewire
from tradewire import wire
from tradewire._gen import registry
from tradewire.catalog import Channel
from tradewire.conformance._gen import conformance_pb2 as pb
from tradewire.conformance.protocol import PROTOCOL_VERSION, read_request, write_message
from tradewire.transport import (
    CommandClient,
    CommandServer,
    CommandStoreOptions,
    CommandTimeout,
    Publisher,
    Subscriber,
)

log = logging.getLogger("tradewire.conformance.testee")

BREAKS = (
    "drop-every-1000th-seq",
    "bad-field-encoding",
    "relay-reencode",
    "double-ack",
    "forget-commands",
)
KILL_SWITCH = registry.STRATEGY_COMMAND_TYPE.cls.KILL_SWITCH
RESUME = registry.STRATEGY_COMMAND_TYPE.cls.RESUME_TRADING
APPLIED = registry.COMMAND_ACK_TYPE.cls.APPLIED


def _ms(value: int, default: float) -> float:
    return value / 1000 if value else default


def channel_named(name: str) -> Channel[Any]:
    for ch in registry.CHANNELS:
        if ch.name == (name or "market_data"):
            return ch
    raise ValueError(f"no channel {name!r} in the schema")


def big_endian_doubles(message: Message, payload: bytes) -> bytes:
    """The bad-field-encoding break: every set double written with its bytes reversed."""
    for field in message.DESCRIPTOR.fields:
        if field.type != FieldDescriptor.TYPE_DOUBLE or field.is_repeated:
            continue
        value = getattr(message, field.name)
        if value == 0.0 and not str(value).startswith("-"):
            continue
        tag = bytes([(field.number << 3) | 1])
        good = tag + struct.pack("<d", value)
        payload = payload.replace(good, tag + struct.pack(">d", value), 1)
    return payload


class Role:
    def action(self, action: pb.RoleAction) -> pb.ActionReport:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class Unsupported(Exception):
    pass


class PublisherRole(Role):
    def __init__(self, start: pb.StartRole, breaks: set[str]) -> None:
        self.pub: Publisher[Any] = Publisher(
            start.endpoint,
            channel=channel_named(start.channel),
            control=start.control_endpoint or None,
            ring_size=start.ring_size or 100_000,
            heartbeat_interval=_ms(start.heartbeat_interval_ms, 1.0),
        )
        self.skip = "drop-every-1000th-seq" in breaks
        self.published = 0

    def action(self, action: pb.RoleAction) -> pb.ActionReport:
        which = action.WhichOneof("action")
        if which == "idle":
            time.sleep(action.idle.ms / 1000)
            return pb.ActionReport(published=self.published, last_seq=self.pub._seq)
        if which != "publish":
            raise Unsupported(f"publisher cannot {which}")
        req = action.publish
        keys = list(req.keys) or ["AAPL"]
        cls = self.pub.channel.message.cls
        key_field = self.pub.channel.key_field
        interval = 1 / req.rate_hz if req.rate_hz else 0.0
        next_at = time.monotonic()
        for i in range(1, req.count + 1):
            if self.skip and (self.pub._seq + 1) % 1000 == 0:
                self.pub._seq += 1  # the break: a sequence number never sent
            msg = cls(price=float(i), timestamp_us=i)
            if key_field:
                setattr(msg, key_field, keys[(i - 1) % len(keys)])
            self.pub.publish(msg)
            self.published += 1
            if interval:
                next_at += interval
                time.sleep(max(0.0, next_at - time.monotonic()))
        return pb.ActionReport(published=self.published, last_seq=self.pub._seq)

    def close(self) -> None:
        self.pub.close()


def _events(sub: Subscriber[Any]) -> list[pb.TransportEvent]:
    out = [
        pb.TransportEvent(kind=e.kind, key=e.key, first=e.first, last=e.last) for e in sub.events
    ]
    sub.events.clear()
    return out


class SubscriberRole(Role):
    def __init__(self, start: pb.StartRole, breaks: set[str]) -> None:
        self.sub: Subscriber[Any] = Subscriber(
            start.endpoint,
            channel=channel_named(start.channel),
            keys=list(start.keys) or None,
            control=start.control_endpoint or None,
            snapshot=start.snapshot,
            subscribe_timeout=_ms(start.connect_timeout_ms, 10.0),
            peer_timeout=_ms(start.peer_timeout_ms, 3.0),
            replay_timeout=_ms(start.replay_timeout_ms, 2.0),
            start="earliest" if start.start_at == pb.START_EARLIEST else "latest",
            max_payload=start.max_payload or wire.DEFAULT_MAX_PAYLOAD,
        )
        self.drop = "drop-every-1000th-seq" in breaks

    def action(self, action: pb.RoleAction) -> pb.ActionReport:
        which = action.WhichOneof("action")
        if which == "idle":
            time.sleep(action.idle.ms / 1000)
            return pb.ActionReport()
        if which != "collect":
            raise Unsupported(f"subscriber cannot {which}")
        req = action.collect
        report = pb.ActionReport()
        deadline = time.monotonic() + _ms(req.timeout_ms, 30.0)
        idle = _ms(req.idle_ms, 2.0)
        while len(report.messages) < req.count or not req.count:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            got = self.sub.recv(timeout=min(idle, left))
            if got is None:
                break
            env = got.envelope
            if self.drop and env.seq % 1000 == 0:
                continue
            report.messages.append(
                pb.Delivered(
                    key=env.key,
                    publisher_id=env.publisher_id,
                    seq=env.seq,
                    key_seq=env.key_seq,
                    flags=env.flags,
                    payload=got.message.SerializeToString(deterministic=True),
                )
            )
        report.events.extend(_events(self.sub))
        report.rejected = sum(self.sub.stats.rejected.values())
        return report

    def close(self) -> None:
        self.sub.close()


class EchoRole(Role):
    def __init__(self, start: pb.StartRole, breaks: set[str]) -> None:
        self.pub: Publisher[Any] = Publisher(start.out_endpoint, channel=registry.SIGNALS)
        try:
            self.sub: Subscriber[Any] = Subscriber(
                start.endpoint,
                channel=registry.MARKET_DATA,
                subscribe_timeout=_ms(start.connect_timeout_ms, 10.0),
            )
        except BaseException:
            self.pub.close()
            raise
        self.signal = registry.TRADING_SIGNAL_TYPE.cls

    def action(self, action: pb.RoleAction) -> pb.ActionReport:
        if action.WhichOneof("action") != "echo":
            raise Unsupported("echo role only echoes")
        idle = _ms(action.echo.idle_ms, 2.0)
        done = 0
        while done < action.echo.count:
            got = self.sub.recv(timeout=idle)
            if got is None:
                break
            tick = got.message
            self.pub.publish(
                self.signal(
                    symbol=tick.symbol, timestamp_us=tick.timestamp_us, confidence=tick.price
                )
            )
            done += 1
        return pb.ActionReport(published=done)

    def close(self) -> None:
        self.sub.close()
        self.pub.close()


class SignalRole(Role):
    """Tick -> signal: one TradingSignal (HOLD) per MarketData, carrying the tick's send time."""

    def __init__(self, start: pb.StartRole, breaks: set[str]) -> None:
        self.pub: Publisher[Any] = Publisher(start.out_endpoint, channel=registry.SIGNALS)
        try:
            self.sub: Subscriber[Any] = Subscriber(
                start.endpoint,
                channel=registry.MARKET_DATA,
                subscribe_timeout=_ms(start.connect_timeout_ms, 10.0),
            )
        except BaseException:
            self.pub.close()
            raise
        self.signal = registry.TRADING_SIGNAL_TYPE.cls

    def action(self, action: pb.RoleAction) -> pb.ActionReport:
        if action.WhichOneof("action") != "signal":
            raise Unsupported("signal role only answers ticks with signals")
        idle = _ms(action.signal.idle_ms, 2.0)
        done = 0
        while done < action.signal.count:
            got = self.sub.recv(timeout=idle)
            if got is None:
                break
            tick = got.message
            self.pub.publish(
                self.signal(
                    symbol=tick.symbol,
                    signal=self.signal.HOLD,
                    confidence=0.0,
                    timestamp_us=tick.timestamp_us,
                    features={"tick_send_ts_us": float(got.envelope.send_ts_ns // 1000)},
                )
            )
            done += 1
        return pb.ActionReport(published=done)

    def close(self) -> None:
        self.sub.close()
        self.pub.close()


class _TwiceSocket:
    """double-ack break: every reply is sent twice."""

    def __init__(self, sock: Any) -> None:
        self._sock = sock

    def send_multipart(self, parts: list[bytes]) -> None:
        self._sock.send_multipart(parts)
        self._sock.send_multipart(parts)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class CommandServerRole(Role):
    def __init__(self, start: pb.StartRole, breaks: set[str]) -> None:
        self.applied: list[str] = []
        self.kill = False
        store = None
        if start.state_dir and "forget-commands" not in breaks:
            store = CommandStoreOptions(Path(start.state_dir) / "commands.sqlite")
        self.server: CommandServer[Any, Any] = CommandServer(
            start.endpoint, self._apply, channel=registry.COMMANDS, store=store
        )
        if "double-ack" in breaks:
            self.server._socket = _TwiceSocket(self.server._socket)  # type: ignore[assignment]

    def _apply(self, command: Any) -> Any:
        self.applied.append(command.command_id)
        if command.type == KILL_SWITCH:
            self.kill = True
        elif command.type == RESUME:
            self.kill = False
        return registry.COMMAND_ACK_TYPE.cls(
            outcome=APPLIED, engine_timestamp_us=time.time_ns() // 1000
        )

    def action(self, action: pb.RoleAction) -> pb.ActionReport:
        if action.WhichOneof("action") != "serve":
            raise Unsupported("command server only serves")
        start = len(self.applied)
        idle = _ms(action.serve.idle_ms, 2.0)
        while len(self.applied) - start < action.serve.count:
            if not self.server.serve_once(idle):
                break
        # answer copies still in flight (retries, duplicates) without waiting for more
        while self.server.serve_once(0.05):
            pass
        return pb.ActionReport(
            applied=self.applied[start:],
            duplicates=self.server.stats.duplicates,
            kill_switch=self.kill,
            rejected=sum(self.server.stats.rejected.values()),
        )

    def close(self) -> None:
        self.server.close()


class CommandClientRole(Role):
    def __init__(self, start: pb.StartRole, breaks: set[str]) -> None:
        self.client: CommandClient[Any, Any] = CommandClient(
            start.endpoint, channel=registry.COMMANDS
        )

    def action(self, action: pb.RoleAction) -> pb.ActionReport:
        if action.WhichOneof("action") != "send_commands":
            raise Unsupported("command client only sends commands")
        req = action.send_commands
        report = pb.ActionReport()
        cls = registry.STRATEGY_COMMAND_TYPE.cls
        for spec in req.commands:
            cmd = cls(
                command_id=spec.command_id,
                type=spec.type,  # type: ignore[arg-type]
                symbol=spec.symbol,
                sent_timestamp_us=time.time_ns() // 1000,
            )
            t0 = time.perf_counter()
            try:
                ack = self.client.send(
                    cmd,
                    timeout=_ms(req.timeout_ms, 5.0),
                    retry_interval=_ms(req.retry_interval_ms, 0.25),
                )
            except CommandTimeout:
                report.acks.append(pb.Ack(command_id=spec.command_id, timed_out=True))
                continue
            report.acks.append(
                pb.Ack(
                    command_id=ack.command_id,
                    outcome=ack.outcome,
                    duplicate=ack.duplicate,
                    rtt_us=int((time.perf_counter() - t0) * 1e6),
                )
            )
        return report

    def close(self) -> None:
        self.client.close()


class RelayRole(Role):
    def __init__(self, start: pb.StartRole, breaks: set[str]) -> None:
        self.ctx: zmq.Context[Any] = zmq.Context.instance()
        self.out: zmq.Socket[bytes] = self.ctx.socket(zmq.XPUB)
        self.out.setsockopt(zmq.LINGER, 500)
        self.out.bind(start.out_endpoint)
        self.inp: zmq.Socket[bytes] = self.ctx.socket(zmq.SUB)
        self.inp.setsockopt(zmq.LINGER, 0)
        self.inp.setsockopt(zmq.RCVHWM, 0)
        self.inp.subscribe(b"")
        self.inp.connect(start.endpoint)
        self.reencode = "relay-reencode" in breaks
        self.downstream = False

    def action(self, action: pb.RoleAction) -> pb.ActionReport:
        if action.WhichOneof("action") != "relay":
            raise Unsupported("relay only relays")
        idle_ms = action.relay.idle_ms or 2000
        if not self.downstream:
            if not self.out.poll(idle_ms * 5):
                raise TimeoutError("no downstream subscriber connected to the relay")
            self.out.recv()
            self.downstream = True
        report = pb.ActionReport()
        while report.forwarded < action.relay.count:
            if not self.inp.poll(idle_ms):
                break
            frame = self.inp.recv()
            try:
                env = wire.decode_frame(frame)
                if self.reencode:
                    message: Message = wire.parse_payload(env)
                    frame = env._replace(payload=message.SerializeToString()).encode()
            except wire.WireError:
                report.rejected += 1
                continue
            self.out.send(frame)
            report.forwarded += 1
        return report

    def close(self) -> None:
        self.inp.close()
        self.out.close()


ROLES: dict[int, Callable[[pb.StartRole, set[str]], Role]] = {
    pb.PUBLISHER: PublisherRole,
    pb.SUBSCRIBER: SubscriberRole,
    pb.ECHO: EchoRole,
    pb.COMMAND_SERVER: CommandServerRole,
    pb.COMMAND_CLIENT: CommandClientRole,
    pb.RELAY_ROLE: RelayRole,
    pb.SIGNAL: SignalRole,
}


class Testee:
    def __init__(self, breaks: set[str]) -> None:
        self.breaks = breaks
        self.role: Role | None = None

    def codec(self, req: pb.CodecRequest) -> pb.CodecResult:
        try:
            env = wire.decode_frame(req.frame, req.max_payload or wire.DEFAULT_MAX_PAYLOAD)
            decoded = pb.Decoded(
                channel=env.channel,
                key=env.key,
                flags=env.flags,
                type_id=env.type_id,
                fingerprint=env.fingerprint,
                publisher_id=env.publisher_id,
                seq=env.seq,
                key_seq=env.key_seq,
                send_ts_ns=env.send_ts_ns,
                payload=env.payload,
            )
            if req.mode == pb.RELAY:
                return pb.CodecResult(ok=pb.CodecOk(decoded=decoded, frame=env.encode()))
            mtype = wire.message_type(env.type_id)
            message: Message = wire.parse_payload(env, strict=req.mode == pb.DECODE_STRICT)
            decoded.message_name = mtype.full_name
            decoded.schema_mismatch = env.fingerprint != mtype.fingerprint
            payload = message.SerializeToString(deterministic=True)
            if "bad-field-encoding" in self.breaks:
                payload = big_endian_doubles(message, payload)
            frame = env._replace(payload=payload).encode()
            return pb.CodecResult(ok=pb.CodecOk(decoded=decoded, frame=frame))
        except wire.WireError as exc:
            return pb.CodecResult(error=pb.CodecError(kind=exc.kind, message=str(exc)))

    def handle(self, req: pb.ConformanceRequest) -> pb.ConformanceResponse:
        which = req.WhichOneof("request")
        if which == "hello":
            return pb.ConformanceResponse(
                hello=pb.HelloReply(
                    protocol_version=PROTOCOL_VERSION,
                    implementation=f"tradewire-python {getattr(tradewire, '__version__', '0.1.0')}",
                    breaks=sorted(self.breaks),
                )
            )
        if which == "codec":
            return pb.ConformanceResponse(codec=self.codec(req.codec))
        if which == "stop":
            self.stop()
            return pb.ConformanceResponse(stopped=pb.Stopped())
        try:
            if which == "start":
                self.stop()
                factory = ROLES.get(req.start.role)
                if factory is None:
                    return pb.ConformanceResponse(unsupported=f"role {req.start.role}")
                self.role = factory(req.start, self.breaks)
                pid = getattr(getattr(self.role, "pub", None), "publisher_id", 0)
                return pb.ConformanceResponse(ready=pb.Ready(publisher_id=pid))
            if which == "action":
                if self.role is None:
                    return pb.ConformanceResponse(error="no role started")
                return pb.ConformanceResponse(report=self.role.action(req.action))
        except Unsupported as exc:
            return pb.ConformanceResponse(unsupported=str(exc))
        except Exception as exc:
            log.exception("%s failed", req.case_name)
            return pb.ConformanceResponse(error=f"{type(exc).__name__}: {exc}")
        return pb.ConformanceResponse(unsupported=f"request {which}")

    def stop(self) -> None:
        if self.role is not None:
            role, self.role = self.role, None
            role.close()


def serve(stdin: IO[bytes], stdout: IO[bytes], breaks: set[str]) -> int:
    testee = Testee(breaks)
    try:
        while (req := read_request(stdin)) is not None:
            write_message(stdout, testee.handle(req))
    except BrokenPipeError:
        pass
    finally:
        testee.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--break",
        dest="breaks",
        action="append",
        default=[],
        choices=BREAKS,
        help="misbehave on purpose (for the suite's own tests)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    return serve(sys.stdin.buffer, sys.stdout.buffer, set(args.breaks))


if __name__ == "__main__":
    sys.exit(main())

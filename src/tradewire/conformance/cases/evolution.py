"""SchemaEvolution.*: the v2 fixture schema (conformance/schema_v2/) against the testee's v1.

The runner loads the v2 descriptor set into a private pool, builds frames from v2
messages (new fields, new enum values, v2 fingerprints) for the v1 testee, and decodes the
testee's v1 output with v2 classes. Both directions also go over the wire: v2 frames
through the testee's relay role (a v2 subscriber must see the added fields intact), and
messages the v1 testee encodes itself (publisher role) read by a v2 subscriber.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import zmq
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import Message
from tradewire_codegen.fingerprint import fingerprint

from tradewire import wire
from tradewire.conformance._gen import conformance_pb2 as pb
from tradewire.conformance.context import Case, CaseFailed, Context, check
from tradewire.transport import Subscriber

V1_FIELDS = {
    "tradewire.v1.MarketData": 9,
    "tradewire.v1.Order": 10,
    "tradewire.v1.StrategyCommand": 6,
    "tradewire.v1.CommandAck": 5,
}


class V2Schema:
    def __init__(self, path: Path) -> None:
        fds = descriptor_pb2.FileDescriptorSet.FromString(path.read_bytes())
        self.pool = descriptor_pool.DescriptorPool()
        self.protos: dict[str, descriptor_pb2.DescriptorProto] = {}
        for f in fds.file:
            self.pool.Add(f)
            for m in f.message_type:
                self.protos[f"{f.package}.{m.name}"] = m

    def cls(self, full_name: str) -> type[Message]:
        return message_factory.GetMessageClass(self.pool.FindMessageTypeByName(full_name))

    def new(self, full_name: str, **fields: object) -> Message:
        """A message of the v2 class `full_name` built from keyword fields, as protobuf allows.

        The classes are made at run time from the descriptor pool, so their field names are
        not known to a type checker: the constructor is typed as taking any keywords, and
        protobuf itself rejects a field the v2 schema does not have.
        """
        factory: Callable[..., Message] = self.cls(full_name)
        return factory(**fields)

    def fingerprint(self, full_name: str) -> int:
        return fingerprint(full_name, self.protos[full_name])


@cache
def load(path: Path) -> V2Schema:
    return V2Schema(path)


def _samples(v2: V2Schema) -> list[tuple[str, str, Message, bool]]:
    """(channel, key, v2 message, uses a v2-only enum value)"""
    md = v2.new(
        "tradewire.v1.MarketData",
        symbol="AAPL",
        price=187.5,
        volume=10,
        timestamp_us=1,
        vwap=187.25,
        trade_count=42,
        conditions=["@", "F"],
        venue_kind=2,
    )
    order = v2.new(
        "tradewire.v1.Order",
        order_id="o-1",
        symbol="AAPL",
        quantity=5,
        status=6,
        venue_order_id="V-9",
    )
    cmd = v2.new(
        "tradewire.v1.StrategyCommand", type=4, symbol="AAPL", command_id="c-1", priority=3
    )
    ack = v2.new("tradewire.v1.CommandAck", command_id="c-1", outcome=3, apply_at_us=99)
    return [
        ("market_data", "AAPL", md, False),
        ("orders", "AAPL", order, True),
        ("commands", "", cmd, True),
        ("commands", "", ack, True),
    ]


def _v2_frame(v2: V2Schema, channel: str, key: str, msg: Message) -> bytes:
    name = msg.DESCRIPTOR.full_name
    type_id = next(t.type_id for t in _v1_types() if t.full_name == name)
    return wire.encode_frame(
        channel, key, type_id, v2.fingerprint(name), 3, 1, 1, 1, msg.SerializeToString()
    )


def _v1_types() -> Any:
    from tradewire._gen import registry

    return registry.MESSAGE_TYPES


def _known_equal(msg: Message, back: Message, limit: int) -> list[str]:
    """Names of fields numbered <= limit (the v1 fields) that differ."""
    return [
        f.name
        for f in msg.DESCRIPTOR.fields
        if f.number <= limit and getattr(msg, f.name) != getattr(back, f.name)
    ]


def _v2_to_v1(ctx: Context, v2: V2Schema, enum_only: bool) -> None:
    for channel, key, msg, new_enum in _samples(v2):
        if enum_only and not new_enum:
            continue
        name = msg.DESCRIPTOR.full_name
        result = ctx.codec(_v2_frame(v2, channel, key, msg))
        if result.WhichOneof("result") != "ok":
            raise CaseFailed(
                f"v1 testee rejected a v2 {name}: {result.error.kind} {result.error.message}"
            )
        check(result.ok.decoded.schema_mismatch, f"v2 {name} fingerprint not reported as mismatch")
        env = wire.decode_frame(result.ok.frame)
        check(env.fingerprint == v2.fingerprint(name), "re-encoding changed the fingerprint")
        back = type(msg).FromString(env.payload)
        diff = _known_equal(msg, back, V1_FIELDS[name])
        check(not diff, f"{name}: v1 fields changed through the v1 testee: {diff}")


def _v2_preserved(ctx: Context, v2: V2Schema) -> None:
    for channel, key, msg, _ in _samples(v2):
        result = ctx.codec(_v2_frame(v2, channel, key, msg))
        check(result.WhichOneof("result") == "ok", f"rejected {msg.DESCRIPTOR.full_name}")
        back = type(msg).FromString(wire.decode_frame(result.ok.frame).payload)
        check(
            back == msg,
            f"{msg.DESCRIPTOR.full_name}: v2-only fields lost through the v1 "
            f"testee: {back} vs {msg}",
        )


def _v2_strict(ctx: Context, v2: V2Schema) -> None:
    channel, key, msg, _ = _samples(v2)[0]
    result = ctx.codec(_v2_frame(v2, channel, key, msg), mode=pb.DECODE_STRICT)
    check(
        result.WhichOneof("result") == "error" and result.error.kind == "schema_mismatch",
        f"strict v1 testee accepted a v2 frame: {result}",
    )


def _v1_to_v2(ctx: Context, v2: V2Schema) -> None:
    from tradewire._gen import registry

    v1 = [
        ("market_data", "AAPL", registry.MARKET_DATA_TYPE.cls(symbol="AAPL", price=1.5, volume=2)),
        ("orders", "AAPL", registry.ORDER_TYPE.cls(order_id="o", symbol="AAPL", status=5)),  # type: ignore[arg-type]
        ("commands", "", registry.STRATEGY_COMMAND_TYPE.cls(type=3, command_id="k")),  # type: ignore[arg-type]
    ]
    for channel, key, msg in v1:
        frame = wire.encode_message(channel, msg, key=key, publisher_id=1, seq=1, send_ts_ns=1)
        result = ctx.codec(frame)
        check(result.WhichOneof("result") == "ok", f"testee rejected a v1 {msg.DESCRIPTOR.name}")
        env = wire.decode_frame(result.ok.frame)
        name = msg.DESCRIPTOR.full_name
        check(env.fingerprint != v2.fingerprint(name), "v1 and v2 fingerprints should differ")
        new = v2.cls(name).FromString(env.payload)
        check(
            new.SerializeToString(deterministic=True) == msg.SerializeToString(deterministic=True),
            f"v2 reads the v1 testee's {name} differently: {new}",
        )
        extra = [
            f.name
            for f in new.DESCRIPTOR.fields
            if f.number > V1_FIELDS[name] and f.name in [x.name for x, _ in new.ListFields()]
        ]
        check(not extra, f"v2-only fields set in a v1 message: {extra}")


def _v2_through_relay(ctx: Context, v2: V2Schema) -> None:
    """v2 frames over the wire through the v1 testee's relay: a v2 subscriber downstream
    decodes every added field and enum value intact, and the v2 fingerprint arrives."""
    samples = _samples(v2)
    frames = [_v2_frame(v2, channel, key, msg) for channel, key, msg, _ in samples]
    upstream, downstream = ctx.endpoint(), ctx.endpoint()
    zctx: zmq.Context[Any] = zmq.Context.instance()
    pub: zmq.Socket[bytes] = zctx.socket(zmq.XPUB)
    sub: zmq.Socket[bytes] = zctx.socket(zmq.SUB)
    for sock in (pub, sub):
        sock.setsockopt(zmq.LINGER, 0)
    try:
        pub.bind(upstream)
        ctx.start(pb.RELAY_ROLE, endpoint=upstream, out_endpoint=downstream)
        check(pub.poll(10_000), "the relay never subscribed upstream")
        pub.recv()
        sub.subscribe(b"")
        sub.connect(downstream)
        ctx.submit(relay=pb.Relay(count=len(frames), idle_ms=2000))
        for f in frames:
            pub.send(f)
        got: list[bytes] = []
        while len(got) < len(frames) and sub.poll(1500):
            got.append(sub.recv())
        report = ctx.report()
        ctx.stop()
    finally:
        pub.close()
        sub.close()
    check(len(got) == len(frames), f"received {len(got)} of {len(frames)} v2 frames")
    check(report.forwarded == len(frames), f"relay forwarded {report.forwarded} of {len(frames)}")
    for frame, (_, _, msg, _) in zip(got, samples, strict=True):
        name = msg.DESCRIPTOR.full_name
        env = wire.decode_frame(frame)
        check(env.fingerprint == v2.fingerprint(name), f"{name}: v2 fingerprint not forwarded")
        back = type(msg).FromString(env.payload)
        check(back == msg, f"{name}: a v2 subscriber behind the v1 relay reads {back}, sent {msg}")
    check(got == frames, "the v1 relay changed v2 frames")


def _v1_publisher_to_v2(ctx: Context, v2: V2Schema) -> None:
    """MarketData the v1 testee encodes itself (publisher role), received and read with
    the v2 class: the v1 fields as published, v2-only fields unset, v1 fingerprint."""
    from tradewire._gen import registry

    md = registry.MARKET_DATA_TYPE
    name = "tradewire.v1.MarketData"
    keys = ["AAPL", "MSFT"]
    n = 20
    ep = ctx.endpoint()
    ctx.start(pb.PUBLISHER, endpoint=ep)
    got: list[wire.Envelope] = []
    with Subscriber(ep, channel=registry.MARKET_DATA, subscribe_timeout=10) as sub:
        report = ctx.action(publish=pb.Publish(count=n, keys=keys))
        end = time.monotonic() + 5
        while len(got) < n and time.monotonic() < end:
            r = sub.recv(timeout=0.5)
            if r is not None:
                got.append(r.envelope)
    ctx.stop()
    check(report.published == n and len(got) == n, f"received {len(got)} of {n} messages")
    cls = v2.cls(name)
    for env in got:
        check(env.fingerprint == md.fingerprint, "the v1 testee sent a fingerprint not v1's")
        check(env.fingerprint != v2.fingerprint(name), "v1 and v2 fingerprints should differ")
        new: Any = cls.FromString(env.payload)
        i = new.timestamp_us
        check(
            new.price == float(i)
            and new.symbol == keys[(i - 1) % len(keys)]
            and env.key == new.symbol,
            f"v2 reads the v1 testee's message {i} as {new}",
        )
        extra = [f.name for f, _ in new.ListFields() if f.number > V1_FIELDS[name]]
        check(not extra, f"v2-only fields set in a v1 testee's message: {extra}")


def cases(v2_path: Path) -> Iterator[Case]:
    def v2() -> V2Schema:
        return load(v2_path)

    yield Case(
        "SchemaEvolution.V2ToV1.AddedFields",
        True,
        "v2 messages (new fields, v2 fingerprint) decode in the v1 testee; v1 fields "
        "survive its re-encode; the mismatch is reported",
        lambda c: _v2_to_v1(c, v2(), False),
        "runner:v2 x testee:v1",
    )
    yield Case(
        "SchemaEvolution.V2ToV1.AddedEnumValues",
        True,
        "enum values only v2 declares (EXPIRED, FLATTEN_POSITION, DEFERRED) pass through "
        "a v1 testee as their numbers",
        lambda c: _v2_to_v1(c, v2(), True),
        "runner:v2 x testee:v1",
    )
    yield Case(
        "SchemaEvolution.V2ToV1.Strict",
        True,
        "a strict v1 testee rejects v2 frames as schema_mismatch",
        lambda c: _v2_strict(c, v2()),
        "runner:v2 x testee:v1",
    )
    yield Case(
        "SchemaEvolution.V2ToV1.NewFieldsPreserved",
        False,
        "v2-only fields survive a v1 decode + re-encode (unknown-field preservation)",
        lambda c: _v2_preserved(c, v2()),
        "runner:v2 x testee:v1",
    )
    yield Case(
        "SchemaEvolution.V1ToV2.Decodable",
        True,
        "the v1 testee's frames decode with v2 classes: same v1 fields, v2 fields unset",
        lambda c: _v1_to_v2(c, v2()),
        "runner:v2 x testee:v1",
    )
    yield Case(
        "SchemaEvolution.V2ToV1.Relay",
        True,
        "v2 frames (added fields and enum values) through the v1 testee's relay role: a v2 "
        "subscriber reads them intact",
        lambda c: _v2_through_relay(c, v2()),
        "runner:v2 publisher+subscriber x testee:v1 relay",
    )
    yield Case(
        "SchemaEvolution.V1ToV2.TesteePublisher",
        True,
        "MarketData the v1 testee publishes (its own encoder) read by a v2 subscriber: v1 "
        "fields as sent, v2 fields unset",
        lambda c: _v1_publisher_to_v2(c, v2()),
        "runner:v2 subscriber x testee:v1 publisher",
    )

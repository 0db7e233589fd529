"""Codec.* and Envelope.*: golden vectors, rejections, header fields, type ids, fingerprints."""

from __future__ import annotations

import json
import random
import struct
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tradewire import wire
from tradewire._gen import registry
from tradewire.conformance._gen import conformance_pb2 as pb
from tradewire.conformance.context import Case, CaseFailed, Context, check


def _ok(result: pb.CodecResult, what: str) -> pb.CodecOk:
    if result.WhichOneof("result") != "ok":
        raise CaseFailed(f"{what}: rejected as {result.error.kind}: {result.error.message}")
    return result.ok


def _same_payload(type_id: int, a: bytes, b: bytes) -> bool:
    cls = wire.message_type(type_id).cls
    try:
        return bool(cls.FromString(a) == cls.FromString(b))
    except Exception:
        return False


def check_decoded(got: pb.Decoded, env: wire.Envelope, what: str) -> None:
    expected = {
        "channel": env.channel,
        "key": env.key,
        "flags": env.flags,
        "type_id": env.type_id,
        "fingerprint": env.fingerprint,
        "publisher_id": env.publisher_id,
        "seq": env.seq,
        "key_seq": env.key_seq,
        "send_ts_ns": env.send_ts_ns,
        "payload": env.payload,
    }
    wrong = {k: (getattr(got, k), v) for k, v in expected.items() if getattr(got, k) != v}
    check(not wrong, f"{what}: decoded header differs (got, expected): {wrong}")


def _vector_case(message: str, type_id: int, vec: dict[str, Any]) -> Callable[[Context], None]:
    frame = bytes.fromhex(vec["envelope_hex"])

    def run(ctx: Context) -> None:
        ok = _ok(ctx.codec(frame), "valid vector")
        env = wire.decode_frame(frame)
        check_decoded(ok.decoded, env, "envelope")
        check(
            ok.decoded.message_name == message,
            f"type id {type_id} decoded as {ok.decoded.message_name!r}, expected {message}",
        )
        check(not ok.decoded.schema_mismatch, "fingerprint reported as mismatching its own schema")
        if ok.frame == frame:
            return
        try:
            back = wire.decode_frame(ok.frame)
        except wire.WireError as exc:
            raise CaseFailed(f"re-encoded frame is invalid: {exc.kind}: {exc}") from None
        check(
            back._replace(payload=b"") == env._replace(payload=b""),
            f"re-encoded header differs: {back._replace(payload=b'')}",
        )
        allowed = {env.payload}
        if "known_only_hex" in vec:
            allowed.add(bytes.fromhex(vec["known_only_hex"]))  # unknown fields may be dropped
        if back.payload in allowed:
            return
        if not vec["canonical"] and _same_payload(type_id, back.payload, env.payload):
            return  # map entry order / default entries: compared semantically
        raise CaseFailed(
            f"re-encoded payload differs:\n  got      {back.payload.hex()}\n"
            f"  expected {env.payload.hex()}"
        )

    return run


def _reject_case(frame: bytes, kind: str, max_payload: int = 0) -> Callable[[Context], None]:
    def run(ctx: Context) -> None:
        result = ctx.codec(frame, max_payload=max_payload)
        check(
            result.WhichOneof("result") == "error", f"accepted an invalid frame (expected {kind})"
        )
        check(
            result.error.kind == kind,
            f"rejected as {result.error.kind!r}, expected {kind!r} ({result.error.message})",
        )

    return run


def _valid_envelope_case(vec: dict[str, Any]) -> Callable[[Context], None]:
    frame = bytes.fromhex(vec["frame_hex"])

    def run(ctx: Context) -> None:
        ok = _ok(ctx.codec(frame), vec["name"])
        check_decoded(ok.decoded, wire.decode_frame(frame), vec["name"])
        check(
            ok.frame == frame,
            f"re-encoded frame differs:\n  got      {ok.frame.hex()}\n  expected {frame.hex()}",
        )

    return run


def _frame(
    type_id: int = 1, payload: bytes = b"", fingerprint: int | None = None, **kw: Any
) -> bytes:
    fp = registry.MARKET_DATA_TYPE.fingerprint if fingerprint is None else fingerprint
    args: dict[str, Any] = {
        "channel": "market_data",
        "key": "AAPL",
        "publisher_id": 7,
        "seq": 1,
        "key_seq": 1,
        "send_ts_ns": 1,
        **kw,
    }
    return wire.encode_frame(
        args["channel"],
        args["key"],
        type_id,
        fp,
        args["publisher_id"],
        args["seq"],
        args["key_seq"],
        args["send_ts_ns"],
        payload,
    )


def _truncated_prefixes(ctx: Context) -> None:
    vec = registry.MARKET_DATA_TYPE.cls(symbol="AAPL", price=187.5)
    frame = wire.encode_message("market_data", vec, key="AAPL", publisher_id=1, seq=1, send_ts_ns=1)
    wrong = []
    for n in range(len(frame)):
        result = ctx.codec(frame[:n])
        kind = result.error.kind if result.WhichOneof("result") == "error" else "accepted"
        if kind != "truncated":
            wrong.append(f"{n} bytes: {kind}")
    check(not wrong, f"prefixes not rejected as truncated: {wrong[:8]}")


def _configured_limit(ctx: Context) -> None:
    payload = registry.MARKET_DATA_TYPE.cls(symbol="AAPL", exchange="X" * 40).SerializeToString()
    frame = _frame(payload=payload)
    result = ctx.codec(frame, max_payload=len(payload) - 1)
    check(
        result.WhichOneof("result") == "error" and result.error.kind == "oversized",
        f"payload over a configured max_payload not rejected as oversized: {result}",
    )
    _ok(ctx.codec(frame, max_payload=len(payload)), "payload at the configured limit")


def _garbage(ctx: Context) -> None:
    rng = random.Random(7)
    good = _frame(payload=registry.MARKET_DATA_TYPE.cls(symbol="AAPL", price=1).SerializeToString())
    accepted = []
    for i in range(200):
        if i % 2:
            data = bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 160)))
        else:  # a valid frame with a few bytes flipped in the header's fixed fields
            flipped = bytearray(good)
            at = rng.choice([17, 18, 19, 65, 66, 67, 68])  # magic, version, payload_len
            flipped[at] ^= 1 << rng.randrange(8)
            data = bytes(flipped)
        result = ctx.codec(data)
        if result.WhichOneof("result") != "error":
            try:
                wire.parse_payload(wire.decode_frame(data))
            except wire.WireError:
                accepted.append(data.hex())
    check(not accepted, f"garbage accepted: {accepted[:3]}")


def _sequence_fields(ctx: Context) -> None:
    rng = random.Random(11)
    for _ in range(50):
        pid, seq, kseq, ts = (rng.getrandbits(64) for _ in range(4))
        frame = _frame(publisher_id=pid | 1, seq=seq, key_seq=kseq, send_ts_ns=ts)
        ok = _ok(ctx.codec(frame), "random counters")
        check_decoded(ok.decoded, wire.decode_frame(frame), "random counters")
        check(ok.frame == frame, "re-encoded counters differ")


def _type_ids(ctx: Context) -> None:
    for mtype in registry.MESSAGE_TYPES:
        ok = _ok(
            ctx.codec(_frame(type_id=mtype.type_id, fingerprint=mtype.fingerprint)), mtype.full_name
        )
        check(
            ok.decoded.message_name == mtype.full_name,
            f"type id {mtype.type_id} is {mtype.full_name}, testee says "
            f"{ok.decoded.message_name!r}",
        )
    for tid in (0, 12, 13, 100, 999, 0xFFFF):
        frame = bytearray(_frame())
        frame[17 + 4 : 17 + 6] = struct.pack("<H", tid)
        result = ctx.codec(bytes(frame))
        check(
            result.WhichOneof("result") == "error" and result.error.kind == "unknown_type",
            f"type id {tid}: expected unknown_type, got {result}",
        )


def _mismatch_tolerated(ctx: Context) -> None:
    other = registry.MARKET_DATA_TYPE.fingerprint ^ 0x5A5A
    payload = registry.MARKET_DATA_TYPE.cls(symbol="AAPL", price=2).SerializeToString()
    frame = _frame(payload=payload, fingerprint=other)
    ok = _ok(ctx.codec(frame), "foreign fingerprint (non-strict)")
    check(ok.decoded.schema_mismatch, "a foreign fingerprint was not reported as schema_mismatch")
    check(ok.decoded.fingerprint == other, "fingerprint not reported as received")
    check(
        wire.decode_frame(ok.frame).fingerprint == other,
        "re-encoding must keep the received fingerprint",
    )


def _mismatch_strict_only(ctx: Context) -> None:
    frame = _frame(fingerprint=registry.MARKET_DATA_TYPE.fingerprint ^ 1)
    result = ctx.codec(frame, mode=pb.DECODE_STRICT)
    check(
        result.WhichOneof("result") == "error" and result.error.kind == "schema_mismatch",
        f"strict mode accepted a foreign fingerprint: {result}",
    )
    _ok(ctx.codec(_frame(), mode=pb.DECODE_STRICT), "own fingerprint in strict mode")


def _unknown_fields_preserved(
    vectors: list[tuple[int, dict[str, Any]]],
) -> Callable[[Context], None]:
    def run(ctx: Context) -> None:
        for _type_id, vec in vectors:
            frame = bytes.fromhex(vec["envelope_hex"])
            ok = _ok(ctx.codec(frame), vec["name"])
            check(
                ok.frame == frame,
                "unknown fields were dropped on re-encode "
                f"({wire.message_type(_type_id).full_name})",
            )

    return run


def _relay_mode(ctx: Context) -> None:
    frames = [_frame(type_id=999, payload=b"\xff\xff"), _frame(payload=b"\x0f\x01")]
    for frame in frames:
        ok = _ok(ctx.codec(frame, mode=pb.RELAY), "relay-mode decode")
        check(ok.frame == frame, "relay mode changed the frame")


def cases(vectors_dir: Path) -> Iterator[Case]:
    unknown: list[tuple[int, dict[str, Any]]] = []
    for path in sorted(vectors_dir.glob("*.json")):
        if path.name == "envelope.json":
            continue
        body = json.loads(path.read_text())
        short = body["message"].rsplit(".", 1)[-1]
        for vec in body["cases"]:
            if "known_only_hex" in vec:
                unknown.append((body["type_id"], vec))
            yield Case(
                f"Codec.Vector.{short}.{vec['name']}",
                True,
                f"golden vector {path.name} {vec['name']}: {vec['description']}",
                _vector_case(body["message"], body["type_id"], vec),
            )
    env = json.loads((vectors_dir / "envelope.json").read_text())
    for vec in env["valid"]:
        yield Case(
            f"Envelope.Vector.{vec['name']}",
            True,
            "envelope.json valid frame",
            _valid_envelope_case(vec),
        )
    for vec in env["invalid"]:
        yield Case(
            f"Codec.Reject.{vec['name']}",
            True,
            f"rejected as {vec['error']}",
            _reject_case(bytes.fromhex(vec["frame_hex"]), vec["error"]),
        )
    yield Case(
        "Codec.Reject.EveryPrefixTruncated",
        True,
        "every proper prefix of a valid frame is rejected as truncated",
        _truncated_prefixes,
    )
    yield Case(
        "Codec.Reject.ConfiguredMaxPayload",
        True,
        "a payload over a configured maximum is oversized; one at it is accepted",
        _configured_limit,
    )
    yield Case(
        "Codec.Reject.Garbage",
        True,
        "random bytes and bit-flipped headers are rejected, never accepted or fatal",
        _garbage,
    )
    yield Case(
        "Codec.UnknownFields.PreservedOnReencode",
        False,
        "fields from a newer schema survive decode + re-encode (protobuf's "
        "recommendation; prost drops them)",
        _unknown_fields_preserved(unknown),
    )
    yield Case(
        "Codec.Relay.EnvelopeOnly",
        True,
        "relay-mode decode forwards unknown type ids and undecodable payloads unchanged",
        _relay_mode,
    )
    yield Case(
        "Envelope.Sequence.Counters",
        True,
        "publisher_id, seq, key_seq, send_ts_ns survive decode + re-encode (random u64s)",
        _sequence_fields,
    )
    yield Case(
        "Envelope.TypeIds",
        True,
        "every type id of WIRE.md section 4 maps to its message; others are unknown_type",
        _type_ids,
    )
    yield Case(
        "Envelope.Fingerprint.MismatchTolerated",
        True,
        "a foreign fingerprint decodes, is reported as schema_mismatch, and is kept",
        _mismatch_tolerated,
    )
    yield Case(
        "Envelope.Fingerprint.MismatchStrict",
        True,
        "strict mode rejects a foreign fingerprint as schema_mismatch",
        _mismatch_strict_only,
    )

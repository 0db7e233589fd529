"""Write the golden vectors in conformance/vectors/ from the Python implementation.

    python conformance/generate_vectors.py           # rewrite the files
    python conformance/generate_vectors.py --check   # exit 1 if they differ

The vectors are normative: once published, a change to them is a wire change.
Cases per message type are derived from its descriptor, so a new field gets its
edge cases without touching this file.
"""

from __future__ import annotations

import argparse
import json
import struct
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from tradewire import wire
from tradewire._gen import registry
from tradewire.catalog import MessageType

if TYPE_CHECKING:
    from google._upb._message import FieldDescriptor as UpbFieldDescriptor

# `Message.DESCRIPTOR` is the pure-Python or the upb descriptor depending on the protobuf
# backend; both carry the attributes read here.
AnyFieldDescriptor: TypeAlias = "FieldDescriptor | UpbFieldDescriptor"

OUT = Path(__file__).resolve().parent / "vectors"
PUBLISHER_ID = 0x0102030405060708
BASE_TS_NS = 1_700_000_000_000_000_000
INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1
UINT64_MAX = (1 << 64) - 1
F = FieldDescriptor

# Fields a newer schema might add: (tag bytes + value) appended to a payload.
UNKNOWN_FIELDS = (
    bytes([0xA0, 0x06])
    + bytes([0x96, 0x01])  # field 100, varint 150
    + bytes([0xAA, 0x06, 0x03])
    + b"new"  # field 101, length-delimited "new"
    + bytes([0xB1, 0x06])
    + struct.pack("<d", 2.5)  # field 102, fixed64 2.5
)


@dataclass
class Case:
    name: str
    description: str
    message: Message
    canonical: bool = True
    unknown: bytes = b""


def _is_map(field: AnyFieldDescriptor) -> bool:
    return field.message_type is not None and field.message_type.GetOptions().map_entry


def _scalar_fields(desc: Descriptor, *types: int) -> list[FieldDescriptor]:
    return [f for f in desc.fields if f.type in types and not _is_map(f) and not _repeated(f)]


def _repeated(field: AnyFieldDescriptor) -> bool:
    return bool(field.is_repeated)


def _typical(field: FieldDescriptor, index: int) -> Any:
    """A plausible non-default value for a singular field."""
    if field.type == F.TYPE_STRING:
        return "AAPL" if field.name == "symbol" else f"{field.name}-{index}"
    if field.type == F.TYPE_DOUBLE:
        return 100.25 + index
    if field.type == F.TYPE_BOOL:
        return True
    if field.type == F.TYPE_ENUM:
        if field.enum_type is None:
            raise ValueError(f"enum field {field.full_name} has no enum type")
        values = field.enum_type.values
        return values[min(1, len(values) - 1)].number
    if field.type in (F.TYPE_INT64, F.TYPE_UINT64):
        return 1_700_000_000_000_000 + index
    if field.type in (F.TYPE_INT32, F.TYPE_UINT32):
        return 1_000 + index
    raise NotImplementedError(f"no typical value for {field.full_name} (type {field.type})")


def _map_entries(field: FieldDescriptor) -> dict[str, Any]:
    if field.message_type is None:
        raise ValueError(f"map field {field.full_name} has no entry type")
    value_field = field.message_type.fields_by_name["value"]
    if value_field.type == F.TYPE_DOUBLE:
        return {"rsi": 54.5, "macd": -0.125, "volume_ratio": 1.75, "bollinger_upper": 190.0}
    return {"AAPL": 42, "MSFT": 7, "日本": UINT64_MAX}


def _build(cls: type[Message], **overrides: Any) -> Message:
    msg = cls()
    for name, value in overrides.items():
        field = cls.DESCRIPTOR.fields_by_name[name]
        if _is_map(field):
            getattr(msg, name).update(value)
        elif _repeated(field):
            getattr(msg, name).extend(value)
        else:
            setattr(msg, name, value)
    return msg


def cases_for(mtype: MessageType[Any]) -> Iterator[Case]:
    cls = mtype.cls
    desc: Descriptor = cls.DESCRIPTOR
    singular = [f for f in desc.fields if not _is_map(f) and not _repeated(f)]
    typical = {f.name: _typical(f, i) for i, f in enumerate(singular)}
    maps = [f for f in desc.fields if _is_map(f)]
    yield Case("defaults", "every field at its default: the empty payload", cls())
    yield Case("typical", "every singular field set to a plausible value", _build(cls, **typical))
    ints = _scalar_fields(desc, F.TYPE_INT64, F.TYPE_INT32)
    if ints:
        yield Case(
            "int64_min",
            "signed integers at their minimum",
            _build(
                cls, **{f.name: INT64_MIN if f.type == F.TYPE_INT64 else -(1 << 31) for f in ints}
            ),
        )
        yield Case(
            "int64_max",
            "signed integers at their maximum",
            _build(
                cls,
                **{f.name: INT64_MAX if f.type == F.TYPE_INT64 else (1 << 31) - 1 for f in ints},
            ),
        )
        yield Case(
            "int_negative",
            "signed integers at -1 (ten-byte varint)",
            _build(cls, **{f.name: -1 for f in ints}),
        )
    uints = _scalar_fields(desc, F.TYPE_UINT64, F.TYPE_UINT32)
    if uints:
        yield Case(
            "uint_max",
            "unsigned integers at their maximum (u64 and u32)",
            _build(
                cls,
                **{f.name: UINT64_MAX if f.type == F.TYPE_UINT64 else (1 << 32) - 1 for f in uints},
            ),
        )
    doubles = _scalar_fields(desc, F.TYPE_DOUBLE)
    if doubles:
        for name, value, text in (
            ("double_negative", -12345.678, "negative"),
            ("double_nan", float("nan"), "NaN"),
            ("double_pos_inf", float("inf"), "+infinity"),
            ("double_neg_inf", float("-inf"), "-infinity"),
            ("double_neg_zero", -0.0, "-0.0 (set: its sign bit makes it non-default)"),
            ("double_min_subnormal", 5e-324, "the smallest subnormal"),
        ):
            yield Case(
                name, f"every double field {text}", _build(cls, **{f.name: value for f in doubles})
            )
    strings = _scalar_fields(desc, F.TYPE_STRING)
    if strings:
        yield Case(
            "unicode_strings",
            "strings with multi-byte UTF-8 (CJK, accents, emoji)",
            _build(cls, **{f.name: f"Ünïcødé-日本株-📈-{i}" for i, f in enumerate(strings)}),
        )
        yield Case(
            "empty_strings_others_set",
            "strings empty, every other singular field set",
            _build(
                cls,
                **{
                    k: v for k, v in typical.items() if desc.fields_by_name[k].type != F.TYPE_STRING
                },
            ),
        )
    for field in _scalar_fields(desc, F.TYPE_ENUM):
        yield Case(
            f"unknown_enum_{field.name}",
            f"{field.name} holds 77, a value no schema version declares",
            _build(cls, **{field.name: 77}),
        )
        yield Case(
            f"negative_enum_{field.name}",
            f"{field.name} holds -1 (ten-byte varint)",
            _build(cls, **{field.name: -1}),
        )
    for field in desc.fields:
        if _repeated(field) and not _is_map(field) and field.type == F.TYPE_STRING:
            yield Case(
                f"repeated_{field.name}",
                f"{field.name} with several entries, one empty and one multi-byte",
                _build(cls, **{field.name: ["AAPL", "", "日本株", "MSFT"]}),
            )
    for field in maps:
        yield Case(
            f"map_{field.name}",
            f"{field.name} with several entries (order may vary)",
            _build(cls, **{field.name: _map_entries(field)}),
            canonical=False,
        )
    yield Case(
        "unknown_fields",
        "typical message plus fields 100 (varint), 101 (bytes), 102 (fixed64) from a newer schema",
        _build(cls, **typical),
        unknown=UNKNOWN_FIELDS,
    )


def _channel_and_key(mtype: MessageType[Any], message: Message) -> tuple[str, str]:
    for ch in registry.CHANNELS:
        if ch.message.type_id == mtype.type_id:
            return ch.name, getattr(message, ch.key_field) if ch.key_field else ""
        if ch.reply is not None and ch.reply.type_id == mtype.type_id:
            return ch.name, ""
    return registry.CHANNELS[0].name, ""  # control messages ride the first channel


def message_vectors(mtype: MessageType[Any]) -> dict[str, Any]:
    cases = []
    for index, case in enumerate(cases_for(mtype), start=1):
        known = case.message.SerializeToString(deterministic=True)
        payload = known + case.unknown
        channel, key = _channel_and_key(mtype, case.message)
        if len(key.encode()) > wire.MAX_KEY or "\0" in key:
            key = ""
        frame = wire.encode_frame(
            channel,
            key,
            mtype.type_id,
            mtype.fingerprint,
            PUBLISHER_ID,
            index,
            index,
            BASE_TS_NS + index,
            payload,
        )
        entry: dict[str, Any] = {
            "name": case.name,
            "description": case.description,
            "payload_hex": payload.hex(),
            "canonical": case.canonical,
        }
        if case.unknown:
            entry["known_only_hex"] = known.hex()
        entry["envelope_hex"] = frame.hex()
        cases.append(entry)
    return {
        "message": mtype.full_name,
        "type_id": mtype.type_id,
        "fingerprint": f"{mtype.fingerprint:#018x}",
        "cases": cases,
    }


def _valid(
    name: str,
    channel: str,
    key: str,
    mtype: MessageType[Any],
    message: Message,
    publisher_id: int,
    seq: int,
    key_seq: int,
    ts: int,
    flags: int = 0,
) -> dict[str, Any]:
    payload = message.SerializeToString(deterministic=True)
    frame = wire.encode_frame(
        channel,
        key,
        mtype.type_id,
        mtype.fingerprint,
        publisher_id,
        seq,
        key_seq,
        ts,
        payload,
        flags,
    )
    return {
        "name": name,
        "frame_hex": frame.hex(),
        "channel": channel,
        "key": key,
        "flags": flags,
        "type_id": mtype.type_id,
        "fingerprint": f"{mtype.fingerprint:#018x}",
        "publisher_id": str(publisher_id),
        "seq": str(seq),
        "key_seq": str(key_seq),
        "send_ts_ns": str(ts),
        "payload_hex": payload.hex(),
    }


def envelope_vectors() -> dict[str, Any]:
    md, hb = registry.MARKET_DATA_TYPE, registry.HEARTBEAT_TYPE
    aapl = md.cls(symbol="AAPL", price=187.5)
    long_key = "K" * wire.MAX_KEY
    valid = [
        _valid("worked_example", "market_data", "AAPL", md, aapl, PUBLISHER_ID, 1, 1, BASE_TS_NS),
        _valid(
            "replay_flag",
            "market_data",
            "AAPL",
            md,
            aapl,
            PUBLISHER_ID,
            2,
            2,
            BASE_TS_NS,
            wire.FLAG_REPLAY,
        ),
        _valid(
            "snapshot_flag",
            "positions",
            "AAPL",
            registry.POSITION_TYPE,
            registry.POSITION_TYPE.cls(symbol="AAPL", quantity=10),
            9,
            5,
            3,
            1,
            wire.FLAG_SNAPSHOT,
        ),
        _valid("unknown_flags_kept", "market_data", "AAPL", md, aapl, 1, 1, 1, 1, 0xF0),
        _valid(
            "heartbeat_keyless",
            "market_data",
            "",
            hb,
            hb.cls(channel="market_data", last_seq=41),
            PUBLISHER_ID,
            0,
            0,
            BASE_TS_NS,
        ),
        _valid(
            "u64_max_counters",
            "market_data",
            "AAPL",
            md,
            aapl,
            UINT64_MAX,
            UINT64_MAX,
            UINT64_MAX,
            UINT64_MAX,
        ),
        _valid("longest_key", "market_data", long_key, md, md.cls(symbol=long_key), 7, 1, 1, 1),
        _valid("utf8_key", "market_data", "日本株", md, md.cls(symbol="日本株"), 7, 1, 1, 1),
        _valid("empty_payload", "market_data", "", md, md.cls(), 7, 1, 1, 1),
    ]
    good = bytes.fromhex(valid[0]["frame_hex"])
    topic_len = len(b"market_data/AAPL\0")
    header = topic_len

    def patched(offset: int, new: bytes) -> bytes:
        return good[:offset] + new + good[offset + len(new) :]

    def raw(payload: bytes, type_id: int = md.type_id) -> bytes:
        return wire.encode_frame(
            "market_data", "AAPL", type_id, md.fingerprint, 1, 1, 1, 1, payload
        )

    invalid = [
        ("empty_frame", b"", "truncated"),
        ("topic_without_nul", b"market_data/AAPL", "truncated"),
        ("header_cut", good[: header + 20], "truncated"),
        ("payload_cut", good[:-1], "truncated"),
        ("no_nul_in_99_bytes", b"market_data/" + b"A" * 120, "bad_topic"),
        ("no_slash", b"market_data\0" + good[header:], "bad_topic"),
        ("uppercase_channel", b"Market_data/AAPL\0" + good[header:], "bad_topic"),
        ("empty_channel", b"/AAPL\0" + good[header:], "bad_topic"),
        ("key_too_long", b"market_data/" + b"K" * 65 + b"\0" + good[header:], "bad_topic"),
        ("key_not_utf8", b"market_data/\xff\xfe\0" + good[header:], "bad_topic"),
        ("bad_magic", patched(header, b"XW"), "bad_magic"),
        ("version_2", patched(header + 2, b"\x02"), "unsupported_version"),
        ("version_0", patched(header + 2, b"\x00"), "unsupported_version"),
        (
            "oversized_length",
            patched(header + 48, struct.pack("<I", wire.DEFAULT_MAX_PAYLOAD + 1)),
            "oversized",
        ),
        ("length_u32_max", patched(header + 48, struct.pack("<I", 0xFFFFFFFF)), "oversized"),
        ("trailing_bytes", good + b"\x00", "trailing_bytes"),
        ("type_id_zero", patched(header + 4, b"\x00\x00"), "unknown_type"),
        ("type_id_unassigned", patched(header + 4, struct.pack("<H", 999)), "unknown_type"),
        ("payload_garbage", raw(b"\xff\xff\xff\xff"), "bad_payload"),
        ("payload_length_overrun", raw(b"\x0a\x05AB"), "bad_payload"),
        ("payload_wire_type_7", raw(b"\x0f\x01"), "bad_payload"),
        ("payload_invalid_utf8_string", raw(b"\x0a\x02\xc3\x28"), "bad_payload"),
    ]
    return {
        "valid": valid,
        "invalid": [{"name": n, "frame_hex": f.hex(), "error": e} for n, f, e in invalid],
    }


def render_all() -> dict[str, str]:
    files = {f"{t.cls.DESCRIPTOR.name}.json": message_vectors(t) for t in registry.MESSAGE_TYPES}
    files["envelope.json"] = envelope_vectors()
    return {
        name: json.dumps(body, indent=2, ensure_ascii=False) + "\n" for name, body in files.items()
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    rendered = render_all()
    stale = sorted(
        name
        for name, text in rendered.items()
        if not (args.out / name).exists() or (args.out / name).read_text() != text
    )
    extra = (
        sorted(p.name for p in args.out.glob("*.json") if p.name not in rendered)
        if args.out.exists()
        else []
    )
    if args.check:
        for name in stale:
            print(f"stale or missing: {args.out / name}")
        for name in extra:
            print(f"not produced by the generator: {args.out / name}")
        return 1 if stale or extra else 0
    args.out.mkdir(parents=True, exist_ok=True)
    for name in stale:
        (args.out / name).write_text(rendered[name])
    print(f"wrote {len(stale)} of {len(rendered)} vector files in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

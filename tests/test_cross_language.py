"""Python and the real Rust binary agree on every byte: golden vectors and thousands of
hypothesis-generated messages go Python -> Rust -> Python."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.message import Message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tradewire import testing, wire
from tradewire._gen import registry
from tradewire.roundtrip import PeerError, RustRoundtrip

VECTORS = Path(__file__).resolve().parents[1] / "conformance" / "vectors"


@pytest.fixture(scope="module")
def rust(rust_bin_dir: Path) -> Iterator[RustRoundtrip]:
    with RustRoundtrip(rust_bin_dir / "tradewire-roundtrip") as peer:
        yield peer


def _has_map_entries(message: Message) -> bool:
    """Maps re-encode differently but equivalently: entry order, and upb writes default
    keys/values inside an entry where prost leaves them out (WIRE.md 1.3)."""
    return any(
        f.message_type is not None
        and f.message_type.GetOptions().map_entry
        and len(getattr(message, f.name)) > 0
        for f in message.DESCRIPTOR.fields
    )


def _unsigned_map_zeros(message: Message) -> bytes:
    """Deterministic bytes with -0.0 map values as +0.0: prost's map encoder drops a zero
    value whatever its sign (WIRE.md 1.3), so the sign of a zero map value is not kept."""
    copy = type(message)()
    copy.CopyFrom(message)
    for field in copy.DESCRIPTOR.fields:
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            entries = getattr(copy, field.name)
            for key in list(entries):
                if entries[key] == 0:
                    entries[key] = 0
    return copy.SerializeToString(deterministic=True)


def _channel_for(message: Message) -> tuple[str, str]:
    for channel in registry.CHANNELS:
        if channel.message.cls is type(message):
            key = getattr(message, channel.key_field) if channel.key_field else ""
            return channel.name, key
    return "commands", ""


def _frame(message: Message, seq: int) -> bytes:
    channel, key = _channel_for(message)
    if len(key.encode()) > wire.MAX_KEY or "\0" in key:
        key = ""
    return wire.encode_message(
        channel, message, key=key, publisher_id=0xABCDEF, seq=seq, send_ts_ns=seq ^ 0x5555
    )


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(message=testing.any_message(), seq=st.integers(1, 2**64 - 1))
def test_hypothesis_messages_roundtrip_through_rust(
    rust: RustRoundtrip, message: Message, seq: int
) -> None:
    frame = _frame(message, seq)
    echoed = rust.roundtrip(frame)
    if _has_map_entries(message):
        env, back = wire.decode_frame(echoed), wire.decode_frame(frame)
        assert (env.channel, env.key, env.seq, env.type_id) == (
            back.channel,
            back.key,
            back.seq,
            back.type_id,
        )
        again = wire.parse_payload(env, type(message))
        assert _unsigned_map_zeros(again) == _unsigned_map_zeros(message)
    else:
        assert echoed == frame


def _message_cases() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for path in sorted(VECTORS.glob("*.json")):
        body = json.loads(path.read_text())
        out += [(body["message"], c) for c in body.get("cases", [])]
    return out


@pytest.mark.parametrize(
    ("message", "case"),
    _message_cases(),
    ids=lambda v: v["name"] if isinstance(v, dict) else v.split(".")[-1],
)
def test_golden_vectors_roundtrip_through_rust(
    rust: RustRoundtrip, message: str, case: dict[str, Any]
) -> None:
    frame = bytes.fromhex(case["envelope_hex"])
    echoed = wire.decode_frame(rust.roundtrip(frame))
    expected = bytes.fromhex(case.get("known_only_hex", case["payload_hex"]))
    if case["canonical"]:
        assert echoed.payload == expected
    else:
        cls = next(t.cls for t in registry.MESSAGE_TYPES if t.full_name == message)
        assert cls.FromString(echoed.payload) == cls.FromString(expected)


def test_rust_rejects_invalid_frames_with_the_same_kinds(rust: RustRoundtrip) -> None:
    cases = json.loads((VECTORS / "envelope.json").read_text())["invalid"]
    for case in cases:
        with pytest.raises(PeerError) as info:
            rust.roundtrip(bytes.fromhex(case["frame_hex"]))
        assert info.value.kind == case["error"], f"{case['name']}: {info.value}"

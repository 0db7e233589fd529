"""The Python envelope codec against WIRE.md and the golden envelope vectors."""

from __future__ import annotations

import contextlib
import json
import struct
from pathlib import Path
from typing import TypedDict

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tradewire import wire
from tradewire._gen import registry
from tradewire.messages import MarketData, Order

VECTORS = Path(__file__).resolve().parents[1] / "conformance" / "vectors"
ENVELOPE = json.loads((VECTORS / "envelope.json").read_text())


class ValidEnvelopeCase(TypedDict):
    """One `valid` entry of envelope.json: 64-bit fields are decimal or hex strings."""

    name: str
    frame_hex: str
    channel: str
    key: str
    flags: int
    type_id: int
    fingerprint: str
    publisher_id: str
    seq: str
    key_seq: str
    send_ts_ns: str
    payload_hex: str


def decode_fully(frame: bytes) -> object:
    """Envelope, then type, then payload: the order every receiver checks in."""
    env = wire.decode_frame(frame)
    return wire.parse_payload(env)


@pytest.mark.parametrize("case", ENVELOPE["valid"], ids=lambda c: c["name"])
def test_valid_envelope_vectors_decode_and_reencode(case: ValidEnvelopeCase) -> None:
    frame = bytes.fromhex(case["frame_hex"])
    env = wire.decode_frame(frame)
    assert (env.channel, env.key, env.flags, env.type_id) == (
        case["channel"],
        case["key"],
        case["flags"],
        case["type_id"],
    )
    assert env.fingerprint == int(case["fingerprint"], 16)
    assert (env.publisher_id, env.seq, env.key_seq, env.send_ts_ns) == (
        int(case["publisher_id"]),
        int(case["seq"]),
        int(case["key_seq"]),
        int(case["send_ts_ns"]),
    )
    assert env.payload == bytes.fromhex(case["payload_hex"])
    assert env.encode() == frame


@pytest.mark.parametrize("case", ENVELOPE["invalid"], ids=lambda c: c["name"])
def test_invalid_envelope_vectors_raise_their_kind(case: dict[str, str]) -> None:
    with pytest.raises(wire.WireError) as info:
        decode_fully(bytes.fromhex(case["frame_hex"]))
    assert info.value.kind == case["error"], str(info.value)
    assert type(info.value) is wire.ERROR_KINDS[case["error"]]
    assert str(info.value)  # a message a person can read


def test_every_error_kind_of_wire_md_has_a_vector() -> None:
    covered = {case["error"] for case in ENVELOPE["invalid"]}
    assert covered == set(wire.ERROR_KINDS) - {"schema_mismatch"}


def test_worked_example_matches_wire_md_bytes() -> None:
    frame = wire.encode_message(
        "market_data",
        MarketData(symbol="AAPL", price=187.5),
        key="AAPL",
        publisher_id=0x0102030405060708,
        seq=1,
        send_ts_ns=1_700_000_000_000_000_000,
    )
    topic, rest = frame.split(b"\0", 1)
    assert topic == b"market_data/AAPL"
    assert rest[:8] == bytes.fromhex("5457010001000000")
    assert rest[16:48] == bytes.fromhex(
        "08070605040302010100000000000000010000000000000000002a36fe9c9717"
    )
    assert rest[48:52] == struct.pack("<I", 15)
    assert rest[52:] == bytes.fromhex("0a044141504c110000000000706740")
    assert frame.hex() == ENVELOPE["valid"][0]["frame_hex"]


def test_subscription_prefix_semantics() -> None:
    aapl = wire.topic("market_data", "AAPL")
    aaplx = wire.topic("market_data", "AAPLX")
    assert not aaplx.startswith(aapl)
    assert aapl.startswith(wire.channel_prefix("market_data"))
    assert not aapl.startswith(wire.topic("market_data"))


def test_fingerprint_mismatch_is_counted_not_fatal_unless_strict() -> None:
    frame = wire.encode_frame(
        "market_data", "A", 1, 0xDEAD, 1, 1, 1, 1, MarketData(symbol="A").SerializeToString()
    )
    env = wire.decode_frame(frame)
    assert wire.parse_payload(env, MarketData).symbol == "A"
    with pytest.raises(wire.SchemaMismatch):
        wire.parse_payload(env, MarketData, strict=True)


def test_wrong_message_class_for_type_id_is_unknown_type() -> None:
    frame = wire.encode_message(
        "market_data", MarketData(symbol="A"), key="A", publisher_id=1, seq=1, send_ts_ns=1
    )
    with pytest.raises(wire.UnknownType, match=r"expected tradewire\.v1\.Order"):
        wire.parse_payload(wire.decode_frame(frame), Order)


@pytest.mark.parametrize(
    ("channel", "key"), [("Bad", ""), ("", ""), ("x" * 33, ""), ("ok", "k" * 65), ("ok", "a\0b")]
)
def test_encoder_refuses_topics_the_format_cannot_carry(channel: str, key: str) -> None:
    with pytest.raises(wire.BadTopic):
        wire.topic(channel, key)


def test_encoder_refuses_out_of_range_numbers() -> None:
    with pytest.raises(ValueError, match="seq"):
        wire.encode_frame("md", "", 1, 0, 1, -1, 0, 0, b"")
    with pytest.raises(wire.UnknownType):
        wire.encode_frame("md", "", 0, 0, 1, 1, 0, 0, b"")


def test_oversized_limit_is_configurable() -> None:
    frame = wire.encode_frame("md", "", 1, 0, 1, 1, 1, 1, b"\x00" * 100)
    with pytest.raises(wire.Oversized, match="exceeds the maximum of 99"):
        wire.decode_frame(frame, max_payload=99)
    assert len(wire.decode_frame(frame, max_payload=100).payload) == 100


@given(st.binary(max_size=300))
def test_decoder_never_crashes_on_garbage(data: bytes) -> None:
    with contextlib.suppress(wire.WireError):
        decode_fully(data)


@given(st.integers(0, 200), st.integers(0, 255), st.data())
def test_decoder_survives_mutations_of_a_valid_frame(
    cut: int, byte: int, data: st.DataObject
) -> None:
    frame = bytearray(bytes.fromhex(ENVELOPE["valid"][0]["frame_hex"]))
    pos = data.draw(st.integers(0, len(frame) - 1))
    frame[pos] = byte
    with contextlib.suppress(wire.WireError):
        decode_fully(bytes(frame[: max(cut, 0)] if cut < len(frame) else frame))


def test_registry_type_ids_are_those_of_wire_md() -> None:
    table = {t.type_id: t.full_name for t in registry.MESSAGE_TYPES}
    wire_md = (VECTORS.parent / "WIRE.md").read_text()
    for type_id, name in table.items():
        assert f"| {type_id} | `{name}` |" in wire_md

"""Envelope codec cost against raw protobuf (upb): the 75-byte-class MarketData, then every
message type of the schema (its "typical" golden vector).

Run with `make bench`; compare `wire_*` to `raw_*` in the same run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.message import Message

from tradewire import wire
from tradewire._gen import registry
from tradewire.catalog import MessageType
from tradewire.messages import MarketData

TICK = MarketData(
    symbol="AAPL",
    price=187.52,
    volume=300,
    timestamp_us=1_764_000_000_000_000,
    exchange="NASDAQ",
    bid=187.51,
    ask=187.53,
    bid_size=1200,
    ask_size=800,
)
PAYLOAD = TICK.SerializeToString()
FRAME = wire.encode_message("market_data", TICK, key="AAPL", publisher_id=1, seq=1, send_ts_ns=1)


def test_raw_serialize(benchmark: Any) -> None:
    assert benchmark(TICK.SerializeToString) == PAYLOAD


def test_wire_encode_message(benchmark: Any) -> None:
    result = benchmark(
        lambda: wire.encode_message(
            "market_data", TICK, key="AAPL", publisher_id=1, seq=1, send_ts_ns=1
        )
    )
    assert result == FRAME


def test_raw_parse(benchmark: Any) -> None:
    assert benchmark(MarketData.FromString, PAYLOAD) == TICK


def test_wire_decode_and_parse(benchmark: Any) -> None:
    def decode() -> MarketData:
        return wire.parse_payload(wire.decode_frame(FRAME), MarketData)

    assert benchmark(decode) == TICK


# ---- what the Rust codec (tradewire._wire) buys: the same calls in pure Python -------------


def test_wire_decode_frame_rust(benchmark: Any) -> None:
    assert wire._CODEC is not None
    assert benchmark(wire.decode_frame, FRAME) == wire.decode_frame_py(FRAME)


def test_wire_decode_frame_pure_python(benchmark: Any) -> None:
    assert benchmark(wire.decode_frame_py, FRAME).payload == PAYLOAD


def test_wire_encode_message_pure_python(benchmark: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wire, "_CODEC", None)
    result = benchmark(
        lambda: wire.encode_message(
            "market_data", TICK, key="AAPL", publisher_id=1, seq=1, send_ts_ns=1
        )
    )
    assert result == FRAME


# ---- every message type: the "typical" golden vector, raw upb beside tradewire -------------

VECTORS = Path(__file__).resolve().parents[1] / "conformance" / "vectors"


def _typical(mtype: MessageType[Any]) -> Message:
    cases = json.loads((VECTORS / f"{mtype.cls.DESCRIPTOR.name}.json").read_text())["cases"]
    case = next((c for c in cases if c["name"] == "typical"), cases[-1])
    cls: type[Message] = mtype.cls
    return cls.FromString(bytes.fromhex(case["payload_hex"]))


def _channel_of(mtype: MessageType[Any]) -> str:
    """The channel carrying the type (its name), or the control channel name `_control`."""
    return next((c.name for c in registry.CHANNELS if mtype in (c.message, c.reply)), "_control")


TYPES = [pytest.param(t, id=t.cls.DESCRIPTOR.name) for t in registry.MESSAGE_TYPES]


@pytest.mark.parametrize("mtype", TYPES)
def test_every_type_raw_serialize(benchmark: Any, mtype: MessageType[Any]) -> None:
    msg = _typical(mtype)
    assert mtype.cls.FromString(benchmark(msg.SerializeToString)) == msg


@pytest.mark.parametrize("mtype", TYPES)
def test_every_type_wire_encode(benchmark: Any, mtype: MessageType[Any]) -> None:
    msg, channel = _typical(mtype), _channel_of(mtype)

    def encode() -> bytes:
        return wire.encode_message(channel, msg, publisher_id=1, seq=1, send_ts_ns=1)

    assert wire.parse_payload(wire.decode_frame(benchmark(encode))) == msg


@pytest.mark.parametrize("mtype", TYPES)
def test_every_type_raw_parse(benchmark: Any, mtype: MessageType[Any]) -> None:
    msg = _typical(mtype)
    assert benchmark(mtype.cls.FromString, msg.SerializeToString()) == msg


@pytest.mark.parametrize("mtype", TYPES)
def test_every_type_wire_decode(benchmark: Any, mtype: MessageType[Any]) -> None:
    msg = _typical(mtype)
    frame = wire.encode_message(_channel_of(mtype), msg, publisher_id=1, seq=1, send_ts_ns=1)
    cls: type[Message] = mtype.cls

    def decode() -> Message:
        return wire.parse_payload(wire.decode_frame(frame), cls)

    assert benchmark(decode) == msg

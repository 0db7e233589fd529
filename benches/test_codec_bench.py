"""Envelope codec cost against raw protobuf (upb) on the same 75-byte-class MarketData.

Run with `make bench`; compare `wire_*` to `raw_*` in the same run.
"""

from __future__ import annotations

from typing import Any

from tradewire import wire
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

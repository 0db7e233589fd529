"""`tradewire demo`: every message type Python -> Rust -> Python, with its bytes.

This is the spine's demo; the full pipeline demo (services, dashboard) replaces it
once the reference services exist.
"""

from __future__ import annotations

import json
import textwrap
import time
from typing import Any

from google.protobuf import text_format
from google.protobuf.message import Message

from tradewire import wire
from tradewire.messages import (
    CommandAck,
    Heartbeat,
    MarketData,
    Order,
    Position,
    StrategyCommand,
    TradingSignal,
)
from tradewire.roundtrip import RustRoundtrip

_NOW_US = 1_764_000_000_000_000


def samples() -> list[tuple[str, str, Message]]:
    """(channel, key, message) for every message type, with realistic values."""
    return [
        (
            "market_data",
            "AAPL",
            MarketData(
                symbol="AAPL",
                price=187.52,
                volume=300,
                timestamp_us=_NOW_US,
                exchange="NASDAQ",
                bid=187.51,
                ask=187.53,
                bid_size=1200,
                ask_size=800,
            ),
        ),
        (
            "signals",
            "AAPL",
            TradingSignal(
                symbol="AAPL",
                signal=TradingSignal.BUY,
                confidence=0.73,
                timestamp_us=_NOW_US,
                features={"rsi": 61.2, "macd": 0.41},
            ),
        ),
        (
            "orders",
            "AAPL",
            Order(
                order_id="ord-1",
                client_order_id="sig-17",
                symbol="AAPL",
                side=Order.BUY,
                quantity=100,
                price=187.53,
                type=Order.LIMIT,
                status=Order.SUBMITTED,
                timestamp_us=_NOW_US,
            ),
        ),
        (
            "positions",
            "AAPL",
            Position(
                symbol="AAPL",
                quantity=100,
                avg_cost=187.53,
                current_price=187.60,
                unrealized_pnl=7.0,
                realized_pnl=-3.5,
                last_updated_us=_NOW_US,
            ),
        ),
        (
            "commands",
            "",
            StrategyCommand(
                type=StrategyCommand.KILL_SWITCH,
                reason="demo",
                command_id="cmd-1",
                sent_timestamp_us=_NOW_US,
            ),
        ),
        (
            "commands",
            "",
            CommandAck(command_id="cmd-1", outcome=CommandAck.APPLIED, engine_timestamp_us=_NOW_US),
        ),
        (
            "market_data",
            "",
            Heartbeat(
                channel="market_data", last_seq=41, timestamp_us=_NOW_US, last_key_seq={"AAPL": 41}
            ),
        ),
    ]


def run(as_json: bool = False) -> int:
    results: list[dict[str, Any]] = []
    with RustRoundtrip() as rust:
        if not as_json:
            print(f"Python -> Rust ({rust.binary.name}) -> Python, one frame per message type\n")
        for seq, (channel, key, message) in enumerate(samples(), start=1):
            frame = wire.encode_message(
                channel, message, key=key, publisher_id=0x7477, seq=seq, send_ts_ns=time.time_ns()
            )
            started = time.perf_counter_ns()
            echoed = rust.roundtrip(frame)
            rtt_us = (time.perf_counter_ns() - started) / 1000
            env = wire.decode_frame(echoed)
            decoded = wire.parse_payload(env, type(message))
            same = echoed == frame and decoded == message
            results.append(
                {
                    "message": message.DESCRIPTOR.full_name,
                    "type_id": env.type_id,
                    "frame_bytes": len(frame),
                    "payload_bytes": len(env.payload),
                    "identical": same,
                    "rtt_us": round(rtt_us, 1),
                }
            )
            if not as_json:
                _show(message, frame, same, rtt_us)
    ok = all(r["identical"] for r in results)
    if as_json:
        print(json.dumps({"ok": ok, "messages": results}, indent=2))
    else:
        print(
            f"{sum(r['identical'] for r in results)}/{len(results)} message types "
            "came back byte-identical" + ("" if ok else "  <-- MISMATCH")
        )
    return 0 if ok else 1


def _show(message: Message, frame: bytes, same: bool, rtt_us: float) -> None:
    name = message.DESCRIPTOR.full_name
    verdict = "identical" if same else "DIFFERENT"
    print(f"== {name}  ({len(frame)} bytes, {verdict} after Rust, {rtt_us:.0f} µs)")
    body = text_format.MessageToString(message, as_one_line=True)
    print(textwrap.indent(textwrap.fill(body, 96), "   "))
    hexed = frame.hex(" ")
    print(textwrap.indent(textwrap.fill(hexed, 96), "   "))
    print()

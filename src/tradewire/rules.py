"""The reference services' rules, computed in Rust (crates/rules), on tradewire messages.

The Rust services call the crate directly and the Python twins (reference_services/python)
call it through this module, so both publish the same messages from one set of rules:
market-data's random walk, simulated clock and CSV rows, signal-bridge's decision and the
execution engine (orders, fills, positions, risk checks, commands, kill switch, and a
state snapshot to resume from). The rules are documented in crates/rules/src/lib.rs.

Messages cross into Rust as their serialized bytes and come back the same way, parsed
here into the Python SDK's classes. Times given to the engine are a monotonic clock's
nanoseconds (``time.monotonic_ns()``); nothing in the rules reads a clock.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final, cast

from tradewire import _rules
from tradewire.messages import (
    CommandAck,
    MarketData,
    Order,
    Position,
    StrategyCommand,
    TradingSignal,
)

__all__ = [
    "QUOTE_WAIT_NS",
    "Book",
    "Engine",
    "Output",
    "RandomWalk",
    "decide",
    "fmt_num",
    "parse_csv",
    "read_csv",
    "sim_timestamp_us",
]

Output = Order | Position
"""What the engine asks to publish: an Order on the orders channel, a Position on the
positions channel."""

QUOTE_WAIT_NS: Final[int] = _rules.QUOTE_WAIT_NS

Book = _rules.Book
"""One symbol's inventory by average cost: ``Book().fill(signed_quantity, price)`` returns
the P&L that fill realized; ``quantity``, ``avg_cost``, ``realized``, ``unrealized(mark)``."""

fmt_num = _rules.fmt_num
sim_timestamp_us = _rules.sim_timestamp_us


class RandomWalk:
    """market-data's seeded random walk over ``symbols``, round-robin."""

    def __init__(
        self, symbols: Sequence[str], seed: int, start_price: float, volatility: float
    ) -> None:
        self._walk = _rules.RandomWalk(list(symbols), seed, start_price, volatility)

    @property
    def index(self) -> int:
        """Index of the next tick (0-based)."""
        return self._walk.index

    def tick(self, timestamp_us: int) -> MarketData:
        return MarketData.FromString(self._walk.tick(timestamp_us))


def parse_csv(text: str, source: str) -> list[MarketData]:
    """The ticks of a CSV text; ValueError on a bad line, naming ``source`` and the line.
    ``timestamp_us`` is 0 in a row that has none."""
    return [MarketData.FromString(b) for b in _rules.parse_csv(text, source)]


def read_csv(path: Path) -> list[MarketData]:
    """:func:`parse_csv` of a file; ValueError when it cannot be read either."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: cannot read: {exc}") from None
    return parse_csv(text, str(path))


def decide(
    probabilities: Sequence[float], threshold: float
) -> tuple[TradingSignal.SignalType, float]:
    """(signal, confidence) from float32 probabilities ``(buy, hold, sell)``."""
    kind, confidence = _rules.decide(
        float(probabilities[0]), float(probabilities[1]), float(probabilities[2]), threshold
    )
    return cast(TradingSignal.SignalType, kind), confidence


def _outputs(raw: list[tuple[int, bytes]]) -> list[Output]:
    return [
        Order.FromString(b) if kind == _rules.ORDER else Position.FromString(b) for kind, b in raw
    ]


class Engine:
    """The execution engine: quotes, signals, commands and the time in; the Order and
    Position updates to publish out."""

    def __init__(
        self, run: str, *, max_position_size: float, max_daily_loss: float, order_quantity: float
    ) -> None:
        self._engine = _rules.Engine(run, max_position_size, max_daily_loss, order_quantity)

    @classmethod
    def restore(cls, state: str) -> Engine:
        """An engine that goes on exactly from ``state`` (written by :meth:`state`), holding
        no quote and no waiting signal; ValueError for a state it cannot read."""
        engine = cls.__new__(cls)
        engine._engine = _rules.Engine.restore(state)
        return engine

    def state(self) -> str:
        """Everything the engine decided, as JSON: positions, open orders, realized P&L,
        the order sequence, limits, pauses, kill switch, last signal per symbol, counters."""
        return self._engine.state()

    def on_quote(self, market_data: MarketData, now_ns: int) -> list[Output]:
        return _outputs(self._engine.on_quote(market_data.SerializeToString(), now_ns))

    def on_signal(self, signal: TradingSignal, now_ns: int) -> list[Output]:
        return _outputs(self._engine.on_signal(signal.SerializeToString(), now_ns))

    def on_timer(self, now_ns: int) -> list[Output]:
        """Time passes: a signal that waited its quote long enough is applied or dropped."""
        return _outputs(self._engine.on_timer(now_ns))

    def position_snapshot(self) -> list[Output]:
        """A Position update for every position held (flat ones included), in order of first
        appearance: what a restarted engine publishes first."""
        return _outputs(self._engine.position_snapshot())

    def on_command(self, command: StrategyCommand) -> tuple[CommandAck.Outcome, str, list[Output]]:
        """(outcome, reason, updates it caused: the kill switch's CANCELLED orders)."""
        outcome, reason, raw = self._engine.on_command(command.SerializeToString())
        return cast(CommandAck.Outcome, outcome), reason, _outputs(raw)

    def summary(self) -> dict[str, Any]:
        """The figures of the service's summary line."""
        figures: dict[str, Any] = json.loads(self._engine.summary())
        return figures

    def pnl(self) -> tuple[float, float]:
        """(realized, unrealized) over every symbol."""
        return self._engine.pnl()

    def positions(self) -> dict[str, float]:
        """Quantity per symbol, in order of first appearance."""
        return dict(self._engine.positions())

    @property
    def run_id(self) -> str:
        return self._engine.run_id

    @property
    def killed(self) -> bool:
        return self._engine.killed

    @property
    def open_orders(self) -> int:
        return self._engine.open_orders

    @property
    def pending(self) -> int:
        """Signals waiting for their quote."""
        return self._engine.pending

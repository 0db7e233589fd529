"""What the demo watches: every pub/sub channel, with rates, last values and latencies."""

from __future__ import annotations

import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

import zmq

from tradewire.channels import (
    MarketDataSubscriber,
    OrdersSubscriber,
    PositionsSubscriber,
    SignalsSubscriber,
)
from tradewire.latency import percentiles
from tradewire.messages import Order, Position, TradingSignal
from tradewire.transport import Received, Subscriber


@dataclass
class ChannelStats:
    count: int = 0
    window: deque[float] = field(default_factory=lambda: deque(maxlen=5000))
    latency_us: deque[float] = field(default_factory=lambda: deque(maxlen=50_000))

    def add(self, now: float, send_ts_ns: int) -> None:
        self.count += 1
        self.window.append(now)
        self.latency_us.append((time.time_ns() - send_ts_ns) / 1000)

    def rate(self, now: float) -> float:
        recent = [t for t in self.window if now - t <= 1.0]
        return float(len(recent))


@dataclass
class PipelineView:
    """State the dashboard renders and the --json summary reports."""

    channels: dict[str, ChannelStats] = field(default_factory=dict)
    last_prices: dict[str, float] = field(default_factory=dict)
    last_signals: dict[str, TradingSignal] = field(default_factory=dict)
    signal_counts: Counter[str] = field(default_factory=Counter)
    order_statuses: Counter[str] = field(default_factory=Counter)
    rejections: Counter[str] = field(default_factory=Counter)
    positions: dict[str, Position] = field(default_factory=dict)
    recent_orders: deque[Order] = field(default_factory=lambda: deque(maxlen=8))
    gaps: int = 0
    unrecoverable: int = 0

    def pnl(self) -> float:
        return sum(p.realized_pnl + p.unrealized_pnl for p in self.positions.values())


class Watcher:
    """Subscribes to the four pub/sub channels and folds everything into a PipelineView."""

    def __init__(self, endpoints: dict[str, str]) -> None:
        self.view = PipelineView()
        self._subs: list[tuple[str, Subscriber[Any]]] = [
            ("market_data", MarketDataSubscriber(endpoints["market_data"])),
            ("signals", SignalsSubscriber(endpoints["signals"])),
            ("orders", OrdersSubscriber(endpoints["orders"])),
            ("positions", PositionsSubscriber(endpoints["positions"])),
        ]
        for name, _ in self._subs:
            self.view.channels[name] = ChannelStats()

    def poll(self, budget: float = 0.05) -> None:
        """Fold in what arrives during the next `budget` seconds (waits on the sockets)."""
        sockets = [sock for _, sub in self._subs for sock in sub.sockets()]
        deadline = time.monotonic() + budget
        while (left := deadline - time.monotonic()) > 0:
            zmq.select(sockets, [], [], left)
            for name, sub in self._subs:
                while (got := sub.recv(timeout=0)) is not None:
                    self._fold(name, got)

    def _fold(self, name: str, got: Received[Any]) -> None:
        now = time.monotonic()
        self.view.channels[name].add(now, got.envelope.send_ts_ns)
        msg = got.message
        if name == "market_data":
            self.view.last_prices[msg.symbol] = msg.price
        elif name == "signals":
            self.view.last_signals[msg.symbol] = msg
            self.view.signal_counts[TradingSignal.SignalType.Name(msg.signal)] += 1
        elif name == "orders":
            status = Order.OrderStatus.Name(msg.status)
            self.view.order_statuses[status] += 1
            if msg.rejection_reason:
                self.view.rejections[msg.rejection_reason] += 1
            self.view.recent_orders.append(msg)
        else:
            self.view.positions[msg.symbol] = msg

    def close(self) -> None:
        for _, sub in self._subs:
            self.view.gaps += sub.stats.gaps
            self.view.unrecoverable += sub.stats.unrecoverable
            sub.close()

    def summary(self) -> dict[str, Any]:
        v = self.view
        return {
            "messages": {n: s.count for n, s in v.channels.items()},
            "latency_us": {n: percentiles(list(s.latency_us)) for n, s in v.channels.items()},
            "last_prices": dict(sorted(v.last_prices.items())),
            "gaps": v.gaps,
            "unrecoverable": v.unrecoverable,
            "signals": dict(v.signal_counts),
            "orders": dict(v.order_statuses),
            "fills": v.order_statuses["FILLED"],
            "rejections": dict(v.rejections),
            "pnl": round(v.pnl(), 6),
            "positions": {
                s: {
                    "quantity": p.quantity,
                    "avg_cost": p.avg_cost,
                    "realized_pnl": p.realized_pnl,
                    "unrealized_pnl": p.unrealized_pnl,
                }
                for s, p in sorted(v.positions.items())
            },
        }

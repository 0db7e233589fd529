"""`tradewire orders`: the seed's order-flow tracker on the typed subscribers."""

from __future__ import annotations

import csv
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zmq

from tradewire.channels import OrdersSubscriber, PositionsSubscriber
from tradewire.messages import Order, Position

HISTORY_FIELDS = [
    "timestamp_us",
    "order_id",
    "client_order_id",
    "symbol",
    "side",
    "type",
    "quantity",
    "price",
    "status",
    "rejection_reason",
    "publisher_id",
    "seq",
]


@dataclass
class OrderFlow:
    """Counts by status, current positions, and the full history of order updates."""

    statuses: Counter[str] = field(default_factory=Counter)
    positions: dict[str, Position] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)

    def on_order(self, order: Order, publisher_id: int, seq: int) -> None:
        status = Order.OrderStatus.Name(order.status)
        self.statuses[status] += 1
        self.history.append(
            {
                "timestamp_us": order.timestamp_us,
                "order_id": order.order_id,
                "client_order_id": order.client_order_id,
                "symbol": order.symbol,
                "side": Order.OrderSide.Name(order.side),
                "type": Order.OrderType.Name(order.type),
                "quantity": order.quantity,
                "price": order.price,
                "status": status,
                "rejection_reason": order.rejection_reason,
                "publisher_id": f"{publisher_id:016x}",
                "seq": seq,
            }
        )

    def on_position(self, position: Position) -> None:
        self.positions[position.symbol] = position

    def summary(self) -> dict[str, Any]:
        return {
            "updates": len(self.history),
            "filled": self.statuses["FILLED"],
            "rejected": self.statuses["REJECTED"],
            "by_status": dict(self.statuses),
            "positions": {
                s: {
                    "quantity": p.quantity,
                    "avg_cost": p.avg_cost,
                    "realized_pnl": p.realized_pnl,
                    "unrealized_pnl": p.unrealized_pnl,
                }
                for s, p in sorted(self.positions.items())
            },
        }

    def save_csv(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        with tmp.open("w", newline="") as out:
            writer = csv.DictWriter(out, fieldnames=HISTORY_FIELDS)
            writer.writeheader()
            writer.writerows(self.history)
        tmp.replace(path)


def track(
    orders_endpoint: str,
    positions_endpoint: str,
    *,
    count: int = 0,
    duration: float = 0.0,
    subscribe_timeout: float = 10.0,
) -> OrderFlow:
    """Follow both channels until `count` order updates or `duration` seconds (0: forever,
    until Ctrl-C)."""
    flow = OrderFlow()
    deadline = time.monotonic() + duration if duration else None
    with (
        OrdersSubscriber(orders_endpoint, subscribe_timeout=subscribe_timeout) as orders,
        PositionsSubscriber(
            positions_endpoint, subscribe_timeout=subscribe_timeout, snapshot=True
        ) as positions,
    ):
        try:
            while (not count or len(flow.history) < count) and (
                deadline is None or time.monotonic() < deadline
            ):
                got_any = False
                while (p := positions.recv(timeout=0)) is not None:
                    flow.on_position(p.message)
                    got_any = True
                o = orders.recv(timeout=0 if got_any else 0.05)
                if o is not None:
                    flow.on_order(o.message, o.envelope.publisher_id, o.envelope.seq)
        except (KeyboardInterrupt, zmq.ContextTerminated):
            pass
    return flow


def print_summary(flow: OrderFlow, as_json: bool) -> None:
    summary = flow.summary()
    if as_json:
        print(json.dumps(summary))
        return
    print(
        f"order updates {summary['updates']}: filled {summary['filled']}, "
        f"rejected {summary['rejected']}"
    )
    for symbol, p in summary["positions"].items():
        print(
            f"  {symbol:<8} qty {p['quantity']:>10.2f}  avg {p['avg_cost']:>10.4f}  "
            f"realized {p['realized_pnl']:>10.2f}  unrealized {p['unrealized_pnl']:>10.2f}"
        )

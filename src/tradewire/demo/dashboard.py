"""Live terminal dashboard (rich) over a PipelineView."""

from __future__ import annotations

import time

from rich.console import Group
from rich.table import Table

from tradewire.demo.watch import PipelineView
from tradewire.latency import percentiles
from tradewire.messages import Order, TradingSignal


def render(view: PipelineView, title: str, elapsed: float) -> Group:
    now = time.monotonic()
    flow = Table(title=f"{title} — {elapsed:5.1f}s", expand=True)
    for col in ("channel", "messages", "msg/s", "p50 µs", "p99 µs", "p99.9 µs"):
        flow.add_column(col, justify="right" if col != "channel" else "left")
    for name, stats in view.channels.items():
        pct = percentiles(list(stats.latency_us))
        flow.add_row(
            name,
            f"{stats.count:,}",
            f"{stats.rate(now):,.0f}",
            *(f"{pct[k]:,.0f}" if k in pct else "-" for k in ("p50", "p99", "p99.9")),
        )

    market = Table(title="symbols", expand=True)
    for col in ("symbol", "last", "signal", "conf", "position", "avg cost", "P&L"):
        market.add_column(col, justify="left" if col in ("symbol", "signal") else "right")
    for symbol in sorted(view.last_prices):
        sig = view.last_signals.get(symbol)
        pos = view.positions.get(symbol)
        market.add_row(
            symbol,
            f"{view.last_prices[symbol]:.2f}",
            TradingSignal.SignalType.Name(sig.signal) if sig else "-",
            f"{sig.confidence:.2f}" if sig else "-",
            f"{pos.quantity:,.0f}" if pos else "-",
            f"{pos.avg_cost:.2f}" if pos else "-",
            f"{pos.realized_pnl + pos.unrealized_pnl:,.2f}" if pos else "-",
        )

    orders = Table(title=f"orders {dict(view.order_statuses)}  P&L {view.pnl():,.2f}", expand=True)
    for col in ("order", "symbol", "side", "qty", "price", "status", "reason"):
        orders.add_column(col)
    for o in list(view.recent_orders)[::-1]:
        orders.add_row(
            o.order_id,
            o.symbol,
            Order.OrderSide.Name(o.side),
            f"{o.quantity:g}",
            f"{o.price:.2f}",
            Order.OrderStatus.Name(o.status),
            o.rejection_reason,
        )
    return Group(flow, market, orders)

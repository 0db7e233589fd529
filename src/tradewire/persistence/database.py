"""TradingDatabase: the seed's read API (section 6.1), as pandas DataFrames.

Times in the returned frames are tz-aware UTC pandas timestamps.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pandas as pd
import sqlalchemy as sa

from tradewire.persistence import schema
from tradewire.persistence.pnl import Ledger
from tradewire.persistence.store import open_engine

DAILY_PNL_COLUMNS = [
    "date", "symbol", "realized_pnl", "fills", "bought", "sold", "position", "avg_cost",
    "unpriced_fills",
]  # fmt: skip
PNL_CURVE_COLUMNS = ["timestamp_utc", "symbol", "side", "quantity", "price", "realized_pnl",
                     "cumulative_pnl"]  # fmt: skip


_EPOCH = datetime(1970, 1, 1)


def _day_bounds(day: date | datetime | str) -> tuple[datetime, datetime]:
    if isinstance(day, str):
        day = date.fromisoformat(day)
    if isinstance(day, datetime):
        day = day.date()
    start = datetime.combine(day, time())
    return start, start + timedelta(days=1)


def _naive_utc(when: datetime | date | str) -> datetime:
    if isinstance(when, str):
        when = datetime.fromisoformat(when)
    if not isinstance(when, datetime):
        when = datetime.combine(when, time())
    if when.tzinfo is not None:
        when = when.astimezone(UTC).replace(tzinfo=None)
    return when


class TradingDatabase:
    """Reads what `tradewire record` wrote. `url`: SQLAlchemy URL or SQLite path (default
    $TRADEWIRE_DB or ./tradewire.db); an Engine may be passed instead."""

    def __init__(self, url: str | sa.Engine | None = None) -> None:
        self.engine = url if isinstance(url, sa.Engine) else open_engine(url)

    def _frame(self, query: sa.Select[Any], time_columns: tuple[str, ...] = ()) -> pd.DataFrame:
        with self.engine.connect() as conn:
            result = conn.execute(query)
            df = pd.DataFrame(result.fetchall(), columns=list(result.keys()))
        for column in time_columns:
            df[column] = pd.to_datetime(df[column], utc=True)
        return df

    def get_positions(self) -> pd.DataFrame:
        """Current position per symbol (the latest update of each)."""
        t = schema.positions
        return self._frame(sa.select(t).order_by(t.c.symbol), ("last_updated_utc",))

    def get_order_history(self, symbol: str | None = None, limit: int = 100) -> pd.DataFrame:
        """The order audit trail (every state change), newest first."""
        t = schema.order_audit_trail
        query = sa.select(t).order_by(t.c.timestamp_utc.desc(), t.c.id.desc()).limit(limit)
        if symbol is not None:
            query = query.where(t.c.symbol == symbol)
        return self._frame(query, ("timestamp_utc",))

    def get_position_snapshots(self, start: datetime | date | str,
                               end: datetime | date | str) -> pd.DataFrame:  # fmt: skip
        """Snapshots with start <= snapshot_time <= end (naive datetimes are UTC)."""
        t = schema.position_snapshots
        query = (
            sa.select(t)
            .where(t.c.snapshot_time.between(_naive_utc(start), _naive_utc(end)))
            .order_by(t.c.snapshot_us, t.c.symbol)
        )
        return self._frame(query, ("snapshot_time",))

    def _fills(self, before: datetime | None = None) -> list[Any]:
        """The first FILLED state change of every order (a re-published fill counts once),
        in event-time order."""
        t = schema.order_audit_trail
        query = sa.select(
            t.c.order_id, t.c.symbol, t.c.side, t.c.quantity, t.c.price, t.c.timestamp_utc
        ).where(t.c.status == "filled")
        if before is not None:  # on timestamp_us, the key of the fills index (migration 2)
            query = query.where(t.c.timestamp_us < (before - _EPOCH) // timedelta(microseconds=1))
        query = query.order_by(t.c.timestamp_us, t.c.publisher_id, t.c.seq)
        seen: set[str] = set()
        out: list[Any] = []
        with self.engine.connect() as conn:
            for row in conn.execute(query):
                if row.order_id in seen:
                    continue
                seen.add(row.order_id)
                out.append(row)
        return out

    def calculate_daily_pnl(self, day: date | datetime | str) -> pd.DataFrame:
        """Realized P&L per symbol for the UTC day `day`, by average cost
        (`tradewire.persistence.pnl`): fills before the day build the opening inventory and
        its cost; only quantity closed during the day realizes P&L.

        A fill is an order's FILLED state change, at its quantity and price (Order carries
        no execution price or filled quantity: PARTIALLY_FILLED changes are not counted, and
        fills with price <= 0, e.g. MARKET orders, cannot be valued and are counted in
        `unpriced_fills` instead). Columns: DAILY_PNL_COLUMNS; position and avg_cost are the
        end-of-day book.
        """
        start, end = _day_bounds(day)
        ledger = Ledger()
        per: dict[str, dict[str, Any]] = {}
        for fill in self._fills(before=end):
            today = fill.timestamp_utc >= start
            if today:
                agg = per.setdefault(fill.symbol, {"realized_pnl": 0.0, "fills": 0,
                                                   "bought": 0.0, "sold": 0.0,
                                                   "unpriced_fills": 0})  # fmt: skip
            if fill.price <= 0:
                if today:
                    agg["unpriced_fills"] += 1
                continue
            signed = fill.quantity if fill.side == "buy" else -fill.quantity
            realized = ledger.fill(fill.symbol, signed, fill.price)
            if today:
                agg["realized_pnl"] += realized
                agg["fills"] += 1
                agg["bought" if signed > 0 else "sold"] += fill.quantity
        rows = []
        for symbol in sorted(per):
            book = ledger.book(symbol)
            rows.append({"date": start.date(), "symbol": symbol, **per[symbol],
                         "position": book.quantity, "avg_cost": book.avg_cost})  # fmt: skip
        return pd.DataFrame(rows, columns=DAILY_PNL_COLUMNS)

    # -- extras for the report ----------------------------------------------------------

    def realized_pnl_curve(self) -> pd.DataFrame:
        """Every priced fill with the P&L it realized (average cost) and the running total
        over all symbols. Columns: PNL_CURVE_COLUMNS."""
        ledger = Ledger()
        total = 0.0
        rows = []
        for fill in self._fills():
            if fill.price <= 0:
                continue
            signed = fill.quantity if fill.side == "buy" else -fill.quantity
            realized = ledger.fill(fill.symbol, signed, fill.price)
            total += realized
            rows.append((fill.timestamp_utc, fill.symbol, fill.side, fill.quantity, fill.price,
                         realized, total))  # fmt: skip
        df = pd.DataFrame(rows, columns=PNL_CURVE_COLUMNS)
        df["timestamp_utc"] = pd.to_datetime(df["timestamp_utc"], utc=True)
        return df

    def get_latency(self) -> pd.DataFrame:
        """send_ts_ns, recv_ts_ns, recorded_ts_ns and replayed of every audit-trail row."""
        t = schema.order_audit_trail
        return self._frame(sa.select(t.c.send_ts_ns, t.c.recv_ts_ns, t.c.recorded_ts_ns,
                                     t.c.replayed))  # fmt: skip

    def get_stream_progress(self) -> pd.DataFrame:
        t = schema.stream_progress
        return self._frame(sa.select(t).order_by(t.c.channel, t.c.publisher_id))

    def get_stream_gaps(self) -> pd.DataFrame:
        t = schema.stream_gaps
        return self._frame(sa.select(t).order_by(t.c.channel, t.c.publisher_id, t.c.first_seq))

    def counts(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            count = sa.select(sa.func.count())
            return {
                table.name: int(conn.execute(count.select_from(table)).scalar_one())
                for table in schema.TABLES
            }

    def close(self) -> None:
        self.engine.dispose()

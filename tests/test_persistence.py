"""Persistence: migrations, idempotent writes, TradingDatabase and average-cost P&L.

Every database test runs against SQLite and PostgreSQL (TRADEWIRE_TEST_POSTGRES_URL, which
`make test` sets through .ci/with-postgres; a bare `pytest` without it skips the PostgreSQL
cases, and fails them when CI=true). The `db_url`
fixture is imported by test_recorder.py and test_report.py.
"""

from __future__ import annotations

import itertools
import os
import secrets
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime

import pytest
import sqlalchemy as sa

from tradewire import wire
from tradewire._gen import registry
from tradewire.messages import Order, Position
from tradewire.persistence import TradingDatabase, migrate, open_engine, schema, store
from tradewire.persistence.migrations import MIGRATIONS, current_version
from tradewire.persistence.pnl import Book
from tradewire.persistence.recorder import Recorder
from tradewire.persistence.simulate import SyntheticEngine
from tradewire.transport import Received

PG_ENV = "TRADEWIRE_TEST_POSTGRES_URL"
DAY1_US = 1_764_028_800_000_000  # 2025-11-25 00:00 UTC
HOUR_US = 3_600_000_000


def postgres_base_url() -> str:
    url = os.environ.get(PG_ENV)
    if not url:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but {PG_ENV} is not set: run the tests through `make test`")
        pytest.skip(f"{PG_ENV} not set: no PostgreSQL server (`make test` starts one)")
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: object) -> Iterator[str]:
    """A fresh, empty database: a SQLite file, or a PostgreSQL schema of its own."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/tradewire.db"
        return
    base = store.database_url(postgres_base_url())
    name = f"tw_test_{secrets.token_hex(6)}"
    admin = sa.create_engine(base)
    with admin.begin() as conn:
        conn.execute(sa.schema.CreateSchema(name))
    sep = "&" if "?" in base else "?"
    try:
        yield f"{base}{sep}options=-csearch_path%3D{name}"
    finally:
        with admin.begin() as conn:
            conn.execute(sa.schema.DropSchema(name, cascade=True))
        admin.dispose()


# -- helpers --------------------------------------------------------------------------------


def received(message: Order | Position, publisher_id: int, seq: int,
             send_ts_ns: int | None = None) -> Received[Order | Position]:  # fmt: skip
    channel = registry.ORDERS if isinstance(message, Order) else registry.POSITIONS
    mtype = channel.message
    env = wire.Envelope(channel.name, message.symbol, mtype.type_id, mtype.fingerprint,
                        publisher_id, seq, seq, send_ts_ns or seq * 1000,
                        message.SerializeToString())  # fmt: skip
    return Received(message, env)


def feed(recorder: Recorder, messages: Sequence[Order | Position], orders_pid: int = 0xA1,
         positions_pid: int = 0xB2) -> None:  # fmt: skip
    """Number the messages per channel as a publisher would and ingest them."""
    seqs = {Order: 0, Position: 0}
    for message in messages:
        seqs[type(message)] += 1
        if isinstance(message, Order):
            recorder.ingest_order(received(message, orders_pid, seqs[Order]))  # type: ignore[arg-type]
        else:
            recorder.ingest_position(received(message, positions_pid, seqs[Position]))  # type: ignore[arg-type]
    recorder.sync()


def fill(order_id: str, symbol: str, side: Order.OrderSide, qty: float, price: float, ts_us: int,
         status: Order.OrderStatus = Order.FILLED) -> Order:  # fmt: skip
    return Order(
        order_id=order_id,
        symbol=symbol,
        side=side,
        quantity=qty,
        price=price,
        type=Order.LIMIT,
        status=status,
        timestamp_us=ts_us,
    )


# -- average cost -----------------------------------------------------------------------------


def test_average_cost_long_add_reduce_close() -> None:
    book = Book()
    assert book.fill(100, 10.0) == 0.0
    assert book.fill(100, 12.0) == 0.0
    assert (book.quantity, book.avg_cost) == (200, 11.0)
    assert book.fill(-50, 13.0) == pytest.approx(100.0)  # 50 * (13 - 11)
    assert (book.quantity, book.avg_cost) == (150, 11.0)  # cost of what stays open unchanged
    assert book.fill(-150, 10.0) == pytest.approx(-150.0)
    assert (book.quantity, book.avg_cost) == (0.0, 0.0)
    assert book.realized == pytest.approx(-50.0)


def test_average_cost_short_and_flip() -> None:
    book = Book()
    book.fill(-100, 50.0)
    assert book.fill(40, 45.0) == pytest.approx(200.0)  # short bought back lower: profit
    assert (book.quantity, book.avg_cost) == (-60, 50.0)
    assert book.fill(100, 52.0) == pytest.approx(-120.0)  # closes 60 at a loss, opens 40 long
    assert (book.quantity, book.avg_cost) == (40, 52.0)
    assert book.unrealized(55.0) == pytest.approx(120.0)


def test_open_inventory_is_not_a_loss() -> None:
    """The seed's signed cash-flow sum calls a day of buying a loss; average cost does not."""
    book = Book()
    book.fill(100, 10.0)
    book.fill(100, 11.0)
    cash_flow = -(100 * 10.0) - (100 * 11.0)
    assert cash_flow == -2100.0 and book.realized == 0.0


# -- migrations -----------------------------------------------------------------------------


def test_migrations_apply_once_and_match_the_model(db_url: str) -> None:
    engine = open_engine(db_url, migrate_schema=False)
    try:
        assert migrate(engine) == [m.version for m in MIGRATIONS]
        assert migrate(engine) == []
        with engine.connect() as conn:
            assert current_version(conn) == MIGRATIONS[-1].version
        inspector = sa.inspect(engine)
        for table in schema.TABLES:
            columns = {c["name"]: c for c in inspector.get_columns(table.name)}
            assert list(columns) == [c.name for c in table.columns], table.name
            for column in table.columns:
                assert columns[column.name]["nullable"] == column.nullable, column
                reflected = columns[column.name]["type"]
                assert reflected._type_affinity is column.type._type_affinity, (column, reflected)
            pk = inspector.get_pk_constraint(table.name)["constrained_columns"]
            assert pk == [c.name for c in table.primary_key.columns], table.name
            reflected_uniques = inspector.get_unique_constraints(table.name)
            uniques = {tuple(u["column_names"]) for u in reflected_uniques}
            for constraint in table.constraints:
                if isinstance(constraint, sa.UniqueConstraint) and not isinstance(
                    constraint, sa.PrimaryKeyConstraint
                ):
                    assert tuple(c.name for c in constraint.columns) in uniques
            indexes = {tuple(i["column_names"]) for i in inspector.get_indexes(table.name)}
            assert {tuple(c.name for c in i.columns) for i in table.indexes} <= indexes
    finally:
        engine.dispose()


# -- idempotent writes ------------------------------------------------------------------------


def _batch(recorder_messages: list[Order | Position], url: str) -> store.Batch:
    """The batch a recorder builds for these messages (taken before it is written)."""
    engine = open_engine(url)
    rec = Recorder(engine, snapshot_interval=3600)
    seqs = itertools.count(1)
    for message in recorder_messages:
        got = received(message, 0xC3 if isinstance(message, Order) else 0xD4, next(seqs))
        if isinstance(message, Order):
            rec.ingest_order(got)  # type: ignore[arg-type]
        else:
            rec.ingest_position(got)  # type: ignore[arg-type]
    batch = rec._batch
    rec._batch = store.Batch()
    rec.close()
    engine.dispose()
    batch.recorded_ts_ns = 1
    for row in batch.progress.values():
        row["updated_ns"] = 1
    return batch


def test_the_same_batch_written_twice_changes_nothing(db_url: str) -> None:
    """The database's own constraints make writes idempotent, without the recorder's
    in-memory progress (e.g. two recorders, or one that lost its state)."""
    messages = list(itertools.islice(SyntheticEngine(seed=11, start_us=DAY1_US), 400))
    batch = _batch(messages, db_url)
    engine = open_engine(db_url)
    try:
        with engine.begin() as conn:
            store.write_batch(conn, batch)
        first = store.dump(engine)
        with engine.begin() as conn:
            store.write_batch(conn, batch)
        assert store.dump(engine) == first
        assert len(first["order_audit_trail"]) == sum(isinstance(m, Order) for m in messages)
    finally:
        engine.dispose()


def test_positions_never_move_backwards(db_url: str) -> None:
    engine = open_engine(db_url)
    try:
        rec = Recorder(engine, snapshot_interval=0)
        new = Position(symbol="AAPL", quantity=10, avg_cost=5, last_updated_us=DAY1_US + 2)
        old = Position(symbol="AAPL", quantity=99, avg_cost=1, last_updated_us=DAY1_US + 1)
        rec.ingest_position(received(new, 0xE5, 2))  # type: ignore[arg-type]
        rec.sync()
        rec._hwm.clear()  # as if the recorder had lost its state: the upsert must still hold
        rec.ingest_position(received(old, 0xE5, 1))  # type: ignore[arg-type]
        rec.sync()
        rec.close()
        positions = TradingDatabase(engine).get_positions()
        assert positions["quantity"].tolist() == [10.0]
        assert positions["seq"].tolist() == [2]
    finally:
        engine.dispose()


def test_replaying_a_stream_leaves_the_database_identical(db_url: str) -> None:
    messages = list(itertools.islice(SyntheticEngine(seed=5, start_us=DAY1_US), 3000))
    engine = open_engine(db_url)
    try:
        with Recorder(engine, snapshot_interval=1.0) as rec:
            feed(rec, messages)
        first = store.dump(engine)
        with Recorder(engine, snapshot_interval=1.0) as rec:
            feed(rec, messages)
            feed(rec, messages)
            assert rec.stats.recorded == 0 and rec.stats.duplicates == 2 * len(messages)
        assert store.dump(engine) == first
        assert first["position_snapshots"], "3 s of event time at 1 s intervals: snapshots"
    finally:
        engine.dispose()


def test_recorded_in_pieces_equals_recorded_in_one_go(tmp_path: object, db_url: str) -> None:
    """Snapshots are a function of the stream: a recorder restarted mid-stream writes what
    one uninterrupted recorder writes."""
    messages = list(itertools.islice(SyntheticEngine(seed=9, start_us=DAY1_US), 2000))
    whole = open_engine(f"sqlite:///{tmp_path}/whole.db")
    pieces = open_engine(db_url)
    try:
        with Recorder(whole, snapshot_interval=0.25) as rec:
            feed(rec, messages)
        seqs = {Order: 0, Position: 0}
        for part in (messages[:700], messages[700:1500], messages[1500:]):
            with Recorder(pieces, snapshot_interval=0.25) as rec:
                for m in part:
                    seqs[type(m)] += 1
                    pid = 0xA1 if isinstance(m, Order) else 0xB2
                    got = received(m, pid, seqs[type(m)])
                    if isinstance(m, Order):
                        rec.ingest_order(got)  # type: ignore[arg-type]
                    else:
                        rec.ingest_position(got)  # type: ignore[arg-type]
        a, b = store.dump(whole), store.dump(pieces)
        assert a["position_snapshots"] == b["position_snapshots"]
        drop = {"id", "recv_ts_ns", "recorded_ts_ns", "updated_ns"}

        def stable(table: sa.Table, rows: list[tuple[object, ...]]) -> list[tuple[object, ...]]:
            keep = [i for i, c in enumerate(table.columns) if c.name not in drop]
            return [tuple(r[i] for i in keep) for r in rows]

        for table in (schema.order_audit_trail, schema.positions, schema.stream_progress):
            assert stable(table, a[table.name]) == stable(table, b[table.name]), table.name
    finally:
        whole.dispose()
        pieces.dispose()


# -- TradingDatabase ------------------------------------------------------------------------


def _day_stream() -> list[Order | Position]:
    """Day 1: buy 100 AAPL @10, 100 @12 (avg 11). Day 2: sell 150 @13 (+300), the fill
    re-published (counted once), a MARKET fill without price (unpriced), a short in MSFT
    covered lower (+40), a cancelled order (ignored)."""
    d1, d2 = DAY1_US, DAY1_US + 24 * HOUR_US
    return [
        fill("A1", "AAPL", Order.BUY, 100, 10.0, d1 + HOUR_US, Order.SUBMITTED),
        fill("A1", "AAPL", Order.BUY, 100, 10.0, d1 + HOUR_US + 1),
        fill("A2", "AAPL", Order.BUY, 100, 12.0, d1 + 2 * HOUR_US),
        Position(symbol="AAPL", quantity=200, avg_cost=11, current_price=12,
                 unrealized_pnl=200, last_updated_us=d1 + 2 * HOUR_US),
        fill("A3", "AAPL", Order.SELL, 150, 13.0, d2 + HOUR_US),
        fill("A3", "AAPL", Order.SELL, 150, 13.0, d2 + HOUR_US + 5),
        fill("A4", "AAPL", Order.SELL, 10, 0.0, d2 + HOUR_US + 6),
        fill("M1", "MSFT", Order.SELL, 20, 400.0, d2 + 2 * HOUR_US),
        fill("M2", "MSFT", Order.BUY, 10, 396.0, d2 + 3 * HOUR_US),
        fill("M3", "MSFT", Order.BUY, 10, 1.0, d2 + 3 * HOUR_US, Order.CANCELLED),
        Position(symbol="AAPL", quantity=50, avg_cost=11, current_price=13,
                 unrealized_pnl=100, realized_pnl=300, last_updated_us=d2 + HOUR_US),
        Position(symbol="MSFT", quantity=-10, avg_cost=400, current_price=396,
                 unrealized_pnl=40, realized_pnl=40, last_updated_us=d2 + 3 * HOUR_US),
    ]  # fmt: skip


def test_trading_database_reads(db_url: str) -> None:
    engine = open_engine(db_url)
    try:
        with Recorder(engine, snapshot_interval=3600) as rec:
            feed(rec, _day_stream())
        db = TradingDatabase(engine)
        positions = db.get_positions()
        assert positions["symbol"].tolist() == ["AAPL", "MSFT"]
        assert positions["quantity"].tolist() == [50.0, -10.0]
        assert str(positions["last_updated_utc"].dt.tz) == "UTC"

        history = db.get_order_history()
        assert len(history) == 9
        assert history["timestamp_utc"].is_monotonic_decreasing
        aapl = db.get_order_history(symbol="AAPL", limit=3)
        assert aapl["symbol"].unique().tolist() == ["AAPL"] and len(aapl) == 3
        assert aapl["order_id"].tolist() == ["A4", "A3", "A3"]
        assert set(history.columns) >= {"publisher_id", "seq", "status", "side", "price"}
        assert history["status"].iloc[-1] == "submitted" and history["side"].iloc[-1] == "buy"

        # hourly event-time snapshots: the second AAPL update (day 2) crosses boundaries
        snaps = db.get_position_snapshots(date(2025, 11, 25), date(2025, 11, 27))
        assert not snaps.empty
        assert snaps["snapshot_time"].is_monotonic_increasing
        first = snaps.iloc[0]
        assert first["symbol"] == "AAPL" and first["quantity"] == 200.0
        assert db.get_position_snapshots(
            datetime(2025, 11, 24, tzinfo=UTC), datetime(2025, 11, 25, tzinfo=UTC)
        ).empty
        db.close()
    finally:
        engine.dispose()


def test_daily_pnl_by_average_cost(db_url: str) -> None:
    engine = open_engine(db_url)
    try:
        with Recorder(engine, snapshot_interval=0) as rec:
            feed(rec, _day_stream())
        db = TradingDatabase(engine)
        day1 = db.calculate_daily_pnl(date(2025, 11, 25))
        assert day1["realized_pnl"].tolist() == [0.0]  # buying is not a loss
        assert day1["position"].tolist() == [200.0] and day1["avg_cost"].tolist() == [11.0]
        day2 = db.calculate_daily_pnl("2025-11-26").set_index("symbol")
        assert day2.loc["AAPL", "realized_pnl"] == pytest.approx(150 * (13 - 11))
        assert day2.loc["AAPL", "fills"] == 1  # the re-published fill counts once
        assert day2.loc["AAPL", "unpriced_fills"] == 1
        assert day2.loc["AAPL", "position"] == 50.0
        assert day2.loc["MSFT", "realized_pnl"] == pytest.approx(10 * (400 - 396))
        assert day2.loc["MSFT", "position"] == -10.0
        assert db.calculate_daily_pnl(date(2025, 11, 27)).empty
        assert list(db.calculate_daily_pnl(date(2025, 11, 27)).columns) == list(day1.columns)
        # the engine's own realized P&L (positions channel) agrees
        positions = db.get_positions().set_index("symbol")
        engine_pnl = positions.loc["AAPL", "realized_pnl"]
        fills_pnl = day2.loc["AAPL", "realized_pnl"]
        assert isinstance(engine_pnl, float) and isinstance(fills_pnl, float)
        assert engine_pnl == fills_pnl
    finally:
        engine.dispose()


def test_synthetic_engine_realized_pnl_matches_recorded_fills(db_url: str) -> None:
    messages = list(itertools.islice(SyntheticEngine(seed=21, start_us=DAY1_US), 6000))
    engine = open_engine(db_url)
    try:
        with Recorder(engine, snapshot_interval=0) as rec:
            feed(rec, messages)
        db = TradingDatabase(engine)
        daily = db.calculate_daily_pnl(date(2025, 11, 25)).set_index("symbol")
        positions = db.get_positions().set_index("symbol")
        assert len(positions) == 5
        for symbol, row in positions.iterrows():
            assert isinstance(symbol, str)
            assert daily.loc[symbol, "realized_pnl"] == pytest.approx(row["realized_pnl"])
            assert daily.loc[symbol, "position"] == pytest.approx(row["quantity"])
        curve = db.realized_pnl_curve()
        assert curve["cumulative_pnl"].iloc[-1] == pytest.approx(positions["realized_pnl"].sum())
    finally:
        engine.dispose()


def test_database_url_forms(tmp_path: object) -> None:
    assert store.database_url("x/y.db") == "sqlite:///x/y.db"
    assert store.database_url("postgresql://u@h/d") == "postgresql+psycopg://u@h/d"
    assert store.database_url("sqlite:///a.db") == "sqlite:///a.db"
    os.environ.pop(store.ENV_URL, None)
    assert store.database_url(None) == store.DEFAULT_URL

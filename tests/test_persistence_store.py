"""The fast write path: order rows as tuples, SQLite multi-row statements of every chunk
size, timestamps pre-formatted as SQLAlchemy's text, and the load generator's pool."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import TypeVar

import pandas as pd
import pytest
import sqlalchemy as sa
from google.protobuf.message import Message
from test_persistence import DAY1_US, db_url, feed, fill  # noqa: F401  (db_url: fixture)

from tradewire.messages import Order, Position
from tradewire.persistence import TradingDatabase, open_engine, schema, store
from tradewire.persistence.recorder import Recorder, utc_of_us, utc_text_of_us
from tradewire.persistence.simulate import SyntheticEngine, cycle_pool

M = TypeVar("M", bound=Message)


def each_of(kind: type[M], messages: Iterable[Message]) -> Iterator[M]:
    """`messages` one at a time, each checked to be a `kind` (lazily: cycle_pool changes
    its messages in place once the next is asked for)."""
    for message in messages:
        if not isinstance(message, kind):
            raise TypeError(f"expected {kind.__name__}, got {type(message).__name__}")
        yield message


@pytest.mark.parametrize(
    "us",
    [0, 1, 999_999, 1_000_000, DAY1_US, DAY1_US + 7, DAY1_US + 86_399_999_999,
     253_402_300_799_999_999, -1, -1_000_001],
)  # fmt: skip
def test_utc_text_is_sqlalchemy_sqlite_datetime_text(us: int) -> None:
    dialect = sa.dialects.sqlite.dialect()
    proc = sa.DateTime().dialect_impl(dialect).bind_processor(dialect)
    assert proc is not None
    assert utc_text_of_us(us) == proc(utc_of_us(us))
    assert utc_text_of_us(us) == utc_text_of_us(us)  # cached second, same text


def test_order_columns_are_the_table_minus_id_and_recorded() -> None:
    names = [c.name for c in schema.order_audit_trail.columns]
    assert list(store.ORDER_COLUMNS) == [n for n in names if n not in ("id", "recorded_ts_ns")]


@pytest.mark.parametrize("orders", [1, 7, 513, 1100])
def test_every_chunk_size_stores_every_row_exactly(db_url: str, orders: int) -> None:  # noqa: F811
    """1100 = 2 x 512 + 64 + 8 + 4 x 1 rows: each statement size of the SQLite path."""
    msgs = [fill(f"O{n}", "AAPL", Order.BUY, 1 + n % 7, 10.0 + n, DAY1_US + n * 1_000_001,
                 Order.FILLED if n % 2 else Order.SUBMITTED) for n in range(orders)]  # fmt: skip
    engine = open_engine(db_url)
    try:
        with Recorder(engine, snapshot_interval=0) as rec:
            feed(rec, msgs)  # one batch: one transaction
        history = TradingDatabase(engine).get_order_history(limit=orders + 10)
        assert len(history) == orders
        got = history.sort_values("seq").reset_index(drop=True)
        assert got["seq"].tolist() == list(range(1, orders + 1))
        assert got["order_id"].tolist() == [m.order_id for m in msgs]
        assert got["quantity"].tolist() == [m.quantity for m in msgs]
        assert got["status"].tolist() == ["filled" if n % 2 else "submitted" for n in range(orders)]
        want = pd.to_datetime([utc_of_us(m.timestamp_us) for m in msgs], utc=True)
        assert (got["timestamp_utc"] == want).all()
        assert got["recorded_ts_ns"].nunique() == 1 and got["recorded_ts_ns"].iloc[0] > 0
        assert got["replayed"].tolist() == [False] * orders
    finally:
        engine.dispose()


def test_pg_and_sqlite_store_the_same_rows(db_url: str, tmp_path: object) -> None:  # noqa: F811
    messages = list(itertools.islice(SyntheticEngine(seed=17, start_us=DAY1_US), 2500))
    a, b = open_engine(db_url), open_engine(f"sqlite:///{tmp_path}/ref.db")
    try:
        for engine in (a, b):
            with Recorder(engine, snapshot_interval=0.5, batch_size=300) as rec:
                feed(rec, messages)
        drop = {"id", "recv_ts_ns", "recorded_ts_ns", "updated_ns"}
        da, db = store.dump(a), store.dump(b)
        for table in schema.TABLES:
            keep = [i for i, c in enumerate(table.columns) if c.name not in drop]
            rows_a = [tuple(r[i] for i in keep) for r in da[table.name]]
            assert rows_a == [tuple(r[i] for i in keep) for r in db[table.name]], table.name
        assert da["order_audit_trail"] and da["position_snapshots"]
    finally:
        a.dispose()
        b.dispose()


def test_cycle_pool_moves_ids_and_time_on() -> None:
    messages = list(itertools.islice(SyntheticEngine(seed=3, start_us=DAY1_US), 400))
    orders = [m for m in messages if isinstance(m, Order)]
    positions = [m for m in messages if isinstance(m, Position)]
    step = orders[1].timestamp_us - orders[0].timestamp_us
    first_id = orders[0].order_id  # cycle_pool changes the messages in place
    seen = [(m.order_id, m.status, m.timestamp_us) for m in each_of(Order, itertools.islice(
        cycle_pool(orders), 3 * len(orders)))]  # fmt: skip
    stamps = [ts for _, _, ts in seen]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    assert len({(oid, status) for oid, status, _ in seen}) == len(seen)  # one row per change
    assert seen[len(orders)][0] == first_id + "-1" and seen[0][0] == first_id
    assert seen[len(orders)][2] - seen[len(orders) - 1][2] >= step
    times = [m.last_updated_us for m in each_of(Position, itertools.islice(
        cycle_pool(positions), 2 * len(positions)))]  # fmt: skip
    assert times == sorted(times) and len(set(times)) == len(times)
    assert datetime(2025, 11, 25) <= utc_of_us(times[-1])

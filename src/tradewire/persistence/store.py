"""Engines and batched, idempotent writes.

`open_engine(url)` accepts a SQLAlchemy URL or a plain file path (SQLite). `postgresql://`
URLs use psycopg 3. Every write of a batch happens in one transaction:

- order_audit_trail: INSERT ... ON CONFLICT (publisher_id, channel, seq) DO NOTHING
- positions: upsert per symbol, only when the update is newer (same publisher: higher seq;
  another publisher: not older by last_updated_us), so a replay never moves it backwards
- position_snapshots, stream_gaps: insert-or-ignore on their primary keys
- stream_progress: upsert that only ever raises last_seq

so replaying any stream, any number of times, leaves the database as the first pass did.
"""

from __future__ import annotations

import itertools
import os
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from tradewire.persistence import schema
from tradewire.persistence.migrations import migrate

DEFAULT_URL = "sqlite:///tradewire.db"
ENV_URL = "TRADEWIRE_DB"

Row = dict[str, Any]


def database_url(url: str | None = None) -> str:
    """`url`, else $TRADEWIRE_DB, else ./tradewire.db; a bare path means a SQLite file;
    `postgresql://` selects the psycopg 3 driver."""
    url = url or os.environ.get(ENV_URL) or DEFAULT_URL
    if "://" not in url:
        return f"sqlite:///{url}"
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def open_engine(url: str | None = None, *, migrate_schema: bool = True) -> sa.Engine:
    """An engine for `url` (see database_url) with the schema migrated to the latest version."""
    resolved = database_url(url)
    if resolved.startswith("sqlite"):
        engine = sa.create_engine(resolved, connect_args={"check_same_thread": False})
        _sqlite_setup(engine)
    else:
        engine = sa.create_engine(resolved, pool_pre_ping=True)
    try:
        if engine.dialect.name not in ("sqlite", "postgresql"):
            raise ValueError(
                f"unsupported database {engine.dialect.name!r}: use SQLite or PostgreSQL"
            )
        if migrate_schema:
            migrate(engine)
    except BaseException:
        engine.dispose()  # e.g. a schema newer than this code: no pooled connection left open
        raise
    return engine


def _sqlite_setup(engine: sa.Engine) -> None:
    """WAL (readers never block the recorder), NORMAL sync (no fsync per commit; a power
    loss can lose the last transactions, never corrupt the file), 16 KiB pages for a new
    file and a 64 MiB page cache (~20% less CPU per inserted row than the 4 KiB / 2 MiB
    defaults with the audit trail's indexes), and real transactions for DDL: pysqlite's own
    transaction handling is turned off and SQLAlchemy emits BEGIN."""

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        for pragma in ("page_size=16384", "journal_mode=WAL", "synchronous=NORMAL",
                       "cache_size=-65536", "busy_timeout=10000"):  # fmt: skip
            cur.execute(f"PRAGMA {pragma}")
        cur.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        conn.exec_driver_sql("BEGIN")


def _insert(engine_or_conn: sa.Engine | sa.Connection, table: sa.Table) -> Any:
    """The dialect's INSERT, which has on_conflict_do_nothing/do_update."""
    if engine_or_conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


# The order-row tuple the recorder builds per message: the audit-trail columns in table
# order without `id` (the database assigns it) and `recorded_ts_ns` (one value per
# transaction, `Batch.recorded_ts_ns`). Tuples, not dicts: at 100 k rows/s the per-row
# Python objects are a large part of the cost.
ORDER_COLUMNS: tuple[str, ...] = tuple(
    c.name for c in schema.order_audit_trail.columns if c.name not in ("id", "recorded_ts_ns")
)
OrderRow = tuple[Any, ...]


@dataclass
class Batch:
    """Rows gathered by the recorder for one transaction."""

    orders: list[OrderRow] = field(default_factory=list)  # ORDER_COLUMNS tuples
    positions: dict[str, Row] = field(default_factory=dict)  # last update per symbol
    snapshots: list[Row] = field(default_factory=list)
    progress: dict[tuple[str, str], Row] = field(default_factory=dict)
    gaps: list[Row] = field(default_factory=list)
    recorded_ts_ns: int = 0  # stored in every order row of the batch

    def __len__(self) -> int:
        return len(self.orders) + len(self.positions) + len(self.snapshots) + len(self.gaps)

    def empty(self) -> bool:
        return not (self.orders or self.positions or self.snapshots or self.progress
                    or self.gaps)  # fmt: skip


def write_batch(conn: sa.Connection, batch: Batch) -> None:
    """Write `batch` on `conn` (the caller owns the transaction)."""
    if batch.orders:
        _write_orders(conn, batch.orders, batch.recorded_ts_ns)
    if batch.positions:
        _write(conn, "positions", schema.positions, list(batch.positions.values()))
    if batch.snapshots:
        _write(conn, "snapshots", schema.position_snapshots, batch.snapshots)
    if batch.gaps:
        _write(conn, "gaps", schema.stream_gaps, batch.gaps)
    if batch.progress:
        _write(conn, "progress", schema.stream_progress, list(batch.progress.values()))


def _on_conflict(name: str, stmt: Any) -> Any:
    """The idempotency rule of each table (see the module docstring)."""
    if name == "orders":
        return stmt.on_conflict_do_nothing(index_elements=["publisher_id", "channel", "seq"])
    if name == "snapshots":
        return stmt.on_conflict_do_nothing(index_elements=["snapshot_us", "symbol"])
    if name == "gaps":
        return stmt.on_conflict_do_nothing(index_elements=["publisher_id", "channel", "first_seq"])
    new = stmt.excluded
    if name == "positions":
        t = schema.positions
        newer = sa.or_(
            sa.and_(new.publisher_id == t.c.publisher_id, new.seq > t.c.seq),
            sa.and_(new.publisher_id != t.c.publisher_id,
                    new.last_updated_us >= t.c.last_updated_us),
        )  # fmt: skip
        values = {c.name: new[c.name] for c in t.columns if c.name != "symbol"}
        return stmt.on_conflict_do_update(index_elements=["symbol"], set_=values, where=newer)
    assert name == "progress", name
    t = schema.stream_progress
    return stmt.on_conflict_do_update(
        index_elements=["publisher_id", "channel"],
        set_={
            "last_seq": sa.case((new.last_seq > t.c.last_seq, new.last_seq), else_=t.c.last_seq),
            "messages": t.c.messages + new.messages,
            "lost": t.c.lost + new.lost,
            "updated_ns": new.updated_ns,
        },
        where=sa.or_(new.last_seq > t.c.last_seq, new.lost > sa.literal_column("0")),
    )


# Statements are built with SQLAlchemy Core and compiled once per dialect, table and size.
# SQLAlchemy's per-row parameter processing costs more than the database itself at recorder
# rates (~25 us a row), and so does psycopg's pipelined executemany, so:
# - SQLite: multi-row INSERT ... VALUES (...), (...) ... ON CONFLICT statements of up to
#   512 rows go to the driver with the values as flat positional tuples. Not one-row
#   executemany: the driver releases the GIL around every statement step, and taking it back
#   while the recorder's receiving thread is busy costs up to the interpreter's switch
#   interval (5 ms) per row; one step per 512 rows makes that negligible. Order rows arrive
#   as tuples with `timestamp_utc` already in SQLAlchemy's SQLite DateTime text (see
#   `recorder.utc_text_of_us`); DateTime values of the other tables are converted with
#   SQLAlchemy's own bind processor, so reads through the column types round-trip.
# - PostgreSQL: the rows are COPied (psycopg's COPY API) into a temporary staging table of
#   the session (ON COMMIT DELETE ROWS), then one INSERT ... SELECT ... ON CONFLICT moves
#   them; `recorded_ts_ns` of order rows is a parameter of that statement.
_COMPILED: dict[tuple[str, str], tuple[Any, list[str]]] = {}
_SQLITE_QMARK = sqlite.dialect(paramstyle="qmark")
_SQLITE_SQL: dict[tuple[str, tuple[str, ...], int], str] = {}
SQLITE_MAX_ROWS = 512  # rows per statement (and at most the driver's variable limit)


def _write(conn: sa.Connection, name: str, table: sa.Table, rows: list[Row]) -> None:
    columns = [c.name for c in table.columns if c.name in rows[0]]
    if conn.dialect.name == "postgresql":
        key = ("postgresql", name)
        if key not in _COMPILED:
            stage = _staging(table, columns)
            select = sa.select(*[stage.c[n] for n in columns])
            insert = postgresql.insert(table).from_select(columns, select)
            _COMPILED[key] = (_on_conflict(name, insert), columns)
        stmt, columns = _COMPILED[key]
        _pg_copy(conn, stmt, columns, [[row[c] for c in columns] for row in rows])
        return
    procs = [_SQLITE_DATETIME if isinstance(table.c[c].type, sa.DateTime) else None
             for c in columns]  # fmt: skip
    pairs = list(zip(columns, procs, strict=True))
    values = [tuple(row[c] if proc is None else proc(row[c]) for c, proc in pairs) for row in rows]
    _sqlite_insert(conn, name, table, columns, values)


_SQLITE_DATETIME: Any = sa.DateTime().dialect_impl(_SQLITE_QMARK).bind_processor(_SQLITE_QMARK)


def _write_orders(conn: sa.Connection, rows: list[OrderRow], recorded_ts_ns: int) -> None:
    """Insert-or-ignore ORDER_COLUMNS tuples into order_audit_trail."""
    t = schema.order_audit_trail
    if conn.dialect.name == "postgresql":
        key = ("postgresql", "orders")
        if key not in _COMPILED:
            stage = _staging(t, list(ORDER_COLUMNS))
            select = sa.select(*stage.c, sa.bindparam("recorded_ts_ns", type_=sa.BigInteger))
            insert = postgresql.insert(t).from_select([*ORDER_COLUMNS, "recorded_ts_ns"], select)
            _COMPILED[key] = (_on_conflict("orders", insert), list(ORDER_COLUMNS))
        _pg_copy(conn, _COMPILED[key][0], list(ORDER_COLUMNS), rows,
                 {"recorded_ts_ns": recorded_ts_ns})  # fmt: skip
        return
    columns = [c.name for c in t.columns if c.name != "id"]  # table order: how VALUES binds
    at = columns.index("recorded_ts_ns")
    assert columns[:at] + columns[at + 1 :] == list(ORDER_COLUMNS)
    tail = (recorded_ts_ns,)
    _sqlite_insert(conn, "orders", t, columns, [row[:at] + tail + row[at:] for row in rows])


def _sqlite_insert(conn: sa.Connection, name: str, table: sa.Table, columns: list[str],
                   rows: Sequence[Sequence[Any]]) -> None:  # fmt: skip
    """`rows` (values in `columns` order, which must be table order) in multi-row
    statements: full ones of `per` rows, then the rest by sizes per/8, per/64, ..., 1."""
    limit = conn.connection.driver_connection.getlimit(  # type: ignore[union-attr]
        sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER
    )
    per = max(1, min(SQLITE_MAX_ROWS, limit // len(columns)))
    chain = itertools.chain.from_iterable
    start = 0
    size = per
    while start < len(rows):
        count = (len(rows) - start) // size
        if count:
            sql = _sqlite_sql(name, table, tuple(columns), size)
            end = start + count * size
            params = [tuple(chain(rows[i : i + size])) for i in range(start, end, size)]
            conn.exec_driver_sql(sql, params if len(params) > 1 else params[0])
            start = end
        size = max(1, size // 8)


def _sqlite_sql(name: str, table: sa.Table, columns: tuple[str, ...], size: int) -> str:
    key = (name, columns, size)
    sql = _SQLITE_SQL.get(key)
    if sql is None:
        values = [{c: sa.bindparam(f"{c}_{i}", type_=table.c[c].type) for c in columns}
                  for i in range(size)]  # fmt: skip
        compiled = _on_conflict(name, sqlite.insert(table).values(values)).compile(
            dialect=_SQLITE_QMARK
        )
        expected = [f"{c}_{i}" for i in range(size) for c in columns]
        assert list(compiled.positiontup or ()) == expected, "VALUES not in table order"
        sql = _SQLITE_SQL[key] = str(compiled)
    return sql


def _staging(table: sa.Table, columns: list[str]) -> sa.Table:
    return sa.Table(
        f"tw_stage_{table.name}", sa.MetaData(),
        *[sa.Column(c, table.c[c].type) for c in columns],
        prefixes=["TEMPORARY"], postgresql_on_commit="DELETE ROWS",
    )  # fmt: skip


def _pg_copy(
    conn: sa.Connection,
    insert: Any,
    columns: list[str],
    rows: Sequence[Sequence[Any]],
    params: Mapping[str, Any] | None = None,
) -> None:
    """COPY `rows` (values in `columns` order) into the staging table of `insert`, then
    execute it."""
    from psycopg import sql

    stage: sa.Table = insert.select.get_final_froms()[0]
    stage.create(conn, checkfirst=True)  # per session; a rolled-back batch may drop it
    copy_sql = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(stage.name), sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    with cursor.copy(copy_sql) as copy:
        write_row = copy.write_row
        for row in rows:
            write_row(row)
    conn.execute(insert, dict(params or {}))


def load_progress(conn: sa.Connection, channel: str) -> dict[str, int]:
    """publisher_id (hex) -> last stored seq, for `channel`."""
    t = schema.stream_progress
    rows = conn.execute(sa.select(t.c.publisher_id, t.c.last_seq).where(t.c.channel == channel))
    return {pid: int(seq) for pid, seq in rows}


def load_positions(conn: sa.Connection) -> dict[str, Row]:
    rows = conn.execute(sa.select(schema.positions)).mappings()
    return {str(r["symbol"]): dict(r) for r in rows}


def last_snapshot_us(conn: sa.Connection) -> int:
    top = conn.execute(sa.select(sa.func.max(schema.position_snapshots.c.snapshot_us))).scalar()
    return int(top or 0)


def dump(engine: sa.Engine) -> Mapping[str, list[tuple[Any, ...]]]:
    """Every row of every table, in primary-key order (for comparing databases)."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    with engine.connect() as conn:
        for table in schema.TABLES:
            order = list(table.primary_key.columns)
            out[table.name] = [tuple(r) for r in conn.execute(sa.select(table).order_by(*order))]
    return out

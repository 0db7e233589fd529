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

import os
from collections.abc import Mapping
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
    if engine.dialect.name not in ("sqlite", "postgresql"):
        raise ValueError(f"unsupported database {engine.dialect.name!r}: use SQLite or PostgreSQL")
    if migrate_schema:
        migrate(engine)
    return engine


def _sqlite_setup(engine: sa.Engine) -> None:
    """WAL (readers never block the recorder), NORMAL sync, and real transactions for DDL:
    pysqlite's own transaction handling is turned off and SQLAlchemy emits BEGIN."""

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "busy_timeout=10000"):
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


@dataclass
class Batch:
    """Rows gathered by the recorder for one transaction."""

    orders: list[Row] = field(default_factory=list)
    positions: dict[str, Row] = field(default_factory=dict)  # last update per symbol
    snapshots: list[Row] = field(default_factory=list)
    progress: dict[tuple[str, str], Row] = field(default_factory=dict)
    gaps: list[Row] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.orders) + len(self.positions) + len(self.snapshots) + len(self.gaps)

    def empty(self) -> bool:
        return not (self.orders or self.positions or self.snapshots or self.progress
                    or self.gaps)  # fmt: skip


def write_batch(conn: sa.Connection, batch: Batch) -> None:
    """Write `batch` on `conn` (the caller owns the transaction)."""
    if batch.orders:
        _write(conn, "orders", schema.order_audit_trail, batch.orders)
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
        return stmt.on_conflict_do_nothing(
            index_elements=["publisher_id", "channel", "first_seq"]
        )
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


# Statements are built with SQLAlchemy Core and compiled once per dialect and table.
# SQLAlchemy's per-row parameter processing costs more than the database itself at recorder
# rates (~25 us a row), and so does psycopg's pipelined executemany, so:
# - SQLite: the compiled INSERT goes to the driver's executemany with the rows as dicts;
#   only DateTime needs converting, done with SQLAlchemy's own bind processor (its ISO text,
#   so reads through the column types round-trip);
# - PostgreSQL: the rows are COPied (psycopg's COPY API) into a temporary staging table of
#   the session (ON COMMIT DELETE ROWS), then INSERT ... SELECT ... ON CONFLICT moves them.
_COMPILED: dict[tuple[str, str], tuple[Any, list[str], list[tuple[str, Any]]]] = {}
_SQLITE_NAMED = sqlite.dialect(paramstyle="named")


def _write(conn: sa.Connection, name: str, table: sa.Table, rows: list[Row]) -> None:
    key = (conn.dialect.name, name)
    compiled = _COMPILED.get(key)
    if compiled is None:
        compiled = _COMPILED[key] = _compile(conn, name, table, rows[0])
    stmt, columns, converters = compiled
    if conn.dialect.name == "postgresql":
        _pg_copy(conn, stmt, columns, rows)
        return
    if converters:
        rows = [dict(row) for row in rows]
        for row in rows:
            for column, proc in converters:
                row[column] = proc(row[column])
    conn.exec_driver_sql(stmt, rows)


def _staging(table: sa.Table, columns: list[str]) -> sa.Table:
    return sa.Table(
        f"tw_stage_{table.name}", sa.MetaData(),
        *[sa.Column(c, table.c[c].type) for c in columns],
        prefixes=["TEMPORARY"], postgresql_on_commit="DELETE ROWS",
    )  # fmt: skip


def _compile(conn: sa.Connection, name: str, table: sa.Table,
             sample: Row) -> tuple[Any, list[str], list[tuple[str, Any]]]:  # fmt: skip
    names = [c.name for c in table.columns if c.name in sample]
    if conn.dialect.name == "postgresql":
        stage = _staging(table, names)
        select = sa.select(*[stage.c[n] for n in names])
        return _on_conflict(name, postgresql.insert(table).from_select(names, select)), names, []
    sql = str(_on_conflict(name, sqlite.insert(table)).compile(dialect=_SQLITE_NAMED,
                                                                column_keys=names))  # fmt: skip
    converters = []
    for c in table.columns:
        proc = c.type.bind_processor(_SQLITE_NAMED)
        if c.name in sample and isinstance(c.type, sa.DateTime) and proc is not None:
            converters.append((c.name, proc))
    return sql, names, converters


def _pg_copy(conn: sa.Connection, insert: Any, columns: list[str], rows: list[Row]) -> None:
    from psycopg import sql

    stage: sa.Table = insert.select.get_final_froms()[0]
    stage.create(conn, checkfirst=True)  # per session; a rolled-back batch may drop it
    copy_sql = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(stage.name), sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    with cursor.copy(copy_sql) as copy:
        for row in rows:
            copy.write_row([row[c] for c in columns])
    conn.execute(insert)


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

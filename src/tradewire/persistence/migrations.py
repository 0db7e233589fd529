"""Versioned schema migrations: an ordered list applied through SQLAlchemy Core.

Why not alembic: the history is linear and small, the recorder applies it in-process on
start against SQLite or PostgreSQL, and alembic's runtime wants a script directory and an
env.py shipped as package data plus a revision graph we do not need. This runner keeps
alembic's essentials: a `schema_migrations` table of applied versions, each migration a
frozen function of SQLAlchemy Core DDL (never the live model in `schema.py`), applied in
order inside one transaction together with its version row (PostgreSQL and SQLite both
have transactional DDL), serialised between concurrent starters by an advisory lock on
PostgreSQL and by SQLite's single writer.

To change the schema: append `Migration(N + 1, "what", function)` — never edit an applied
one — and update `schema.py` to match (tests/test_persistence.py compares the two).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

_LOCK_KEY = 0x7472_6164_6577  # "tradew": pg_advisory_xact_lock key

schema_migrations = sa.Table(
    "schema_migrations",
    sa.MetaData(),
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("applied_ns", sa.BigInteger, nullable=False),
)


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    apply: Callable[[sa.Connection], None]


def _v1_initial(conn: sa.Connection) -> None:
    """order_audit_trail, positions, position_snapshots, stream_progress, stream_gaps."""
    m = sa.MetaData()
    big_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    dbl, big, s16, s32, s64 = sa.Double, sa.BigInteger, sa.String(16), sa.String(32), sa.String(64)

    def col(name: str, type_: Any, pk: bool = False) -> sa.Column[Any]:
        return sa.Column(name, type_, primary_key=pk, nullable=False)

    sa.Table(
        "order_audit_trail", m,
        sa.Column("id", big_id, primary_key=True, autoincrement=True),
        col("publisher_id", s16), col("channel", s64), col("seq", big), col("key_seq", big),
        col("order_id", sa.String(128)), col("client_order_id", sa.String(128)),
        col("symbol", s32), col("side", sa.String(8)), col("order_type", sa.String(16)),
        col("status", sa.String(20)), col("quantity", dbl), col("price", dbl),
        col("rejection_reason", sa.Text), col("timestamp_us", big),
        col("timestamp_utc", sa.DateTime), col("send_ts_ns", big), col("recv_ts_ns", big),
        col("recorded_ts_ns", big), col("replayed", sa.Boolean),
        sa.UniqueConstraint("publisher_id", "channel", "seq", name="uq_order_audit_stream_seq"),
        sa.Index("ix_order_audit_symbol_time", "symbol", "timestamp_utc"),
        sa.Index("ix_order_audit_time", "timestamp_utc"),
        sa.Index("ix_order_audit_order_id", "order_id"),
    )  # fmt: skip
    sa.Table(
        "positions", m,
        col("symbol", s32, pk=True), col("quantity", dbl), col("avg_cost", dbl),
        col("current_price", dbl), col("unrealized_pnl", dbl), col("realized_pnl", dbl),
        col("last_updated_us", big), col("last_updated_utc", sa.DateTime),
        col("publisher_id", s16), col("channel", s64), col("seq", big),
        col("send_ts_ns", big), col("recv_ts_ns", big),
    )  # fmt: skip
    sa.Table(
        "position_snapshots", m,
        col("snapshot_us", big, pk=True), col("symbol", s32, pk=True),
        col("snapshot_time", sa.DateTime), col("quantity", dbl), col("avg_cost", dbl),
        col("current_price", dbl), col("unrealized_pnl", dbl), col("realized_pnl", dbl),
        col("last_updated_us", big),
        sa.Index("ix_position_snapshots_time", "snapshot_time"),
    )  # fmt: skip
    sa.Table(
        "stream_progress", m,
        col("publisher_id", s16, pk=True), col("channel", s64, pk=True),
        col("first_seq", big), col("last_seq", big), col("messages", big), col("lost", big),
        col("updated_ns", big),
    )  # fmt: skip
    sa.Table(
        "stream_gaps", m,
        col("publisher_id", s16, pk=True), col("channel", s64, pk=True),
        col("first_seq", big, pk=True), col("last_seq", big), col("reason", sa.Text),
        col("recorded_ns", big),
    )  # fmt: skip
    m.create_all(conn)


def _v2_fills_index(conn: sa.Connection) -> None:
    """A partial index of the audit trail's fills in event-time order: what the P&L
    (TradingDatabase.calculate_daily_pnl, the report's P&L curve) reads, without a sort of
    the whole trail. Partial, so the recorder maintains it only for FILLED rows."""
    t = sa.Table("order_audit_trail", sa.MetaData(), autoload_with=conn)
    filled = t.c.status == "filled"
    sa.Index("ix_order_audit_fills", t.c.timestamp_us, t.c.publisher_id, t.c.seq,
             sqlite_where=filled, postgresql_where=filled).create(conn)  # fmt: skip


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "initial tables", _v1_initial),
    Migration(2, "partial index of fills for P&L", _v2_fills_index),
)


def current_version(conn: sa.Connection) -> int:
    """Highest applied version, 0 for an empty database."""
    if not sa.inspect(conn).has_table(schema_migrations.name):
        return 0
    top = conn.execute(sa.select(sa.func.max(schema_migrations.c.version))).scalar()
    return int(top or 0)


def migrate(engine: sa.Engine, target: int | None = None) -> list[int]:
    """Apply every pending migration up to `target` (default: all); returns the versions
    applied now. Safe to call on every start and from concurrent processes."""
    latest = MIGRATIONS[-1].version
    target = latest if target is None else target
    if not 0 <= target <= latest:
        raise ValueError(f"no migration {target}: known versions are 1..{latest}")
    applied: list[int] = []
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_LOCK_KEY)))
        schema_migrations.create(conn, checkfirst=True)
        done = set(conn.execute(sa.select(schema_migrations.c.version)).scalars())
        if done and max(done) > latest:
            raise RuntimeError(
                f"database schema is at version {max(done)}, newer than this tradewire "
                f"({latest}): upgrade tradewire"
            )
        for migration in MIGRATIONS:
            if migration.version in done or migration.version > target:
                continue
            migration.apply(conn)
            conn.execute(
                sa.insert(schema_migrations).values(
                    version=migration.version, name=migration.name, applied_ns=time.time_ns()
                )
            )
            applied.append(migration.version)
    return applied

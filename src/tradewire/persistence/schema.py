"""The current table model (SQLAlchemy Core), used by every query and write.

The tables are *created and changed* only by the versioned migrations in
`tradewire.persistence.migrations`; tests check that a migrated database matches this model.

Conventions:
- publisher ids are the transport's u64 as 16 lowercase hex digits (they overflow BIGINT);
- times are UTC: `*_us` / `*_ns` integers since the Unix epoch, and `*_utc` / `*_time`
  naive UTC datetimes for SQL date filtering (naive so SQLite and PostgreSQL agree);
- enum values are stored as lowercase names ("buy", "filled", "limit").
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

# Autoincrementing 64-bit id; SQLite only autoincrements INTEGER PRIMARY KEY.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

order_audit_trail = sa.Table(
    "order_audit_trail",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("publisher_id", sa.String(16), nullable=False),
    sa.Column("channel", sa.String(64), nullable=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("key_seq", sa.BigInteger, nullable=False),
    sa.Column("order_id", sa.String(128), nullable=False),
    sa.Column("client_order_id", sa.String(128), nullable=False),
    sa.Column("symbol", sa.String(32), nullable=False),
    sa.Column("side", sa.String(8), nullable=False),
    sa.Column("order_type", sa.String(16), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("quantity", sa.Double, nullable=False),
    sa.Column("price", sa.Double, nullable=False),
    sa.Column("rejection_reason", sa.Text, nullable=False),
    sa.Column("timestamp_us", sa.BigInteger, nullable=False),
    sa.Column("timestamp_utc", sa.DateTime, nullable=False),
    sa.Column("send_ts_ns", sa.BigInteger, nullable=False),
    sa.Column("recv_ts_ns", sa.BigInteger, nullable=False),
    sa.Column("recorded_ts_ns", sa.BigInteger, nullable=False),
    sa.Column("replayed", sa.Boolean, nullable=False),
    sa.UniqueConstraint("publisher_id", "channel", "seq", name="uq_order_audit_stream_seq"),
    sa.Index("ix_order_audit_symbol_time", "symbol", "timestamp_utc"),
    sa.Index("ix_order_audit_time", "timestamp_utc"),
    sa.Index("ix_order_audit_order_id", "order_id"),
)
_filled = order_audit_trail.c.status == "filled"
sa.Index("ix_order_audit_fills", order_audit_trail.c.timestamp_us, order_audit_trail.c.publisher_id,
         order_audit_trail.c.seq, sqlite_where=_filled, postgresql_where=_filled)  # fmt: skip

positions = sa.Table(
    "positions",
    metadata,
    sa.Column("symbol", sa.String(32), primary_key=True),
    sa.Column("quantity", sa.Double, nullable=False),
    sa.Column("avg_cost", sa.Double, nullable=False),
    sa.Column("current_price", sa.Double, nullable=False),
    sa.Column("unrealized_pnl", sa.Double, nullable=False),
    sa.Column("realized_pnl", sa.Double, nullable=False),
    sa.Column("last_updated_us", sa.BigInteger, nullable=False),
    sa.Column("last_updated_utc", sa.DateTime, nullable=False),
    sa.Column("publisher_id", sa.String(16), nullable=False),
    sa.Column("channel", sa.String(64), nullable=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("send_ts_ns", sa.BigInteger, nullable=False),
    sa.Column("recv_ts_ns", sa.BigInteger, nullable=False),
)

position_snapshots = sa.Table(
    "position_snapshots",
    metadata,
    sa.Column("snapshot_us", sa.BigInteger, primary_key=True),
    sa.Column("symbol", sa.String(32), primary_key=True),
    sa.Column("snapshot_time", sa.DateTime, nullable=False),
    sa.Column("quantity", sa.Double, nullable=False),
    sa.Column("avg_cost", sa.Double, nullable=False),
    sa.Column("current_price", sa.Double, nullable=False),
    sa.Column("unrealized_pnl", sa.Double, nullable=False),
    sa.Column("realized_pnl", sa.Double, nullable=False),
    sa.Column("last_updated_us", sa.BigInteger, nullable=False),
    sa.Index("ix_position_snapshots_time", "snapshot_time"),
)

stream_progress = sa.Table(
    "stream_progress",
    metadata,
    sa.Column("publisher_id", sa.String(16), primary_key=True),
    sa.Column("channel", sa.String(64), primary_key=True),
    sa.Column("first_seq", sa.BigInteger, nullable=False),
    sa.Column("last_seq", sa.BigInteger, nullable=False),
    sa.Column("messages", sa.BigInteger, nullable=False),
    sa.Column("lost", sa.BigInteger, nullable=False),
    sa.Column("updated_ns", sa.BigInteger, nullable=False),
)

stream_gaps = sa.Table(
    "stream_gaps",
    metadata,
    sa.Column("publisher_id", sa.String(16), primary_key=True),
    sa.Column("channel", sa.String(64), primary_key=True),
    sa.Column("first_seq", sa.BigInteger, primary_key=True),
    sa.Column("last_seq", sa.BigInteger, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("recorded_ns", sa.BigInteger, nullable=False),
)

TABLES = (order_audit_trail, positions, position_snapshots, stream_progress, stream_gaps)

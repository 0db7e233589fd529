"""Schema upgrades: a database created at version 1 and written to, then upgraded to the
latest version, keeps its data; a database newer than the code is refused with a clear
error. Against SQLite and PostgreSQL (the db_url fixture of test_persistence.py)."""

from __future__ import annotations

import itertools
from datetime import date
from pathlib import Path

import pytest
import sqlalchemy as sa
from test_persistence import DAY1_US, db_url, feed  # noqa: F401  (db_url: fixture)

from tradewire.persistence import TradingDatabase, migrate, open_engine, schema, store
from tradewire.persistence.migrations import MIGRATIONS, current_version, schema_migrations
from tradewire.persistence.recorder import Recorder
from tradewire.persistence.simulate import SyntheticEngine

LATEST = MIGRATIONS[-1].version


def _index_names(engine: sa.Engine, table: str) -> set[str]:
    return {str(i["name"]) for i in sa.inspect(engine).get_indexes(table)}


def test_migration_versions_are_consecutive() -> None:
    assert [m.version for m in MIGRATIONS] == list(range(1, LATEST + 1))
    assert LATEST >= 2


def test_upgrade_from_version_1_keeps_the_data(db_url: str, tmp_path: Path) -> None:  # noqa: F811
    messages = list(itertools.islice(SyntheticEngine(seed=13, start_us=DAY1_US), 4000))
    engine = open_engine(db_url, migrate_schema=False)
    try:
        assert migrate(engine, target=1) == [1]
        with engine.connect() as conn:
            assert current_version(conn) == 1
        assert "ix_order_audit_fills" not in _index_names(engine, "order_audit_trail")
        with Recorder(engine, snapshot_interval=1.0) as rec:  # the recorder writes a v1 DB
            feed(rec, messages[:3000])
        before = store.dump(engine)
        pnl_before = TradingDatabase(engine).calculate_daily_pnl(date(2025, 11, 25))
        assert before["order_audit_trail"] and before["position_snapshots"]

        assert migrate(engine) == list(range(2, LATEST + 1))
        assert store.dump(engine) == before  # every row of every table survived
        with engine.connect() as conn:
            assert current_version(conn) == LATEST
            rows = conn.execute(
                sa.select(schema_migrations.c.version, schema_migrations.c.name).order_by(
                    schema_migrations.c.version
                )
            ).all()
        assert [tuple(r) for r in rows] == [(m.version, m.name) for m in MIGRATIONS]
        assert "ix_order_audit_fills" in _index_names(engine, "order_audit_trail")
        db = TradingDatabase(engine)
        assert db.calculate_daily_pnl(date(2025, 11, 25)).equals(pnl_before)
        assert migrate(engine) == []
        reopened = open_engine(db_url)  # opening migrates: nothing left to do
        reopened.dispose()

        # and the upgraded database records on from where it was
        with Recorder(engine, snapshot_interval=1.0) as rec:
            feed(rec, messages)  # the first 3000 are duplicates now
            assert rec.stats.duplicates == 3000 and rec.stats.recorded == 1000
        fresh = open_engine(f"sqlite:///{tmp_path}/fresh.db")
        with Recorder(fresh, snapshot_interval=1.0) as rec:
            feed(rec, messages)
        drop = {"id", "recv_ts_ns", "recorded_ts_ns", "updated_ns"}
        for table in (schema.order_audit_trail, schema.positions, schema.position_snapshots):
            keep = [i for i, c in enumerate(table.columns) if c.name not in drop]
            got, want = store.dump(engine)[table.name], store.dump(fresh)[table.name]
            assert [tuple(r[i] for i in keep) for r in got] == [
                tuple(r[i] for i in keep) for r in want
            ], table.name
        fresh.dispose()
    finally:
        engine.dispose()


def test_fills_index_serves_the_pnl_query(tmp_path: object) -> None:
    """SQLite's plan for the P&L fill scan uses the migration-2 partial index."""
    engine = open_engine(f"sqlite:///{tmp_path}/plan.db")
    t = schema.order_audit_trail
    query = (
        sa.select(t.c.order_id)
        .where(t.c.status == "filled", t.c.timestamp_us < DAY1_US)
        .order_by(t.c.timestamp_us, t.c.publisher_id, t.c.seq)
    )
    sql = str(query.compile(engine, compile_kwargs={"literal_binds": True}))
    with engine.connect() as conn:
        plan = " ".join(str(r[-1]) for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql))
    assert "ix_order_audit_fills" in plan and "TEMP B-TREE" not in plan, plan
    engine.dispose()


def test_a_database_newer_than_the_code_is_refused(db_url: str) -> None:  # noqa: F811
    engine = open_engine(db_url)
    with engine.begin() as conn:
        conn.execute(
            sa.insert(schema_migrations).values(
                version=LATEST + 1, name="from the future", applied_ns=1
            )
        )
    engine.dispose()
    message = f"schema is at version {LATEST + 1}, newer than this tradewire \\({LATEST}\\)"
    with pytest.raises(RuntimeError, match=message):
        open_engine(db_url)
    with pytest.raises(RuntimeError, match="upgrade tradewire"):
        TradingDatabase(db_url)
    engine = open_engine(db_url, migrate_schema=False)
    with pytest.raises(ValueError, match=f"known versions are 1..{LATEST}"):
        migrate(engine, target=LATEST + 1)
    engine.dispose()

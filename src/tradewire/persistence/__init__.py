"""Persistence and analytics: record order updates and positions into SQLite (default) or
PostgreSQL, read them back as pandas DataFrames, and report on them.

    tradewire record --orders ipc:///tmp/orders.ipc --positions ipc:///tmp/positions.ipc
    tradewire report --out report/

    from tradewire.persistence import TradingDatabase
    db = TradingDatabase("sqlite:///tradewire.db")       # or postgresql://user@host/db
    db.calculate_daily_pnl("2026-11-25")

Needs the `persistence` extra: pip install 'tradewire[persistence]'.
"""

from tradewire.persistence.database import TradingDatabase
from tradewire.persistence.migrations import migrate
from tradewire.persistence.store import database_url, open_engine

__all__ = ["TradingDatabase", "database_url", "migrate", "open_engine"]

"""`tradewire report`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def _run(args: argparse.Namespace) -> int:
    from tradewire.persistence import TradingDatabase
    from tradewire.persistence.report import build

    db = TradingDatabase(args.db)
    try:
        report = build(db, Path(args.out))
    finally:
        db.close()
    print(f"report: {report.index.resolve()}")
    return 0


def register(sub: Any) -> None:
    parser = sub.add_parser("report", help="HTML report with P&L, positions and latency plots")
    parser.add_argument("--db", default=None,
                        help="database URL or SQLite path (default $TRADEWIRE_DB or "
                             "./tradewire.db)")  # fmt: skip
    parser.add_argument("--out", default="tradewire-report", help="output directory")
    parser.set_defaults(handler=_run)

"""`tradewire record`."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from typing import Any


def _run(args: argparse.Namespace) -> int:
    # A stop request that arrives while the database libraries import (seconds on a loaded
    # machine) must end the recording cleanly, not kill the process.
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())

    from tradewire.persistence import open_engine
    from tradewire.persistence.recorder import Recorder
    from tradewire.transport import SubscribeTimeout

    if not (args.orders or args.positions):
        print("tradewire record: give --orders and/or --positions", file=sys.stderr)
        return 2
    if args.nice:
        os.nice(args.nice)
    engine = open_engine(args.db)
    try:
        recorder = Recorder(
            engine, orders=args.orders, positions=args.positions,
            snapshot_interval=args.snapshot_interval, batch_size=args.batch_size,
            resume=not args.no_resume, backfill=not args.no_backfill,
            subscribe_timeout=args.subscribe_timeout,
        )  # fmt: skip
    except SubscribeTimeout as exc:
        print(f"tradewire record: {exc}", file=sys.stderr)
        return 1
    print(f"recording into {engine.url.render_as_string(hide_password=True)}", file=sys.stderr)
    try:
        stats = recorder.run(count=args.count or None, duration=args.duration or None, stop=stop)
    finally:
        recorder.close()
        engine.dispose()
    summary = stats.as_dict()
    summary["events"] = [e.as_dict() for e in stats.events if e.kind != "gap_detected"]
    print(json.dumps(summary))
    return 0


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "record", help="record order updates and positions into SQLite or PostgreSQL"
    )
    parser.add_argument("--orders", help="orders publisher endpoint, e.g. ipc:///tmp/orders.ipc")
    parser.add_argument("--positions", help="positions publisher endpoint")
    parser.add_argument("--db", default=None,
                        help="database URL (sqlite:///path, postgresql://user@host/db) or a "
                             "SQLite path (default $TRADEWIRE_DB or ./tradewire.db)")  # fmt: skip
    parser.add_argument("--snapshot-interval", type=float, default=60.0,
                        help="position snapshot every S s of event time (0: none)")  # fmt: skip
    parser.add_argument("--count", type=int, default=0,
                        help="exit after N new messages (0: no limit)")  # fmt: skip
    parser.add_argument("--duration", type=float, default=0.0,
                        help="exit after S seconds (0: no limit)")  # fmt: skip
    parser.add_argument("--batch-size", type=int, default=5000, help="rows per transaction")
    parser.add_argument("--nice", type=int, default=0,
                        help="lower the recorder's CPU priority by N (os.nice): on a busy "
                             "host the engine it records comes first and the recorder "
                             "catches up from its buffers")  # fmt: skip
    parser.add_argument("--subscribe-timeout", type=float, default=10.0,
                        help="give up when no publisher answers within S seconds")  # fmt: skip
    parser.add_argument("--no-resume", action="store_true",
                        help="ignore stored progress: replay whatever the publisher still "
                             "holds (stored rows are skipped, never duplicated)")  # fmt: skip
    parser.add_argument("--no-backfill", action="store_true",
                        help="for publishers never seen before, start at the live stream "
                             "instead of replaying what they still hold")  # fmt: skip
    parser.set_defaults(handler=_run)

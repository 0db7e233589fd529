"""`tradewire orders`."""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Any

from tradewire.cli._endpoints import add_config_flag, endpoint


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # track() stops on it, like on Ctrl-C


def _run(args: argparse.Namespace) -> int:
    from tradewire import orders

    # SIGTERM (kill, systemd, the demo) ends the run like Ctrl-C: the history is saved.
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        flow = orders.track(
            endpoint(args, "orders", args.orders),
            endpoint(args, "positions", args.positions),
            count=args.count,
            duration=args.duration,
        )
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    if args.csv:
        flow.save_csv(Path(args.csv))
    orders.print_summary(flow, args.json)
    return 0


def register(sub: Any) -> None:
    parser = sub.add_parser("orders", help="order-flow tracker: fills, rejects, positions")
    parser.add_argument("--orders", default=None, help="orders endpoint (default: config)")
    parser.add_argument("--positions", default=None, help="positions endpoint (default: config)")
    add_config_flag(parser)
    parser.add_argument("--count", type=int, default=0, help="stop after N order updates")
    parser.add_argument("--duration", type=float, default=0.0, help="stop after S seconds")
    parser.add_argument(
        "--csv", default="order_history.csv", help="history file written on exit ('' to skip)"
    )
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.set_defaults(handler=_run)

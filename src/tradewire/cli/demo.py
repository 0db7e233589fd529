"""`tradewire demo`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def _run(args: argparse.Namespace) -> int:
    if args.roundtrip:
        from tradewire import roundtrip_demo

        return roundtrip_demo.run(as_json=args.json)
    from tradewire.demo.run import run

    return run(
        duration=args.duration,
        symbols=args.symbols,
        rate=args.rate,
        python_services=args.python_services,
        as_json=args.json,
        config=Path(args.config) if args.config else None,
        report_dir=None if args.no_report else Path(args.report_dir).resolve(),
    )


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "demo", help="run the whole pipeline (market data -> signals -> orders) with a dashboard"
    )
    parser.add_argument("--duration", type=float, default=20.0, help="seconds to run (default 20)")
    parser.add_argument("--symbols", nargs="+", default=["AAPL", "MSFT", "GOOG"])
    parser.add_argument("--rate", type=float, default=1000.0, help="market-data ticks per second")
    parser.add_argument(
        "--python-services",
        action="store_true",
        help="use the Python twins even when the Rust services are built",
    )
    parser.add_argument("--config", default=None, help="shared config (default ./tradewire.toml)")
    parser.add_argument(
        "--report-dir",
        default="tradewire-demo-report",
        help="where the HTML report of the recorded orders and positions goes",
    )
    parser.add_argument("--no-report", action="store_true", help="do not record or report")
    parser.add_argument(
        "--roundtrip",
        action="store_true",
        help="instead: every message type Python -> Rust -> Python, with bytes",
    )
    parser.add_argument("--json", action="store_true", help="print a machine-readable summary")
    parser.set_defaults(handler=_run)

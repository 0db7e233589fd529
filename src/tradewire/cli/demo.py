"""`tradewire demo`."""

from __future__ import annotations

import argparse
from typing import Any


def _run(args: argparse.Namespace) -> int:
    from tradewire import demo

    return demo.run(as_json=args.json)


def register(sub: Any) -> None:
    parser = sub.add_parser("demo", help="round-trip every message type Python -> Rust -> Python")
    parser.add_argument("--json", action="store_true", help="print a machine-readable summary")
    parser.set_defaults(handler=_run)

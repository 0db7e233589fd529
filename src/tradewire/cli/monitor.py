"""`tradewire monitor`."""

from __future__ import annotations

import argparse
from typing import Any


def _run(args: argparse.Namespace) -> int:
    from tradewire import monitor

    return monitor.run(args)


def register(sub: Any) -> None:
    parser = sub.add_parser("monitor", help="print live messages of a pub/sub channel")
    parser.add_argument(
        "--endpoint", required=True, help="publisher endpoint, e.g. ipc:///tmp/md.ipc"
    )
    parser.add_argument(
        "--channel", default="market_data", help="channel name (default market_data)"
    )
    parser.add_argument("--symbols", nargs="*", default=None, help="only these keys")
    parser.add_argument(
        "--count", type=int, default=0, help="exit after N messages (0: run forever)"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=0.0,
        help="exit with status 1 after this many idle seconds (0: never)",
    )
    parser.add_argument(
        "--peer-timeout",
        type=float,
        default=3.0,
        help="report peer_lost after this many silent seconds (default 3)",
    )
    parser.add_argument(
        "--from-start",
        action="store_true",
        help="start each publisher's stream at seq 1: what it still holds is replayed first "
        "(default: from the live stream on)",
    )
    parser.add_argument("--json", action="store_true", help="one JSON object per message")
    parser.set_defaults(handler=_run)

"""The `tradewire` command: one entry point, a subcommand per job."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

Handler = Callable[[argparse.Namespace, list[str]], int]


def _codegen(args: argparse.Namespace, rest: list[str]) -> int:
    try:
        import tradewire_codegen
    except ImportError as exc:  # pragma: no cover - depends on the install
        print(
            f"tradewire codegen needs the codegen extra: pip install 'tradewire[codegen]' ({exc})",
            file=sys.stderr,
        )
        return 2
    return tradewire_codegen.main(rest)


def _demo(args: argparse.Namespace, rest: list[str]) -> int:
    from tradewire import demo

    return demo.run(as_json=args.json)


def _monitor(args: argparse.Namespace, rest: list[str]) -> int:
    from tradewire import monitor

    return monitor.run(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tradewire",
        description="Protocol-first messaging for Python research and Rust execution.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    codegen = sub.add_parser(
        "codegen",
        add_help=False,
        help="generate Python and Rust code from schema/ (see `tradewire codegen --help`)",
    )
    codegen.set_defaults(handler=_codegen, passthrough=True)

    demo = sub.add_parser("demo", help="round-trip every message type Python -> Rust -> Python")
    demo.add_argument("--json", action="store_true", help="print a machine-readable summary")
    demo.set_defaults(handler=_demo)

    monitor = sub.add_parser("monitor", help="print live messages of a pub/sub channel")
    monitor.add_argument(
        "--endpoint", required=True, help="publisher endpoint, e.g. ipc:///tmp/md.ipc"
    )
    monitor.add_argument(
        "--channel", default="market_data", help="channel name (default market_data)"
    )
    monitor.add_argument("--symbols", nargs="*", default=None, help="only these keys")
    monitor.add_argument(
        "--count", type=int, default=0, help="exit after N messages (0: run forever)"
    )
    monitor.add_argument(
        "--timeout",
        type=float,
        default=0.0,
        help="exit with status 1 after this many idle seconds (0: never)",
    )
    monitor.add_argument("--json", action="store_true", help="one JSON object per message")
    monitor.set_defaults(handler=_monitor)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if argv and argv[0] == "codegen":  # codegen owns its own flags and --help
        return _codegen(argparse.Namespace(), argv[1:])
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    return handler(args, [])


if __name__ == "__main__":
    sys.exit(main())

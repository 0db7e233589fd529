"""The `tradewire` command: one entry point, one module per subcommand.

Each module in this package defines `register(subparsers)`, which adds its parser and sets
`handler` (a function of the parsed arguments returning the exit status). Add a subcommand
by adding a module and its name to SUBCOMMANDS.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

SUBCOMMANDS = ["codegen", "demo", "monitor", "orders", "control", "config", "conformance",
               "record", "report"]  # fmt: skip

Handler = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tradewire",
        description="Protocol-first messaging for Python research and Rust execution.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in SUBCOMMANDS:
        importlib.import_module(f"tradewire.cli.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list and args_list[0] == "codegen":  # codegen owns its flags and --help
        from tradewire.cli.codegen import run_codegen

        return run_codegen(args_list[1:])
    args = build_parser().parse_args(args_list)
    handler: Handler = args.handler
    return handler(args)

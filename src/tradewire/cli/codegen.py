"""`tradewire codegen`: delegates to tradewire_codegen (shipped in the same wheel)."""

from __future__ import annotations

import sys
from typing import Any


def run_codegen(argv: list[str]) -> int:
    try:
        import tradewire_codegen
    except ImportError as exc:  # pragma: no cover - depends on the install
        hint = "pip install 'tradewire[codegen]'"
        print(f"tradewire codegen needs the codegen extra: {hint} ({exc})", file=sys.stderr)
        return 2
    return tradewire_codegen.main(argv)


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "codegen",
        add_help=False,
        help="generate Python and Rust code from schema/ (see `tradewire codegen --help`)",
    )
    parser.set_defaults(handler=lambda args: run_codegen([]))

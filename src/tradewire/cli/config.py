"""`tradewire config show`: the effective configuration (file + environment overrides)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from tradewire.cli._endpoints import add_config_flag


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return repr(value)


def _show(args: argparse.Namespace) -> int:
    from tradewire.config import ConfigError, load_config

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    data = config.as_dict()
    source = str(config.file) if config.file is not None else None
    if args.json:
        print(json.dumps({"file": source, **data}, indent=2))
        return 0
    print(f"# effective configuration: {source or 'built-in defaults (no file)'}")
    print("# with TRADEWIRE__SECTION__KEY environment overrides applied")
    for section, values in data.items():
        print(f"\n[{section}]")
        for key, value in values.items():
            print(f"{key} = {_toml_value(value)}")
    return 0


def register(sub: Any) -> None:
    parser = sub.add_parser("config", help="show the effective shared configuration")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    show = actions.add_parser("show", help="print the configuration after env overrides")
    add_config_flag(show)
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(handler=_show)

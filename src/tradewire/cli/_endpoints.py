"""Endpoint resolution shared by subcommands: an explicit flag wins, else the shared config."""

from __future__ import annotations

import argparse
from typing import Any


def add_config_flag(parser: Any) -> None:
    parser.add_argument(
        "--config",
        default=None,
        help="shared config file (default $TRADEWIRE_CONFIG, else ./tradewire.toml)",
    )


def endpoint(args: argparse.Namespace, channel: str, explicit: str | None) -> str:
    """`explicit` if given, else endpoints.<channel> of the shared configuration."""
    if explicit:
        return explicit
    from tradewire.config import load_config

    found: str = getattr(load_config(args.config).endpoints, channel)
    return found

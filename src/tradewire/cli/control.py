"""`tradewire control`: send a strategy command, print its acknowledgement."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from tradewire.cli._endpoints import add_config_flag, endpoint


def _command(args: argparse.Namespace) -> Any:
    from tradewire.messages import StrategyCommand

    cmd = StrategyCommand(reason=args.reason, symbol=getattr(args, "symbol", "") or "")
    if args.action == "risk-limits":
        cmd.type = StrategyCommand.UPDATE_RISK_LIMITS
        limits = {
            "max_position_size": args.max_position_size,
            "max_daily_loss": args.max_daily_loss,
        }
        cmd.parameters.update({k: v for k, v in limits.items() if v is not None})
        for item in args.set or []:
            name, sep, value = item.partition("=")
            try:
                if not sep or not name:
                    raise ValueError(item)
                cmd.parameters[name] = float(value)
            except ValueError:
                raise SystemExit(f"--set {item!r}: expected NAME=NUMBER") from None
        if not cmd.parameters:
            raise SystemExit("risk-limits needs --max-position-size, --max-daily-loss or --set")
    else:
        cmd.type = {
            "pause": StrategyCommand.PAUSE_TRADING,
            "resume": StrategyCommand.RESUME_TRADING,
            "kill-switch": StrategyCommand.KILL_SWITCH,
        }[args.action]
    return cmd


def _run(args: argparse.Namespace) -> int:
    from tradewire.channels import CommandsClient
    from tradewire.messages import CommandAck
    from tradewire.transport import CommandTimeout

    command = _command(args)
    target = endpoint(args, "commands", args.endpoint)
    try:
        with CommandsClient(target) as client:
            ack = client.send(command, timeout=args.timeout)
    except CommandTimeout as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    outcome = CommandAck.Outcome.Name(ack.outcome)
    if args.json:
        print(
            json.dumps(
                {
                    "command_id": ack.command_id,
                    "outcome": outcome,
                    "reason": ack.reason,
                    "engine_timestamp_us": ack.engine_timestamp_us,
                    "duplicate": ack.duplicate,
                }
            )
        )
    else:
        note = f" ({ack.reason})" if ack.reason else ""
        print(f"{args.action}: {outcome}{note} [command {ack.command_id}]")
    return 0 if ack.outcome == CommandAck.APPLIED else 1


def register(sub: Any) -> None:
    parser = sub.add_parser("control", help="send a strategy command and print its ack")
    parser.add_argument("--endpoint", default=None, help="command endpoint (default: config)")
    add_config_flag(parser)
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for the ack")
    parser.add_argument("--reason", default="tradewire control", help="audit-log reason")
    parser.add_argument("--json", action="store_true", help="print the ack as JSON")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    limits = actions.add_parser("risk-limits", help="update risk limits")
    limits.add_argument("--max-position-size", type=float, default=None)
    limits.add_argument("--max-daily-loss", type=float, default=None)
    limits.add_argument("--set", nargs="*", metavar="NAME=VALUE", help="other parameters")
    for name, text in (("pause", "stop opening orders"), ("resume", "resume trading")):
        action = actions.add_parser(name, help=f"{text} for --symbol, or all symbols")
        action.add_argument("--symbol", default="", help="one symbol (default: all)")
    actions.add_parser("kill-switch", help="cancel open orders, reject new ones until resumed")
    parser.set_defaults(handler=_run)

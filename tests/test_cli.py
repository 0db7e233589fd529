"""The `tradewire` command: every subcommand has --help; the round-trip demo and control
work end to end."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tradewire.cli import SUBCOMMANDS, build_parser
from tradewire.cli import main as cli_main

TRADEWIRE = [sys.executable, "-m", "tradewire.cli"]


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_every_subcommand_has_help(name: str) -> None:
    result = subprocess.run([*TRADEWIRE, name, "--help"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "usage: tradewire" in result.stdout


def test_parser_lists_every_subcommand() -> None:
    help_text = build_parser().format_help()
    for name in SUBCOMMANDS:
        assert name in help_text


def test_roundtrip_demo_reports_identical_bytes(rust_bin_dir: Path) -> None:
    result = subprocess.run(
        [*TRADEWIRE, "demo", "--roundtrip", "--json"],
        capture_output=True,
        text=True,
        env={"TRADEWIRE_BIN_DIR": str(rust_bin_dir), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    assert body["ok"] is True
    assert len(body["messages"]) >= 7 and all(m["identical"] for m in body["messages"])


def test_control_prints_the_ack_and_exits_by_outcome(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tradewire.channels import CommandsServer
    from tradewire.messages import CommandAck, StrategyCommand

    endpoint = f"ipc://{tmp_path}/cmd"
    seen: list[StrategyCommand] = []

    def handle(cmd: StrategyCommand) -> CommandAck:
        seen.append(cmd)
        if cmd.type == StrategyCommand.PAUSE_TRADING:
            return CommandAck(outcome=CommandAck.REJECTED, reason="unknown symbol ZZZ")
        return CommandAck(outcome=CommandAck.APPLIED)

    stop = threading.Event()
    with CommandsServer(endpoint, handle) as server:
        thread = threading.Thread(target=server.serve, args=(stop.is_set,), daemon=True)
        thread.start()
        code = cli_main(
            [
                "control",
                "--endpoint",
                endpoint,
                "--json",
                "risk-limits",
                "--max-position-size",
                "500",
                "--set",
                "max_orders=3",
            ]
        )
        ack = json.loads(capsys.readouterr().out)
        rejected = cli_main(["control", "--endpoint", endpoint, "pause", "--symbol", "ZZZ"])
        text = capsys.readouterr().out
        stop.set()
        thread.join(5)
    assert code == 0 and ack["outcome"] == "APPLIED" and ack["command_id"]
    assert dict(seen[0].parameters) == {"max_position_size": 500.0, "max_orders": 3.0}
    assert seen[0].type == StrategyCommand.UPDATE_RISK_LIMITS
    assert rejected == 1 and "REJECTED (unknown symbol ZZZ)" in text
    assert seen[1].symbol == "ZZZ"


def test_control_times_out_with_status_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli_main(
        ["control", "--endpoint", f"ipc://{tmp_path}/none", "--timeout", "0.3", "kill-switch"]
    )
    assert code == 2
    assert "no ack" in capsys.readouterr().err


def test_control_rejects_malformed_parameters(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="expected NAME=NUMBER"):
        cli_main(["control", "--endpoint", f"ipc://{tmp_path}/x", "risk-limits", "--set", "oops"])


def test_orders_tracks_fills_rejects_positions_and_saves_history(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tradewire.channels import OrdersPublisher, PositionsPublisher
    from tradewire.messages import Order, Position

    orders_ep, positions_ep = f"ipc://{tmp_path}/o", f"ipc://{tmp_path}/p"
    history = tmp_path / "history.csv"
    with OrdersPublisher(orders_ep) as orders, PositionsPublisher(positions_ep) as positions:
        positions.publish(Position(symbol="AAPL", quantity=100, avg_cost=10.5))
        result: list[int] = []
        tracker = threading.Thread(
            target=lambda: result.append(
                cli_main(
                    [
                        "orders",
                        "--orders",
                        orders_ep,
                        "--positions",
                        positions_ep,
                        "--count",
                        "3",
                        "--csv",
                        str(history),
                        "--json",
                    ]
                )
            )
        )
        tracker.start()
        while orders.stats.handshakes < 1 or positions.stats.handshakes < 1:
            time.sleep(0.01)  # the tracker's subscriptions are live
        orders.publish(Order(order_id="1", symbol="AAPL", status=Order.SUBMITTED))
        orders.publish(Order(order_id="1", symbol="AAPL", status=Order.FILLED))
        orders.publish(
            Order(
                order_id="2",
                symbol="MSFT",
                status=Order.REJECTED,
                rejection_reason="max_position_size 1000 exceeded",
            )
        )
        tracker.join(10)
    assert result == [0]
    summary = json.loads(capsys.readouterr().out)
    assert (summary["filled"], summary["rejected"], summary["updates"]) == (1, 1, 3)
    assert summary["positions"]["AAPL"]["quantity"] == 100
    rows = history.read_text().splitlines()
    assert len(rows) == 4 and "max_position_size 1000 exceeded" in rows[3]

"""`tradewire orders` as a process: Ctrl-C (SIGINT) and SIGTERM both end the run with
the order history saved to the CSV and the summary printed, exit 0."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tradewire.channels import OrdersPublisher, PositionsPublisher
from tradewire.messages import Order, Position


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_orders_saves_history_on_signal(tmp_path: Path, sig: signal.Signals) -> None:
    orders_ep, positions_ep = f"ipc://{tmp_path}/o", f"ipc://{tmp_path}/p"
    history = tmp_path / "history.csv"
    with OrdersPublisher(orders_ep) as orders, PositionsPublisher(positions_ep) as positions:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tradewire.cli",
                "orders",
                "--orders",
                orders_ep,
                "--positions",
                positions_ep,
                "--csv",
                str(history),
                "--json",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            # Both subscriptions are live once their handshakes are done.
            assert orders.wait_for_subscribers(1, timeout=30), proc.stderr
            assert positions.wait_for_subscribers(1, timeout=30)
            positions.publish(Position(symbol="AAPL", quantity=100, avg_cost=10.5))
            orders.publish(Order(order_id="1", symbol="AAPL", status=Order.FILLED))
            orders.publish(
                Order(order_id="2", symbol="MSFT", status=Order.REJECTED, rejection_reason="r")
            )
            # The tracker says nothing while it runs: give it a moment to read the two
            # updates (it polls every 50 ms), then stop it.
            time.sleep(0.5)
            assert proc.poll() is None
            proc.send_signal(sig)
            out, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == 0, err[-2000:]
    assert "Traceback" not in err, err
    summary = json.loads(out)
    assert (summary["updates"], summary["filled"], summary["rejected"]) == (2, 1, 1)
    with history.open() as f:
        rows = list(csv.DictReader(f))
    assert [(r["order_id"], r["status"], r["rejection_reason"]) for r in rows] == [
        ("1", "FILLED", ""),
        ("2", "REJECTED", "r"),
    ]

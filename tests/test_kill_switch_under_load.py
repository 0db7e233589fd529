"""A kill switch is acknowledged while 100 k msg/s of market data flows between the same
two processes (issue 4, test 3). The figures are printed, not asserted (benchmarks do that)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tradewire.channels import CommandsClient, MarketDataSubscriber
from tradewire.messages import CommandAck, StrategyCommand

PEER = Path(__file__).resolve().parent / "peers" / "py_engine.py"


@pytest.mark.slow
def test_kill_switch_is_acknowledged_under_market_data_load(tmp_path: Path) -> None:
    md, cmd = f"ipc://{tmp_path}/md", f"ipc://{tmp_path}/cmd"
    engine = subprocess.Popen(
        [sys.executable, str(PEER), "--md", md, "--commands", cmd, "--rate", "100000"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert engine.stdout is not None and engine.stdout.readline().strip() == "ready"
        with MarketDataSubscriber(md, rcvhwm=1_000_000) as sub, CommandsClient(cmd) as client:
            first = sub.recv(timeout=5)
            assert first is not None
            started = time.monotonic()
            received = 0
            while time.monotonic() - started < 1.0:  # let the flow settle, keep draining
                received += sub.recv(timeout=1) is not None
            sent = time.perf_counter()
            ack = client.send(
                StrategyCommand(type=StrategyCommand.KILL_SWITCH, command_id="kill-under-load"),
                timeout=5,
            )
            ack_ms = (time.perf_counter() - sent) * 1000
        line = engine.stdout.readline().split()
    finally:
        engine.kill()
        engine.wait(10)
        if engine.stdout is not None:
            engine.stdout.close()
    assert (ack.command_id, ack.outcome, ack.duplicate) == (
        "kill-under-load",
        CommandAck.APPLIED,
        False,
    )
    assert line[:2] == ["kill", "kill-under-load"]
    assert int(line[2]) > 20_000, "market data must have been flowing when the kill arrived"
    print(f"kill-switch ack {ack_ms:.2f} ms while the engine published {int(line[3]):,} msg/s")

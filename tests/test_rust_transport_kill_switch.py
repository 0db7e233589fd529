"""Issue 4, test 3 with a Rust engine: a kill switch from a Python client is acknowledged
while `tradewire-engine-demo` publishes 100 k msg/s of market data from the same process
to the same Python process. The figures are printed, not asserted (benchmarks do that)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from tradewire.channels import CommandsClient, MarketDataSubscriber
from tradewire.messages import CommandAck, StrategyCommand


@pytest.mark.slow
def test_kill_switch_is_acknowledged_by_a_rust_engine_under_market_data_load(
    rust_bin_dir: Path, tmp_path: Path
) -> None:
    md, cmd = f"ipc://{tmp_path}/md", f"ipc://{tmp_path}/cmd"
    engine = subprocess.Popen(
        [str(rust_bin_dir / "tradewire-engine-demo"), "--md", md, "--commands", cmd,
         "--rate", "100000"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
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
            ack = client.send(StrategyCommand(type=StrategyCommand.KILL_SWITCH,
                                              command_id="kill-under-load"), timeout=5)  # fmt: skip
            ack_ms = (time.perf_counter() - sent) * 1000
            after = 0
            settle = time.monotonic()
            while time.monotonic() - settle < 0.2:  # market data still flows after the kill
                after += sub.recv(timeout=1) is not None
            stats = sub.stats
        line = engine.stdout.readline().split()
    finally:
        engine.kill()
        engine.wait(10)
        for stream in (engine.stdin, engine.stdout):
            if stream is not None:
                stream.close()
    assert (ack.command_id, ack.outcome, ack.duplicate) == (
        "kill-under-load", CommandAck.APPLIED, False)  # fmt: skip
    assert line[:2] == ["kill", "kill-under-load"]
    assert int(line[2]) > 20_000, "market data must have been flowing when the kill arrived"
    assert received > 20_000 and after > 0, (received, after)
    print(
        f"Rust engine: kill-switch ack {ack_ms:.2f} ms while it published "
        f"{int(line[3]):,} msg/s; Python subscriber took {received:,} msg in the second "
        f"before (gaps {stats.gaps}, unrecoverable {stats.unrecoverable})"
    )

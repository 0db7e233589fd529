"""`tradewire demo` end to end: every service really runs, messages flow on every channel,
and the run ends cleanly (exit 0, service summaries, no leftover ipc files or processes),
at the end of --duration and on Ctrl-C."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tradewire.demo import services

TRADEWIRE = [sys.executable, "-m", "tradewire.cli"]


def _check(summary: dict[str, Any], impl: str) -> None:
    assert summary["impl"] == impl
    messages = summary["messages"]
    assert set(messages) == {"market_data", "signals", "orders", "positions"}, messages
    assert all(messages[c] > 0 for c in ("market_data", "signals")), messages
    assert summary["leftover_ipc_files"] == []
    procs = summary["services"]
    assert isinstance(procs, dict) and set(procs) == set(services.SERVICES)
    assert all(p["exit"] == 0 and p["summary"] for p in procs.values()), procs
    assert summary["unrecoverable"] == 0
    # The machine-readable summary the issue asks for.
    assert isinstance(summary["gaps"], int)
    assert isinstance(summary["orders"], dict) and isinstance(summary["fills"], int)
    assert sum(summary["orders"].values()) == messages["orders"]
    assert summary["fills"] == summary["orders"].get("FILLED", 0)
    assert isinstance(summary["pnl"], int | float)
    for channel in ("market_data", "signals"):
        lat = summary["latency_us"][channel]
        assert 0 < lat["p50"] <= lat["p99"] <= lat["p99.9"], lat
    # The dashboard saw what the services say they did.
    md = procs["market-data"]["summary"]
    assert 0 < messages["market_data"] <= md["published"]
    assert messages["signals"] <= procs["signal-bridge"]["summary"]["signals"]


def _pids(summary: dict[str, Any]) -> list[int]:
    pids = [p["pid"] for p in summary["services"].values()]
    if "recorder_pid" in summary:
        pids.append(summary["recorder_pid"])
    assert all(isinstance(p, int) and p > 1 for p in pids), pids
    return pids


def _alive(pid: int) -> bool:
    """The process exists and is not a zombie (the demo reaps its children)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _processes_using(run_dir: str) -> list[int]:
    """Processes whose environment names the demo's run directory: how the services
    get their endpoints (TRADEWIRE__ENDPOINTS__*), so any leftover one would show here."""
    needle = run_dir.encode()
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            environ = (proc / "environ").read_bytes()
        except OSError:  # gone, or not ours
            continue
        if needle in environ:
            found.append(int(proc.name))
    return found


def _assert_no_processes_left(summary: dict[str, Any]) -> None:
    pids = _pids(summary)
    assert [p for p in pids if _alive(p)] == [], f"demo processes still running: {pids}"
    run_dir = summary["run_dir"]
    assert "tradewire-demo-" in run_dir and not Path(run_dir).exists()
    assert _processes_using(run_dir) == []


def test_orphan_check_sees_a_process_holding_the_run_dir(tmp_path: Path) -> None:
    """The checks above can fail: a process started like a service is found."""
    run_dir = tmp_path / "tradewire-demo-x"
    env = {**os.environ, "TRADEWIRE__ENDPOINTS__MARKET_DATA": f"ipc://{run_dir}/market_data"}
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], env=env)
    try:
        assert _alive(proc.pid)
        deadline = time.monotonic() + 10
        while proc.pid not in _processes_using(str(run_dir)):  # exec may still be running
            assert time.monotonic() < deadline
            time.sleep(0.01)
    finally:
        proc.kill()
        proc.wait()
    assert not _alive(proc.pid)
    assert _processes_using(str(run_dir)) == []


@pytest.mark.slow
@pytest.mark.parametrize("impl", ["rust", "python"])
def test_demo_runs_the_pipeline_and_stops_cleanly(
    impl: str, rust_bin_dir: Path, tmp_path: Path
) -> None:
    if impl == "rust":
        subprocess.run(
            [
                "cargo",
                "build",
                "--release",
                "--locked",
                "-p",
                "market-data",
                "-p",
                "execution-engine",
                "-p",
                "signal-bridge",
            ],
            check=True,
            capture_output=True,
        )
    # The Rust run also takes --symbols and --rate; the Python one the defaults.
    flags = ["--python-services"] if impl == "python" else ["--symbols", "X", "Y", "--rate", "300"]
    symbols = ["AAPL", "MSFT", "GOOG"] if impl == "python" else ["X", "Y"]
    rate = 1000.0 if impl == "python" else 300.0
    report = tmp_path / "report"
    result = subprocess.run(
        [*TRADEWIRE, "demo", "--duration", "4", "--json", "--report-dir", str(report), *flags],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(result.stdout)
    _check(summary, impl)
    assert summary["recorder_exit"] == 0
    assert summary["report"] == str(report / "index.html")
    assert {p.name for p in report.iterdir()} >= {"index.html", "pnl.png", "positions.png"}
    assert f"{impl} services" in result.stderr
    assert sorted(summary["last_prices"]) == sorted(symbols)
    assert all(p > 0 for p in summary["last_prices"].values())
    md = summary["services"]["market-data"]["summary"]
    assert md["symbols"] == symbols
    # The rate is honoured, roughly: paced, so never far above; not starved far below.
    assert 0.5 * rate <= md["rate"] <= 1.1 * rate, md
    assert md["published"] <= 1.1 * rate * md["seconds"] + 1, md
    _assert_no_processes_left(summary)


@pytest.mark.slow
def test_ctrl_c_stops_everything_cleanly() -> None:
    proc = subprocess.Popen(
        [*TRADEWIRE, "demo", "--duration", "120", "--json", "--python-services", "--no-report"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    seen = []
    for line in proc.stderr:  # training the model and starting the services: a few seconds
        seen.append(line)
        if "pipeline running" in line:
            break
    assert "pipeline running" in seen[-1], seen
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-2000:]
    summary = json.loads(out)
    assert summary["leftover_ipc_files"] == []
    assert all(p["exit"] == 0 for p in summary["services"].values())
    _assert_no_processes_left(summary)


def test_without_rust_builds_the_demo_says_so_and_runs_the_twins(tmp_path: Path) -> None:
    env = {**os.environ, "TRADEWIRE_BIN_DIR": str(tmp_path / "no-build-here")}
    result = subprocess.run(
        [*TRADEWIRE, "demo", "--duration", "2", "--json", "--no-report"],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "python services (Rust services not built" in result.stderr
    summary = json.loads(result.stdout)
    assert summary["impl"] == "python"
    assert summary["messages"]["market_data"] > 0
    _assert_no_processes_left(summary)


def test_dashboard_renders_every_figure() -> None:
    from rich.console import Console

    from tradewire.demo.dashboard import render
    from tradewire.demo.watch import ChannelStats, PipelineView
    from tradewire.messages import Order, Position, TradingSignal

    md = ChannelStats()
    for i in range(100):
        md.add(time.monotonic(), time.time_ns() - (i + 1) * 1000)  # 1..100 µs old
    view = PipelineView(channels={"market_data": md})
    view.last_prices["AAPL"] = 187.5
    view.last_signals["AAPL"] = TradingSignal(
        symbol="AAPL", signal=TradingSignal.BUY, confidence=0.83
    )
    view.positions["AAPL"] = Position(
        symbol="AAPL", quantity=100, avg_cost=180.25, realized_pnl=12.5, unrealized_pnl=7.5
    )
    view.order_statuses["FILLED"] = 3
    view.recent_orders.append(
        Order(order_id="o-42", symbol="AAPL", side=Order.BUY, quantity=100, price=180.25,
              status=Order.REJECTED, rejection_reason="max_position_size")
    )  # fmt: skip
    console = Console(width=160, record=True, file=io.StringIO())
    console.print(render(view, "tradewire demo", 3.0))
    text = console.export_text()
    expected = ["market_data", "100", "AAPL", "187.50", "BUY", "0.83", "180.25", "20.00"]
    expected += ["o-42", "REJECTED", "max_position_size", "P&L 20.00", "'FILLED': 3"]
    for item in expected:
        assert item in text, (item, text)

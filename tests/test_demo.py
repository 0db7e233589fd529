"""`tradewire demo` end to end: every service really runs, messages flow on every channel,
and the run ends cleanly (exit 0, service summaries, no leftover ipc files or processes),
at the end of --duration and on Ctrl-C."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tradewire.demo import services

TRADEWIRE = [sys.executable, "-m", "tradewire.cli"]


def _check(summary: dict[str, object], impl: str) -> None:
    assert summary["impl"] == impl
    messages = summary["messages"]
    assert isinstance(messages, dict)
    assert all(messages[c] > 0 for c in ("market_data", "signals", "positions")), messages
    assert summary["leftover_ipc_files"] == []
    procs = summary["services"]
    assert isinstance(procs, dict) and set(procs) == set(services.SERVICES)
    assert all(p["exit"] == 0 and p["summary"] for p in procs.values()), procs
    assert summary["unrecoverable"] == 0


def _no_demo_processes_left() -> bool:
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    return not any("tradewire-demo-" in line for line in ps.splitlines())


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
    flags = ["--python-services"] if impl == "python" else []
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
    assert _no_demo_processes_left()


@pytest.mark.slow
def test_ctrl_c_stops_everything_cleanly() -> None:
    proc = subprocess.Popen(
        [*TRADEWIRE, "demo", "--duration", "120", "--json", "--python-services", "--no-report"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(12)  # training the model and starting three services takes a few seconds
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-2000:]
    summary = json.loads(out)
    assert summary["leftover_ipc_files"] == []
    assert all(p["exit"] == 0 for p in summary["services"].values())
    assert _no_demo_processes_left()

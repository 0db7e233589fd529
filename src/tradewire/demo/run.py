"""`tradewire demo`: the whole pipeline, live.

market-data -> signal-bridge (features + ONNX) -> execution-engine, in Rust when built,
else the Python twins; the dashboard subscribes to every channel. Stops cleanly at the end
of --duration or on Ctrl-C: services get SIGTERM, their summaries are collected, the run
directory (ipc files, model registry) is removed.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType
from typing import Any

from tradewire.demo import services
from tradewire.demo.services import Service
from tradewire.demo.watch import Watcher
from tradewire.roundtrip import repo_root

CHANNELS = ("market_data", "signals", "orders", "positions", "commands")


def _train_model(run_dir: Path) -> Path:
    """A small model in a fresh registry: the demo needs no prior training step."""
    from tradewire.ml.__main__ import main as ml_main

    registry = run_dir / "models"
    with open(os.devnull, "w") as quiet:
        saved, sys.stdout = sys.stdout, quiet
        try:
            ml_main(
                ["train", "--registry", str(registry), "--epochs", "3", "--name", "trading_model"]
            )
        finally:
            sys.stdout = saved
    return registry


def _environment(run_dir: Path, registry: Path, symbols: list[str], rate: float) -> dict[str, str]:
    env = dict(os.environ)
    for channel in CHANNELS:
        env[f"TRADEWIRE__ENDPOINTS__{channel.upper()}"] = f"ipc://{run_dir}/{channel}"
    env["TRADEWIRE__MODEL__REGISTRY"] = str(registry)
    env["TRADEWIRE__MODEL__NAME"] = "trading_model"
    env["TRADEWIRE__MARKET_DATA__SYMBOLS"] = json.dumps(symbols)
    env["TRADEWIRE__MARKET_DATA__RATE"] = str(rate)
    # signal-bridge, execution-engine and the dashboard: publish once all three are live
    env["TRADEWIRE__MARKET_DATA__WAIT_SUBSCRIBERS"] = "3"
    return env


class _Stop:
    def __init__(self) -> None:
        self.requested = False

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True


def _start_recorder(run_dir: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """`tradewire record` on orders and positions into a SQLite file of the run."""
    command = [
        sys.executable,
        "-m",
        "tradewire.cli",
        "record",
        "--orders",
        f"ipc://{run_dir}/orders",
        "--positions",
        f"ipc://{run_dir}/positions",
        "--db",
        str(run_dir / "demo.db"),
        "--snapshot-interval",
        "1",
    ]
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _stop_recorder(recorder: subprocess.Popen[bytes]) -> int:
    recorder.send_signal(signal.SIGTERM)
    try:
        return recorder.wait(30)
    except subprocess.TimeoutExpired:
        recorder.kill()
        return recorder.wait()


def _report(run_dir: Path, out: Path) -> Path | None:
    """The HTML report of what the recorder stored (None when it could not be made)."""
    command = [
        sys.executable,
        "-m",
        "tradewire.cli",
        "report",
        "--db",
        str(run_dir / "demo.db"),
        "--out",
        str(out),
    ]
    made = subprocess.run(command, capture_output=True, text=True, timeout=120)
    index = out / "index.html"
    return index if made.returncode == 0 and index.exists() else None


def run(
    duration: float,
    symbols: list[str],
    rate: float,
    python_services: bool,
    as_json: bool,
    config: Path | None = None,
    report_dir: Path | None = None,
) -> int:
    impl = "python" if python_services or not services.rust_available() else "rust"
    if python_services:
        reason = "--python-services"
    elif impl == "rust":
        reason = "Rust services are built"
    else:
        reason = "Rust services not built (cargo build --release): using the Python twins"
    log = sys.stderr if as_json else sys.stdout
    print(f"tradewire demo: {impl} services ({reason})", file=log, flush=True)
    run_dir = Path(tempfile.mkdtemp(prefix="tradewire-demo-"))
    config_path = config or repo_root() / "tradewire.toml"
    started: list[Service] = []
    stop = _Stop()
    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    summary: dict[str, Any] = {"impl": impl}
    watcher: Watcher | None = None
    recorder: subprocess.Popen[bytes] | None = None
    try:
        registry = _train_model(run_dir)
        env = _environment(run_dir, registry, symbols, rate)
        for name in services.SERVICES:
            started.append(services.start(name, impl, config_path, env, []))
        if report_dir is not None:
            recorder = _start_recorder(run_dir, env)
        watcher = Watcher({c: f"ipc://{run_dir}/{c}" for c in CHANNELS})
        print(f"tradewire demo: pipeline running ({run_dir})", file=log, flush=True)
        _watch(watcher, duration, stop, as_json)
        summary.update(watcher.summary())
    finally:
        if watcher is not None:
            watcher.close()
        if recorder is not None:
            summary["recorder_exit"] = _stop_recorder(recorder)
        codes = {s.name: services.stop(s) for s in reversed(started)}
        summary["services"] = {
            s.name: {"pid": s.proc.pid, "exit": codes[s.name], "summary": s.summary()}
            for s in started
        }
        if recorder is not None:
            summary["recorder_pid"] = recorder.pid
        summary["run_dir"] = str(run_dir)
        if recorder is not None and report_dir is not None:
            index = _report(run_dir, report_dir)
            summary["report"] = str(index) if index else None
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        leftovers = sorted(p.name for p in run_dir.glob("*") if p.is_socket())
        summary["leftover_ipc_files"] = leftovers
        shutil.rmtree(run_dir, ignore_errors=True)
    ok = all(code == 0 for code in codes.values()) and not leftovers
    ok = ok and summary.get("recorder_exit", 0) == 0
    if as_json:
        print(json.dumps(summary, indent=2))
    else:
        keys = ("messages", "fills", "pnl", "gaps")
        print(json.dumps({k: summary[k] for k in keys if k in summary}))
    if summary.get("report"):
        print(f"report: {summary['report']}", file=log, flush=True)
    return 0 if ok else 1


def _watch(watcher: Watcher, duration: float, stop: _Stop, as_json: bool) -> None:
    started = time.monotonic()
    if as_json or not sys.stdout.isatty():
        while not stop.requested and time.monotonic() - started < duration:
            watcher.poll(0.1)
        return
    from rich.live import Live

    from tradewire.demo.dashboard import render

    with Live(render(watcher.view, "tradewire demo", 0.0), refresh_per_second=4) as live:
        while not stop.requested and time.monotonic() - started < duration:
            watcher.poll(0.2)
            live.update(render(watcher.view, "tradewire demo", time.monotonic() - started))

"""Start and stop the reference services as real processes (Rust when built, else Python).

The service contract (reference_services/SPEC.md): `--config PATH`, env overrides
TRADEWIRE__SECTION__KEY, one JSON `ready` line on stdout once live, one JSON `summary`
line after SIGTERM, exit 0, ipc files removed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from tradewire.roundtrip import repo_root

SERVICES = ("execution-engine", "signal-bridge", "market-data")  # start order


def rust_binary(name: str) -> Path | None:
    """The built Rust service: in $TRADEWIRE_BIN_DIR when set (your own build), else in
    target/release; None when it is not there."""
    bin_dir = os.environ.get("TRADEWIRE_BIN_DIR")
    path = (Path(bin_dir) if bin_dir else repo_root() / "target" / "release") / name
    return path if path.is_file() and os.access(path, os.X_OK) else None


def rust_available() -> bool:
    return all(rust_binary(name) for name in SERVICES)


def command_for(name: str, impl: str, config: Path, extra: list[str]) -> list[str]:
    if impl == "rust":
        binary = rust_binary(name)
        if binary is None:
            raise FileNotFoundError(f"{name} is not built: cargo build --release -p {name}")
        return [str(binary), "--config", str(config), *extra]
    script = repo_root() / "reference_services" / "python" / f"{name.replace('-', '_')}.py"
    return [sys.executable, str(script), "--config", str(config), *extra]


@dataclass
class Service:
    """One running service process and the JSON lines it printed."""

    name: str
    impl: str
    proc: subprocess.Popen[str]
    lines: list[dict[str, Any]] = field(default_factory=list)
    ready: threading.Event = field(default_factory=threading.Event)
    stderr_tail: list[str] = field(default_factory=list)
    readers: list[threading.Thread] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        for line in reversed(self.lines):
            if "summary" in line:
                found: dict[str, Any] = line["summary"]
                return found
        return {}


def _pump_stdout(service: Service, stream: IO[str]) -> None:
    for raw in stream:
        try:
            line = json.loads(raw)
        except json.JSONDecodeError:
            continue
        service.lines.append(line)
        if line.get("ready"):
            service.ready.set()


def _pump_stderr(service: Service, stream: IO[str]) -> None:
    for raw in stream:
        service.stderr_tail = [*service.stderr_tail[-19:], raw.rstrip()]


def start(
    name: str, impl: str, config: Path, env: dict[str, str], extra: list[str], timeout: float = 30.0
) -> Service:
    """Start a service and wait for its ready line."""
    proc = subprocess.Popen(
        command_for(name, impl, config, extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )
    service = Service(name, impl, proc)
    assert proc.stdout is not None and proc.stderr is not None
    service.readers = [
        threading.Thread(target=_pump_stdout, args=(service, proc.stdout), daemon=True),
        threading.Thread(target=_pump_stderr, args=(service, proc.stderr), daemon=True),
    ]
    for reader in service.readers:
        reader.start()
    deadline = time.monotonic() + timeout
    while not service.ready.wait(0.05):
        if proc.poll() is not None or time.monotonic() > deadline:
            stop(service)
            why = "exited" if proc.returncode is not None else f"not ready after {timeout}s"
            tail = "\n".join(service.stderr_tail[-10:])
            raise RuntimeError(f"{name} ({impl}) {why}:\n{tail}")
    return service


def stop(service: Service, timeout: float = 10.0) -> int:
    """SIGTERM, wait for the summary and exit; SIGKILL the process group if it hangs."""
    proc = service.proc
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    for reader in service.readers:  # they end at EOF, once the process is gone
        reader.join(5)
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()
    return proc.returncode

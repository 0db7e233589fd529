"""Driving the Rust transport binaries (`tradewire-publish`, `tradewire-subscribe`) from
tests: start them, wait for their ready line, read their JSON output."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest


def publish(
    rust_bin_dir: Path, endpoint: str, *args: str, stdin: bool = False
) -> subprocess.Popen[str]:
    """Starts tradewire-publish (with a stdin pipe when asked)."""
    return subprocess.Popen(
        [str(rust_bin_dir / "tradewire-publish"), "--endpoint", endpoint, *args],
        stdin=subprocess.PIPE if stdin else None,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def summary(proc: subprocess.Popen[str]) -> dict[str, Any]:
    """The last JSON line of a binary that exits 0."""
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    last: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return last


def subscribe(rust_bin_dir: Path, endpoint: str, *args: str) -> subprocess.Popen[str]:
    """Starts tradewire-subscribe and returns once it printed its ready line, i.e. once
    its connect (subscription handshake included) has returned."""
    proc = subprocess.Popen(
        [str(rust_bin_dir / "tradewire-subscribe"), "--endpoint", endpoint, "--json", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()
    if not first:
        proc.wait(timeout=10)
        pytest.fail(
            f"tradewire-subscribe did not start: {proc.stderr.read() if proc.stderr else ''}"
        )
    assert json.loads(first)["ready"] is True
    return proc


def lines(
    proc: subprocess.Popen[str],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
    """(messages, events, summary) printed by tradewire-subscribe."""
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, f"exit {proc.returncode}: {err}\n{out[-2000:]}"
    rows = [json.loads(line) for line in out.splitlines() if line.strip()]
    messages = [r for r in rows if "seq" in r]
    events = [r for r in rows if "event" in r]
    last = next(r["summary"] for r in rows if "summary" in r)
    return messages, events, last

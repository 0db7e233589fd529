"""`tradewire monitor` against the Rust publisher `tradewire-publish` (issue 4, CLI
surface): one JSON object per message with publisher id and seq, symbol filtering, exit
after --count messages."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

TRADEWIRE = Path(sys.executable).parent / "tradewire"


def _run(
    rust_bin_dir: Path, endpoint: str, count: int, monitor_args: list[str]
) -> tuple[str, list[dict[str, Any]], str]:
    """(publisher id, the monitor's JSON lines, its stderr): the publisher publishes `count`
    ticks (AAPL, MSFT, GOOG in turn) once the monitor's subscription handshake is done."""
    publisher = subprocess.Popen(
        [str(rust_bin_dir / "tradewire-publish"), "--endpoint", endpoint, "--count", str(count),
         "--symbols", "AAPL,MSFT,GOOG", "--print-ready", "--wait-subscriber",
         "--wait-timeout-ms", "10000", "--hold-until-eof", "--hold-ms", "15000"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert publisher.stdout is not None and publisher.stdin is not None
        ready = json.loads(publisher.stdout.readline())
        monitor = subprocess.run(
            [str(TRADEWIRE), "monitor", "--endpoint", endpoint, "--channel", "market_data",
             "--json", "--timeout", "10", *monitor_args],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        out, err = publisher.communicate(timeout=20)  # closes stdin: stop holding
        assert publisher.returncode == 0, err
    finally:
        publisher.kill()
        publisher.wait(10)
        for stream in (publisher.stdin, publisher.stdout, publisher.stderr):
            if stream is not None:
                stream.close()
    assert monitor.returncode == 0, monitor.stderr
    assert json.loads(out.splitlines()[-1])["count"] == count
    lines = [json.loads(line) for line in monitor.stdout.splitlines()]
    return ready["publisher_id"], lines, monitor.stderr


def test_monitor_prints_json_lines_with_publisher_id_and_seq(
    rust_bin_dir: Path, tmp_path: Path
) -> None:
    publisher_id, lines, _ = _run(rust_bin_dir, f"ipc://{tmp_path}/md", 90, ["--count", "60"])
    assert len(lines) == 60, "exits after --count messages"
    assert [m["seq"] for m in lines] == list(range(1, 61))
    assert {m["publisher_id"] for m in lines} == {publisher_id}
    assert [m["key"] for m in lines[:3]] == ["AAPL", "MSFT", "GOOG"]
    assert all(m["channel"] == "market_data" for m in lines)
    assert all(m["message"]["symbol"] == m["key"] and m["message"]["price"] > 0 for m in lines)


def test_monitor_filters_by_symbol(rust_bin_dir: Path, tmp_path: Path) -> None:
    publisher_id, lines, _ = _run(
        rust_bin_dir, f"ipc://{tmp_path}/md", 90, ["--symbols", "AAPL", "GOOG", "--count", "60"]
    )
    assert len(lines) == 60
    assert {m["key"] for m in lines} == {"AAPL", "GOOG"}
    assert {m["publisher_id"] for m in lines} == {publisher_id}
    for key in ("AAPL", "GOOG"):  # every tick of the subscribed keys, in order
        assert [m["key_seq"] for m in lines if m["key"] == key] == list(range(1, 31))
    # channel seq of the third symbol is skipped, not lost: no gap is reported
    assert [m["seq"] for m in lines if m["key"] == "AAPL"] == list(range(1, 91, 3))
    assert not any("event" in m for m in lines)

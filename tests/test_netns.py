"""Issue 4, test 2: publisher and subscriber on two network namespaces joined by a veth
pair, over tcp. The link goes down for 5 s: the loss is reported within 3 s, replay fills
the gap, nothing is lost. Needs `ip netns` (root); skips with the reason otherwise."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PEER = ROOT / "tests" / "peers" / "py_publisher.py"
TRADEWIRE = Path(sys.executable).parent / "tradewire"


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


@pytest.fixture
def two_hosts() -> Iterator[tuple[str, str, str]]:
    """(publisher netns, subscriber netns, publisher address), removed afterwards."""
    if shutil.which("ip") is None:
        pytest.skip("iproute2 `ip` is not installed")
    tag = secrets.token_hex(3)
    pub_ns, sub_ns = f"twpub{tag}", f"twsub{tag}"
    try:
        _ip("netns", "add", pub_ns)
    except subprocess.CalledProcessError as exc:
        pytest.skip(f"`ip netns add` is not permitted here: {exc.stderr.strip()}")
    try:
        _ip("netns", "add", sub_ns)
        _ip("link", "add", f"twa{tag}", "type", "veth", "peer", "name", f"twb{tag}")
        _ip("link", "set", f"twa{tag}", "netns", pub_ns)
        _ip("link", "set", f"twb{tag}", "netns", sub_ns)
        for ns, dev, addr in (
            (pub_ns, f"twa{tag}", "10.203.0.1/30"),
            (sub_ns, f"twb{tag}", "10.203.0.2/30"),
        ):
            _ip("-n", ns, "addr", "add", addr, "dev", dev)
            _ip("-n", ns, "link", "set", dev, "up")
            _ip("-n", ns, "link", "set", "lo", "up")
        yield pub_ns, sub_ns, "10.203.0.1"
    finally:
        for ns in (pub_ns, sub_ns):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_link_down_for_5s_is_detected_and_replayed(two_hosts: tuple[str, str, str]) -> None:
    pub_ns, sub_ns, address = two_hosts
    endpoint = f"tcp://{address}:7311"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    publisher = subprocess.Popen(
        [
            "ip",
            "netns",
            "exec",
            pub_ns,
            sys.executable,
            str(PEER),
            "--endpoint",
            endpoint,
            "--heartbeat",
            "0.2",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    lines: list[tuple[float, dict[str, object]]] = []
    monitor = None
    try:
        assert publisher.stdout is not None and publisher.stdin is not None
        assert publisher.stdout.readline().startswith("ready")
        total = 10_000
        monitor = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                sub_ns,
                str(TRADEWIRE),
                "monitor",
                "--endpoint",
                endpoint,
                "--count",
                str(total),
                "--json",
                "--peer-timeout",
                "2",
                "--timeout",
                "30",
            ],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert monitor.stdout is not None
        first = monitor.stdout  # read in a thread, stamping each line on arrival

        def read() -> None:
            for line in first:
                lines.append((time.monotonic(), json.loads(line)))

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        publisher.stdin.write("wait 1\n")  # until the monitor's handshake has completed
        publisher.stdin.flush()
        assert publisher.stdout.readline().split() == ["subscribed", "1"]
        publisher.stdin.write(f"go {total} 1000\n")
        publisher.stdin.flush()
        time.sleep(3.0)
        down_at = time.monotonic()
        _ip("-n", sub_ns, "link", "set", f"twb{sub_ns[5:]}", "down")
        time.sleep(5.0)
        _ip("-n", sub_ns, "link", "set", f"twb{sub_ns[5:]}", "up")
        assert monitor.wait(timeout=60) == 0
        reader.join(5)
        assert publisher.stdout.readline().split() == ["done", str(total)]
    finally:
        for proc in (monitor, publisher):
            if proc is not None:
                proc.kill()
                proc.wait(10)
                for stream in (proc.stdin, proc.stdout):
                    if stream is not None:
                        stream.close()
    messages = [body for _, body in lines if "seq" in body]
    events = [(at, body) for at, body in lines if "event" in body]
    assert [m["seq"] for m in messages] == list(range(1, total + 1)), "lost or duplicated"
    kinds = [body["event"] for _, body in events]
    lost_at = next(at for at, body in events if body["event"] == "peer_lost")
    assert lost_at - down_at <= 3.0, f"loss reported {lost_at - down_at:.2f}s after link down"
    assert "gap_recovered" in kinds and "unrecoverable_gap" not in kinds, kinds

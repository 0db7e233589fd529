"""CURVE on the command channel across languages (issue 4, test 6): a Rust command server
with an allow list against Python clients, and a Python CURVE server against the Rust
client. Only allowed keys get a command applied; refusals are logged with the key."""

from __future__ import annotations

import json
import logging
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest

from tradewire.channels import CommandsClient, CommandsServer
from tradewire.messages import CommandAck, StrategyCommand
from tradewire.transport import CommandTimeout, CurveClient, CurveKeyPair, CurveServer


def _free_tcp_endpoint() -> str:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{probe.getsockname()[1]}"


def _kill(command_id: str) -> StrategyCommand:
    return StrategyCommand(type=StrategyCommand.KILL_SWITCH, command_id=command_id)


def test_python_clients_against_a_rust_curve_command_server(rust_bin_dir: Path) -> None:
    server_keys, friend, stranger = (CurveKeyPair.generate() for _ in range(3))
    proc = subprocess.Popen(
        [str(rust_bin_dir / "tradewire-command-server"), "--endpoint", "tcp://127.0.0.1:*",
         "--exit-on-eof", "--curve-secret", server_keys.secret.decode(),
         "--curve-public", server_keys.public.decode(), "--allow", friend.public.decode()],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        ready = json.loads(proc.stdout.readline())
        assert ready["ready"] is True and ready["curve"] is True
        endpoint = ready["endpoint"]
        with CommandsClient(endpoint, curve=CurveClient(friend, server_keys.public)) as ok:
            ack = ok.send(_kill("py-friend"), timeout=5)
        with (
            CommandsClient(endpoint, curve=CurveClient(stranger, server_keys.public)) as bad,
            pytest.raises(CommandTimeout),
        ):
            bad.send(_kill("py-stranger"), timeout=1.0)
        with CommandsClient(endpoint) as plain, pytest.raises(CommandTimeout):
            plain.send(_kill("py-plain"), timeout=1.0)
    finally:
        out, err = proc.communicate(timeout=10)  # closes stdin: the server exits
    assert proc.returncode == 0, err
    assert (ack.command_id, ack.outcome, ack.duplicate) == ("py-friend", CommandAck.APPLIED, False)
    rows = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert [r["applied"] for r in rows if "applied" in r] == ["py-friend"]
    summary: dict[str, Any] = rows[-1]["summary"]
    assert summary["applied"] == 1 and summary["curve_accepted"] >= 1
    assert stranger.public.decode() in summary["rejected_keys"]
    assert (
        f"rejected CURVE client {stranger.public.decode()} on {endpoint}: "
        "key not in the allow list" in err
    ), err


def _rust_command(
    rust_bin_dir: Path,
    endpoint: str,
    command_id: str,
    keys: CurveKeyPair | None,
    server_public: bytes,
    deadline_ms: int,
) -> subprocess.CompletedProcess[str]:
    curve = [] if keys is None else [
        "--curve-secret", keys.secret.decode(), "--curve-public", keys.public.decode(),
        "--server-key", server_public.decode(),
    ]  # fmt: skip
    return subprocess.run(
        [str(rust_bin_dir / "tradewire-command"), "--endpoint", endpoint, "--type", "kill_switch",
         "--command-id", command_id, "--deadline-ms", str(deadline_ms), "--retry-ms", "100",
         *curve],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip


def test_rust_client_against_a_python_curve_command_server(
    rust_bin_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    endpoint = _free_tcp_endpoint()
    server_keys, friend, stranger = (CurveKeyPair.generate() for _ in range(3))
    applied: list[str] = []

    def handle(cmd: StrategyCommand) -> CommandAck:
        applied.append(cmd.command_id)
        return CommandAck(outcome=CommandAck.APPLIED)

    stop = threading.Event()
    curve = CurveServer(server_keys, frozenset({friend.public}))
    with (
        caplog.at_level(logging.WARNING, logger="tradewire.security"),
        CommandsServer(endpoint, handle, curve=curve) as server,
    ):
        thread = threading.Thread(target=server.serve, args=(stop.is_set,), daemon=True)
        thread.start()
        try:
            pub_key = server_keys.public
            ok = _rust_command(rust_bin_dir, endpoint, "rs-friend", friend, pub_key, 5000)
            bad = _rust_command(rust_bin_dir, endpoint, "rs-stranger", stranger, pub_key, 1000)
            plain = _rust_command(rust_bin_dir, endpoint, "rs-plain", None, b"", 1000)
        finally:
            stop.set()
            thread.join(5)
    assert ok.returncode == 0, ok.stderr
    ack = json.loads(ok.stdout)
    assert (ack["command_id"], ack["outcome"], ack["duplicate"]) == ("rs-friend", "APPLIED", False)
    assert bad.returncode == 1 and "timed out" in bad.stderr, bad.stderr
    assert plain.returncode == 1 and "timed out" in plain.stderr, plain.stderr
    assert applied == ["rs-friend"]
    assert any(stranger.public.decode() in r.getMessage() and "rejected" in r.getMessage()
               for r in caplog.records), [r.getMessage() for r in caplog.records]  # fmt: skip

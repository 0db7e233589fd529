"""Durable command idempotency with real processes (WIRE.md 7.5).

A client keeps sending commands (each retried with its id until acknowledged) while its
command server, Rust or Python, is killed with SIGKILL 20 times and restarted on the same
store. The server's handler is a durable one: it records every application as handler
state committed with the command's id and ack, so the store on disk counts every
application, one that happened just before a kill included. No command may be applied
twice, and every ack, the duplicates a restarted server sends for retries included, must
be the ack first recorded for that id.

Also: an id reused after more than 10,000 other ids (within the window) is a duplicate;
a command without an id is refused with a reason, never applied.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import pytest
import zmq

from tradewire import wire
from tradewire.channels import CommandsClient, CommandsServer
from tradewire.messages import CommandAck, StrategyCommand
from tradewire.transport import CommandStoreOptions
from tradewire.transport._base import now_ns
from tradewire.transport.commands import NO_ID_REASON

ROOT = Path(__file__).resolve().parents[1]
PY_SERVER = ROOT / "tests" / "peers" / "py_command_server.py"
KILLS = 20
APPLICATIONS = "applications/"

ServerCommand = Callable[[str, Path], list[str]]


def rust_server(rust_bin_dir: Path) -> ServerCommand:
    def command(endpoint: str, store: Path) -> list[str]:
        return [
            str(rust_bin_dir / "tradewire-command-server"),
            "--endpoint",
            endpoint,
            "--store",
            str(store),
            "--exit-on-eof",
        ]

    return command


def py_server(handler_ms: float) -> ServerCommand:
    def command(endpoint: str, store: Path) -> list[str]:
        return [
            sys.executable,
            str(PY_SERVER),
            "--endpoint",
            endpoint,
            "--store",
            str(store),
            "--handler-ms",
            str(handler_ms),
        ]

    return command


@pytest.fixture(params=["rust", "python"])
def server_command(request: pytest.FixtureRequest) -> Iterator[tuple[str, ServerCommand]]:
    if request.param == "rust":
        yield "rust", rust_server(request.getfixturevalue("rust_bin_dir"))
    else:
        yield "python", py_server(20.0)  # a slow handler: kills land mid-application


class Server:
    """A command server process; its stdout goes to a file (a pipe nobody reads could fill
    and stall it)."""

    def __init__(self, command: list[str], log: Path) -> None:
        self.log = log
        self._out: IO[bytes] = log.open("wb")
        self.proc = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=self._out, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 30
        while b'"ready"' not in log.read_bytes():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                pytest.fail(f"command server did not start: {log.read_text(errors='replace')}")
            time.sleep(0.01)

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self._out.close()

    def stop(self) -> None:
        """EOF on stdin: the server exits by itself."""
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=30)
        self._out.close()


@dataclass
class Sent:
    acks: dict[str, CommandAck] = field(default_factory=dict)
    timeouts: list[str] = field(default_factory=list)
    order: list[str] = field(default_factory=list)


def keep_sending(endpoint: str, stop: threading.Event, sent: Sent) -> None:
    """Commands back to back, each retried every 50 ms with its id until acknowledged."""
    with CommandsClient(endpoint) as client:
        n = 0
        while not stop.is_set():
            n += 1
            command_id = f"c{n:06d}-{uuid.uuid4().hex[:8]}"
            sent.order.append(command_id)
            cmd = StrategyCommand(
                type=StrategyCommand.PAUSE_TRADING, symbol="AAPL", command_id=command_id
            )
            try:
                sent.acks[command_id] = client.send(cmd, timeout=30, retry_interval=0.05)
            except TimeoutError:
                sent.timeouts.append(command_id)


def on_disk(store: Path) -> tuple[Counter[str], dict[str, CommandAck]]:
    """Applications per command id (handler state) and the recorded ack per id."""
    with sqlite3.connect(store) as db:
        applications = Counter(
            value.decode()
            for (value,) in db.execute(
                "SELECT value FROM handler_state WHERE key LIKE ?", (APPLICATIONS + "%",)
            )
        )
        acks = {
            cid: CommandAck.FromString(blob)
            for cid, blob in db.execute("SELECT command_id, ack FROM applied_commands")
        }
    db.close()
    return applications, acks


def test_kill_9_under_a_command_stream_applies_nothing_twice(
    tmp_path: Path, server_command: tuple[str, ServerCommand]
) -> None:
    lang, command = server_command
    endpoint = f"ipc://{tmp_path}/commands"
    store = tmp_path / "commands.sqlite"
    stop = threading.Event()
    sent = Sent()
    server = Server(command(endpoint, store), tmp_path / "server-0.log")
    client = threading.Thread(target=keep_sending, args=(endpoint, stop, sent), daemon=True)
    client.start()
    # A probe per kill whose ack is lost for sure: acknowledged, then the server is killed
    # and the probe is retried on the restarted server.
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    probe_sock = ctx.socket(zmq.DEALER)
    probe_sock.connect(endpoint)
    probes: list[tuple[CommandAck, CommandAck]] = []
    try:
        for k in range(KILLS):
            before = len(sent.acks)
            deadline = time.monotonic() + 20
            # let some commands through, then kill at a moment that varies with the stream
            while len(sent.acks) < before + 5 + (k * 7) % 11 and time.monotonic() < deadline:
                time.sleep(0.002)
            probe = StrategyCommand(type=StrategyCommand.KILL_SWITCH, command_id=f"probe-{k}")
            first = _raw_send(probe_sock, probe)
            server.kill()
            time.sleep(0.05)  # the client retries into the void meanwhile
            server = Server(command(endpoint, store), tmp_path / f"server-{k + 1}.log")
            probes.append((first, _raw_send(probe_sock, probe)))
        time.sleep(0.5)
    finally:
        stop.set()
        client.join(timeout=60)
        probe_sock.close(linger=0)
        ctx.term()
        server.stop()
    assert not client.is_alive()
    applications, recorded = on_disk(store)
    twice = {cid: n for cid, n in applications.items() if n > 1}
    duplicates = [cid for cid, ack in sent.acks.items() if ack.duplicate]
    print(
        f"{lang}: {KILLS} kills, {len(sent.acks)} commands acknowledged, "
        f"{sum(applications.values())} applications on disk, {len(twice)} applied twice, "
        f"{len(duplicates)} stream retries answered duplicate after a restart, "
        f"{sum(again.duplicate for _, again in probes)}/{len(probes)} probe retries "
        f"answered duplicate, {len(sent.timeouts)} timeouts"
    )
    assert twice == {}, f"applied more than once: {twice}"
    assert sent.timeouts == []
    # every acknowledged command was applied exactly once, and its ack, duplicate or not,
    # is the one recorded with its application
    assert all(applications[cid] == 1 for cid in sent.acks), [
        cid for cid in sent.acks if applications[cid] != 1
    ]
    probe_ids = {first.command_id for first, _ in probes}
    assert set(applications) <= set(sent.order) | probe_ids
    for cid, ack in sent.acks.items():
        assert same_ack(ack, recorded[cid]), cid
    for first, again in probes:
        assert not first.duplicate and first.outcome == CommandAck.APPLIED, first
        assert again.duplicate, f"a retry after the restart was applied again: {again}"
        assert same_ack(again, first) and same_ack(first, recorded[first.command_id])
        assert applications[first.command_id] == 1


def same_ack(ack: CommandAck, first: CommandAck) -> bool:
    """`ack` repeats `first` (the recorded one, never a duplicate)."""
    return not first.duplicate and (
        ack.command_id,
        ack.outcome,
        ack.reason,
        ack.engine_timestamp_us,
    ) == (first.command_id, first.outcome, first.reason, first.engine_timestamp_us)


def _raw_send(sock: zmq.Socket[bytes], command: StrategyCommand) -> CommandAck:
    sock.send(wire.encode_message("commands", command, publisher_id=7, seq=1, send_ts_ns=now_ns()))
    assert sock.poll(10_000), "no ack"
    return wire.parse_payload(wire.decode_frame(sock.recv()), CommandAck)


@pytest.mark.parametrize("lang", ["rust", "python"])
def test_reused_id_after_10k_others_and_empty_id(
    tmp_path: Path, rust_bin_dir: Path, lang: str
) -> None:
    endpoint = f"ipc://{tmp_path}/commands"
    store = tmp_path / "commands.sqlite"
    args = [str(rust_bin_dir / "tradewire-command-server"), "--exit-on-eof"]
    if lang == "python":
        args = [sys.executable, str(PY_SERVER)]
    server = Server(
        [*args, "--endpoint", endpoint, "--store", str(store), "--store-fsync", "off"],
        tmp_path / "server.log",
    )
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    try:
        sock.connect(endpoint)
        first = _raw_send(sock, StrategyCommand(type=StrategyCommand.KILL_SWITCH, command_id="x"))
        with CommandsClient(endpoint) as client:
            for i in range(10_050):
                ack = client.send(StrategyCommand(type=StrategyCommand.PAUSE_TRADING), timeout=10)
                assert ack.outcome == CommandAck.APPLIED and not ack.duplicate, (i, ack)
        again = _raw_send(sock, StrategyCommand(type=StrategyCommand.KILL_SWITCH, command_id="x"))
        refused = [
            _raw_send(sock, StrategyCommand(type=StrategyCommand.KILL_SWITCH)) for _ in range(2)
        ]
    finally:
        sock.close(linger=0)
        ctx.term()
        server.stop()
    assert (again.outcome, again.duplicate) == (CommandAck.APPLIED, True)
    assert again.engine_timestamp_us == first.engine_timestamp_us
    for ack in refused:
        assert (ack.command_id, ack.outcome, ack.duplicate) == ("", CommandAck.REJECTED, False)
        assert ack.reason == NO_ID_REASON
    applications, recorded = on_disk(store)
    assert applications["x"] == 1 and "" not in applications and "" not in recorded
    assert sum(applications.values()) == 10_051
    lines = server.log.read_text().splitlines()
    summary = json.loads(next(x for x in lines if x.startswith('{"summary"')))["summary"]
    rejected = summary.get("rejected_by_kind") or summary.get("rejected")
    assert rejected == {"no_command_id": 2}, summary


def test_in_process_server_restart_and_state(tmp_path: Path) -> None:
    """The Python API: a durable handler's state commits with its command; a server
    restarted on the store answers the retry with the original ack and sees the state."""
    endpoint = f"ipc://{tmp_path}/commands"
    options = CommandStoreOptions(tmp_path / "s.sqlite", fsync=False)
    calls: list[str] = []
    server: CommandsServer

    def handle(cmd: StrategyCommand) -> CommandAck:
        calls.append(cmd.command_id)
        assert server.state is not None
        server.state.put("engine/kill_switch", b"on")
        return CommandAck(outcome=CommandAck.APPLIED, reason="halted")

    cmd = StrategyCommand(type=StrategyCommand.KILL_SWITCH, command_id="k1")
    with CommandsServer(endpoint, handle, store=options) as server:
        with pytest.raises(OSError, match="in use by another process"):
            CommandsServer(f"ipc://{tmp_path}/other", handle, store=options)
        threading.Thread(target=server.serve_once, args=(5.0,), daemon=True).start()
        with CommandsClient(endpoint) as client:
            first = client.send(cmd, timeout=5)
    with CommandsServer(endpoint, handle, store=options) as server:
        assert server.state is not None
        assert server.state.get("engine/kill_switch") == b"on"
        threading.Thread(target=server.serve_once, args=(5.0,), daemon=True).start()
        with CommandsClient(endpoint) as client:
            again = client.send(cmd, timeout=5)
    assert calls == ["k1"]
    assert (first.outcome, first.reason, first.duplicate) == (CommandAck.APPLIED, "halted", False)
    assert (again.outcome, again.reason, again.duplicate) == (CommandAck.APPLIED, "halted", True)
    assert again.engine_timestamp_us == first.engine_timestamp_us

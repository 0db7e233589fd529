"""A kill switch is acknowledged while 100 k msg/s of market data flows between the same
two processes (issue 4, test 3).

Asserted: the ack; the publish rate around the kill switch, from the publisher's own
sequence numbers and send timestamps (a lagging subscriber cannot distort it), over the
second centred on the command; market data received by this process while the command
was in flight (a receiver thread drains it concurrently with the command client).

The 100 k msg/s figure (>= 95 k) is asserted against the Rust engine
`tradewire-engine-demo` (`test_rust_transport_kill_switch.py`): on a shared 2-core box the
Python engine `tests/peers/py_engine.py` paces to 100 k msg/s but does not hold it
robustly (measured 51-104 k over the window while a benchmark ran beside it), so here
it must only keep >= 25 k."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tradewire.channels import CommandsClient, MarketDataSubscriber
from tradewire.messages import CommandAck, StrategyCommand

PEER = Path(__file__).resolve().parent / "peers" / "py_engine.py"
WINDOW_NS = 500_000_000  # the rate is measured from 0.5 s before the command to 0.5 s after
# A round trip often takes well under 1 ms, in which a publisher's bursts at 100 k msg/s may
# not land at all: "while in flight" is judged over at least 10 ms centred on the command.
MIN_FLIGHT_NS = 10_000_000


@dataclass
class KillUnderLoad:
    ack: CommandAck
    ack_ms: float
    rate: float  # msg/s published over the window around the command
    during: int  # market data messages received while the command was in flight
    received: int
    gaps: int
    unrecoverable: int
    engine_line: list[str]


def kill_under_load(argv: list[str], md: str, cmd: str) -> KillUnderLoad:
    """Start the engine, drain its market data on a thread, send a kill switch meanwhile."""
    engine = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    samples: list[tuple[int, int, int]] = []  # (received at, send_ts_ns, seq), this thread's
    stop_after_ns = [2**63]  # set once the ack is in: stop at a message published after it
    failure: list[BaseException] = []
    try:
        assert engine.stdout is not None and engine.stdout.readline().strip() == "ready"
        with MarketDataSubscriber(md, rcvhwm=1_000_000) as sub, CommandsClient(cmd) as client:
            flowing = threading.Event()

            def receive() -> None:
                try:
                    while True:
                        got = sub.recv(timeout=5)
                        assert got is not None, f"market data stopped: {sub.stats.as_dict()}"
                        env = got.envelope
                        samples.append((time.time_ns(), env.send_ts_ns, env.seq))
                        if env.send_ts_ns >= stop_after_ns[0]:
                            return
                        if len(samples) == 100_000:  # a second of flow before the command
                            flowing.set()
                except BaseException as exc:  # re-raised on the main thread
                    failure.append(exc)
                    flowing.set()

            receiver = threading.Thread(target=receive, daemon=True)
            receiver.start()
            assert flowing.wait(30), "no market data flow"
            assert not failure, failure
            sent_ns, started = time.time_ns(), time.perf_counter()
            ack = client.send(
                StrategyCommand(type=StrategyCommand.KILL_SWITCH, command_id="kill-under-load"),
                timeout=5,
            )
            ack_ms = (time.perf_counter() - started) * 1000
            ack_ns = time.time_ns()
            stop_after_ns[0] = ack_ns + WINDOW_NS
            receiver.join(30)
            assert not receiver.is_alive() and not failure, failure
            gaps, unrecoverable = sub.stats.gaps, sub.stats.unrecoverable
        line = engine.stdout.readline().split()
    finally:
        engine.kill()
        engine.wait(10)
        for stream in (engine.stdin, engine.stdout):
            if stream is not None:
                stream.close()
    window = [(ts, seq) for _, ts, seq in samples if sent_ns - WINDOW_NS <= ts <= stop_after_ns[0]]
    (first_ts, first_seq), (last_ts, last_seq) = window[0], window[-1]
    half = max(ack_ns - sent_ns, MIN_FLIGHT_NS) // 2
    flight = ((sent_ns + ack_ns) // 2 - half, (sent_ns + ack_ns) // 2 + half)
    return KillUnderLoad(
        ack=ack,
        ack_ms=ack_ms,
        rate=(last_seq - first_seq) / max(1e-9, (last_ts - first_ts) / 1e9),
        during=sum(flight[0] <= at <= flight[1] for at, _, _ in samples),
        received=len(samples),
        gaps=gaps,
        unrecoverable=unrecoverable,
        engine_line=line,
    )


def check(result: KillUnderLoad, engine: str, min_rate: float) -> None:
    assert (result.ack.command_id, result.ack.outcome, result.ack.duplicate) == (
        "kill-under-load",
        CommandAck.APPLIED,
        False,
    )
    assert result.engine_line[:2] == ["kill", "kill-under-load"]
    assert result.rate >= min_rate, (
        f"{engine} published {result.rate:,.0f} msg/s around the kill switch (< {min_rate:,.0f})"
    )
    assert result.during > 0, "no market data arrived while the command was in flight"
    assert result.unrecoverable == 0
    print(
        f"{engine}: kill-switch ack {result.ack_ms:.2f} ms; {result.rate:,.0f} msg/s published "
        f"in the second around it; {result.during} messages received while it was in flight; "
        f"{result.received:,} received in all (gaps {result.gaps})"
    )


@pytest.mark.slow
def test_kill_switch_is_acknowledged_under_market_data_load(tmp_path: Path) -> None:
    md, cmd = f"ipc://{tmp_path}/md", f"ipc://{tmp_path}/cmd"
    argv = [sys.executable, str(PEER), "--md", md, "--commands", cmd, "--rate", "100000"]
    check(kill_under_load(argv, md, cmd), "Python engine", min_rate=25_000)

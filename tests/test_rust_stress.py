"""Issue-4 test 1 across languages: 1,000,000 messages (TRADEWIRE_STRESS_MESSAGES) with a
throttled subscriber and the publisher restarted mid-stream, between real processes:

- Rust publisher (`tradewire-publish`, two processes in sequence) -> Python subscriber;
- Python publisher (`tests/peers/py_publisher.py`, two processes) -> Rust subscriber
  (`tradewire-subscribe --throttle-us`).

Afterwards every message was delivered exactly once, in order, or (ring made deliberately
small) the unrecoverable-gap events account for exactly the missing ones. Same assertions
as tests/test_stress.py (Python <-> Python)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import IO, Any

import pytest

from tradewire.channels import MarketDataSubscriber

PEER = Path(__file__).resolve().parent / "peers" / "py_publisher.py"
TOTAL = int(os.environ.get("TRADEWIRE_STRESS_MESSAGES", "1000000"))
RINGS = pytest.mark.parametrize(
    "ring", [1_000_000, 2_000], ids=["ring-holds-all", "ring-too-small"]
)


def check_accounting(seen: dict[int, list[int]], lost: dict[int, list[int]],
                     streams: list[tuple[int, int]], ring: int, gaps: int) -> None:  # fmt: skip
    """Each stream (publisher id, count) delivered once, in order, or accounted lost."""
    for pid, count in streams:
        received = seen[pid]
        assert received == sorted(set(received)), "duplicates or out-of-order delivery"
        assert sorted(received + lost[pid]) == list(range(1, count + 1)), "lost silently"
    assert set(seen) <= {pid for pid, _ in streams}, "messages of an unknown publisher"
    assert gaps > 0, "the throttle should have forced drops and replays"
    if ring >= TOTAL:
        assert not any(lost.values()), "a ring holding everything must recover every gap"
    else:
        assert any(lost.values()), "a small ring cannot hold what the throttled subscriber missed"


# -- Rust publisher -> Python subscriber --------------------------------------------------


class RustPublisher:
    """`tradewire-publish` publishing `count` messages once a subscriber is there, then
    serving replay until its stdin is closed."""

    def __init__(self, bin_dir: Path, endpoint: str, ring: int, count: int, wait: str) -> None:
        self.proc = subprocess.Popen(
            [str(bin_dir / "tradewire-publish"), "--endpoint", endpoint, "--count", str(count),
             "--ring", str(ring), "--sndhwm", "10000", "--heartbeat-ms", "200", "--print-ready",
             "--hold-until-eof",
             wait, "--wait-timeout-ms", "30000"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line, f"tradewire-publish did not start: {self._stderr()}"
        self.publisher_id = int(json.loads(line)["publisher_id"], 16)

    def _stderr(self) -> str:
        self.proc.kill()
        return self.proc.communicate(timeout=10)[1]

    def stop(self) -> dict[str, Any]:
        out, err = self.proc.communicate(timeout=30)  # EOF on stdin ends the hold
        assert self.proc.returncode == 0, err
        summary: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
        return summary


def consume_until(sub: MarketDataSubscriber, publisher_id: int, last: int,
                  seen: dict[int, list[int]], throttle_every: int) -> None:  # fmt: skip
    """Receive (sleeping 1 ms every `throttle_every` messages) until seq `last` of
    `publisher_id` is received or reported lost."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        got = sub.recv(timeout=0.5)
        if got is not None:
            env = got.envelope
            seen[env.publisher_id].append(env.seq)
            if len(seen[env.publisher_id]) % throttle_every == 0:
                time.sleep(0.001)
            if env.publisher_id == publisher_id and env.seq == last:
                return
        if any(e.kind == "unrecoverable_gap" and e.publisher_id == publisher_id and e.last >= last
               for e in sub.events):  # fmt: skip
            return
    raise AssertionError(f"never reached seq {last} of {publisher_id:x}: {sub.stats.as_dict()}")


@pytest.mark.slow
@pytest.mark.timeout(600)
@RINGS
def test_rust_publisher_restarted_to_throttled_python_subscriber(
    rust_bin_dir: Path, tmp_path: Path, ring: int
) -> None:
    endpoint = f"ipc://{tmp_path}/md"
    half = TOTAL // 2
    seen: dict[int, list[int]] = defaultdict(list)
    started = time.monotonic()
    first = RustPublisher(rust_bin_dir, endpoint, ring, half, "--wait-subscriber")
    sub = MarketDataSubscriber(endpoint, rcvhwm=1_000, replay_timeout=5.0)
    try:
        consume_until(sub, first.publisher_id, half, seen, throttle_every=500)
        first_summary = first.stop()  # caught up: the first process goes away
        second = RustPublisher(rust_bin_dir, endpoint, ring, TOTAL - half, "--wait-subscription")
        consume_until(sub, second.publisher_id, TOTAL - half, seen, throttle_every=500)
        second_summary = second.stop()
    finally:
        sub.close()
    elapsed = time.monotonic() - started
    published = {first.publisher_id: half, second.publisher_id: TOTAL - half}
    lost: dict[int, list[int]] = defaultdict(list)
    for e in sub.events:  # a restart without a journal reports an open-ended tail
        if e.kind == "unrecoverable_gap":
            lost[e.publisher_id].extend(range(e.first, min(e.last, published[e.publisher_id]) + 1))
    assert sub.stats.unknown_tails == 1
    assert first_summary["last_seq"] == half and second_summary["last_seq"] == TOTAL - half
    check_accounting(seen, lost, [(first.publisher_id, half), (second.publisher_id, TOTAL - half)],
                     ring, sub.stats.gaps)  # fmt: skip
    assert any(e.kind == "publisher_restart" for e in sub.events)
    replayed = first_summary["stats"]["replayed"] + second_summary["stats"]["replayed"]
    print(f"Rust publisher -> Python subscriber, {TOTAL:,} messages, ring {ring:,}: "
          f"{elapsed:.1f} s, {sub.stats.gaps} gaps, {replayed:,} replayed, "
          f"{sum(map(len, lost.values())):,} accounted lost")  # fmt: skip


# -- Python publisher -> Rust subscriber --------------------------------------------------


class PythonPublisher:
    """tests/peers/py_publisher.py: `ready <id>`, `go N` -> `done <seq>`, `exit`."""

    def __init__(self, endpoint: str, ring: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(PEER), "--endpoint", endpoint, "--ring", str(ring)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.publisher_id = int(self._line("ready"))

    def _line(self, word: str) -> str:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().split()
        assert line and line[0] == word, f"expected {word!r} from the publisher, got {line}"
        return line[1]

    def _say(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()

    def publish(self, count: int) -> None:
        self._say(f"go {count}")

    def published(self) -> int:
        return int(self._line("done"))

    def stop(self) -> None:
        self._say("exit")
        assert self.proc.wait(timeout=30) == 0
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()


class RustSubscriberOutput:
    """Reads `tradewire-subscribe --json --compact` output on a thread: message lines
    `<publisher hex> <seq> <key_seq> <flags>`, JSON events and the summary."""

    def __init__(self, stream: IO[str]) -> None:
        self.seen: dict[int, list[int]] = defaultdict(list)
        self.events: list[dict[str, Any]] = []
        self.summary: dict[str, Any] | None = None
        self.ready: dict[str, Any] | None = None
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: IO[str]) -> None:
        seen = self.seen
        for line in stream:
            if line.startswith("{"):
                row = json.loads(line)
                with self._changed:
                    if "event" in row:
                        row["publisher_id"] = int(row["publisher_id"], 16)
                        self.events.append(row)
                    elif "summary" in row:
                        self.summary = row["summary"]
                    elif "ready" in row:
                        self.ready = row
                    self._changed.notify_all()
                continue
            pid, seq, _ = line.split(" ", 2)
            seen[int(pid, 16)].append(int(seq))
        with self._changed:
            self._changed.notify_all()

    def wait_for(self, what: str, done: Any, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        with self._changed:
            while not done():
                left = deadline - time.monotonic()
                if left <= 0 or (not self._thread.is_alive() and not done()):
                    raise AssertionError(f"{what}: not reached; events {self.events[-5:]}")
                self._changed.wait(min(left, 0.05))

    def reached(self, pid: int, last: int) -> bool:
        got = self.seen.get(pid)
        if got and got[-1] >= last:
            return True
        return any(e["event"] == "unrecoverable_gap" and e["publisher_id"] == pid
                   and e["last"] >= last for e in self.events)  # fmt: skip

    def join(self) -> None:
        self._thread.join(30)


@pytest.mark.slow
@pytest.mark.timeout(600)
@RINGS
def test_python_publisher_restarted_to_throttled_rust_subscriber(
    rust_bin_dir: Path, tmp_path: Path, ring: int
) -> None:
    endpoint = f"ipc://{tmp_path}/md"
    half = TOTAL // 2
    started = time.monotonic()
    first = PythonPublisher(endpoint, ring)
    proc = subprocess.Popen(
        [str(rust_bin_dir / "tradewire-subscribe"), "--endpoint", endpoint, "--json", "--compact",
         "--count", str(TOTAL), "--count-lost", "--rcvhwm", "1000", "--throttle-us", "1000",
         "--throttle-every", "100", "--idle-timeout-ms", "30000"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    out = RustSubscriberOutput(proc.stdout)
    second: PythonPublisher | None = None
    try:
        out.wait_for("subscription", lambda: out.ready is not None, timeout=30)
        first.publish(half)
        assert first.published() == half
        out.wait_for(f"seq {half} of the first publisher",
                     lambda: out.reached(first.publisher_id, half))  # fmt: skip
        first.stop()
        second = PythonPublisher(endpoint, ring)
        second.publish(TOTAL - half)
        assert second.published() == TOTAL - half
        out.wait_for("the subscriber's summary", lambda: out.summary is not None)
        second.stop()
    finally:
        if proc.poll() is None and out.summary is None:
            proc.kill()
        stderr = proc.communicate(timeout=30)[1]
        out.join()
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, f"{stderr}\n{out.summary}\n{out.events[-10:]}"
    assert second is not None and out.summary is not None
    published = {first.publisher_id: half, second.publisher_id: TOTAL - half}
    lost: dict[int, list[int]] = defaultdict(list)
    for e in out.events:  # a restart without a journal reports an open-ended tail
        if e["event"] == "unrecoverable_gap":
            pid = e["publisher_id"]
            lost[pid].extend(range(e["first"], min(e["last"], published[pid]) + 1))
    check_accounting(out.seen, lost,
                     [(first.publisher_id, half), (second.publisher_id, TOTAL - half)], ring,
                     out.summary["gaps"])  # fmt: skip
    assert out.summary["complete"] and out.summary["restarts"] == 1
    assert any(e["event"] == "publisher_restart" for e in out.events)
    assert out.summary["unrecoverable"] == sum(map(len, lost.values()))
    print(f"Python publisher -> Rust subscriber, {TOTAL:,} messages, ring {ring:,}: "
          f"{elapsed:.1f} s, {out.summary['gaps']} gaps, {out.summary['recovered']:,} "
          f"recovered, {out.summary['unrecoverable']:,} accounted lost")  # fmt: skip

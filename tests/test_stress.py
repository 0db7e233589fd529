"""Issue-4 stress tests across real processes: a throttled subscriber, a publisher restarted
mid-stream, and nothing lost silently."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest

from tradewire.channels import MarketDataSubscriber

PEER = Path(__file__).resolve().parent / "peers" / "py_publisher.py"
TOTAL = int(os.environ.get("TRADEWIRE_STRESS_MESSAGES", "1000000"))


class PublisherProcess:
    def __init__(self, endpoint: str, ring: int, journal: Path | None = None) -> None:
        journal_args = ["--journal", str(journal)] if journal is not None else []
        self.proc = subprocess.Popen(
            [sys.executable, str(PEER), "--endpoint", endpoint, "--ring", str(ring), *journal_args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.publisher_id = int(self._line("ready"))

    def _line(self, word: str) -> str:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().split()
        assert line and line[0] == word, f"expected {word!r} from the publisher, got {line}"
        return line[1]

    def say(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()

    def publish(self, count: int) -> None:
        self.say(f"go {count}")

    def published(self) -> int:
        return int(self._line("done"))

    def stop(self) -> None:
        self.say("exit")
        assert self.proc.wait(timeout=30) == 0
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()


def consume_until(
    sub: MarketDataSubscriber,
    publisher_id: int,
    last: int,
    seen: dict[int, list[int]],
    throttle_every: int,
) -> None:
    """Receive (sleeping 1 ms every `throttle_every` messages, so the publisher outruns us and
    ZMQ drops at the high-water mark) until seq `last` of `publisher_id` is received or lost."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        got = sub.recv(timeout=0.5)
        if got is not None:
            env = got.envelope
            previous = seen[env.publisher_id][-1] if seen[env.publisher_id] else 0
            assert env.seq > previous, f"seq {env.seq} after {previous}: {sub.stats.as_dict()}"
            seen[env.publisher_id].append(env.seq)
            if len(seen[env.publisher_id]) % throttle_every == 0:
                time.sleep(0.001)
            if env.publisher_id == publisher_id and env.seq == last:
                return
        if any(
            e.kind == "unrecoverable_gap" and e.publisher_id == publisher_id and e.last >= last
            for e in sub.events
        ):
            return
    raise AssertionError(f"never reached seq {last} of {publisher_id:x}: {sub.stats.as_dict()}")


def lost_ranges(sub: MarketDataSubscriber, published: dict[int, int]) -> dict[int, list[int]]:
    """The numbers each publisher's unrecoverable ranges cover, up to what it published
    (a restart without a journal reports the previous tail as open-ended)."""
    lost: dict[int, list[int]] = defaultdict(list)
    for e in sub.events:
        if e.kind == "unrecoverable_gap":
            lost[e.publisher_id].extend(range(e.first, min(e.last, published[e.publisher_id]) + 1))
    return lost


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("ring", [1_000_000, 2_000], ids=["ring-holds-all", "ring-too-small"])
def test_throttled_subscriber_across_a_publisher_restart(tmp_path: Path, ring: int) -> None:
    endpoint = f"ipc://{tmp_path}/md"
    half = TOTAL // 2
    seen: dict[int, list[int]] = defaultdict(list)
    first = PublisherProcess(endpoint, ring)
    sub = MarketDataSubscriber(endpoint, rcvhwm=1_000, replay_timeout=5.0)
    try:
        first.publish(half)
        consume_until(sub, first.publisher_id, half, seen, throttle_every=500)
        assert first.published() == half
        first.stop()
        second = PublisherProcess(endpoint, ring)
        second.publish(TOTAL - half)
        consume_until(sub, second.publisher_id, TOTAL - half, seen, throttle_every=500)
        assert second.published() == TOTAL - half
        second.stop()
    finally:
        sub.close()
    published = {first.publisher_id: half, second.publisher_id: TOTAL - half}
    lost = lost_ranges(sub, published)
    assert sub.stats.unknown_tails == 1, "the first publisher's tail is reported open-ended"
    for pid, count in published.items():
        received = seen[pid]
        assert received == sorted(set(received)), "duplicates or out-of-order delivery"
        assert sorted(received + lost[pid]) == list(range(1, count + 1)), "lost silently"
    assert sub.stats.gaps > 0, "the throttle should have forced drops and replays"
    if ring >= TOTAL:
        assert not any(lost.values()), "a ring holding everything must recover every gap"
    else:
        assert any(lost.values()), "a small ring cannot hold what the throttled subscriber missed"
    assert any(e.kind == "publisher_restart" for e in sub.events)

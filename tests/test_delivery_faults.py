"""A million MarketData through every fault at once: the publisher process is killed with
SIGKILL mid-stream and restarted, one subscriber is throttled to 10k msg/s, one joins
late, one was started before the publisher existed. Each subscriber must account for every
seq of every publisher: delivered exactly once, or inside a reported unrecoverable range.
Silent loss is counted and must be 0."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from test_rust_stress import RustSubscriberOutput
from test_stress import PublisherProcess

from tradewire.channels import MarketDataSubscriber

TOTAL = int(os.environ.get("TRADEWIRE_STRESS_MESSAGES", "1000000"))
RATE = 50_000  # msg/s of each publisher
THROTTLE = 10_000  # msg/s of the slow subscriber
OPEN_END = (1 << 64) - 1  # the last of a range whose end nobody knew


@dataclass
class Account:
    """What one subscriber delivered and reported lost, per publisher id."""

    delivered: dict[int, list[int]] = field(default_factory=lambda: defaultdict(list))
    lost: dict[int, list[tuple[int, int]]] = field(default_factory=lambda: defaultdict(list))

    def covered(self, pid: int, n: int) -> bool:
        return any(a <= n <= b for a, b in self.lost[pid])

    def silent(self, pid: int, last: int) -> list[int]:
        """Numbers 1..last of `pid` neither delivered nor inside a reported range."""
        got = set(self.delivered[pid])
        spans = sorted(self.lost[pid])
        out = []
        i = 0
        for n in range(1, last + 1):
            while i < len(spans) and spans[i][1] < n:
                i += 1
            inside = i < len(spans) and spans[i][0] <= n
            if n not in got and not inside:
                out.append(n)
        return out

    def check(self, name: str, published: dict[int, int]) -> dict[str, int]:
        figures = {"delivered": 0, "lost": 0, "silent": 0}
        for pid, last in published.items():
            seqs = self.delivered[pid]
            assert seqs == sorted(set(seqs)), f"{name}: duplicate or out-of-order from {pid:x}"
            silent = self.silent(pid, last)
            assert not silent, f"{name}: {len(silent)} silent from {pid:x}, first {silent[:5]}"
            figures["delivered"] += len(seqs)
            figures["lost"] += sum(min(b, last) - a + 1 for a, b in self.lost[pid] if a <= last)
        return figures


def from_events(account: Account, events: Iterable[tuple[str, int, int, int]]) -> None:
    for kind, pid, first, last in events:
        if kind == "unrecoverable_gap":
            account.lost[pid].append((first, last))


class ThrottledSubscriber:
    """A Python subscriber in this process that takes at most THROTTLE msg/s."""

    def __init__(self, endpoint: str) -> None:
        self.sub = MarketDataSubscriber(endpoint, rcvhwm=1_000, replay_timeout=5.0)
        self.account = Account()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run)
        self.thread.start()

    def _run(self) -> None:
        started = time.monotonic()
        count = 0
        while not self.stop.is_set():
            got = self.sub.recv(timeout=0.2)
            if got is None:
                continue
            self.account.delivered[got.envelope.publisher_id].append(got.envelope.seq)
            count += 1
            ahead = count / THROTTLE - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)

    def reached(self, pid: int, last: int) -> bool:
        got = self.account.delivered.get(pid)
        if got and got[-1] >= last:
            return True
        return any(
            e.kind == "unrecoverable_gap" and e.publisher_id == pid and e.last >= last
            for e in list(self.sub.events)
        )

    def close(self) -> None:
        self.stop.set()
        self.thread.join(30)
        from_events(
            self.account, ((e.kind, e.publisher_id, e.first, e.last) for e in self.sub.events)
        )
        self.sub.close()


def rust_subscriber(rust_bin_dir: Path, endpoint: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            str(rust_bin_dir / "tradewire-subscribe"),
            *("--endpoint", endpoint, "--json", "--compact", "--from-start"),
            *("--connect-timeout-ms", "60000", "--idle-timeout-ms", "15000"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )


def wait(what: str, done: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"{what}: not within {timeout}s"
        time.sleep(0.05)


@pytest.mark.slow
@pytest.mark.timeout(900)  # guards a hang: the run itself takes about two minutes
@pytest.mark.parametrize("journal", [False, True], ids=["ring-only", "journal"])
def test_a_million_messages_through_kill9_throttle_late_join_and_early_start(
    tmp_path: Path, rust_bin_dir: Path, journal: bool
) -> None:
    endpoint = f"ipc://{tmp_path}/md"
    journal_dir = tmp_path / "journal" if journal else None
    half = TOTAL // 2
    # started before any publisher exists, from the start of every stream
    early = rust_subscriber(rust_bin_dir, endpoint)
    assert early.stdout is not None
    early_out = RustSubscriberOutput(early.stdout)
    first = PublisherProcess(endpoint, 100_000, journal_dir)
    late: subprocess.Popen[str] | None = None
    slow: ThrottledSubscriber | None = None
    second: PublisherProcess | None = None
    try:
        early_out.wait_for("the early subscriber's handshake", lambda: early_out.ready)
        slow = ThrottledSubscriber(endpoint)
        first.say(f"go {TOTAL} {RATE}")  # more than it gets to send: killed mid-stream
        seen_first = early_out.seen[first.publisher_id]
        wait(
            "a fifth of the stream", lambda: bool(seen_first) and seen_first[-1] >= TOTAL // 5, 120
        )
        late = rust_subscriber(rust_bin_dir, endpoint)
        assert late.stdout is not None
        late_out = RustSubscriberOutput(late.stdout)
        wait("half the stream", lambda: seen_first[-1] >= half, 120)
        first.proc.send_signal(signal.SIGKILL)
        assert first.proc.wait(timeout=30) == -signal.SIGKILL
        for stream in (first.proc.stdin, first.proc.stdout):
            if stream is not None:
                stream.close()
        second = PublisherProcess(endpoint, 100_000, journal_dir)  # same journal
        second.say(f"go {TOTAL - half} {RATE}")
        assert second.published() == TOTAL - half
        early_out.wait_for("the early subscriber's end", lambda: early_out.summary is not None, 300)
        late_out.wait_for("the late subscriber's end", lambda: late_out.summary is not None, 300)
        throttled, restarted = slow, second
        wait(
            "the throttled subscriber",
            lambda: throttled.reached(restarted.publisher_id, TOTAL - half),
            600,
        )
    finally:
        if slow is not None:
            slow.close()
        for proc in (early, late):
            if proc is not None:
                if proc.poll() is None:
                    proc.kill()
                proc.wait(timeout=30)
                if proc.stdout is not None:
                    proc.stdout.close()
        if second is not None:
            second.stop()
        if first.proc.poll() is None:
            first.proc.kill()
    # The first publisher's last seq is what any subscriber saw of it (it was killed).
    assert slow is not None and second is not None and late is not None
    a, b = first.publisher_id, second.publisher_id
    outs = {"early": early_out, "late": late_out}
    first_last = max(max(o.seen[a], default=0) for o in outs.values())
    first_last = max(first_last, max(slow.account.delivered[a], default=0))
    published = {a: first_last, b: TOTAL - half}
    assert first_last >= half
    report = {}
    for name, out in outs.items():
        kinds = ("unrecoverable_gap", "publisher_restart", "gap_recovered")
        mine = [
            (e["event"], f"{e['publisher_id']:x}", e["first"], e["last"], e["detail"])
            for e in out.events
            if e["event"] in kinds
        ]
        print(
            name,
            out.summary,
            mine[-8:],
            {f"{p:x}": (len(v), v[-1] if v else 0) for p, v in out.seen.items()},
        )
        account = Account(delivered=out.seen)
        from_events(
            account, ((e["event"], e["publisher_id"], e["first"], e["last"]) for e in out.events)
        )
        report[name] = account.check(name, published)
    report["throttled"] = slow.account.check("throttled", published)
    print(
        f"journal {journal}: published {first_last:,} by {a:x} (killed) + {TOTAL - half:,} "
        f"by {b:x}: {report}"
    )
    for name, out in outs.items():
        lost_events = [e for e in out.events if e["event"] == "unrecoverable_gap"]
        print(name, len(lost_events), lost_events[:6])
    print("throttled", [e for e in slow.sub.events if e.kind == "unrecoverable_gap"][:6])
    if journal:
        # the killed publisher's tail and whatever passed the ring come from the journal
        assert all(r["lost"] == 0 for r in report.values()), report
        assert all(not o.summary or not o.summary.get("unknown_tails") for o in outs.values())
        assert slow.sub.stats.unknown_tails == 0
    else:
        assert report["throttled"]["lost"] > 0, "the throttle should force loss past the ring"

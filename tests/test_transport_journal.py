"""The publisher journal (WIRE.md section 7.6) with real processes: a Python publisher
journaling is killed with SIGKILL mid-stream, a new one starts on the same journal
directory and a plain DEALER asks the NEW publisher to replay the OLD id's range; the
same across languages (a Rust publisher's journal taken over by a Python one). Also:
numbers evicted from the ring come from the journal, and frames refused at the send
high-water mark are counted `hwm_dropped`."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import zmq

from tradewire import wire
from tradewire._gen import registry
from tradewire.channels import MarketDataPublisher
from tradewire.messages import Heartbeat, MarketData, ReplayEnd, ReplayRequest
from tradewire.transport import JournalOptions

pytest.importorskip("tradewire._wire", reason="the journal is the Rust one")

CHANNEL = "market_data"

# A publisher process: prints its id, waits for a subscriber, then publishes until killed.
PUBLISHER = """
import json, sys, time
from tradewire.channels import MarketDataPublisher
from tradewire.messages import MarketData
from tradewire.transport import JournalOptions
pub = MarketDataPublisher(sys.argv[1], journal=JournalOptions(sys.argv[2],
    segment_bytes=65536, fsync="never"))
print(f"{pub.publisher_id:x}", flush=True)
if sys.argv[3] == "publish":
    pub.wait_for_subscription(timeout=30)
    symbols = ["AAPL", "MSFT", "GOOG"]
    i = 0
    while True:
        pub.publish(MarketData(symbol=symbols[i % 3], price=float(i)))
        i += 1
        if i % 100 == 0:
            time.sleep(0.001)
else:
    sys.stdin.read()
    print(json.dumps(pub.stats.as_dict()), flush=True)
    pub.close()
"""


def start(endpoint: str, journal: Path, mode: str) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [sys.executable, "-c", PUBLISHER, endpoint, str(journal), mode],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    return proc, int(proc.stdout.readline(), 16)


def replay(
    dealer: zmq.Socket[bytes], publisher_id: int, key: str, first: int, last: int
) -> tuple[list[bytes], ReplayEnd]:
    """Every frame of one replay answer, and its ReplayEnd."""
    req = ReplayRequest(
        channel=CHANNEL, publisher_id=publisher_id, key=key, from_seq=first, to_seq=last
    )
    rt = registry.REPLAY_REQUEST_TYPE
    dealer.send(
        wire.pack_frame(
            wire.topic(CHANNEL), rt.type_id, rt.fingerprint, 1, 0, 0, 0, req.SerializeToString()
        )
    )
    frames: list[bytes] = []
    while True:
        assert dealer.poll(10_000), f"no answer after {len(frames)} frames"
        frame = dealer.recv()
        env = wire.decode_frame(frame)
        if env.type_id == registry.REPLAY_END_TYPE.type_id:
            end: object = wire.parse_payload(env)
            assert isinstance(end, ReplayEnd)
            return frames, end
        frames.append(frame)


def numbers(frames: list[bytes], publisher_id: int, key: str = "") -> list[int]:
    out = []
    for frame in frames:
        env = wire.decode_frame(frame)
        assert env.publisher_id == publisher_id
        assert env.flags & wire.FLAG_REPLAY
        assert not key or env.key == key
        out.append(env.key_seq if key else env.seq)
    return out


def handshake(ctx: zmq.Context[zmq.Socket[bytes]], endpoint: str) -> tuple[int, Heartbeat]:
    """The handshake Heartbeat a plain SUB gets on a sync topic (WIRE.md 7.1)."""
    sub = ctx.socket(zmq.SUB)
    sub.connect(endpoint)
    sub.subscribe(f"{CHANNEL}/~sync~00000000000000aa\0".encode())
    assert sub.poll(10_000), "no handshake heartbeat"
    env = wire.decode_frame(sub.recv())
    beat: object = wire.parse_payload(env)
    assert isinstance(beat, Heartbeat)
    sub.close(0)
    return env.publisher_id, beat


def kill_and_take_over(
    tmp_path: Path, old: subprocess.Popen[str], old_id: int, endpoint: str, journal: Path
) -> None:
    """Records the old publisher's live stream, kills it with SIGKILL, starts a Python
    publisher on the same journal and checks its replay of the old id."""
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    try:
        sub = ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.RCVHWM, 0)
        sub.connect(endpoint)
        sub.subscribe(f"{CHANNEL}/".encode())
        live: dict[int, bytes] = {}
        deadline = time.monotonic() + 30
        while len(live) < 5000:
            assert time.monotonic() < deadline, f"only {len(live)} live frames"
            if sub.poll(1000):
                frame = sub.recv()
                env = wire.decode_frame(frame)
                if env.seq:
                    assert env.publisher_id == old_id
                    live[env.seq] = frame
        old.send_signal(signal.SIGKILL)
        old.wait(10)
        assert old.returncode == -signal.SIGKILL
        for pipe in (old.stdin, old.stdout):
            if pipe is not None:
                pipe.close()
        while sub.poll(200):
            frame = sub.recv()
            env = wire.decode_frame(frame)
            if env.seq:
                live[env.seq] = frame
        sub.close(0)
        # Segments the killed publisher had finished carry an index (the next open reads it
        # instead of the segment); the one it was writing is scanned.
        segments = sorted(journal.glob("*.twj"))
        indexes = sorted(p.with_suffix(".twj") for p in journal.glob("*.twi"))
        assert len(segments) > 2 and indexes == segments[:-1], (segments, indexes)

        new, new_id = start(endpoint, journal, "serve")
        try:
            assert new_id != old_id
            hb_id, beat = handshake(ctx, endpoint)
            assert hb_id == new_id
            assert beat.previous_publisher_id == old_id
            last = beat.previous_last_seq
            assert last >= max(live), "the journal holds everything that went live"
            assert sum(beat.previous_last_key_seq.values()) == last

            dealer = ctx.socket(zmq.DEALER)
            dealer.connect(f"{endpoint}.ctl")
            frames, end = replay(dealer, old_id, "", 1, last + 1000)
            assert numbers(frames, old_id) == list(range(1, last + 1)), "each number once"
            assert end.last_seq == last
            assert not end.unknown_publisher
            assert (end.unrecoverable_from, end.unrecoverable_to) == (0, 0)
            assert end.replayed == last
            # What went live comes back byte for byte (the REPLAY flag aside): no silent loss.
            silent_loss = sum(
                1
                for seq, frame in live.items()
                if frames[seq - 1] != wire.with_flags(frame, wire.FLAG_REPLAY)
            )
            assert silent_loss == 0

            aapl = beat.previous_last_key_seq["AAPL"]
            frames, end = replay(dealer, old_id, "AAPL", 1, aapl)
            assert numbers(frames, old_id, "AAPL") == list(range(1, aapl + 1))
            assert end.last_seq == aapl
            dealer.close(0)

            out, _ = new.communicate("", timeout=30)
            stats = json.loads(out.strip().splitlines()[-1])
            assert stats["replayed_from_journal"] == last + aapl
        finally:
            if new.poll() is None:
                new.kill()
    finally:
        ctx.destroy(0)


def test_kill_9_restart_replays_the_old_id_from_the_journal(tmp_path: Path) -> None:
    endpoint = f"ipc://{tmp_path}/md"
    journal = tmp_path / "journal"
    old, old_id = start(endpoint, journal, "publish")
    try:
        kill_and_take_over(tmp_path, old, old_id, endpoint, journal)
    finally:
        if old.poll() is None:
            old.kill()


def test_python_publisher_takes_over_a_rust_publishers_journal(
    tmp_path: Path, rust_bin_dir: Path
) -> None:
    endpoint = f"ipc://{tmp_path}/md"
    journal = tmp_path / "journal"
    old = subprocess.Popen(
        [
            str(rust_bin_dir / "tradewire-publish"),
            "--endpoint",
            endpoint,
            "--print-ready",
            "--journal",
            str(journal),
            "--count",
            "100000000",
            "--rate",
            "50000",
            "--symbols",
            "AAPL,MSFT,GOOG",
            "--wait-subscription",
            "--segment-bytes",
            "65536",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert old.stdout is not None
        old_id = int(json.loads(old.stdout.readline())["publisher_id"], 16)
        kill_and_take_over(tmp_path, old, old_id, endpoint, journal)
    finally:
        if old.poll() is None:
            old.kill()


def test_numbers_evicted_from_the_ring_come_from_the_journal(tmp_path: Path) -> None:
    endpoint = f"ipc://{tmp_path}/ring"
    for journaled in (True, False):
        options = JournalOptions(tmp_path / f"j{journaled}") if journaled else None
        pub = MarketDataPublisher(endpoint, ring_size=100, journal=options)
        ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        try:
            for i in range(1000):
                pub.publish(MarketData(symbol="AB"[i % 2], price=1.0))
            dealer = ctx.socket(zmq.DEALER)
            dealer.connect(pub.control_endpoint)
            frames, end = replay(dealer, pub.publisher_id, "", 1, 1000)
            if not journaled:
                assert numbers(frames, pub.publisher_id) == list(range(901, 1001))
                assert (end.unrecoverable_from, end.unrecoverable_to) == (1, 900)
                continue
            assert numbers(frames, pub.publisher_id) == list(range(1, 1001))
            assert (end.unrecoverable_from, end.last_seq) == (0, 1000)
            assert pub.stats.replayed_from_journal == 900
            frames, end = replay(dealer, pub.publisher_id, "B", 1, 500)
            assert numbers(frames, pub.publisher_id, "B") == list(range(1, 501))
            assert end.unrecoverable_from == 0
            assert pub.stats.replayed_from_journal == 900 + 450
            assert pub.stats.journaled == 1000
        finally:
            ctx.destroy(0)
            pub.close()


def test_frames_refused_at_the_high_water_mark_are_counted(tmp_path: Path) -> None:
    endpoint = f"ipc://{tmp_path}/hwm"
    pub = MarketDataPublisher(endpoint, sndhwm=10, count_hwm_drops=True)
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    try:
        sub = ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.RCVHWM, 10)
        sub.connect(endpoint)
        sub.subscribe(f"{CHANNEL}/A\0".encode())
        assert pub.wait_for_subscription(timeout=5)
        sent = 30_000
        for _ in range(sent):
            pub.publish(MarketData(symbol="A", price=1.0))
        assert pub.stats.sent == sent
        assert pub.stats.hwm_dropped > 0, "a SUB that does not read must fill up"
        received = 0
        while sub.poll(500):
            if wire.decode_frame(sub.recv()).seq:
                received += 1
        # Every frame is either received or counted: nothing vanishes silently.
        assert received + pub.stats.hwm_dropped == sent, pub.stats.as_dict()
    finally:
        ctx.destroy(0)
        pub.close()


def test_journal_options_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="fsync must be one of"):
        JournalOptions(tmp_path, fsync="sometimes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="segment_bytes"):
        JournalOptions(tmp_path, segment_bytes=10)
    with pytest.raises(ValueError, match="retention_age"):
        JournalOptions(tmp_path, retention_age=-1)


def test_a_journal_directory_has_one_publisher_at_a_time(
    tmp_path: Path, rust_bin_dir: Path
) -> None:
    """A second publisher on a journal in use (another process, either language) is refused
    with a message naming the holder; once the holder is killed (-9), the lock is free."""
    journal = tmp_path / "journal"
    with subprocess.Popen(
        [
            str(rust_bin_dir / "tradewire-publish"),
            *("--endpoint", f"ipc://{tmp_path}/a", "--count", "10", "--print-ready"),
            *("--journal", str(journal), "--hold-until-eof"),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as holder:
        assert holder.stdout is not None
        json.loads(holder.stdout.readline())
        with pytest.raises(OSError, match=rf"in use by another publisher \(process {holder.pid}\)"):
            MarketDataPublisher(f"ipc://{tmp_path}/b", journal=JournalOptions(journal))
        second = subprocess.run(
            [
                str(rust_bin_dir / "tradewire-publish"),
                *("--endpoint", f"ipc://{tmp_path}/c", "--count", "1", "--journal", str(journal)),
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert second.returncode != 0
        assert "in use by another publisher" in second.stderr
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
        with MarketDataPublisher(f"ipc://{tmp_path}/d", journal=JournalOptions(journal)) as pub:
            pub.publish(MarketData(symbol="AAPL", price=1.0))
            assert pub.stats.journaled == 1

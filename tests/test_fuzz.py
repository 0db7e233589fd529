"""A million fuzzed frames at each kind of receiver, in its own process: a Python and a Rust
subscriber (behind a relay that also forwards a real publisher's stream), a Python and a Rust
command server. The frames are built from WIRE.md, not from the implementation: the kind each
one must be rejected as comes from sections 2, 8.3 and 9.1, and the test checks every count,
the receiver's peak memory, the rate of its warnings and, for subscribers, that the real stream
is still delivered afterwards, each message once and no forged one.

TRADEWIRE_FUZZ_FRAMES sets the number of frames (default 1,000,000), TRADEWIRE_FUZZ_SEED the
seed of the generator."""

from __future__ import annotations

import json
import os
import queue
import random
import struct
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import zmq
from google.protobuf.message import Message
from test_stress import PublisherProcess
from zmq.utils.monitor import recv_monitor_message

from tradewire import wire
from tradewire.catalog import MessageType
from tradewire.channels import CommandsClient, MarketDataSubscriber
from tradewire.messages import StrategyCommand

pytestmark = pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")

FRAMES = int(os.environ.get("TRADEWIRE_FUZZ_FRAMES", "1000000"))
SEED = int(os.environ.get("TRADEWIRE_FUZZ_SEED", "20240611"))
MB = 1 << 20
BIG = 256 * MB  # far over ZMQ_MAXMSGSIZE: libzmq drops it with its connection (WIRE.md 8.1)
GROWTH_LIMIT = 64 * MB
MAX_PAYLOAD = 16 * MB  # WIRE.md 1.3, the default of both SDKs
MAX_TOPIC = 99
HEADER = struct.Struct("<2sBBHHQQQQQI")  # WIRE.md 1.2, 52 bytes
SNDHWM = 10_000  # frames the sender queues before it waits for the receiver
FULL_OVERSIZED = 2  # frames carrying a payload just over MAX_PAYLOAD, within ZMQ_MAXMSGSIZE
FORGED_PRICE = -1.0
REAL_FIRST = 5  # real messages published right after the fuzz ...
REAL_LAST = 5  # ... and after the plausibility checks had time to settle
FORGED_IDS_BITS = (3, 17, 40, 62)  # flipped publisher-id bits: fewer than max_candidates (8)
IGNORED = "ignored"
DROPPED = "dropped"  # not counted by the receiver: libzmq closed the connection first

# WIRE.md section 4
MARKET_DATA, STRATEGY_COMMAND, HEARTBEAT, REPLAY_END = 1, 5, 7, 9
KNOWN_TYPES = range(1, 12)


def message_type(type_id: int) -> MessageType[Any]:
    return wire.message_type(type_id)


def pack(
    topic: bytes,
    type_id: int,
    payload: bytes,
    *,
    publisher_id: int = 7,
    seq: int = 0,
    fingerprint: int | None = None,
    flags: int = 0,
    magic: bytes = b"TW",
    version: int = 1,
    payload_len: int | None = None,
) -> bytes:
    """A frame laid out as WIRE.md section 1 says, any field overridable."""
    if fingerprint is None:
        fingerprint = message_type(type_id).fingerprint if type_id in KNOWN_TYPES else 0
    header = HEADER.pack(
        magic,
        version,
        flags,
        type_id,
        0,
        fingerprint,
        publisher_id,
        seq,
        seq,
        time.time_ns(),
        len(payload) if payload_len is None else payload_len,
    )
    return topic + header + payload


def topic(channel: str, key: str = "") -> bytes:
    return f"{channel}/{key}".encode() + b"\0"


@dataclass
class Fuzz:
    """What was sent and what each frame must be counted as."""

    frames: int = 0
    expected: Counter[str] = field(default_factory=Counter)  # reject kind, IGNORED, DROPPED
    by_strategy: Counter[str] = field(default_factory=Counter)

    def rejected(self) -> dict[str, int]:
        return {k: n for k, n in self.expected.items() if k not in (IGNORED, DROPPED)}


Frame = bytes | list[bytes]  # a list is one multipart message
Strategy = Callable[[], tuple[str, Frame]]


class Fuzzer:
    """Deterministic fuzzed frames for one receiver (`subscriber`, `py_server`, `rs_server`).

    Each strategy returns the frame and the outcome WIRE.md gives it at that receiver.
    Subscriber frames all start with `market_data/`: a SUB's prefix subscription would
    filter anything else out before the subscriber sees it."""

    def __init__(self, receiver: str, seed: int, publisher_id: int = 0) -> None:
        self.receiver = receiver
        self.rng = random.Random(seed)
        self.publisher_id = publisher_id
        self.channel = "market_data" if receiver == "subscriber" else "commands"
        self.own_type = MARKET_DATA if receiver == "subscriber" else STRATEGY_COMMAND
        self.forged_seq = 1 << 40  # far beyond plausible_jump (65,536) from anything real
        self.payloads = {t: [self._valid_payload(t) for _ in range(8)] for t in KNOWN_TYPES}
        strategies: list[tuple[int, str, Strategy]] = [
            (6, "random_short", self.random_short),
            (4, "random_long", self.random_long),
            (5, "header_cut", self.header_cut),
            (8, "cut", self.cut),
            (6, "bad_magic", self.bad_magic),
            (6, "bad_version", self.bad_version),
            (4, "long_key", self.long_key),
            (3, "overlong_topic", self.overlong_topic),
            (3, "bad_utf8_key", self.bad_utf8_key),
            (5, "payload_len_over", self.payload_len_over),
            (5, "payload_len_under", self.payload_len_under),
            (4, "payload_len_huge", self.payload_len_huge),
            (6, "unknown_type", self.unknown_type),
            (12, "bad_payload", self.bad_payload),
            (8, "other_type", self.other_type),
        ]
        if receiver == "subscriber":
            strategies += [
                (4, "forged_seq", self.forged_seq_frame),
                (4, "forged_publisher", self.forged_publisher),
            ]
        else:
            strategies += [
                (3, "bad_channel", self.bad_channel),
                (3, "other_channel", self.other_channel),
                (3, "bad_framing", self.bad_framing),
            ]
        self.names = [name for _, name, _ in strategies]
        self.strategies = [s for _, _, s in strategies]
        self.weights = [w for w, _, _ in strategies]

    # -- building blocks ---------------------------------------------------------------

    def _text(self, lo: int, hi: int) -> str:
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-"
        return "".join(self.rng.choices(alphabet, k=self.rng.randint(lo, hi)))

    def _valid_payload(self, type_id: int) -> bytes:
        """A valid encoding of the type: scalar fields set at random (or none at all)."""
        msg: Message = message_type(type_id).cls()
        for fd in msg.DESCRIPTOR.fields:
            if fd.is_repeated or self.rng.random() < 0.3:
                continue
            if fd.type == fd.TYPE_STRING:
                setattr(msg, fd.name, self._text(0, 12))
            elif fd.type == fd.TYPE_DOUBLE:
                setattr(msg, fd.name, self.rng.uniform(-1e6, 1e6))
            elif fd.type in (fd.TYPE_INT64, fd.TYPE_UINT64):
                setattr(msg, fd.name, self.rng.randint(0, 1 << 40))
            elif fd.type == fd.TYPE_BOOL:
                setattr(msg, fd.name, self.rng.random() < 0.5)
        return msg.SerializeToString()

    def _bad_payload(self, type_id: int) -> bytes:
        """Not a valid protobuf encoding of any message: a valid prefix (or none), then a
        field that cannot be parsed."""
        rng = self.rng
        prefix = rng.choice(self.payloads[type_id]) if rng.random() < 0.5 else b""
        field_no = rng.randint(1, 15)
        tail = rng.randbytes(rng.randint(0, 8))
        how = rng.randrange(5)
        if how == 0:  # field number 0
            bad = bytes([rng.randrange(6)]) + tail
        elif how == 1:  # wire types 6 and 7 do not exist
            bad = bytes([field_no << 3 | rng.choice((6, 7))]) + tail
        elif how == 2:  # a length-delimited field longer than what follows
            body = tail[: rng.randint(0, len(tail))]
            bad = bytes([field_no << 3 | 2, len(body) + rng.randint(1, 100)]) + body
        elif how == 3:  # a varint that never ends
            bad = bytes([field_no << 3]) + b"\xff" * rng.randint(1, 9)
        else:  # a varint over 10 bytes
            bad = bytes([field_no << 3]) + b"\xff" * rng.randint(10, 12) + b"\x01"
        return prefix + bad

    def _valid_frame(self) -> bytes:
        """A frame of the receiver's channel that decodes (its payload may not be the
        receiver's type)."""
        type_id = self.rng.choice(KNOWN_TYPES)
        payload = self.rng.choice(self.payloads[type_id]) + b"\x08\x01"  # never empty
        return pack(topic(self.channel, self._text(0, 8)), type_id, payload)

    def _garbage(self, lo: int, hi: int) -> bytes:
        """Random bytes without a NUL."""
        return self.rng.randbytes(self.rng.randint(lo, hi)).replace(b"\0", b"\x01")

    def _start(self) -> bytes:
        return b"market_data/" if self.receiver == "subscriber" else b""

    # -- strategies (WIRE.md section 2 unless said otherwise) ---------------------------

    def random_short(self) -> tuple[str, Frame]:
        """Random bytes without a NUL, shorter than 99 bytes: `truncated`."""
        start = self._start()
        return "truncated", start + self._garbage(0, MAX_TOPIC - 1 - len(start))

    def random_long(self) -> tuple[str, Frame]:
        """Random bytes without a NUL, 99 bytes or more: `bad_topic`."""
        start = self._start()
        return "bad_topic", start + self._garbage(MAX_TOPIC - len(start), 400)

    def header_cut(self) -> tuple[str, Frame]:
        """A topic, then less than a header: `truncated`."""
        return "truncated", topic(self.channel, self._text(0, 8)) + self._garbage(0, 51)

    def cut(self) -> tuple[str, Frame]:
        """A valid frame cut anywhere (the subscription prefix kept): `truncated`."""
        frame = self._valid_frame()
        return "truncated", frame[: self.rng.randint(len(self._start()), len(frame) - 1)]

    def bad_magic(self) -> tuple[str, Frame]:
        magic = b"TW"
        while magic == b"TW":
            magic = self.rng.randbytes(2)
        return "bad_magic", self._patched(0, magic)

    def bad_version(self) -> tuple[str, Frame]:
        version = self.rng.choice([0, *range(2, 256)])
        return "unsupported_version", self._patched(2, bytes([version]))

    def _patched(self, offset: int, data: bytes) -> bytes:
        frame = bytearray(self._valid_frame())
        at = frame.index(0) + 1 + offset
        frame[at : at + len(data)] = data
        return bytes(frame)

    def _keyed(self, key: bytes) -> bytes:
        type_id = self.rng.choice(KNOWN_TYPES)
        frame = pack(topic(self.channel), type_id, self.rng.choice(self.payloads[type_id]))
        at = len(self.channel) + 1
        return frame[:at] + key + frame[at:]

    def long_key(self) -> tuple[str, Frame]:
        """A key over 64 bytes, the topic within 99: `bad_topic`."""
        room = MAX_TOPIC - len(self.channel) - 2
        return "bad_topic", self._keyed(self._text(65, room).encode())

    def overlong_topic(self) -> tuple[str, Frame]:
        """No NUL within the first 99 bytes: `bad_topic`."""
        return "bad_topic", self._keyed(self._text(MAX_TOPIC, 160).encode())

    def bad_utf8_key(self) -> tuple[str, Frame]:
        """A key that is not UTF-8: `bad_topic`."""
        key = self._text(0, 10).encode() + self.rng.choice([b"\xff", b"\xc3\x28", b"\xe2\x82"])
        return "bad_topic", self._keyed(key + self._text(0, 10).encode())

    def _with_len(self, payload_len: int, payload: bytes) -> bytes:
        type_id = self.rng.choice(KNOWN_TYPES)
        key = self._text(0, 8)
        return pack(topic(self.channel, key), type_id, payload, payload_len=payload_len)

    def payload_len_over(self) -> tuple[str, Frame]:
        """payload_len beyond the bytes that follow (within the maximum): `truncated`."""
        payload = self._garbage(0, 64)
        return "truncated", self._with_len(len(payload) + self.rng.randint(1, 1 << 20), payload)

    def payload_len_under(self) -> tuple[str, Frame]:
        """Bytes left after payload_len bytes: `trailing_bytes`."""
        payload = self._garbage(1, 64)
        return "trailing_bytes", self._with_len(self.rng.randrange(len(payload)), payload)

    def payload_len_huge(self) -> tuple[str, Frame]:
        """payload_len over the maximum, checked before the payload: `oversized`."""
        length = self.rng.randint(MAX_PAYLOAD + 1, (1 << 32) - 1)
        return "oversized", self._with_len(length, self._garbage(0, 64))

    def unknown_type(self) -> tuple[str, Frame]:
        """type_id 0 or not in the schema: `unknown_type`."""
        type_id = self.rng.choice([0, self.rng.randint(12, 65535)])
        frame = pack(topic(self.channel, self._text(0, 8)), type_id, self._garbage(0, 32))
        return "unknown_type", frame

    def bad_payload(self) -> tuple[str, Frame]:
        """A valid header of a known type (any flags, any fingerprint), a payload that does
        not parse: `bad_payload`, control types included (8.3). A command server only
        parses commands: another type is refused by its type first (`unknown_type`)."""
        type_id = self.rng.choice(KNOWN_TYPES) if self.receiver == "subscriber" else 5
        frame = pack(
            topic(self.channel, self._text(0, 8)),
            type_id,
            self._bad_payload(type_id),
            flags=self.rng.getrandbits(8),
            fingerprint=self.rng.choice([None, self.rng.getrandbits(64)]),
        )
        return "bad_payload", frame

    def other_type(self) -> tuple[str, Frame]:
        """A valid frame of another known type, with any flags and fingerprint (both are
        informational on receive, 1.2 and 2). A subscriber ignores it (7.1, 8.3; Heartbeats
        it uses, so none are sent). A command server can only refuse it: WIRE.md names no
        kind for a known type that is not the command, both SDKs count it `unknown_type`."""
        exclude = (self.own_type, HEARTBEAT)
        type_id = self.rng.choice([t for t in KNOWN_TYPES if t not in exclude])
        frame = pack(
            topic(self.channel, self._text(0, 8)),
            type_id,
            self.rng.choice(self.payloads[type_id]),
            flags=self.rng.getrandbits(8),
            fingerprint=self.rng.choice([None, self.rng.getrandbits(64)]),
            publisher_id=self.rng.getrandbits(64),
        )
        return (IGNORED if self.receiver == "subscriber" else "unknown_type"), frame

    def _forged_tick(self, publisher_id: int, seq: int) -> bytes:
        payload = self.rng.choice(self.payloads[MARKET_DATA])
        tick = message_type(MARKET_DATA).cls.FromString(payload)
        tick.price = FORGED_PRICE
        tick.exchange = "FORGED"
        return pack(
            topic("market_data", self._text(1, 5)),
            MARKET_DATA,
            tick.SerializeToString(),
            publisher_id=publisher_id,
            seq=seq,
        )

    def forged_seq_frame(self) -> tuple[str, Frame]:
        """A valid tick of the real publisher numbered far ahead: the publisher disowns it
        (9.1). Numbers are distinct: a repeat of a number waiting for its check would be a
        duplicate, not a second forgery."""
        self.forged_seq += self.rng.randint(1, 1000)
        return "disowned", self._forged_tick(self.publisher_id, self.forged_seq)

    def forged_publisher(self) -> tuple[str, Frame]:
        """A valid tick under the real publisher id with one bit flipped: checked with the
        publisher at the control endpoint, which is not that id: `disowned` (9.1)."""
        pid = self.publisher_id ^ 1 << self.rng.choice(FORGED_IDS_BITS)
        return "disowned", self._forged_tick(pid, self.rng.randint(1, 1 << 20))

    def bad_channel(self) -> tuple[str, Frame]:
        """A channel name outside [a-z0-9_]{1,32}, or no `/`: `bad_topic`."""
        type_id = self.rng.choice(KNOWN_TYPES)
        channel = self.rng.choice(
            [
                "Commands",
                "com-mands",
                "",
                "c" * self.rng.randint(33, 60),
                "comm ands",
                self._text(1, 10).upper() + "!",
            ]
        )
        slash = "" if self.rng.random() < 0.2 else "/"
        raw = f"{channel}{slash}{self._text(0, 5)}".encode() + b"\0"
        return "bad_topic", pack(raw, type_id, self.rng.choice(self.payloads[type_id]))

    def other_channel(self) -> tuple[str, Frame]:
        """A valid frame of another channel, not a command: the Rust server counts it
        `wrong_channel` (8.3); the Python one checks the type only (`unknown_type`)."""
        type_id = self.rng.choice([t for t in KNOWN_TYPES if t != STRATEGY_COMMAND])
        channel = self.rng.choice(["market_data", "signals", "orders", "positions", "x"])
        frame = pack(
            topic(channel, self._text(0, 6)), type_id, self.rng.choice(self.payloads[type_id])
        )
        return ("wrong_channel" if self.receiver == "rs_server" else "unknown_type"), frame

    def bad_framing(self) -> tuple[str, Frame]:
        """More than one frame in a ROUTER message: `bad_framing` (8.3)."""
        parts = [self._valid_frame() for _ in range(self.rng.randint(2, 3))]
        return "bad_framing", parts

    # -- the run -------------------------------------------------------------------------

    def frames(self, count: int, fuzz: Fuzz) -> Iterator[Frame | None]:
        """`count` frames; None stands for the one 256 MB frame (in the middle). The two
        frames carrying a full oversized payload are built once and sent twice."""
        full = pack(
            topic(self.channel, "AAPL"), self.own_type, bytes(MAX_PAYLOAD + 1)
        )  # 16 MiB + 1: over max_payload, within ZMQ_MAXMSGSIZE
        assert len(full) <= wire.max_frame_size(MAX_PAYLOAD)
        specials = {count // 3: "full", 2 * count // 3: "full", count // 2: "big"}
        picks = self.rng.choices(range(len(self.strategies)), self.weights, k=count)
        for i, pick in enumerate(picks):
            special = specials.get(i)
            fuzz.frames += 1
            if special == "big":
                fuzz.expected[DROPPED] += 1
                fuzz.by_strategy["big_256mb"] += 1
                yield None
            elif special == "full":
                fuzz.expected["oversized"] += 1
                fuzz.by_strategy["full_oversized"] += 1
                yield full
            else:
                outcome, frame = self.strategies[pick]()
                fuzz.expected[outcome] += 1
                fuzz.by_strategy[self.names[pick]] += 1
                yield frame


def big_frame(channel: str) -> bytearray:
    """A frame whose header announces BIG payload bytes and that carries them."""
    head = pack(topic(channel, "AAPL"), MARKET_DATA, b"", payload_len=BIG)
    frame = bytearray(len(head) + BIG)
    frame[: len(head)] = head
    return frame


# -- senders --------------------------------------------------------------------------------


def send_blocking(
    sock: zmq.Socket[bytes],
    frame: bytes | bytearray,
    service: Callable[[], object] | None = None,
    more: bool = False,
) -> None:
    """Send without ever dropping: NOBLOCK, and on a full queue serve and wait."""
    flags = zmq.NOBLOCK | (zmq.SNDMORE if more else 0)
    while True:
        try:
            sock.send(frame, flags, copy=len(frame) < 65536)
            return
        except zmq.Again:
            if service is not None:
                service()
            sock.poll(10, zmq.POLLOUT)


class FuzzRelay:
    """An XSUB/XPUB relay between a real publisher and a subscriber, as a compromised hop
    would be: it forwards subscriptions up and the stream down, and sends the fuzz into the
    downstream. XPUB_NODROP makes a full subscriber queue push back instead of dropping, so
    every frame sent reaches the subscriber (the 256 MB one excepted)."""

    def __init__(self, upstream: str, downstream: str) -> None:
        self._jobs: queue.Queue[Callable[[], None]] = queue.Queue()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self.error: BaseException | None = None
        self.upstream = upstream
        self.downstream = downstream
        self._thread = threading.Thread(target=self._run)
        self._thread.start()
        assert self._ready.wait(10), "relay did not start"

    def _run(self) -> None:
        ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
        self.xpub = ctx.socket(zmq.XPUB)
        self.xsub = ctx.socket(zmq.XSUB)
        try:
            self.xpub.setsockopt(zmq.XPUB_VERBOSE, 1)
            self.xpub.setsockopt(zmq.XPUB_NODROP, 1)
            self.xpub.setsockopt(zmq.SNDHWM, SNDHWM)
            self.xpub.bind(self.downstream)
            self.xsub.connect(self.upstream)
            self._ready.set()
            while not self._stop.is_set():
                try:
                    job = self._jobs.get(timeout=0.005)
                except queue.Empty:
                    self.service()
                    continue
                job()
        except BaseException as exc:
            self.error = exc
            raise
        finally:
            self.xpub.close(linger=0)
            self.xsub.close(linger=0)

    def service(self) -> list[bytes]:
        """Forwards whatever is waiting, both ways; returns the subscription messages."""
        events: list[bytes] = []
        while self.xpub.poll(0):
            event = self.xpub.recv()
            events.append(event)
            self.xsub.send(event)
        while self.xsub.poll(0):
            send_blocking(self.xpub, self.xsub.recv())
        return events

    def run(self, job: Callable[[], None], timeout: float) -> None:
        """Runs `job` on the relay's thread (it owns the sockets) and waits for it."""
        done = threading.Event()
        failure: list[BaseException] = []

        def wrapped() -> None:
            try:
                job()
            except BaseException as exc:
                failure.append(exc)
            finally:
                done.set()

        self._jobs.put(wrapped)
        assert done.wait(timeout), f"relay job not done within {timeout}s"
        if failure:
            raise failure[0]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)


def fuzz_through_relay(relay: FuzzRelay, frames: Iterator[Frame | None]) -> None:
    """Sends the fuzz downstream. After the 256 MB frame the subscriber's SUB has lost its
    connection: nothing more is sent until it has subscribed again, so no other frame is
    lost with that connection."""
    for i, frame in enumerate(frames):
        if i % 512 == 0:
            relay.service()
        if frame is None:
            send_blocking(relay.xpub, big_frame("market_data"), relay.service)
            deadline = time.monotonic() + 60
            while not any(e == b"\x01market_data/" for e in relay.service()):
                assert time.monotonic() < deadline, "the subscriber did not reconnect"
                relay.xpub.poll(10)
            continue
        assert isinstance(frame, bytes)
        send_blocking(relay.xpub, frame, relay.service)


def fuzz_dealer(ctx: zmq.Context[Any], endpoint: str, frames: Iterator[Frame | None]) -> None:
    """Sends the fuzz from a DEALER, then a real command on the same connection and waits
    for its ack: the server handles one peer's frames in order, so once the ack is here
    every fuzz frame has been counted. After the 256 MB frame nothing is sent until the
    DEALER has reconnected (the server closed that connection)."""
    dealer = ctx.socket(zmq.DEALER)
    dealer.setsockopt(zmq.LINGER, 0)
    dealer.setsockopt(zmq.SNDHWM, SNDHWM)
    monitor = dealer.get_monitor_socket(zmq.EVENT_DISCONNECTED | zmq.EVENT_HANDSHAKE_SUCCEEDED)
    dealer.connect(endpoint)
    try:
        wait_for_event(monitor, zmq.EVENT_HANDSHAKE_SUCCEEDED)
        for frame in frames:
            if frame is None:
                send_blocking(dealer, big_frame("commands"))
                wait_for_event(monitor, zmq.EVENT_DISCONNECTED)
                wait_for_event(monitor, zmq.EVENT_HANDSHAKE_SUCCEEDED)
            elif isinstance(frame, list):  # once its first part is queued, so is the rest
                for i, part in enumerate(frame):
                    send_blocking(dealer, part, more=i < len(frame) - 1)
            else:
                send_blocking(dealer, frame)
        drain = StrategyCommand(type=StrategyCommand.PAUSE_TRADING, command_id="drain")
        dealer.send(wire.encode_message("commands", drain, publisher_id=9, seq=1, send_ts_ns=0))
        assert dealer.poll(120_000), "no ack for the command sent after the fuzz"
        ack = wire.decode_frame(dealer.recv())
        assert ack.type_id == 6, ack
    finally:
        dealer.disable_monitor()
        monitor.close(linger=0)
        dealer.close()


def wait_for_event(monitor: zmq.Socket[bytes], event: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if monitor.poll(100) and recv_monitor_message(monitor)["event"] == event:
            return
    raise AssertionError(f"no socket event {event} within {timeout}s")


# -- receivers and what they report ---------------------------------------------------------


def status_bytes(pid: int, field_name: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field_name} in /proc/{pid}/status")


class MemorySampler:
    """The highest VmRSS and VmHWM of a process, sampled every 20 ms until stopped (or
    until the process is gone)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_rss = 0
        self.peak_hwm = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                rss, hwm = status_bytes(self.pid, "VmRSS"), status_bytes(self.pid, "VmHWM")
            except (OSError, AssertionError):  # the process has exited
                return
            self.peak_rss = max(self.peak_rss, rss)
            self.peak_hwm = max(self.peak_hwm, hwm)
            self.samples += 1
            self._stop.wait(0.02)

    def stop(self) -> int:
        """Stops sampling; the peak (VmHWM is the kernel's own peak of VmRSS)."""
        self._stop.set()
        self._thread.join(10)
        return max(self.peak_rss, self.peak_hwm)


class Receiver:
    """A receiver process: its stdout lines (JSON) in a queue, its stderr kept."""

    def __init__(self, args: list[str]) -> None:
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            args,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.lines: queue.Queue[dict[str, Any]] = queue.Queue()
        self.stderr: list[str] = []
        self._threads = [
            threading.Thread(target=self._read_stdout, daemon=True),
            threading.Thread(target=self._read_stderr, daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        self.wall = 0.0

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.strip():
                self.lines.put(json.loads(line))

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        self.stderr.extend(self.proc.stderr)

    def line(self, timeout: float, what: str) -> dict[str, Any]:
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(
                f"{what}: nothing from the receiver within {timeout}s; stderr tail:\n"
                + "".join(self.stderr[-20:])
            ) from None

    def finish(self, timeout: float = 60.0) -> int:
        code = self.proc.wait(timeout=timeout)
        self.wall = time.monotonic() - self.started
        for thread in self._threads:
            thread.join(10)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()

    def warning_lines(self) -> int:
        return sum("WARNING" in line for line in self.stderr)


def check_memory_and_warnings(
    label: str, receiver: Receiver, idle: int, peak: int, fuzz: Fuzz, fuzz_seconds: float
) -> None:
    warnings = receiver.warning_lines()
    report = {
        "receiver": label,
        "frames": fuzz.frames,
        "fuzz_seconds": round(fuzz_seconds, 1),
        "wall_seconds": round(receiver.wall, 1),
        "idle_rss_mb": round(idle / MB, 1),
        "peak_mb": round(peak / MB, 1),
        "growth_mb": round((peak - idle) / MB, 1),
        "warning_lines": warnings,
        "warnings_per_second": round(warnings / receiver.wall, 2),
        "expected": dict(sorted(fuzz.expected.items())),
        "strategies": dict(sorted(fuzz.by_strategy.items())),
    }
    print(json.dumps(report))
    assert peak - idle < GROWTH_LIMIT, report
    # WIRE.md 8.3: one line per socket per warn_interval (1 s); +2 for the first and last
    assert 1 <= warnings <= receiver.wall + 2, (report, receiver.stderr[:5])


# -- subscribers ----------------------------------------------------------------------------

PY_SUBSCRIBER = """
import json, logging, sys
from tradewire.channels import MarketDataSubscriber

logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(message)s")
endpoint, control, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
sub = MarketDataSubscriber(endpoint, control=control, subscribe_timeout=30)
print(json.dumps({"ready": True}), flush=True)
got = 0
while got < count:
    r = sub.recv(timeout=120)
    if r is None:
        break
    got += 1
    e = r.envelope
    print(json.dumps({"publisher_id": f"{e.publisher_id:016x}", "seq": e.seq,
                      "price": r.message.price}), flush=True)
stats = sub.stats.as_dict()
sub.close()
for event in sub.events:
    print(json.dumps(event.as_dict()), flush=True)
print(json.dumps({"summary": {"received": got, "rejected_by_kind": stats["rejected"],
                              "ignored": stats["ignored"], "duplicates": stats["duplicates"],
                              "unrecoverable": stats["unrecoverable"]}}), flush=True)
"""


def fuzz_subscriber(
    tmp_path: Path, label: str, command: Callable[[str, str, int], list[str]]
) -> None:
    """A real publisher, the relay, the subscriber process; the fuzz, then the real stream."""
    endpoint = f"ipc://{tmp_path}/md"
    relayed = f"ipc://{tmp_path}/relay"
    real = REAL_FIRST + REAL_LAST
    publisher = PublisherProcess(endpoint, 100_000)
    relay = FuzzRelay(endpoint, relayed)
    receiver = Receiver(command(relayed, endpoint + ".ctl", real))
    try:
        assert receiver.line(60, "ready line").get("ready"), "no ready line"
        idle = status_bytes(receiver.proc.pid, "VmRSS")
        sampler = MemorySampler(receiver.proc.pid)
        fuzz = Fuzz()
        frames = Fuzzer("subscriber", SEED, publisher.publisher_id).frames(FRAMES, fuzz)
        started = time.monotonic()
        relay.run(lambda: fuzz_through_relay(relay, frames), timeout=600)
        fuzz_seconds = time.monotonic() - started
        messages: list[dict[str, Any]] = []
        events: list[dict[str, Any]] = []
        summary: dict[str, Any] = {}

        def collect(until: Callable[[], bool], what: str) -> None:
            while not until():
                row = receiver.line(180, what)
                if "summary" in row:
                    summary.update(row["summary"])
                elif "event" in row:
                    events.append(row)
                else:
                    messages.append(row)

        publisher.publish(REAL_FIRST)
        assert publisher.published() == REAL_FIRST
        collect(lambda: len(messages) >= REAL_FIRST, "the real stream after the fuzz")
        time.sleep(1.0)  # the last plausibility checks: one round trip to the publisher
        publisher.publish(REAL_LAST)
        assert publisher.published() == real
        collect(lambda: bool(summary), "the summary")
        assert receiver.finish() == 0, receiver.stderr[-5:]
        peak = sampler.stop()
    finally:
        receiver.kill()
        relay.close()
        publisher.stop()
    real_id = f"{publisher.publisher_id:016x}"
    assert [(m["publisher_id"], m["seq"]) for m in messages] == [
        (real_id, seq) for seq in range(1, real + 1)
    ], "the real stream, each message once, nothing forged"
    assert all(m["price"] != FORGED_PRICE for m in messages)
    print(json.dumps({"summary": summary}))
    assert summary["rejected_by_kind"] == fuzz.rejected(), (summary, dict(fuzz.expected))
    assert summary["ignored"] == fuzz.expected[IGNORED], (summary, dict(fuzz.expected))
    assert summary["duplicates"] == 0 and summary["unrecoverable"] == 0, summary
    # the 256 MB frame costs the connection: silence until the SUB is connected again
    assert {e["event"] for e in events} <= {"peer_lost", "peer_back"}, events
    check_memory_and_warnings(label, receiver, idle, peak, fuzz, fuzz_seconds)


# Each bound guards a hang (a receiver that stops reading, a lost connection), not speed:
# a run takes about a minute or two on two shared cores.
@pytest.mark.timeout(900)
def test_python_subscriber_survives_a_million_fuzzed_frames(tmp_path: Path) -> None:
    fuzz_subscriber(
        tmp_path,
        "python subscriber",
        lambda endpoint, control, count: [
            sys.executable,
            "-c",
            PY_SUBSCRIBER,
            endpoint,
            control,
            str(count),
        ],
    )


@pytest.mark.timeout(900)
def test_rust_subscriber_survives_a_million_fuzzed_frames(
    tmp_path: Path, rust_bin_dir: Path
) -> None:
    fuzz_subscriber(
        tmp_path,
        "rust subscriber",
        lambda endpoint, control, count: [
            str(rust_bin_dir / "tradewire-subscribe"),
            "--endpoint",
            endpoint,
            "--control",
            control,
            "--json",
            "--count",
            str(count),
            "--idle-timeout-ms",
            "120000",
            "--connect-timeout-ms",
            "30000",
        ],
    )


# -- command servers ------------------------------------------------------------------------

PY_COMMAND_SERVER = """
import json, logging, sys
from tradewire.channels import CommandsServer
from tradewire.messages import CommandAck

logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(message)s")
applied = []
def handle(cmd):
    applied.append(cmd.command_id)
    return CommandAck(outcome=CommandAck.APPLIED)
with CommandsServer(sys.argv[1], handle) as server:
    print(json.dumps({"ready": True}), flush=True)
    server.serve(until=lambda: "stop" in applied)
    stats = server.stats
print(json.dumps({"summary": {"applied": len(applied), "rejected_by_kind": dict(stats.rejected)}}),
      flush=True)
"""


def fuzz_command_server(tmp_path: Path, label: str, receiver_kind: str, args: list[str]) -> None:
    """The server process, the fuzz from a DEALER, then a real client's command."""
    endpoint = f"ipc://{tmp_path}/cmd"
    receiver = Receiver([*args, endpoint] if receiver_kind == "py_server" else [*args])
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    try:
        assert receiver.line(60, "ready line").get("ready"), "no ready line"
        idle = status_bytes(receiver.proc.pid, "VmRSS")
        sampler = MemorySampler(receiver.proc.pid)
        fuzz = Fuzz()
        started = time.monotonic()
        fuzz_dealer(ctx, endpoint, Fuzzer(receiver_kind, SEED).frames(FRAMES, fuzz))
        fuzz_seconds = time.monotonic() - started
        with CommandsClient(endpoint, context=ctx) as client:
            stop = StrategyCommand(type=StrategyCommand.KILL_SWITCH, command_id="stop")
            ack = client.send(stop, timeout=30)
        summary: dict[str, Any] = {}
        while not summary:
            summary = receiver.line(60, "the summary").get("summary", {})
        assert receiver.finish() == 0, receiver.stderr[-5:]
        peak = sampler.stop()
    finally:
        receiver.kill()
        ctx.term()
    assert ack.command_id == "stop" and not ack.duplicate, ack
    print(json.dumps({"summary": summary}))
    assert summary["applied"] == 2, summary  # the drain command and the client's
    assert summary["rejected_by_kind"] == fuzz.rejected(), (summary, dict(fuzz.expected))
    check_memory_and_warnings(label, receiver, idle, peak, fuzz, fuzz_seconds)


@pytest.mark.timeout(900)
def test_python_command_server_survives_a_million_fuzzed_frames(tmp_path: Path) -> None:
    fuzz_command_server(
        tmp_path, "python command server", "py_server", [sys.executable, "-c", PY_COMMAND_SERVER]
    )


@pytest.mark.timeout(900)
def test_rust_command_server_survives_a_million_fuzzed_frames(
    tmp_path: Path, rust_bin_dir: Path
) -> None:
    endpoint = f"ipc://{tmp_path}/cmd"
    fuzz_command_server(
        tmp_path,
        "rust command server",
        "rs_server",
        [
            str(rust_bin_dir / "tradewire-command-server"),
            "--endpoint",
            endpoint,
            "--count",
            "2",
        ],
    )


# -- regressions found by the fuzz ----------------------------------------------------------


def replay_end_frame(publisher_id: int) -> bytes:
    """A valid ReplayEnd disowning a number the subscriber never asked about."""
    end = message_type(REPLAY_END).cls(
        channel="market_data", publisher_id=publisher_id, from_seq=3, to_seq=3, last_seq=0
    )
    return pack(topic("market_data"), REPLAY_END, end.SerializeToString(), seq=0)


@pytest.mark.timeout(120)  # guards a subscriber cut off for good (it waits 60 s at most)
def test_python_subscriber_reconnects_after_an_oversized_frame_and_ignores_a_stray_replay_end(
    tmp_path: Path,
) -> None:
    """After a frame over ZMQ_MAXMSGSIZE (libzmq closes the connection and never connects
    again by itself) the subscriber still gets the stream; a ReplayEnd on the data socket
    is ignored (only the control socket answers requests)."""
    endpoint = f"ipc://{tmp_path}/md"
    relayed = f"ipc://{tmp_path}/relay"
    publisher = PublisherProcess(endpoint, 1000)
    relay = FuzzRelay(endpoint, relayed)
    try:
        with MarketDataSubscriber(relayed, control=endpoint + ".ctl") as sub:
            frames: list[Frame | None] = [replay_end_frame(publisher.publisher_id), None]
            job = threading.Thread(
                target=relay.run, args=(lambda: fuzz_through_relay(relay, iter(frames)), 60)
            )
            job.start()
            while job.is_alive():  # the subscriber runs its timers only while it receives
                assert sub.recv(timeout=0.2) is None
            job.join()
            publisher.publish(3)
            got = [sub.recv(timeout=30) for _ in range(3)]
            stats = sub.stats
    finally:
        relay.close()
        publisher.stop()
    assert [g.envelope.seq if g else None for g in got] == [1, 2, 3], stats.as_dict()
    assert stats.ignored == 1 and not stats.rejected, stats.as_dict()


@pytest.mark.timeout(120)  # guards a subscriber cut off for good (it waits 60 s at most)
def test_rust_subscriber_reconnects_after_an_oversized_frame(
    tmp_path: Path, rust_bin_dir: Path
) -> None:
    endpoint = f"ipc://{tmp_path}/md"
    relayed = f"ipc://{tmp_path}/relay"
    publisher = PublisherProcess(endpoint, 1000)
    relay = FuzzRelay(endpoint, relayed)
    receiver = Receiver(
        [
            str(rust_bin_dir / "tradewire-subscribe"),
            *("--endpoint", relayed, "--control", endpoint + ".ctl", "--json"),
            *("--count", "3", "--idle-timeout-ms", "60000"),
        ]
    )
    try:
        assert receiver.line(30, "ready line").get("ready")
        relay.run(lambda: fuzz_through_relay(relay, iter([None])), timeout=60)
        publisher.publish(3)
        rows: list[dict[str, Any]] = []
        while len(rows) < 3:  # peer_lost / peer_back events come first
            row = receiver.line(60, "the stream after the oversized frame")
            rows += [row] if "seq" in row else []
        assert receiver.finish() == 0, receiver.stderr[-5:]
    finally:
        receiver.kill()
        relay.close()
        publisher.stop()
    assert [r.get("seq") for r in rows] == [1, 2, 3], rows

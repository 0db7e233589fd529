"""The Rust fast path of the Python SDK (crates/wire-py, `tradewire._wire`) agrees with the
pure-Python codec byte for byte and error for error, and the transport works on either."""

from __future__ import annotations

import struct
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import test_transport as scenarios
import test_vectors
import zmq
from hypothesis import given, settings
from hypothesis import strategies as st

from tradewire import wire
from tradewire.messages import MarketData
from tradewire.transport import _native

U64 = st.integers(0, 2**64 - 1)
CHANNEL = st.from_regex(r"[a-z0-9_]{1,32}", fullmatch=True)
KEY = st.text(st.characters(min_codepoint=1, max_codepoint=0x2FFF), max_size=20).filter(
    lambda k: len(k.encode()) <= wire.MAX_KEY
)


@pytest.fixture
def pure_python(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK as it runs without the extension."""
    monkeypatch.setattr(wire, "_CODEC", None)
    monkeypatch.setattr(_native, "rust_codec", lambda: None)


def test_the_extension_is_built_and_used() -> None:
    """CI builds it: a silent fallback to pure Python would hide a broken build."""
    assert wire._CODEC is not None
    assert _native.rust_codec() is not None and _native.rust_codec().can_recv  # type: ignore[union-attr]


def _py(frame: bytes, max_payload: int = wire.DEFAULT_MAX_PAYLOAD) -> wire.Envelope | str:
    try:
        return wire.decode_frame_py(frame, max_payload)
    except wire.WireError as exc:
        return exc.kind


@st.composite
def frames(draw: st.DrawFn) -> bytes:
    frame = wire.encode_frame(
        draw(CHANNEL),
        draw(KEY),
        draw(st.integers(1, 0xFFFF)),
        draw(U64),
        draw(U64),
        draw(U64),
        draw(U64),
        draw(U64),
        draw(st.binary(max_size=64)),
        draw(st.integers(0, 255)),
    )
    damage = draw(st.sampled_from(["none", "cut", "extend", "flip", "splice"]))
    if damage == "cut":
        frame = frame[: draw(st.integers(0, len(frame) - 1))]
    elif damage == "extend":
        frame += draw(st.binary(min_size=1, max_size=8))
    elif damage == "flip":
        at = draw(st.integers(0, len(frame) - 1))
        frame = frame[:at] + bytes([frame[at] ^ draw(st.integers(1, 255))]) + frame[at + 1 :]
    elif damage == "splice":
        frame = draw(st.binary(max_size=120)) + frame[draw(st.integers(0, len(frame))) :]
    return frame


@settings(max_examples=2000, deadline=None)
@given(frames(), st.integers(0, 80))
def test_rust_decode_matches_python_on_valid_and_damaged_frames(
    frame: bytes, max_payload: int
) -> None:
    assert wire._CODEC is not None
    fast = wire._CODEC.decode(frame, max_payload)
    expected = _py(frame, max_payload)
    if isinstance(expected, str):
        assert fast is None, f"Rust accepted a frame Python rejects as {expected}"
    else:
        assert fast == expected and type(fast) is wire.Envelope
        assert wire.decode_frame(frame, max_payload) == expected


@settings(max_examples=500, deadline=None)
@given(
    CHANNEL,
    KEY,
    st.integers(1, 0xFFFF),
    U64,
    U64,
    U64,
    U64,
    U64,
    st.binary(max_size=300),
    st.integers(0, 255),
)
def test_rust_pack_writes_the_bytes_struct_writes(
    channel: str,
    key: str,
    type_id: int,
    fp: int,
    pid: int,
    seq: int,
    kseq: int,
    ts: int,
    payload: bytes,
    flags: int,
) -> None:
    topic = wire.topic(channel, key)
    assert wire._CODEC is not None
    fast = wire._CODEC.pack(topic, type_id, fp, pid, seq, kseq, ts, payload, flags)
    header = wire._HEADER.pack(
        wire.MAGIC, wire.VERSION, flags, type_id, 0, fp, pid, seq, kseq, ts, len(payload)
    )
    assert fast == topic + header + payload


@pytest.mark.parametrize("field", range(1, 7))
def test_rust_pack_refuses_numbers_that_do_not_fit(field: int) -> None:
    args: list[object] = [b"md/\0", 1, 2, 3, 4, 5, 6, b"", 0]
    args[field] = -1 if field > 1 else 0x10000
    assert wire._CODEC is not None
    with pytest.raises(OverflowError):
        wire._CODEC.pack(*args)  # type: ignore[arg-type]


def test_decode_frame_names_the_error_with_or_without_the_extension() -> None:
    good = wire.encode_message(
        "market_data", MarketData(symbol="A"), key="A", publisher_id=1, seq=1, send_ts_ns=1
    )
    for bad, kind in [
        (good[:-1], "truncated"),
        (good + b"x", "trailing_bytes"),
        (good.replace(b"TW", b"XX", 1), "bad_magic"),
        (b"Market/A\0" + good[len("market_data/A\0") :], "bad_topic"),
    ]:
        with pytest.raises(wire.WireError) as caught:
            wire.decode_frame(bad)
        assert caught.value.kind == kind
    assert wire.decode_frame(memoryview(good)) == wire.decode_frame(good)


@pytest.fixture(params=["rust", "python"])
def socket_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The socket code under test: the Rust one, or the pure-Python fallback."""
    if request.param == "python":
        monkeypatch.setattr(_native, "rust_codec", lambda: None)
    return str(request.param)


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[zmq.Socket[bytes], zmq.Socket[bytes]]]:
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
    a, b = ctx.socket(zmq.PAIR), ctx.socket(zmq.PAIR)
    a.bind(f"ipc://{tmp_path}/pair")
    b.connect(f"ipc://{tmp_path}/pair")
    yield a, b
    a.close(0)
    b.close(0)


def _frames_in_flight(a: zmq.Socket[bytes], b: zmq.Socket[bytes], frames: list[bytes]) -> None:
    for frame in frames:
        a.send(frame)
    deadline = time.monotonic() + 5
    while not b.poll(10) and time.monotonic() < deadline:
        pass
    time.sleep(0.1)  # all of them queued at b (ipc, a few hundred bytes)


def test_drain_keeps_order_limits_batches_and_hands_back_bad_frames(
    pair: tuple[zmq.Socket[bytes], zmq.Socket[bytes]], socket_path: str
) -> None:
    a, b = pair
    good = [
        wire.encode_message(
            "market_data", MarketData(symbol="A"), key="A", publisher_id=1, seq=n, send_ts_ns=n
        )
        for n in range(1, 6)
    ]
    sent = [*good[:2], b"garbage", *good[2:]]
    _frames_in_flight(a, b, sent)
    first = _native.drain(b, 4)
    rest = _native.drain(b, 100)
    assert len(first) == 4 and len(rest) == 2
    assert _native.drain(b, 100) == []
    got = [item if isinstance(item, bytes) else item.encode() for item in first + rest]
    assert got == sent
    bad = [item for item in first + rest if isinstance(item, bytes)]
    assert bad == [b"garbage"]
    b.close(0)
    with pytest.raises(zmq.ZMQError) as caught:
        _native.drain(b, 1)
    assert caught.value.errno == zmq.ENOTSOCK


def test_libzmq_path_wants_exactly_one_libzmq(tmp_path: Path) -> None:
    maps = tmp_path / "maps"
    line = "7f00-7f01 r-xp 00000000 08:01 42     {}\n"
    maps.write_text(line.format("/usr/lib/libc.so.6"))
    assert _native.libzmq_path(maps) is None
    maps.write_text(line.format("/x/pyzmq.libs/libzmq-ab.so.5") * 3)
    assert _native.libzmq_path(maps) == "/x/pyzmq.libs/libzmq-ab.so.5"
    maps.write_text(line.format("/x/libzmq.so.5") + line.format("/y/libzmq.so.5"))
    assert _native.libzmq_path(maps) is None
    assert _native.libzmq_path(tmp_path / "missing") is None


SCENARIOS: list[Callable[[str], None]] = [
    scenarios.test_first_message_after_subscribe_is_always_received,
    scenarios.test_drops_at_a_slow_subscriber_are_replayed_exactly_once_in_order,
    scenarios.test_small_ring_reports_exactly_the_missing_ranges,
    scenarios.test_malformed_frames_are_counted_and_the_subscriber_keeps_running,
    scenarios.test_late_joiner_starts_from_a_snapshot,
]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.__name__[5:] for s in SCENARIOS])
def test_transport_scenarios_without_the_extension(
    pure_python: None, tmp_path: Path, scenario: Callable[[str], None]
) -> None:
    scenario(f"ipc://{tmp_path}/md")


VECTOR_CASES = test_vectors.CASES[::3]


@pytest.mark.parametrize(
    ("message", "case"),
    VECTOR_CASES,
    ids=[f"{m.split('.')[-1]}.{c['name']}" for m, c in VECTOR_CASES],
)
def test_vectors_decode_without_the_extension(
    pure_python: None, message: str, case: dict[str, object]
) -> None:
    test_vectors.test_vector_roundtrips_in_python(message, case)


def test_threads_share_one_codec() -> None:
    """Four threads decode through the one shared Codec at once: same results, no errors."""
    frames = [
        wire.encode_message(
            "market_data", MarketData(symbol=f"S{n % 50}"), key=f"S{n % 50}",
            publisher_id=1, seq=n, send_ts_ns=n,
        )
        for n in range(1, 2001)
    ]  # fmt: skip
    expected = [wire.decode_frame_py(f) for f in frames]
    results: list[bool] = []

    def work() -> None:
        pairs = zip(frames, expected, strict=True)
        results.append(all(wire.decode_frame(f) == e for f, e in pairs))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert results == [True] * 4


def test_frame_sender_sends_and_returns_the_packed_frame(
    pair: tuple[zmq.Socket[bytes], zmq.Socket[bytes]], socket_path: str
) -> None:
    a, b = pair
    b.send(b"hello")  # connected both ways before the non-blocking sends
    assert a.poll(5000) and a.recv() == b"hello"
    send = _native.frame_sender(a)
    topic, payload = wire.topic("market_data", "A"), MarketData(symbol="A").SerializeToString()
    frame = send(topic, 1, 2**64 - 1, 5, 6, 7, 8, payload)
    assert frame == wire.pack_frame(topic, 1, 2**64 - 1, 5, 6, 7, 8, payload)
    assert b.poll(5000) and b.recv() == frame
    with pytest.raises((OverflowError, struct.error)):  # Rust pack, or struct
        send(topic, 1, -1, 5, 6, 7, 8, payload)
    a.close(0)
    with pytest.raises(zmq.ZMQError) as caught:
        send(topic, 1, 2, 5, 6, 7, 8, payload)
    assert caught.value.errno == zmq.ENOTSOCK

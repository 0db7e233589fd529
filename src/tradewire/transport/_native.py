"""The hot socket paths in Rust when tradewire._wire is built: draining and publishing.

`drain` calls `zmq_msg_recv(NOBLOCK)` on the pyzmq socket's own handle, through the libzmq
pyzmq loaded (found in /proc/self/maps), and decodes each frame as it comes: one Python
call per batch instead of one `recv` per frame, and no `zmq.Again` at the end.
`frame_sender` packs a frame and `zmq_send`s it in one call. Elsewhere (no extension,
another libzmq layout, TRADEWIRE_PURE_PYTHON=1) the same in Python over pyzmq.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import zmq

from tradewire import wire

if TYPE_CHECKING:
    from tradewire._wire import Codec

log = logging.getLogger("tradewire.transport")


def libzmq_path(maps: Path = Path("/proc/self/maps")) -> str | None:
    """The one libzmq mapped into this process (pyzmq's), or None when there is not
    exactly one (or no /proc)."""
    try:
        lines = maps.read_text().splitlines()
    except OSError:
        return None
    found = {
        line.split(maxsplit=5)[5]
        for line in lines
        if line.count(" ") >= 5 and "libzmq" in line.rsplit("/", 1)[-1]
    }
    return found.pop() if len(found) == 1 else None


@cache
def rust_codec() -> Codec | None:
    """A tradewire._wire.Codec that can receive, or None (the Python loop is used)."""
    if wire._CODEC is None or os.environ.get("TRADEWIRE_PURE_PYTHON") == "1":
        return None
    path = libzmq_path()
    if path is None:
        log.debug("no single libzmq in /proc/self/maps: draining sockets in Python")
        return None
    from tradewire import _wire

    try:
        return _wire.Codec(wire.Envelope, wire.DEFAULT_MAX_PAYLOAD, libzmq=path)
    except OSError as exc:
        log.debug("libzmq at %s not usable from Rust (%s): draining sockets in Python", path, exc)
        return None


def drain(sock: zmq.Socket[bytes], limit: int) -> list[wire.Envelope | bytes]:
    """Up to `limit` queued frames, without blocking: each decoded to an Envelope, or left
    as bytes when it is not a valid frame (`wire.decode_frame` then says why)."""
    codec = rust_codec()
    if codec is not None:
        handle = sock.underlying
        if not handle:
            raise zmq.ZMQError(zmq.ENOTSOCK)
        try:
            return codec.recv(handle, limit)
        except OSError as exc:
            raise zmq.ZMQError(exc.errno or zmq.EFAULT) from exc
    frames: list[wire.Envelope | bytes] = []
    for _ in range(limit):
        try:
            frame = sock.recv(zmq.NOBLOCK)
        except zmq.Again:
            break
        try:
            frames.append(wire.decode_frame(frame))
        except wire.WireError:
            frames.append(frame)
    return frames


FrameSender = Callable[[bytes, int, int, int, int, int, int, bytes], bytes]


def frame_sender(sock: zmq.Socket[bytes]) -> FrameSender:
    """`send(topic, type_id, fingerprint, publisher_id, seq, key_seq, send_ts_ns, payload)`:
    packs the frame (`wire.pack_frame`), sends it on `sock` and returns it. Meant for
    sockets whose send never blocks (PUB/XPUB): it never waits, raising zmq.Again where a
    blocking send would wait."""
    codec = rust_codec()
    if codec is None:

        def send_py(
            topic: bytes, type_id: int, fp: int, pid: int, seq: int, kseq: int, ts: int, p: bytes
        ) -> bytes:
            frame = wire.pack_frame(topic, type_id, fp, pid, seq, kseq, ts, p)
            sock.send(frame, zmq.NOBLOCK)
            return frame

        return send_py
    pack_send = codec.pack_send

    def send_rust(
        topic: bytes, type_id: int, fp: int, pid: int, seq: int, kseq: int, ts: int, p: bytes
    ) -> bytes:
        handle = sock.underlying
        if not handle:
            raise zmq.ZMQError(zmq.ENOTSOCK)
        try:
            return pack_send(handle, topic, type_id, fp, pid, seq, kseq, ts, p)
        except OSError as exc:
            if exc.errno == zmq.EAGAIN:
                raise zmq.Again(zmq.EAGAIN) from exc
            raise zmq.ZMQError(exc.errno or zmq.EFAULT) from exc

    return send_rust

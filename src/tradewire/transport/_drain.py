"""Draining a socket without blocking: in Rust when tradewire._wire is built.

The Rust loop calls `zmq_msg_recv(NOBLOCK)` on the pyzmq socket's own handle, through the
libzmq pyzmq loaded (found in /proc/self/maps), and decodes each frame as it comes: one
Python call per batch instead of one `recv` per frame, and no `zmq.Again` at the end.
Elsewhere (no extension, another libzmq layout, TRADEWIRE_PURE_PYTHON=1) a Python loop.
"""

from __future__ import annotations

import logging
import os
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

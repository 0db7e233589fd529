"""Length-prefixed protobuf messages over a pipe (conformance/TESTEE.md)."""

from __future__ import annotations

import struct
from typing import IO, Final

from tradewire.conformance._gen import conformance_pb2 as pb

PROTOCOL_VERSION: Final = 1
MAX_MESSAGE: Final = 64 * 1024 * 1024
_LEN = struct.Struct("<I")


class ProtocolError(RuntimeError):
    """The peer broke the framing or closed the pipe."""


def write_message(
    stream: IO[bytes], message: pb.ConformanceRequest | pb.ConformanceResponse
) -> None:
    data = message.SerializeToString()
    stream.write(_LEN.pack(len(data)) + data)
    stream.flush()


def read_exact(stream: IO[bytes], size: int) -> bytes | None:
    """`size` bytes, or None on EOF before the first byte."""
    chunks: list[bytes] = []
    got = 0
    while got < size:
        chunk = stream.read(size - got)
        if not chunk:
            if got == 0:
                return None
            raise ProtocolError(f"EOF inside a message ({got} of {size} bytes)")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def read_request(stream: IO[bytes]) -> pb.ConformanceRequest | None:
    """The next request, or None on EOF at a message boundary."""
    head = read_exact(stream, 4)
    if head is None:
        return None
    (size,) = _LEN.unpack(head)
    if size > MAX_MESSAGE:
        raise ProtocolError(f"request of {size} bytes is over the {MAX_MESSAGE}-byte limit")
    body = read_exact(stream, size) if size else b""
    if body is None:
        raise ProtocolError("EOF after a length prefix")
    return pb.ConformanceRequest.FromString(body)

"""The tradewire envelope: one ZMQ frame = topic + 52-byte header + protobuf payload.

The byte layout is specified in conformance/WIRE.md; this module and the Rust
`tradewire::wire` module implement it and must produce identical bytes.
"""

from __future__ import annotations

import os
import re
import struct
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, NamedTuple, TypeVar

from google.protobuf.message import DecodeError, Message

from tradewire.catalog import MessageType

if TYPE_CHECKING:
    from tradewire._wire import Codec

MAGIC: Final = b"TW"
VERSION: Final = 1
HEADER_SIZE: Final = 52
MAX_TOPIC: Final = 99
MAX_KEY: Final = 64
DEFAULT_MAX_PAYLOAD: Final = 16 * 1024 * 1024
FLAG_REPLAY: Final = 0x01
FLAG_SNAPSHOT: Final = 0x02

_HEADER = struct.Struct("<2sBBHHQQQQQI")
_CHANNEL_RE = re.compile(r"[a-z0-9_]{1,32}")
_U64_MAX = (1 << 64) - 1

M = TypeVar("M", bound=Message)


def max_frame_size(max_payload: int = DEFAULT_MAX_PAYLOAD) -> int:
    """The largest frame that can be valid with payloads up to `max_payload` bytes: the
    longest topic, the header and the payload (receivers set it as ZMQ_MAXMSGSIZE)."""
    return MAX_TOPIC + HEADER_SIZE + max_payload


class WireError(ValueError):
    """A frame that is not valid tradewire. `kind` is the WIRE.md error name."""

    kind: str = "wire_error"


class Truncated(WireError):
    kind = "truncated"


class BadTopic(WireError):
    kind = "bad_topic"


class BadMagic(WireError):
    kind = "bad_magic"


class UnsupportedVersion(WireError):
    kind = "unsupported_version"


class Oversized(WireError):
    kind = "oversized"


class TrailingBytes(WireError):
    kind = "trailing_bytes"


class UnknownType(WireError):
    kind = "unknown_type"


class BadPayload(WireError):
    kind = "bad_payload"


class SchemaMismatch(WireError):
    kind = "schema_mismatch"


ERROR_KINDS: Final[dict[str, type[WireError]]] = {
    cls.kind: cls
    for cls in (
        Truncated,
        BadTopic,
        BadMagic,
        UnsupportedVersion,
        Oversized,
        TrailingBytes,
        UnknownType,
        BadPayload,
        SchemaMismatch,
    )
}


class Envelope(NamedTuple):
    """A decoded frame; the payload is left as bytes (relays never parse it)."""

    channel: str
    key: str
    type_id: int
    fingerprint: int
    publisher_id: int
    seq: int
    key_seq: int
    send_ts_ns: int
    payload: bytes
    flags: int = 0

    @property
    def topic(self) -> bytes:
        return topic(self.channel, self.key)

    def encode(self) -> bytes:
        """The frame bytes for this envelope."""
        return encode_frame(
            self.channel,
            self.key,
            self.type_id,
            self.fingerprint,
            self.publisher_id,
            self.seq,
            self.key_seq,
            self.send_ts_ns,
            self.payload,
            self.flags,
        )


def topic(channel: str, key: str = "") -> bytes:
    """The topic bytes `channel "/" key NUL`, validated."""
    if not _CHANNEL_RE.fullmatch(channel):
        raise BadTopic(f"channel name {channel!r} is not 1..32 bytes of [a-z0-9_]")
    key_bytes = key.encode()
    if len(key_bytes) > MAX_KEY:
        raise BadTopic(f"key is {len(key_bytes)} bytes, more than {MAX_KEY}")
    if b"\0" in key_bytes:
        raise BadTopic(f"key {key!r} contains NUL")
    return channel.encode() + b"/" + key_bytes + b"\0"


def channel_prefix(channel: str) -> bytes:
    """SUB prefix that receives every message of a channel."""
    return topic(channel)[:-1]


def encode_frame(
    channel: str,
    key: str,
    type_id: int,
    fingerprint: int,
    publisher_id: int,
    seq: int,
    key_seq: int,
    send_ts_ns: int,
    payload: bytes,
    flags: int = 0,
) -> bytes:
    """Build one frame. Raises WireError on values the format cannot carry."""
    if not 0 < type_id <= 0xFFFF:
        raise UnknownType(f"type id {type_id} is outside 1..65535")
    if len(payload) > 0xFFFFFFFF:
        raise Oversized(f"payload of {len(payload)} bytes does not fit a u32 length")
    either = fingerprint | publisher_id | seq | key_seq | send_ts_ns  # < 0 if any is
    if either < 0 or either > _U64_MAX:
        counters = (fingerprint, publisher_id, seq, key_seq, send_ts_ns)
        names = ("fingerprint", "publisher_id", "seq", "key_seq", "send_ts_ns")
        name, value = next(
            (n, v) for n, v in zip(names, counters, strict=True) if not 0 <= v <= _U64_MAX
        )
        raise ValueError(f"{name}={value} is not a u64")
    if not 0 <= flags <= 0xFF:
        raise ValueError(f"flags={flags} is not a u8")
    topic_bytes = _TOPIC_BYTES.get((channel, key))
    if topic_bytes is None:
        topic_bytes = topic(channel, key)
        if len(_TOPIC_BYTES) < _TOPIC_CACHE_SIZE:
            _TOPIC_BYTES[(channel, key)] = topic_bytes
    return pack_frame(
        topic_bytes,
        type_id,
        fingerprint,
        publisher_id,
        seq,
        key_seq,
        send_ts_ns,
        payload,
        flags,
    )


def pack_frame(
    topic_bytes: bytes,
    type_id: int,
    fingerprint: int,
    publisher_id: int,
    seq: int,
    key_seq: int,
    send_ts_ns: int,
    payload: bytes,
    flags: int = 0,
) -> bytes:
    """The hot-path encoder: like encode_frame, but the topic comes from `topic()` and the
    numbers are trusted (values that do not fit still raise)."""
    if _CODEC is not None:
        return _CODEC.pack(
            topic_bytes,
            type_id,
            fingerprint,
            publisher_id,
            seq,
            key_seq,
            send_ts_ns,
            payload,
            flags,
        )
    header = _HEADER.pack(
        MAGIC,
        VERSION,
        flags,
        type_id,
        0,
        fingerprint,
        publisher_id,
        seq,
        key_seq,
        send_ts_ns,
        len(payload),
    )
    return topic_bytes + header + payload


def with_flags(frame: bytes, flags: int) -> bytes:
    """A copy of a valid frame with `flags` OR-ed into its header (replay, snapshot)."""
    at = frame.index(b"\0") + 4
    return frame[:at] + bytes([frame[at] | flags]) + frame[at + 1 :]


def decode_frame(frame: bytes | memoryview, max_payload: int = DEFAULT_MAX_PAYLOAD) -> Envelope:
    """Parse one frame, checking in the order WIRE.md section 2 gives."""
    if _CODEC is not None and type(frame) is bytes and max_payload >= 0:
        env = _CODEC.decode(frame, max_payload)
        if env is not None:
            return env
    return decode_frame_py(frame, max_payload)


def decode_frame_py(frame: bytes | memoryview, max_payload: int = DEFAULT_MAX_PAYLOAD) -> Envelope:
    """decode_frame in pure Python: the reference the Rust codec is tested against, and the
    one that names the error of an invalid frame."""
    data = frame if type(frame) is bytes else bytes(frame)
    nul = data.find(b"\0", 0, MAX_TOPIC)
    if nul < 0:
        if len(data) < MAX_TOPIC:
            raise Truncated(f"frame of {len(data)} bytes ends before the topic's NUL")
        raise BadTopic(f"no NUL within the first {MAX_TOPIC} bytes")
    raw_topic = data[:nul]
    parsed = _TOPICS.get(raw_topic)
    new_topic = parsed is None
    if parsed is None:
        parsed = _parse_topic(raw_topic)
    channel, key = parsed
    start = nul + 1
    if len(data) - start < HEADER_SIZE:
        raise Truncated(
            f"header needs {HEADER_SIZE} bytes after the topic, frame has {len(data) - start}"
        )
    (
        magic,
        version,
        flags,
        type_id,
        _reserved,
        fingerprint,
        publisher_id,
        seq,
        key_seq,
        send_ts_ns,
        payload_len,
    ) = _HEADER.unpack_from(data, start)
    if magic != MAGIC:
        raise BadMagic(f"magic is {magic!r}, expected {MAGIC!r}")
    if version != VERSION:
        raise UnsupportedVersion(f"format version {version}, this decoder speaks {VERSION}")
    if payload_len > max_payload:
        raise Oversized(f"payload_len {payload_len} exceeds the maximum of {max_payload} bytes")
    body = start + HEADER_SIZE
    available = len(data) - body
    if available < payload_len:
        raise Truncated(f"payload_len is {payload_len}, only {available} bytes follow the header")
    if available > payload_len:
        raise TrailingBytes(
            f"{available - payload_len} bytes follow the {payload_len}-byte payload"
        )
    # cached only once the whole frame is valid: garbage must not fill the cache
    if new_topic and len(_TOPICS) < _TOPIC_CACHE_SIZE:
        _TOPICS[raw_topic] = parsed
    return Envelope(
        channel,
        key,
        type_id,
        fingerprint,
        publisher_id,
        seq,
        key_seq,
        send_ts_ns,
        data[body:],
        flags,
    )


def _rust_codec() -> Codec | None:
    """The Rust codec (crates/wire-py), or None: not built, or TRADEWIRE_PURE_PYTHON=1."""
    if os.environ.get("TRADEWIRE_PURE_PYTHON") == "1":
        return None
    try:
        from tradewire import _wire
    except ImportError:
        return None
    return _wire.Codec(Envelope, DEFAULT_MAX_PAYLOAD)


_CODEC = _rust_codec()
_TOPICS: dict[bytes, tuple[str, str]] = {}  # decoded topics, by their bytes
_TOPIC_BYTES: dict[tuple[str, str], bytes] = {}  # encoded topics, by (channel, key)
_TOPIC_CACHE_SIZE = 100_000


def _parse_topic(raw: bytes) -> tuple[str, str]:
    """(channel, key) of a topic without its NUL; BadTopic when invalid."""
    slash = raw.find(b"/")
    if slash < 0:
        raise BadTopic(f"topic {raw!r} has no '/'")
    channel = raw[:slash].decode("ascii", "replace")
    if not _CHANNEL_RE.fullmatch(channel):
        raise BadTopic(f"channel name {raw[:slash]!r} is not 1..32 bytes of [a-z0-9_]")
    key_bytes = raw[slash + 1 :]
    if len(key_bytes) > MAX_KEY:
        raise BadTopic(f"key is {len(key_bytes)} bytes, more than {MAX_KEY}")
    try:
        return channel, key_bytes.decode()
    except UnicodeDecodeError as exc:
        raise BadTopic(f"key {key_bytes!r} is not UTF-8") from exc


def _registry() -> Any:
    from tradewire._gen import registry

    return registry


def _types_by_id() -> dict[int, MessageType[Any]]:
    global _BY_ID
    if _BY_ID is None:
        _BY_ID = {t.type_id: t for t in _registry().MESSAGE_TYPES}
    return _BY_ID


def _types_by_class() -> dict[type[Message], MessageType[Any]]:
    global _BY_CLASS
    if _BY_CLASS is None:
        _BY_CLASS = {t.cls: t for t in _registry().MESSAGE_TYPES}
    return _BY_CLASS


_BY_ID: dict[int, MessageType[Any]] | None = None
_BY_CLASS: dict[type[Message], MessageType[Any]] | None = None


def message_type(type_id: int) -> MessageType[Any]:
    """The schema type for an envelope type id; UnknownType when there is none."""
    found = _types_by_id().get(type_id)
    if found is None:
        raise UnknownType(f"type id {type_id} is not a message type of this schema")
    return found


def message_type_of(cls: type[M]) -> MessageType[M]:
    """The schema type of a generated message class."""
    found = _types_by_class().get(cls)
    if found is None:
        raise UnknownType(f"{cls.__name__} has no (tradewire.v1.type_id) in this schema")
    return found


def parse_payload(env: Envelope, expected: type[M] | None = None, strict: bool = False) -> M:
    """Decode the payload into its message class, checking the type (and, when strict,
    the schema fingerprint)."""
    mtype = message_type(env.type_id)
    if expected is not None and mtype.cls is not expected:
        raise UnknownType(
            f"type id {env.type_id} is {mtype.full_name}, expected {expected.DESCRIPTOR.full_name}"
        )
    try:
        message: M = mtype.cls.FromString(env.payload)
    except DecodeError as exc:
        raise BadPayload(f"payload is not a valid {mtype.full_name}: {exc}") from exc
    if strict and env.fingerprint != mtype.fingerprint:
        raise SchemaMismatch(
            f"{mtype.full_name} fingerprint {env.fingerprint:#018x}"
            f" != local {mtype.fingerprint:#018x}"
        )
    return message


def _has_map(descriptor: Any, seen: frozenset[str] = frozenset()) -> bool:
    if descriptor.full_name in seen:
        return False
    seen = seen | {descriptor.full_name}
    for field in descriptor.fields:
        sub = field.message_type
        if sub is not None and (sub.GetOptions().map_entry or _has_map(sub, seen)):
            return True
    return False


def serializer(cls: type[Message]) -> Callable[[Message], bytes]:
    """`SerializeToString` for `cls`, deterministic (map entries sorted by key, as WIRE.md
    asks) where the type has a map anywhere inside; without maps the bytes are the same
    and the plain call is twice as fast."""
    found = _SERIALIZERS.get(cls)
    if found is None:
        found = _deterministic if _has_map(cls.DESCRIPTOR) else cls.SerializeToString
        _SERIALIZERS[cls] = found
    return found


def _deterministic(message: Message) -> bytes:
    return message.SerializeToString(deterministic=True)


_SERIALIZERS: dict[type[Message], Callable[[Message], bytes]] = {}


def encode_message(
    channel: str,
    message: Message,
    *,
    key: str = "",
    publisher_id: int,
    seq: int,
    key_seq: int | None = None,
    send_ts_ns: int,
    flags: int = 0,
) -> bytes:
    """Encode a message with its schema type id and fingerprint."""
    mtype = message_type_of(type(message))
    return encode_frame(
        channel,
        key,
        mtype.type_id,
        mtype.fingerprint,
        publisher_id,
        seq,
        seq if key_seq is None else key_seq,
        send_ts_ns,
        serializer(type(message))(message),
        flags,
    )

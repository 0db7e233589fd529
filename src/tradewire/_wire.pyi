# Stub for the PyO3 extension built from crates/wire-py (used by tradewire.wire and
# tradewire.transport; not a public API).
from tradewire.wire import Envelope

class Codec:
    def __init__(
        self, envelope: type[Envelope], max_payload: int, libzmq: str | None = None
    ) -> None: ...
    @property
    def can_recv(self) -> bool: ...
    def decode(self, frame: bytes, max_payload: int | None = None) -> Envelope | None: ...
    def recv(self, socket: int, limit: int) -> list[Envelope | bytes]: ...
    def pack_send(
        self,
        socket: int,
        topic: bytes,
        type_id: int,
        fingerprint: int,
        publisher_id: int,
        seq: int,
        key_seq: int,
        send_ts_ns: int,
        payload: bytes,
        flags: int = 0,
    ) -> bytes: ...
    def pack(
        self,
        topic: bytes,
        type_id: int,
        fingerprint: int,
        publisher_id: int,
        seq: int,
        key_seq: int,
        send_ts_ns: int,
        payload: bytes,
        flags: int = 0,
    ) -> bytes: ...

# (publisher_id, first_seq, last_seq, {key: last_key_seq})
JournalRange = tuple[int, int, int, dict[str, int]]

class Journal:
    def __init__(
        self,
        dir: str,
        segment_bytes: int,
        retention_bytes: int,
        retention_age_s: float,
        fsync: str,
        fsync_interval_ms: int,
    ) -> None: ...
    def append(self, frame: bytes) -> None: ...
    def tick(self) -> None: ...
    def sync(self) -> None: ...
    def publisher(self, publisher_id: int) -> JournalRange | None: ...
    def previous(self, current: int) -> JournalRange | None: ...
    def publishers(self) -> list[JournalRange]: ...
    def read(self, publisher_id: int, key: str, from_seq: int, to_seq: int) -> JournalReader: ...
    @property
    def size(self) -> int: ...
    def stats(self) -> dict[str, int]: ...

class JournalReader:
    def next_batch(self, limit: int) -> list[tuple[int, bytes]]: ...

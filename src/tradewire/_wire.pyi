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

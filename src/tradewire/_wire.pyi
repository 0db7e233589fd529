# Stub for the PyO3 extension built from crates/wire-py (used by tradewire.wire and
# tradewire.transport; not a public API).
from typing import Any

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

class Sequencer:
    """The subscriber's delivery state machine, in Rust (tradewire::transport::Sequencer)."""

    def __init__(
        self,
        *,
        start: str = "latest",
        recover: bool = True,
        replay_timeout: float = 2.0,
        plausible_jump: int = 65536,
        max_parked: int = 100000,
        max_candidates: int = 8,
    ) -> None: ...
    def data(self, publisher_id: int, key: str, n: int, item: object, now: int) -> int: ...
    def replayed(self, publisher_id: int, key: str, n: int, item: object, now: int) -> int: ...
    def handshake(
        self, publisher_id: int, targets: list[tuple[str, int]], publisher_newer: bool, now: int
    ) -> None: ...
    def heartbeat(self, publisher_id: int, targets: list[tuple[str, int]], now: int) -> None: ...
    def replay_end(
        self,
        answered_by: int,
        publisher_id: int,
        key: str,
        from_seq: int,
        to_seq: int,
        unknown_publisher: bool,
        last_seq: int,
        now: int,
    ) -> None: ...
    def timer(self, now: int) -> None: ...
    def next_deadline(self) -> int | None: ...
    def resume_from(self, publisher_id: int, last: int) -> None: ...
    def baseline(self, publisher_id: int, key: str, last: int) -> None: ...
    def push_ready(self, item: object) -> None: ...
    @property
    def publisher_id(self) -> int | None: ...
    def has_ready(self) -> bool: ...
    def has_output(self) -> bool: ...
    def take_ready(self) -> list[Any]: ...
    def take_asks(self) -> list[tuple[int, str, int, int]]: ...
    def take_events(self) -> list[tuple[str, int, str, int, int, str]]: ...
    def stats(self) -> dict[str, int]: ...

"""Durable command idempotency (WIRE.md section 7.5): the store a command server keeps
its applied command ids in, with the ack it sent for each.

The store itself is the Rust one (`tradewire::command_store`, an embedded SQLite file,
through `tradewire._wire`): one format and one implementation for both SDKs, so a Python
server restarted on a Rust server's store (or the reverse) answers its retries.

What a handler gets, for a command id within the window:

* Its ack leaves only after the id, the ack and the handler's staged state writes
  (`CommandState.put` / `delete` during the call) are committed in one transaction.
* A handler whose whole effect is that staged state (read back with `CommandState.get` /
  `items` after a restart) is applied exactly once: effect and record commit together or
  not at all; a crash before the commit leaves neither, and the retry is applied to the
  state as it was.
* A handler with other effects (memory, files, messages) is applied at most once per id
  once the record is committed; a crash after the handler returned and before the commit
  returned loses the record, and the retry is applied again.
* `fsync=True`: the commit is on disk before the ack leaves (survives a crash of the
  machine); `fsync=False`: it is in the operating system (survives `kill -9` of the
  server, not a power loss).
"""

from __future__ import annotations

import os
import re
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from tradewire._wire import CommandStore

__all__ = [
    "DEFAULT_PRUNE_BATCH",
    "DEFAULT_WINDOW",
    "CommandState",
    "CommandStoreOptions",
    "default_path",
]

DEFAULT_WINDOW: Final = 24 * 3600.0
DEFAULT_PRUNE_BATCH: Final = 64


def default_path(endpoint: str) -> Path:
    """The store file of a command server bound at `endpoint` when none is configured:
    `<temp dir>/tradewire/commands/<endpoint, chars outside [A-Za-z0-9._-] as _>.sqlite`
    (as the Rust `tradewire::command_store::default_path`), beside the journals' default."""
    name = re.sub(r"[^A-Za-z0-9._-]", "_", endpoint)
    return Path(tempfile.gettempdir()) / "tradewire" / "commands" / f"{name}.sqlite"


@dataclass(frozen=True, slots=True)
class CommandStoreOptions:
    """Where and how a command server keeps the ids it applied.

    `path`: the SQLite file (created with its directory), one server per file; a second
    server opening it fails (`OSError`, "in use by another process"). `window` (seconds,
    >= 1): how long an applied id is remembered, by the wall clock. `fsync`: the commit is
    on disk, not only in the operating system, before the ack leaves. `prune_batch`:
    expired ids deleted at most per command and per idle poll, so pruning is bounded work.
    """

    path: str | os.PathLike[str]
    window: float = DEFAULT_WINDOW
    fsync: bool = True
    prune_batch: int = DEFAULT_PRUNE_BATCH

    def __post_init__(self) -> None:
        if not str(self.path):
            raise ValueError("command store path must not be empty")
        if not self.window >= 1 or self.window == float("inf"):
            raise ValueError(f"window must be a number >= 1, got {self.window}")
        if self.prune_batch < 1:
            raise ValueError(f"prune_batch must be >= 1, got {self.prune_batch}")

    def open(self) -> CommandStore:
        """Opens (creating) the store. Needs the `tradewire._wire` extension."""
        try:
            from tradewire._wire import CommandStore
        except ImportError as exc:
            raise RuntimeError(
                "the command store needs the tradewire._wire extension (not built)"
            ) from exc
        return CommandStore(os.fspath(self.path), float(self.window), self.fsync, self.prune_batch)


class CommandState:
    """A command server's durable handler state: `key -> bytes` in the server's store.

    Called from inside the handler (on the thread handling the command), `put` and
    `delete` are staged and committed in the same transaction as the command's id and ack,
    before the ack leaves; called from anywhere else they are committed at once. `get` and
    `items` read committed state only (not what the running handler staged).
    """

    def __init__(self, store: CommandStore) -> None:
        self._store = store
        self._staged: list[tuple[str, bytes | None]] | None = None
        self._thread: int | None = None

    def get(self, key: str) -> bytes | None:
        """The committed value of `key`."""
        return self._store.state(key)

    def items(self, prefix: str = "") -> list[tuple[str, bytes]]:
        """Committed keys starting with `prefix` and their values, in key order."""
        return self._store.state_items(prefix)

    def put(self, key: str, value: bytes) -> None:
        """Sets `key` (staged with the command being handled, see the class)."""
        self._write(key, bytes(value))

    def delete(self, key: str) -> None:
        """Removes `key` (staged with the command being handled, see the class)."""
        self._write(key, None)

    def _write(self, key: str, value: bytes | None) -> None:
        if self._staged is not None and self._thread == threading.get_ident():
            self._staged.append((key, value))
        else:
            self._store.write_state([(key, value)])

    def _begin(self) -> None:
        self._staged = []
        self._thread = threading.get_ident()

    def _take(self) -> list[tuple[str, bytes | None]]:
        staged = self._staged or []
        self._staged = None
        self._thread = None
        return staged

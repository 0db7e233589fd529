"""Options of the publisher journal (WIRE.md section 7.6).

The journal itself is the Rust one (`tradewire::journal`, through `tradewire._wire`):
one on-disk format and one implementation for both SDKs, so a Python publisher restarted
on a Rust publisher's journal directory (or the reverse) reads it.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final, Literal

if TYPE_CHECKING:
    from tradewire._wire import Journal

__all__ = ["FSYNC_POLICIES", "FsyncPolicy", "JournalOptions", "default_dir"]

FsyncPolicy = Literal["never", "interval", "always"]
FSYNC_POLICIES: Final[tuple[FsyncPolicy, ...]] = ("never", "interval", "always")


def default_dir(endpoint: str) -> Path:
    """The journal directory of a publisher bound at `endpoint` when none is configured:
    `<temp dir>/tradewire/journal/<endpoint, chars outside [A-Za-z0-9._-] as _>` (as the
    Rust `tradewire::journal::default_dir`; not next to an ipc socket: services leave
    their socket directory empty on exit)."""
    name = re.sub(r"[^A-Za-z0-9._-]", "_", endpoint)
    return Path(tempfile.gettempdir()) / "tradewire" / "journal" / name


@dataclass(frozen=True, slots=True)
class JournalOptions:
    """Where and how a publisher journals its frames.

    `dir`: the journal's directory, one publisher per directory. `segment_bytes`: size at
    which a new segment file starts. `retention_bytes` / `retention_age` (seconds): the
    oldest segments are deleted while the journal is larger / their newest frame older
    (0: no bound). `fsync`: when appends are forced to the disk: `never` (the operating
    system decides), `interval` (every `fsync_interval_ms`) or `always` (every append);
    records reach the operating system at every append whatever the policy.
    """

    dir: str | os.PathLike[str]
    segment_bytes: int = 64 * 1024 * 1024
    retention_bytes: int = 1024 * 1024 * 1024
    retention_age: float = 24 * 3600.0
    fsync: FsyncPolicy = "interval"
    fsync_interval_ms: int = 100

    def __post_init__(self) -> None:
        if not str(self.dir):
            raise ValueError("journal dir must not be empty")
        if self.segment_bytes < 1024:
            raise ValueError(f"segment_bytes must be at least 1024, got {self.segment_bytes}")
        if self.retention_bytes < 0:
            raise ValueError(f"retention_bytes must be >= 0, got {self.retention_bytes}")
        if not self.retention_age >= 0 or self.retention_age == float("inf"):
            raise ValueError(f"retention_age must be a number >= 0, got {self.retention_age}")
        if self.fsync not in FSYNC_POLICIES:
            raise ValueError(
                f"fsync must be one of {', '.join(FSYNC_POLICIES)}, got {self.fsync!r}"
            )
        if self.fsync == "interval" and self.fsync_interval_ms <= 0:
            raise ValueError(
                f"fsync_interval_ms must be > 0 with fsync 'interval', got {self.fsync_interval_ms}"
            )

    def open(self) -> Journal:
        """Opens (creating) the journal. Needs the `tradewire._wire` extension."""
        try:
            from tradewire._wire import Journal
        except ImportError as exc:
            raise RuntimeError(
                "the publisher journal needs the tradewire._wire extension (not built)"
            ) from exc
        return Journal(
            os.fspath(self.dir),
            self.segment_bytes,
            self.retention_bytes,
            self.retention_age,
            self.fsync,
            self.fsync_interval_ms,
        )

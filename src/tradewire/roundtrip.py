"""Drive the Rust `tradewire-roundtrip` binary: frames in, re-encoded frames out.

Protocol (stdin/stdout): each request is `u32 LE length + frame`; each response is
`u32 LE length + status byte (0 ok, 1 error) + frame or "kind: message"`.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from pathlib import Path
from types import TracebackType
from typing import IO, Self

BINARY = "tradewire-roundtrip"
_LEN = struct.Struct("<I")


class PeerError(RuntimeError):
    """The Rust peer rejected a frame; `kind` is the WIRE.md error name."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind


def repo_root() -> Path:
    return Path(__file__).resolve().parents[2]


def find_binary(name: str = BINARY) -> Path:
    """$TRADEWIRE_BIN_DIR, then target/release and target/debug of this checkout, then PATH."""
    candidates = []
    if env_dir := os.environ.get("TRADEWIRE_BIN_DIR"):
        candidates.append(Path(env_dir) / name)
    candidates += [repo_root() / "target" / profile / name for profile in ("release", "debug")]
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return path
    on_path = shutil.which(name)
    if on_path:
        return Path(on_path)
    raise FileNotFoundError(
        f"{name} not found (looked in {', '.join(map(str, candidates))} and PATH); "
        "build it with `cargo build --release -p tradewire`"
    )


def _read_exact(stream: IO[bytes], size: int) -> bytes:
    data = stream.read(size)
    if data is None or len(data) != size:
        raise EOFError(f"Rust peer closed its output (wanted {size} bytes, got {len(data or b'')})")
    return data


class RustRoundtrip:
    """A running `tradewire-roundtrip` process."""

    def __init__(self, binary: Path | None = None) -> None:
        self.binary = binary or find_binary()
        self._proc = subprocess.Popen(
            [str(self.binary)], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._stdin: IO[bytes] = self._proc.stdin
        self._stdout: IO[bytes] = self._proc.stdout

    def roundtrip(self, frame: bytes) -> bytes:
        """Send one frame; return Rust's re-encoding or raise PeerError."""
        self._stdin.write(_LEN.pack(len(frame)) + frame)
        self._stdin.flush()
        (size,) = _LEN.unpack(_read_exact(self._stdout, 4))
        body = _read_exact(self._stdout, size)
        if body[:1] == b"\x00":
            return body[1:]
        kind, _, message = body[1:].decode(errors="replace").partition(": ")
        raise PeerError(kind, message)

    def close(self) -> None:
        if self._proc.poll() is None:
            self._stdin.close()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._stdout.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

"""The runner's side of the testee protocol: start the testee command, talk to it."""

from __future__ import annotations

import contextlib
import os
import queue
import shlex
import struct
import subprocess
import threading
from collections import deque
from typing import IO

from tradewire.conformance._gen import conformance_pb2 as pb
from tradewire.conformance.protocol import PROTOCOL_VERSION, read_exact, write_message

_LEN = struct.Struct("<I")


class TesteeError(RuntimeError):
    """The testee died, broke the framing, or did not answer in time."""


class TesteeProcess:
    """A running testee. `request()` sends one request and waits for its response;
    `submit()` + `response()` let the runner act while the testee works."""

    def __init__(self, command: str, *, cwd: str | None = None) -> None:
        self.command = command
        self._proc = subprocess.Popen(
            shlex.split(command),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=cwd,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert self._proc.stdin and self._proc.stdout and self._proc.stderr
        self._stdin: IO[bytes] = self._proc.stdin
        self._responses: queue.Queue[pb.ConformanceResponse | Exception] = queue.Queue()
        self.stderr_tail: deque[str] = deque(maxlen=40)
        self._pending = 0
        self._threads = [
            threading.Thread(target=self._read, args=(self._proc.stdout,), daemon=True),
            threading.Thread(target=self._drain_stderr, args=(self._proc.stderr,), daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        hello = self.request(
            pb.ConformanceRequest(
                case_name="hello", hello=pb.Hello(protocol_version=PROTOCOL_VERSION)
            ),
            timeout=60,
        )
        if hello.WhichOneof("response") != "hello":
            raise TesteeError(f"testee answered hello with {hello.WhichOneof('response')}")
        self.hello: pb.HelloReply = hello.hello

    def _read(self, stream: IO[bytes]) -> None:
        try:
            while (head := read_exact(stream, 4)) is not None:
                (size,) = _LEN.unpack(head)
                body = read_exact(stream, size) if size else b""
                self._responses.put(pb.ConformanceResponse.FromString(body or b""))
            self._responses.put(TesteeError("testee closed its stdout"))
        except Exception as exc:
            self._responses.put(TesteeError(f"bad response from testee: {exc}"))

    def _drain_stderr(self, stream: IO[bytes]) -> None:
        for line in stream:
            self.stderr_tail.append(line.decode(errors="replace").rstrip())

    def submit(self, request: pb.ConformanceRequest) -> None:
        try:
            write_message(self._stdin, request)
        except (BrokenPipeError, OSError) as exc:
            raise TesteeError(f"testee is gone: {exc}; stderr: {self.stderr_text()}") from exc
        self._pending += 1

    def response(self, timeout: float) -> pb.ConformanceResponse:
        try:
            got = self._responses.get(timeout=timeout)
        except queue.Empty:
            raise TesteeError(f"no response from the testee within {timeout:.0f}s") from None
        self._pending -= 1
        if isinstance(got, Exception):
            raise TesteeError(f"{got}; stderr: {self.stderr_text()}")
        return got

    def request(
        self, request: pb.ConformanceRequest, timeout: float = 30.0
    ) -> pb.ConformanceResponse:
        self.submit(request)
        return self.response(timeout)

    @property
    def in_sync(self) -> bool:
        """False when a response is still owed (after a timeout): restart the testee."""
        return self._pending == 0 and self._proc.poll() is None

    def stderr_text(self) -> str:
        return "\n".join(list(self.stderr_tail)[-10:])

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._stdin.close()
        try:
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(timeout=5)
        for thread in self._threads:
            thread.join(timeout=2)
        for stream in (self._proc.stdout, self._proc.stderr):
            if stream is not None:
                stream.close()

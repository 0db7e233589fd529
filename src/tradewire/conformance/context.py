"""What a case gets to work with: the testee, endpoints, budgets, and helpers."""

from __future__ import annotations

import json
import socket
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tradewire.conformance._gen import conformance_pb2 as pb
from tradewire.conformance.client import TesteeProcess

REQUEST_TIMEOUT = 30.0


class CaseFailed(AssertionError):
    """The testee did not do what the case requires."""


def check(condition: object, message: str) -> None:
    if not condition:
        raise CaseFailed(message)


@dataclass(frozen=True)
class Case:
    """One conformance case, named `Category.Case`."""

    name: str
    required: bool
    description: str
    run: Callable[[Context], None]
    pair: str = ""  # transport cases: which side the runner and the testee play

    @property
    def category(self) -> str:
        return self.name.split(".", 1)[0]

    @property
    def level(self) -> str:
        return "required" if self.required else "recommended"


@dataclass
class Budget:
    """Latency budget of one measurement (conformance/budgets.toml)."""

    rate_hz: int = 1000
    samples: int = 2000
    warmup: int = 200
    limits_us: dict[str, float] = field(default_factory=dict)  # {"p50": 5000, ...}


class Budgets:
    def __init__(self, table: dict[str, Any]) -> None:
        self.table = table

    @classmethod
    def load(cls, path: Path | None) -> Budgets:
        if path is None:
            return cls({})
        with path.open("rb") as f:
            return cls(tomllib.load(f))

    def get(self, dotted: str) -> Budget:
        node: Any = self.table
        for part in dotted.split("."):
            node = node.get(part, {}) if isinstance(node, dict) else {}
        limits = {
            k.removesuffix("_us").replace("_", "."): float(v)
            for k, v in node.items()
            if k.startswith("p") and k.endswith("_us")
        }
        return Budget(
            rate_hz=int(node.get("rate_hz", 1000)),
            samples=int(node.get("samples", 2000)),
            warmup=int(node.get("warmup", 200)),
            limits_us=limits,
        )


def free_tcp_pair() -> int:
    """A port p such that p and p+1 (the derived control endpoint) are free on 127.0.0.1."""
    for _ in range(100):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port >= 65535:
            continue
        try:
            with socket.socket() as s2:
                s2.bind(("127.0.0.1", port + 1))
        except OSError:
            continue
        return port
    raise RuntimeError("no free pair of tcp ports")


class Context:
    def __init__(self, testee: TesteeProcess, tmp: Path, budgets: Budgets) -> None:
        self.testee = testee
        self.tmp = tmp
        self.budgets = budgets
        self.case_name = ""
        self.measured: dict[str, Any] = {}
        self._n = 0

    def endpoint(self, transport: str = "ipc") -> str:
        self._n += 1
        if transport == "tcp":
            return f"tcp://127.0.0.1:{free_tcp_pair()}"
        return f"ipc://{self.tmp}/ep{self._n}"

    # -- requests ---------------------------------------------------------------------

    def _req(self, **kw: Any) -> pb.ConformanceRequest:
        return pb.ConformanceRequest(case_name=self.case_name, **kw)

    def _expect(self, resp: pb.ConformanceResponse, want: str) -> Any:
        got = resp.WhichOneof("response")
        if got == want:
            return getattr(resp, want)
        if got == "unsupported":
            raise CaseFailed(f"testee does not support this: {resp.unsupported}")
        if got == "error":
            raise CaseFailed(f"testee error: {resp.error}")
        raise CaseFailed(f"testee answered {got}, expected {want}")

    def codec(
        self, frame: bytes, mode: int = pb.DECODE_REENCODE, max_payload: int = 0
    ) -> pb.CodecResult:
        req = self._req(codec=pb.CodecRequest(frame=frame, mode=mode, max_payload=max_payload))  # type: ignore[arg-type]
        result: pb.CodecResult = self._expect(self.testee.request(req), "codec")
        return result

    def start(self, role: int, timeout: float = REQUEST_TIMEOUT, **kw: Any) -> pb.Ready:
        req = self._req(start=pb.StartRole(role=role, **kw))  # type: ignore[arg-type]
        ready: pb.Ready = self._expect(self.testee.request(req, timeout), "ready")
        return ready

    def submit(self, **action: Any) -> None:
        self.testee.submit(self._req(action=pb.RoleAction(**action)))

    def report(self, timeout: float = REQUEST_TIMEOUT) -> pb.ActionReport:
        report: pb.ActionReport = self._expect(self.testee.response(timeout), "report")
        return report

    def action(self, timeout: float = REQUEST_TIMEOUT, **action: Any) -> pb.ActionReport:
        self.submit(**action)
        return self.report(timeout)

    def stop(self) -> None:
        if self.testee.in_sync:
            self._expect(self.testee.request(self._req(stop=pb.StopRole())), "stopped")

    def measure(self, name: str, figures: dict[str, Any]) -> None:
        self.measured[name] = figures

    def as_json(self) -> str:
        return json.dumps(self.measured)

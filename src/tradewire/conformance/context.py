"""What a case gets to work with: the testee, endpoints, budgets, and helpers."""

from __future__ import annotations

import json
import math
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


# percentile label -> q; budgets.toml spells the limits p50_us, p99_us, p99_9_us
PERCENTILES = {"p50": 50.0, "p99": 99.0, "p99.9": 99.9}
LIMIT_KEYS = {f"{label.replace('.', '_')}_us": label for label in PERCENTILES}
# the measurements of the Latency cases, as budgets.toml tables
MEASUREMENTS = ("echo_rtt.ipc", "echo_rtt.tcp", "kill_switch_ack", "tick_to_signal")
SETTINGS = {"rate_hz": 1, "samples": 1, "warmup": 0}  # required integer keys -> minimum
TAIL_SAMPLES = 10  # a percentile is reported only when this many samples lie beyond it


def min_samples(label: str) -> int:
    """Fewest samples for which `label` (p50, p99, p99.9) is more than the worst few."""
    return round(TAIL_SAMPLES / (1 - PERCENTILES[label] / 100))


class BudgetError(ValueError):
    """A budgets file that cannot be used: missing, not TOML, or not the schema."""


@dataclass
class Budget:
    """Latency budget of one measurement (a table of conformance/budgets.toml)."""

    name: str
    source: str  # the budgets file, for messages
    rate_hz: int
    samples: int
    warmup: int
    limits_us: dict[str, float] = field(default_factory=dict)  # {"p50": 2000.0, ...}

    def reported(self, count: int) -> list[str]:
        """The percentiles that `count` samples are enough for."""
        return [label for label in PERCENTILES if count >= min_samples(label)]


class Budgets:
    def __init__(self, budgets: dict[str, Budget], source: str) -> None:
        self.budgets = budgets
        self.source = source

    @classmethod
    def load(cls, path: Path | None) -> Budgets:
        """Read and validate a budgets file; BudgetError names the file and the key."""
        if path is None:
            return cls({}, "(no budgets file)")
        try:
            with path.open("rb") as f:
                table = tomllib.load(f)
        except FileNotFoundError:
            raise BudgetError(f"{path}: budgets file not found") from None
        except IsADirectoryError:
            raise BudgetError(f"{path}: is a directory, not a budgets file") from None
        except tomllib.TOMLDecodeError as exc:
            raise BudgetError(f"{path}: not valid TOML: {exc}") from None
        return cls(parse_budgets(table, str(path)), str(path))

    def get(self, name: str) -> Budget:
        if name not in self.budgets:
            raise CaseFailed(f"{self.source}: no [{name}] table, so no budget to measure against")
        return self.budgets[name]


def parse_budgets(table: dict[str, Any], source: str) -> dict[str, Budget]:
    def fail(where: str, problem: str) -> BudgetError:
        return BudgetError(f"{source}: {where}: {problem}")

    known_tops = sorted({m.split(".")[0] for m in MEASUREMENTS})
    flat: dict[str, Any] = {}
    for top, node in table.items():
        if top not in known_tops:
            raise fail(f"[{top}]", f"unknown table (known: {', '.join(MEASUREMENTS)})")
        subs = [m.split(".", 1)[1] for m in MEASUREMENTS if m.startswith(top + ".")]
        if not isinstance(node, dict):
            raise fail(top, f"must be a table, got {type(node).__name__}")
        if not subs:
            flat[top] = node
            continue
        for sub, child in node.items():
            if sub not in subs:
                raise fail(f"[{top}.{sub}]", f"unknown table (known: {', '.join(MEASUREMENTS)})")
            if not isinstance(child, dict):
                raise fail(f"{top}.{sub}", f"must be a table, got {type(child).__name__}")
            flat[f"{top}.{sub}"] = child

    out: dict[str, Budget] = {}
    for name, node in flat.items():
        allowed = [*SETTINGS, *LIMIT_KEYS]
        for key, value in node.items():
            where = f"[{name}] {key}"
            if key not in allowed:
                raise fail(where, f"unknown key (allowed: {', '.join(allowed)})")
            if key in SETTINGS:
                if not isinstance(value, int) or isinstance(value, bool):
                    raise fail(where, f"must be an integer, got {type(value).__name__} {value!r}")
                if value < SETTINGS[key]:
                    raise fail(where, f"must be >= {SETTINGS[key]}, got {value}")
            else:
                if not isinstance(value, int | float) or isinstance(value, bool):
                    raise fail(
                        where, f"must be a number of us, got {type(value).__name__} {value!r}"
                    )
                if not math.isfinite(value) or value <= 0:
                    raise fail(where, f"must be a positive number of us, got {value}")
        missing = [k for k in SETTINGS if k not in node]
        if missing:
            raise fail(f"[{name}]", f"missing {', '.join(missing)}")
        limits = {LIMIT_KEYS[k]: float(v) for k, v in node.items() if k in LIMIT_KEYS}
        if not limits:
            raise fail(f"[{name}]", f"no limit ({', '.join(LIMIT_KEYS)})")
        for key, label in LIMIT_KEYS.items():
            if label in limits and node["samples"] < min_samples(label):
                raise fail(
                    f"[{name}] {key}",
                    f"needs samples >= {min_samples(label)} (have {node['samples']}): "
                    f"{label} of fewer samples is decided by the worst {TAIL_SAMPLES}",
                )
        out[name] = Budget(name, source, node["rate_hz"], node["samples"], node["warmup"], limits)
    return out


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

    def start_async(self, role: int, **kw: Any) -> None:
        """Sends StartRole without waiting for Ready (`ready()` reads it): for roles that
        wait on something the runner does next."""
        self.testee.submit(self._req(start=pb.StartRole(role=role, **kw)))  # type: ignore[arg-type]

    def ready(self, timeout: float = REQUEST_TIMEOUT) -> pb.Ready:
        ready: pb.Ready = self._expect(self.testee.response(timeout), "ready")
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

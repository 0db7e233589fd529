"""The process contract shared by the Python twins of the reference services
(reference_services/SPEC.md), as reference_services/rust/common is for the Rust ones:
arguments, configuration, ready/summary lines, SIGTERM/SIGINT, ipc cleanup, subscriptions
that wait for their publisher, latency summaries. Their rules are `tradewire.rules`, the
Rust services' own code.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from tradewire.config import ConfigError, TradewireConfig, load_config
from tradewire.transport import JournalOptions, Subscriber, SubscribeTimeout


def print_line(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def log(name: str, message: str) -> None:
    sys.stderr.write(f"{name}: {message}\n")
    sys.stderr.flush()


class Lifecycle:
    """Stop flag set by SIGTERM/SIGINT; ready and summary lines."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)

    def _on_signal(self, signum: int, frame: Any) -> None:
        self.stop.set()

    def stopping(self) -> bool:
        return self.stop.is_set()

    def ready(self) -> None:
        print_line({"service": self.name, "impl": "python", "ready": True})
        log(self.name, "ready")

    def summary(self, summary: dict[str, Any]) -> None:
        print_line({"service": self.name, "summary": summary})

    def fail(self, message: str, status: int = 1) -> None:
        log(self.name, message)
        sys.stdout.flush()
        os._exit(status)


def parse_args(
    name: str,
    extra: Callable[[argparse.ArgumentParser], None] | None = None,
    argv: Sequence[str] | None = None,
) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=name)
    parser.add_argument(
        "--config",
        default=None,
        help="shared config (default $TRADEWIRE_CONFIG, else ./tradewire.toml)",
    )
    if extra is not None:
        extra(parser)
    return parser.parse_args(argv)


def config_or_exit(name: str, path: str | None) -> TradewireConfig:
    try:
        return load_config(path)
    except ConfigError as exc:
        log(name, f"configuration error: {exc}")
        raise SystemExit(2) from None


def remove_ipc(endpoint: str, control: bool) -> None:
    if endpoint.startswith("ipc://"):
        path = endpoint[len("ipc://") :]
        for p in (path, path + ".ctl") if control else (path,):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(p)


def journal_options(cfg: TradewireConfig, channel: str, endpoint: str) -> JournalOptions | None:
    """The publisher journal options of `[journal]` for the publisher of `channel` bound
    at `endpoint`, or None when journals are off (as the Rust services'
    `tradewire_services::journal_options`)."""
    j = cfg.journal
    path = j.dir_for(channel, endpoint)
    if path is None:
        return None
    return JournalOptions(
        path,
        segment_bytes=j.segment_bytes,
        retention_bytes=j.retention_bytes,
        retention_age=j.retention_age_s,
        fsync=j.fsync,
        fsync_interval_ms=j.fsync_interval_ms,
    )


def ensure_ipc_dir(endpoint: str) -> None:
    if endpoint.startswith("ipc://"):
        Path(endpoint[len("ipc://") :]).parent.mkdir(parents=True, exist_ok=True)


S = TypeVar("S", bound=Subscriber[Any])


def subscribe(factory: Callable[[], S], stop: threading.Event) -> S | None:
    """Retry the subscription handshake every half second until it completes or `stop`."""
    while not stop.is_set():
        try:
            return factory()
        except SubscribeTimeout:
            continue
    return None


class Latency:
    """Latency samples (µs, the most recent 200,000) and their percentiles."""

    def __init__(self) -> None:
        self.samples: deque[float] = deque(maxlen=200_000)
        self.count = 0

    def record(self, us: float) -> None:
        self.samples.append(us)
        self.count += 1

    def summary(self) -> dict[str, float]:
        s = sorted(self.samples)

        def q(f: float) -> float:
            return s[round((len(s) - 1) * f)] if s else 0.0

        return {"p50": q(0.5), "p99": q(0.99), "max": q(1.0), "n": self.count}


def now_us() -> int:
    return time.time_ns() // 1000

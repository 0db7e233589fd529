"""market-data, Python twin of reference_services/rust/market-data (SPEC.md); the ticks come
from tradewire.rules (the Rust service's rules), published with the Python SDK.

python reference_services/python/market_data.py [--config PATH] [--rate R]
    [--symbols A,B] [--seed S] [--count N] [--duration SECONDS] [--csv FILE]
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path
from typing import Any

import zmq
from twin_common import (
    Lifecycle,
    config_or_exit,
    ensure_ipc_dir,
    journal_options,
    log,
    now_us,
    parse_args,
    remove_ipc,
)

from tradewire.channels import MarketDataPublisher
from tradewire.messages import MarketData
from tradewire.rules import RandomWalk, read_csv, sim_timestamp_us

END_LINGER_MS = 5000  # how long closing waits for frames queued to slow subscribers

NAME = "market-data"


def _nonneg_float(text: str) -> float:
    value = float(text)
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError("expected a number >= 0")
    return value


def _nonneg_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("expected an integer >= 0")
    return value


def _flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rate", type=_nonneg_float)
    parser.add_argument("--symbols")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--count", type=_nonneg_int)
    parser.add_argument("--duration", type=_nonneg_float)
    parser.add_argument("--csv")


def main() -> int:
    args = parse_args(NAME, _flags)
    cfg = config_or_exit(NAME, args.config)
    md: dict[str, Any] = cfg.market_data.model_dump()
    for key in ("rate", "seed", "count", "duration", "csv"):
        if getattr(args, key) is not None:
            md[key] = getattr(args, key)
    if args.symbols is not None:
        symbols = [s.strip() for s in args.symbols.split(",") if s.strip()]
        if not symbols or any(s.startswith("~") for s in symbols):
            log(NAME, f"--symbols {args.symbols!r}: expected a comma-separated list of symbols")
            return 2
        md["symbols"] = symbols
    life = Lifecycle(NAME)

    rows: list[MarketData] | None = None
    if md["csv"]:
        try:
            rows = read_csv(Path(md["csv"]))
        except ValueError as exc:
            life.fail(str(exc))
    endpoint = cfg.endpoints.market_data
    ensure_ipc_dir(endpoint)
    try:
        # The tail still reaches a subscriber that is behind when the stream ends: closing
        # waits up to END_LINGER_MS for frames queued to it (SPEC.md).
        context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        publisher = MarketDataPublisher(
            endpoint,
            context=context,
            linger_ms=END_LINGER_MS,
            journal=journal_options(cfg, "market_data", endpoint),
        )
    except OSError as exc:
        life.fail(f"cannot bind {endpoint}: {exc}")
        return 1
    life.ready()

    wait = md["wait_subscribers"]
    waiting = time.monotonic()
    while publisher.stats.handshakes < wait and not life.stopping():
        if md["wait_timeout"] > 0 and time.monotonic() - waiting >= md["wait_timeout"]:
            log(
                NAME,
                f"{publisher.stats.handshakes} of {wait} subscribers after "
                f"{md['wait_timeout']}s; starting anyway",
            )
            break
        time.sleep(0.002)

    rate: float = md["rate"]
    walk = RandomWalk(md["symbols"], md["seed"], md["start_price"], md["volatility"])
    count: int = md["count"]
    limit = count if rows is None or (count and count < len(rows)) else len(rows)
    duration: float = md["duration"]
    sim_start: int = md["sim_start_us"]
    t0 = time.monotonic()
    i = 0
    while not life.stopping():
        if (limit > 0 or rows is not None) and i >= limit:
            break
        if duration and time.monotonic() - t0 >= duration:
            break
        if rate > 0.0:
            wait_s = t0 + i / rate - time.monotonic()
            if wait_s > 0:
                time.sleep(min(wait_s, 0.005))
                continue
        clock = sim_timestamp_us(sim_start, rate, i) if sim_start > 0 else now_us()
        if rows is not None:
            tick = MarketData()
            tick.CopyFrom(rows[i])
            if tick.timestamp_us == 0:
                tick.timestamp_us = clock
        else:
            tick = walk.tick(clock)
        publisher.publish(tick)
        i += 1
    seconds = time.monotonic() - t0
    time.sleep(0.3)  # late replay requests are still served for a moment
    publisher.close()
    context.term()  # returns once queued frames are delivered, or after the linger
    remove_ipc(endpoint, control=True)
    life.summary(
        {
            "published": i,
            "symbols": md["symbols"],
            "seconds": seconds,
            "rate": i / seconds if seconds > 0 else 0.0,
        }
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

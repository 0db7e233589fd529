"""execution-engine, Python twin of reference_services/rust/execution-engine (SPEC.md).

    python reference_services/python/execution_engine.py [--config PATH]

Threads: one per subscription (signals, then market data once signals are live) and one
serving commands feed a queue; the main thread applies every event in arrival order
(tradewire.rules.Engine, the Rust service's rules) and publishes the results with the
Python SDK.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from twin_common import (
    Lifecycle,
    config_or_exit,
    ensure_ipc_dir,
    journal_options,
    log,
    now_us,
    parse_args,
    remove_ipc,
    subscribe,
)

from tradewire.channels import (
    CommandsServer,
    MarketDataSubscriber,
    OrdersPublisher,
    PositionsPublisher,
    SignalsSubscriber,
)
from tradewire.messages import CommandAck, Order, StrategyCommand
from tradewire.rules import Engine, Output

NAME = "execution-engine"


def pump(
    name: str,
    factory: Callable[[], Any],
    kind: str,
    events: queue.Queue[tuple[Any, ...]],
    stop: threading.Event,
    live: threading.Event | None = None,
    wait_for: threading.Event | None = None,
) -> threading.Thread:
    def run() -> None:
        if wait_for is not None:
            while not wait_for.wait(0.05):
                if stop.is_set():
                    return
        try:
            sub = subscribe(factory, stop)
        except Exception as exc:
            events.put(("failed", f"cannot subscribe to {name}: {exc}"))
            return
        if sub is None:
            return
        log(NAME, f"subscribed to {name}")
        if live is not None:
            live.set()
        try:
            while not stop.is_set():
                got = sub.recv(timeout=0.1)
                if got is not None:
                    events.put((kind, got.message))
        finally:
            sub.close()

    thread = threading.Thread(target=run, name=f"ee-{name}", daemon=True)
    thread.start()
    return thread


def main() -> int:
    args = parse_args(NAME)
    cfg = config_or_exit(NAME, args.config)
    life = Lifecycle(NAME)
    ep = cfg.endpoints
    for e in (ep.orders, ep.positions, ep.commands):
        ensure_ipc_dir(e)
    events: queue.Queue[tuple[Any, ...]] = queue.Queue()

    def handler(cmd: StrategyCommand) -> CommandAck:
        reply: queue.Queue[tuple[CommandAck.Outcome, str]] = queue.Queue()
        events.put(("command", cmd, reply))
        try:
            outcome, reason = reply.get(timeout=5.0)
        except queue.Empty:
            outcome, reason = CommandAck.REJECTED, "engine stopping"
        return CommandAck(outcome=outcome, reason=reason, engine_timestamp_us=now_us())

    try:
        orders = OrdersPublisher(ep.orders, journal=journal_options(cfg, "orders", ep.orders))
        positions = PositionsPublisher(
            ep.positions, journal=journal_options(cfg, "positions", ep.positions)
        )
        server = CommandsServer(
            ep.commands, handler, store=cfg.command_store.options_for(ep.commands)
        )
    except OSError as exc:
        life.fail(f"cannot bind: {exc}")
        return 1

    def serve() -> None:
        server.serve(until=life.stop.is_set, poll_interval=0.05)

    cmd_thread = threading.Thread(target=serve, name="ee-commands", daemon=True)
    cmd_thread.start()
    signals_live = threading.Event()
    threads = [
        cmd_thread,
        pump(
            "signals",
            lambda: SignalsSubscriber(ep.signals, subscribe_timeout=0.5),
            "signal",
            events,
            life.stop,
            live=signals_live,
        ),
        pump(
            "market_data",
            # every quote the publisher still holds, from its seq 1: a signal is matched with
            # the quote of its own tick, which a later subscription would miss
            lambda: MarketDataSubscriber(ep.market_data, start="earliest", subscribe_timeout=0.5),
            "quote",
            events,
            life.stop,
            wait_for=signals_live,
        ),
    ]
    life.ready()

    run = cfg.execution.run_id or f"E{time.time_ns() // 1_000_000:x}"
    log(NAME, f"run id {run}")
    engine = Engine(
        run,
        max_position_size=cfg.risk.max_position_size,
        max_daily_loss=cfg.risk.max_daily_loss,
        order_quantity=cfg.risk.order_quantity,
    )
    out: list[Output] = []
    failed: str | None = None
    while not life.stopping():
        try:
            event = events.get(timeout=0.05)
        except queue.Empty:
            out = engine.on_timer(time.monotonic_ns())
        else:
            now = time.monotonic_ns()
            kind = event[0]
            if kind == "signal":
                out = engine.on_signal(event[1], now)
            elif kind == "quote":
                out = engine.on_quote(event[1], now)
            elif kind == "command":
                cmd: StrategyCommand = event[1]
                outcome, reason, out = engine.on_command(cmd)
                log(
                    NAME,
                    f"command {cmd.command_id} {cmd.type} symbol {cmd.symbol!r}: "
                    f"{CommandAck.Outcome.Name(outcome)} {reason}",
                )
                event[2].put((outcome, reason))
            else:
                failed = str(event[1])
                break
        for o in out:
            if isinstance(o, Order):
                orders.publish(o)
            else:
                positions.publish(o)
        out.clear()
    life.stop.set()
    for t in threads:
        t.join(timeout=2.0)
    server.close()
    orders.close()
    positions.close()
    remove_ipc(ep.orders, control=True)
    remove_ipc(ep.positions, control=True)
    remove_ipc(ep.commands, control=False)
    if failed is not None:
        life.fail(failed)
    life.summary(engine.summary())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

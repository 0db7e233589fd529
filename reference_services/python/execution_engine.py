"""execution-engine, Python twin of reference_services/rust/execution-engine (SPEC.md).

    python reference_services/python/execution_engine.py [--config PATH] [--fresh]

Threads: one per subscription (signals, then market data once signals are live) and one
serving commands feed a queue; the main thread applies every event in arrival order
(tradewire.rules.Engine, the Rust service's rules) and publishes the results with the
Python SDK.

State: the engine's state (JSON) lives in the command server's store, key STATE_KEY, and
is read back at start (`--fresh`: ignored and overwritten). A command's effect commits in
the same transaction as its id and ack, before the ack leaves: the main thread applies it,
hands the new state to the serving thread, and waits until that transaction is over.
Signals, quotes and timer ticks commit once per batch of events (everything already
queued, at most BATCH), before the batch's Order and Position updates are published.
"""

from __future__ import annotations

import argparse
import contextlib
import json
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
from tradewire.config import TradewireConfig
from tradewire.messages import CommandAck, Order, StrategyCommand
from tradewire.rules import Engine, Output

NAME = "execution-engine"
STATE_KEY = "execution-engine/state"
"""The command store key holding the engine's state (as the Rust engine's)."""
BATCH = 256
"""Events applied at most between two commits of the state."""


def describe(state: dict[str, Any]) -> str:
    """The state's line for the log: what a restarted engine goes on from."""
    positions = ", ".join(
        f"{p['symbol']} {p['book']['quantity']!r} @ {p['book']['avg_cost']!r}"
        for p in state["positions"]
    )
    realized = sum(float(p["book"]["realized"]) for p in state["positions"])
    paused = "all" if state["paused_all"] else (",".join(state["paused"]) or "none")
    limits = state["limits"]
    run = state["run"]
    return (
        f"run {run}, next order id {run}-{state['orders_created'] + 1}, "
        f"positions [{positions}], open orders {len(state['open_orders'])}, "
        f"realized P&L {realized!r}, kill switch {'ENGAGED' if state['kill_switch'] else 'off'}, "
        f"paused {paused}, limits max_position_size {limits['max_position_size']!r} "
        f"max_daily_loss {limits['max_daily_loss']!r} order_quantity {limits['order_quantity']!r}"
    )


def fresh_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--fresh",
        action="store_true",
        help="start flat, discarding the state kept in the command store",
    )


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
    args = parse_args(NAME, fresh_flag)
    cfg = config_or_exit(NAME, args.config)
    life = Lifecycle(NAME)
    ep = cfg.endpoints
    for e in (ep.orders, ep.positions, ep.commands):
        ensure_ipc_dir(e)
    events: queue.Queue[tuple[Any, ...]] = queue.Queue()

    # The server records a command after its handler returns; the main thread waits on
    # `done` until that transaction is over.
    done: queue.Queue[None] = queue.Queue()
    owed = threading.Event()

    def handler(cmd: StrategyCommand) -> CommandAck:
        reply: queue.Queue[tuple[CommandAck.Outcome, str, str]] = queue.Queue()
        events.put(("command", cmd, reply))
        try:
            outcome, reason, state = reply.get(timeout=5.0)
        except queue.Empty:
            outcome, reason = CommandAck.REJECTED, "engine stopping"
        else:
            if server.state is not None:
                server.state.put(STATE_KEY, state.encode())  # staged with the command
            owed.set()
        return CommandAck(outcome=outcome, reason=reason, engine_timestamp_us=now_us())

    try:
        orders = OrdersPublisher(ep.orders, journal=journal_options(cfg, "orders", ep.orders))
        positions = PositionsPublisher(
            ep.positions, journal=journal_options(cfg, "positions", ep.positions)
        )
        store = cfg.command_store.options_for(ep.commands)
        server = CommandsServer(ep.commands, handler, store=store)
    except OSError as exc:
        life.fail(f"cannot bind: {exc}")
        return 1
    path = None if store is None else str(store.path)
    engine, written, restarted = start_engine(cfg, server, path, args.fresh, life)

    def serve() -> None:
        while not life.stop.is_set():
            server.serve_once(0.05)  # one command at most
            if owed.is_set():
                owed.clear()
                done.put(None)

    cmd_thread = threading.Thread(target=serve, name="ee-commands", daemon=True)
    cmd_thread.start()
    signals_live = threading.Event()
    threads = [
        cmd_thread,
        pump(
            "signals",
            # a recovered engine takes every signal the bridge still holds (those published
            # while it was down included) and ignores those not newer than the last one it
            # applied per symbol; a flat one starts from the live stream
            lambda: SignalsSubscriber(
                ep.signals, start="earliest" if restarted else "latest", subscribe_timeout=0.5
            ),
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

    # published first: a subscriber that missed the crashed engine's last updates holds the
    # recovered positions at once
    out: list[Output] = engine.position_snapshot() if restarted else []
    failed: str | None = None
    while not life.stopping():
        try:
            event: tuple[Any, ...] | None = events.get(timeout=0.05)
        except queue.Empty:
            event = None
        applied = 0
        while True:
            now = time.monotonic_ns()
            if event is None:
                out += engine.on_timer(now)
            else:
                kind = event[0]
                if kind == "signal":
                    out += engine.on_signal(event[1], now)
                elif kind == "quote":
                    out += engine.on_quote(event[1], now)
                elif kind == "command":
                    cmd: StrategyCommand = event[1]
                    outcome, reason, cancelled = engine.on_command(cmd)
                    out += cancelled
                    log(
                        NAME,
                        f"command {cmd.command_id} {cmd.type} symbol {cmd.symbol!r}: "
                        f"{CommandAck.Outcome.Name(outcome)} {reason}",
                    )
                    state = engine.state()
                    event[2].put((outcome, reason, state))
                    # committed with the command (everything before it included)
                    with contextlib.suppress(queue.Empty):
                        done.get(timeout=5.0)
                        written = state
                else:
                    failed = str(event[1])
                    break
            applied += 1
            if applied >= BATCH:
                break
            try:
                event = events.get_nowait()
            except queue.Empty:
                break
        if failed is not None:
            break
        if server.state is not None:
            state = engine.state()
            if state != written:
                try:
                    server.state.put(STATE_KEY, state.encode())
                except OSError as exc:
                    # nothing of this batch is published: what subscribers saw never runs
                    # ahead of what a restart recovers
                    failed = f"cannot write the engine state: {exc}"
                    break
                written = state
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


def start_engine(
    cfg: TradewireConfig,
    server: CommandsServer,
    path: str | None,
    fresh: bool,
    life: Lifecycle,
) -> tuple[Engine, str, bool]:
    """The engine recovered from the store at `path` (unless `fresh`), or a flat one; its
    state is written back at once, so `--fresh` is durable too. Returns (engine, state
    written, recovered)."""
    stored = server.state.get(STATE_KEY) if server.state is not None else None
    if stored is not None and not fresh:
        try:
            state = json.loads(stored)
            engine = Engine.restore(stored.decode())
        except (ValueError, KeyError) as exc:
            life.fail(f"cannot recover the engine state from {path}: {exc} (--fresh starts flat)")
            raise
        log(NAME, f"recovered state from {path}: {describe(state)}")
        if cfg.execution.run_id and cfg.execution.run_id != engine.run_id:
            log(
                NAME,
                f"execution.run_id {cfg.execution.run_id!r} ignored: the recovered run "
                f"{engine.run_id!r} goes on (--fresh starts a new run)",
            )
        configured = {
            "max_position_size": cfg.risk.max_position_size,
            "max_daily_loss": cfg.risk.max_daily_loss,
            "order_quantity": cfg.risk.order_quantity,
        }
        if state["limits"] != configured:
            log(NAME, "risk limits as recovered (set by command), not as configured")
    else:
        if path is None:
            log(NAME, "command store off: starting flat, the state is not persisted")
        elif stored is not None:
            log(NAME, f"--fresh: starting flat, the state in {path} is discarded")
        else:
            log(NAME, f"no state in {path}: starting flat")
        engine = Engine(
            cfg.execution.run_id or f"E{time.time_ns() // 1_000_000:x}",
            max_position_size=cfg.risk.max_position_size,
            max_daily_loss=cfg.risk.max_daily_loss,
            order_quantity=cfg.risk.order_quantity,
        )
    log(NAME, f"run id {engine.run_id}")
    written = engine.state()
    if server.state is not None:
        try:
            server.state.put(STATE_KEY, written.encode())
        except OSError as exc:
            life.fail(f"cannot write the engine state: {exc}")
    return engine, written, stored is not None and not fresh


if __name__ == "__main__":
    raise SystemExit(main())

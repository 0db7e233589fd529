"""Every StrategyCommand branch of the execution engine (crates/rules/src/lib.rs, "Commands"),
in both implementations: pause all, resume one symbol while paused / while the kill
switch is engaged, an unknown command type, risk-limit updates (applied, all or nothing),
and the kill switch's open-order count. The test drives the engine alone: it binds the
market-data and signals publishers itself, so every signal's outcome is scripted and the
Rust and Python engines must publish the same order stream and the same acks."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from test_services import Run, rust_bins  # noqa: F401  (rust_bins: fixture)

from tradewire.channels import (
    CommandsClient,
    MarketDataPublisher,
    OrdersSubscriber,
    SignalsPublisher,
)
from tradewire.messages import CommandAck, MarketData, Order, StrategyCommand, TradingSignal
from tradewire.rules import Engine

IMPLS = ("rust", "python")
SC = StrategyCommand


@contextmanager
def engine_config() -> Iterator[Run]:
    """A run directory and configuration for an engine alone; kills what is left."""
    ipc = Path(tempfile.mkdtemp(prefix="twc-", dir="/tmp"))
    config = ipc / "tw.toml"
    config.write_text(
        '[execution]\nrun_id = "c"\n'
        "[risk]\nmax_position_size = 1000000000.0\nmax_daily_loss = 1000000000000.0\n"
        "order_quantity = 100.0\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEWIRE__")}
    for channel in ("market_data", "signals", "orders", "positions", "commands"):
        env[f"TRADEWIRE__ENDPOINTS__{channel.upper()}"] = f"ipc://{ipc}/{channel}"
    run = Run(config, ipc, env)
    try:
        yield run
    finally:
        run.kill_all()


@pytest.fixture
def engine_run() -> Iterator[Run]:
    with engine_config() as run:
        yield run


# (command, expected (outcome, reason)) or ("buy", symbol, t, expected final status, reason)
SCRIPT: list[tuple[Any, ...]] = [
    ("buy", "A", 1, Order.FILLED, ""),
    (SC(type=SC.PAUSE_TRADING), (CommandAck.APPLIED, "")),
    ("buy", "A", 2, Order.REJECTED, "trading paused"),
    (SC(type=SC.RESUME_TRADING, symbol="A"), (CommandAck.APPLIED, "trading still paused")),
    ("buy", "B", 3, Order.REJECTED, "trading paused"),
    (SC(type=SC.KILL_SWITCH), (CommandAck.APPLIED, "kill switch engaged; 0 open orders cancelled")),
    (SC(type=SC.RESUME_TRADING, symbol="A"), (CommandAck.APPLIED, "kill switch still engaged")),
    ("buy", "A", 4, Order.REJECTED, "kill switch engaged"),
    (SC(type=42), (CommandAck.REJECTED, "unknown command type 42")),  # type: ignore[arg-type]
    ("buy", "A", 5, Order.REJECTED, "kill switch engaged"),  # 42 changed nothing
    (SC(type=SC.RESUME_TRADING), (CommandAck.APPLIED, "")),
    ("buy", "B", 6, Order.FILLED, ""),
    (
        SC(
            type=SC.UPDATE_RISK_LIMITS,
            parameters={"order_quantity": 30.0, "max_position_size": 150.0},
        ),
        (CommandAck.APPLIED, ""),
    ),
    ("buy", "A", 7, Order.FILLED, ""),  # 100 + 30 = 130 <= 150, quantity 30
    ("buy", "A", 8, Order.REJECTED, "max_position_size: position would be 160.0, limit 150.0"),
    (
        SC(type=SC.UPDATE_RISK_LIMITS, parameters={"max_position_size": 1e9, "bogus": 1.0}),
        (
            CommandAck.REJECTED,
            "unknown parameter bogus (known: max_daily_loss, max_position_size, order_quantity)",
        ),
    ),
    # All or nothing: the valid max_position_size of the rejected update was not applied.
    ("buy", "A", 9, Order.REJECTED, "max_position_size: position would be 160.0, limit 150.0"),
    (SC(type=SC.UPDATE_RISK_LIMITS), (CommandAck.REJECTED, "no parameters")),
    (SC(type=SC.PAUSE_TRADING, symbol="B"), (CommandAck.APPLIED, "")),
    ("buy", "B", 10, Order.REJECTED, "trading paused for B"),
    (SC(type=SC.RESUME_TRADING, symbol="B"), (CommandAck.APPLIED, "")),
    ("buy", "B", 11, Order.FILLED, ""),
]
N_COMMANDS = sum(isinstance(step[0], StrategyCommand) for step in SCRIPT)


def drive(run: Run, impl: str) -> tuple[list[Order], list[tuple[int, str]], dict[str, Any]]:
    """Run SCRIPT against one engine; (order stream, acks, engine summary)."""
    ee = run.start("execution-engine", impl)
    orders: list[Order] = []
    acks: list[tuple[int, str]] = []
    with (
        MarketDataPublisher(run.endpoint("market_data")) as md,
        SignalsPublisher(run.endpoint("signals")) as signals,
        OrdersSubscriber(run.endpoint("orders"), subscribe_timeout=10) as sub,
        CommandsClient(run.endpoint("commands")) as client,
    ):
        # The engine subscribes to signals, then to market data (SPEC 5).
        assert signals.wait_for_subscribers(1, timeout=20), ee.stderr()
        assert md.wait_for_subscribers(1, timeout=20), ee.stderr()
        for step in SCRIPT:
            if isinstance(step[0], StrategyCommand):
                ack = client.send(step[0], timeout=10)
                acks.append((ack.outcome, ack.reason))
                assert (ack.outcome, ack.reason) == step[1], (step, ack)
                continue
            _, symbol, t, status, reason = step
            md.publish(MarketData(symbol=symbol, timestamp_us=t, bid=99.0, ask=101.0, price=100))
            signals.publish(TradingSignal(symbol=symbol, signal=TradingSignal.BUY, timestamp_us=t))
            while True:  # this signal's order, up to its final update
                got = sub.recv(timeout=10)
                assert got is not None, f"no order update for {step}:\n{ee.stderr()}"
                orders.append(got.message)
                if got.message.status in (Order.FILLED, Order.REJECTED):
                    break
            last = orders[-1]
            assert last.client_order_id == f"{symbol}@{t}"
            assert (last.status, last.rejection_reason) == (status, reason), (step, last)
        assert sub.recv(timeout=0.2) is None  # nothing else: no CANCELLED, no extra order
    summary = run.stop_ok(ee)
    return orders, acks, summary


@pytest.mark.parametrize("impl", IMPLS)
def test_every_command_branch(rust_bins: Path, engine_run: Run, impl: str) -> None:  # noqa: F811
    orders, acks, summary = drive(engine_run, impl)
    assert summary["commands"] == N_COMMANDS
    assert summary["rejections"] == {
        "kill_switch": 2,
        "paused": 3,
        "max_position_size": 2,
        "max_daily_loss": 0,
    }
    assert summary["filled"] == 4 and summary["orders"] == 11
    assert summary["positions"] == {"A": 130.0, "B": 130.0}
    assert [o.quantity for o in orders if o.status == Order.FILLED] == [100.0, 100.0, 30.0, 30.0]
    assert len(acks) == N_COMMANDS


def test_command_branches_identical_in_rust_and_python(rust_bins: Path) -> None:  # noqa: F811
    streams = {}
    for impl in IMPLS:
        with engine_config() as run:
            streams[impl] = drive(run, impl)
            left = {p.name for p in run.ipc.iterdir()}
            assert not left & {"orders", "orders.ctl", "positions", "positions.ctl", "commands"}
    rust, py = streams["rust"], streams["python"]
    assert rust[0] == py[0]
    assert rust[1] == py[1]
    keys = ("commands", "orders", "filled", "rejected", "rejections", "positions", "realized_pnl")
    assert {k: rust[2][k] for k in keys} == {k: py[2][k] for k in keys}


# -- a resting order, placed through a restored state (the reference engine never has one) --


def test_kill_switch_cancels_and_counts_open_orders() -> None:
    e = Engine("t", max_position_size=1e9, max_daily_loss=1e12, order_quantity=100.0)
    out = e.on_quote(MarketData(symbol="A", timestamp_us=1, bid=99.0, ask=101.0), 0)
    out += e.on_signal(TradingSignal(symbol="A", signal=TradingSignal.BUY, timestamp_us=1), 0)
    assert [o.status for o in out if isinstance(o, Order)] == [
        Order.CREATED,
        Order.SUBMITTED,
        Order.FILLED,
    ]
    assert e.open_orders == 0  # market orders fill at once: nothing open between events
    state = json.loads(e.state())
    state["open_orders"] = [
        {
            "order_id": "t-9",
            "client_order_id": "",
            "symbol": "A",
            "side": 0,
            "quantity": 0.0,
            "price": 0.0,
            "order_type": 0,
            "status": Order.SUBMITTED,
            "timestamp_us": 0,
            "rejection_reason": "",
        }
    ]
    e = Engine.restore(json.dumps(state))
    assert e.open_orders == 1
    outcome, reason, out = e.on_command(StrategyCommand(type=StrategyCommand.KILL_SWITCH))
    assert (outcome, reason) == (CommandAck.APPLIED, "kill switch engaged; 1 open orders cancelled")
    assert out == [Order(order_id="t-9", symbol="A", status=Order.CANCELLED)]
    assert e.open_orders == 0
    outcome, reason, out = e.on_command(StrategyCommand(type=StrategyCommand.KILL_SWITCH))
    assert reason == "kill switch engaged; 0 open orders cancelled" and out == []

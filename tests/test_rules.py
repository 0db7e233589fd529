"""tradewire.rules: the reference services' rules (crates/rules) on Python messages, and
the stub of the extension behind it. The rules themselves are unit-tested in the crate;
tests/test_services.py checks that the Rust and Python services publish the same streams."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tradewire import _rules
from tradewire.messages import (
    CommandAck,
    MarketData,
    Order,
    Position,
    StrategyCommand,
    TradingSignal,
)
from tradewire.persistence.pnl import Ledger
from tradewire.rules import (
    QUOTE_WAIT_NS,
    Book,
    Engine,
    Output,
    RandomWalk,
    decide,
    fmt_num,
    parse_csv,
    read_csv,
    sim_timestamp_us,
)


@pytest.mark.slow
def test_stub_matches_the_extension() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "tradewire._rules"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_random_walk_is_seeded_and_round_robin() -> None:
    a = RandomWalk(["A", "B"], 42, 100.0, 0.004)
    b = RandomWalk(("A", "B"), 42, 100.0, 0.004)
    ticks = [a.tick(i) for i in range(6)]
    assert ticks == [b.tick(i) for i in range(6)]
    assert [t.symbol for t in ticks] == ["A", "B"] * 3
    assert all(isinstance(t, MarketData) and t.exchange == "SIM" for t in ticks)
    assert all(t.bid < t.price < t.ask for t in ticks)
    assert a.index == 6
    assert RandomWalk(["A"], 43, 100.0, 0.004).tick(0) != ticks[0]
    with pytest.raises(ValueError, match="needs a symbol"):
        RandomWalk([], 1, 100.0, 0.004)


def test_simulated_clock() -> None:
    assert sim_timestamp_us(1_000, 1000.0, 3) == 4_000
    assert sim_timestamp_us(1_000, 0.0, 3) == 1_003
    assert sim_timestamp_us(0, 3.0, 1) == 333_333


def test_csv(tmp_path: Path) -> None:
    rows = parse_csv("symbol,price,timestamp_us\nA,1.5,7\nB,2,\n", "t.csv")
    assert [(r.symbol, r.price, r.bid, r.timestamp_us, r.exchange) for r in rows] == [
        ("A", 1.5, 1.5, 7, "CSV"),
        ("B", 2.0, 2.0, 0, "CSV"),
    ]
    with pytest.raises(ValueError, match=r'^t\.csv:2: price "x" is not a number$'):
        parse_csv("symbol,price\nA,x\n", "t.csv")
    path = tmp_path / "ticks.csv"
    path.write_text("symbol,price\nA,3\n")
    assert read_csv(path)[0].price == 3.0
    with pytest.raises(ValueError, match="cannot read"):
        read_csv(tmp_path / "missing.csv")


def test_decide_compares_float32_probabilities_as_doubles() -> None:
    assert decide([0.7, 0.2, 0.1], 0.6) == (TradingSignal.BUY, 0.699999988079071)
    assert decide([0.1, 0.2, 0.7], 0.6)[0] == TradingSignal.SELL
    assert decide([0.5, 0.4, 0.1], 0.6)[0] == TradingSignal.HOLD


def test_numbers_as_text() -> None:
    assert [fmt_num(x) for x in (1100.0, 1e-5, 1.5e20, 0.1 + 0.2)] == [
        "1100.0",
        "1e-5",
        "1.5e20",
        "0.30000000000000004",
    ]


def test_book_is_the_engines_fill_rule() -> None:
    book = Book()
    assert book.fill(100, 10.0) == 0.0
    assert book.fill(100, 20.0) == 0.0
    assert (book.quantity, book.avg_cost) == (200.0, 15.0)
    assert book.fill(-300, 30.0) == 3000.0
    assert (book.quantity, book.avg_cost, book.realized) == (-100.0, 30.0, 3000.0)
    assert book.unrealized(20.0) == 1000.0
    assert book.fill(0, 99.0) == 0.0
    ledger = Ledger()
    ledger.fill("A", 10, 1.0)
    assert ledger.book("A").quantity == 10.0 and ledger.book("B").quantity == 0.0


def _engine() -> Engine:
    return Engine("run", max_position_size=150.0, max_daily_loss=1e9, order_quantity=100.0)


def _buy(engine: Engine, symbol: str, t: int, now_ns: int = 0) -> list[Output]:
    out = engine.on_quote(MarketData(symbol=symbol, timestamp_us=t, bid=99.0, ask=101.0), now_ns)
    return out + engine.on_signal(
        TradingSignal(symbol=symbol, signal=TradingSignal.BUY, timestamp_us=t), now_ns
    )


def test_engine_orders_positions_and_commands() -> None:
    engine = _engine()
    out = _buy(engine, "A", 1)
    orders = [o for o in out if isinstance(o, Order)]
    assert [o.status for o in orders] == [Order.CREATED, Order.SUBMITTED, Order.FILLED]
    assert {o.order_id for o in orders} == {"run-1"}
    (position,) = (o for o in out if isinstance(o, Position))
    assert (position.quantity, position.avg_cost, position.current_price) == (100.0, 101.0, 100.0)
    rejected = _buy(engine, "A", 2)[1]
    assert isinstance(rejected, Order)
    assert rejected.rejection_reason == "max_position_size: position would be 200.0, limit 150.0"

    outcome, reason, caused = engine.on_command(StrategyCommand(type=StrategyCommand.KILL_SWITCH))
    assert (outcome, reason, caused) == (
        CommandAck.APPLIED,
        "kill switch engaged; 0 open orders cancelled",
        [],
    )
    assert engine.killed
    unknown = StrategyCommand()
    unknown.ParseFromString(b"\x08\x2a")  # type = 42, a number the schema does not name
    outcome, reason, _ = engine.on_command(unknown)
    assert (outcome, reason) == (CommandAck.REJECTED, "unknown command type 42")
    summary = engine.summary()
    assert summary["orders"] == 2 and summary["rejections"]["max_position_size"] == 1
    assert summary["positions"] == {"A": 100.0} and summary["commands"] == 2
    assert engine.pnl() == (0.0, -100.0)
    assert engine.positions() == {"A": 100.0}


def test_a_signal_waits_for_its_quote_by_the_time_given() -> None:
    engine = _engine()
    signal = TradingSignal(symbol="A", signal=TradingSignal.BUY, timestamp_us=5)
    assert engine.on_signal(signal, 1_000) == []
    assert engine.pending == 1
    assert engine.on_timer(1_000 + QUOTE_WAIT_NS - 1) == []
    assert engine.on_timer(1_000 + QUOTE_WAIT_NS) == []  # no quote at all: dropped
    assert engine.pending == 0 and engine.summary()["dropped_signals"] == 1


def test_engine_state_round_trip() -> None:
    engine = _engine()
    _buy(engine, "A", 1)
    engine.on_command(StrategyCommand(type=StrategyCommand.PAUSE_TRADING, symbol="B"))
    engine.on_command(
        StrategyCommand(type=StrategyCommand.UPDATE_RISK_LIMITS, parameters={"order_quantity": 10})
    )
    state = engine.state()
    assert json.loads(state)["orders_created"] == 1
    restored = Engine.restore(state)
    assert restored.state() == state
    assert restored.run_id == "run"
    for e in (engine, restored):
        out = _buy(e, "A", 2) + _buy(e, "B", 2)
        ids = [o.order_id for o in out if isinstance(o, Order)]
        assert ids[0] == "run-2" and ids[-1] == "run-3"
        assert [o.rejection_reason for o in out if isinstance(o, Order)][-1] == (
            "trading paused for B"
        )
    assert restored.state() == engine.state()
    with pytest.raises(ValueError, match="format"):
        Engine.restore(state.replace('"format":1', '"format":9'))
    with pytest.raises(ValueError):
        Engine.restore("{}")


def test_bad_bytes_are_a_value_error() -> None:
    with pytest.raises(ValueError, match="not a MarketData"):
        _rules.Engine("r", 1.0, 1.0, 1.0).on_quote(b"\xff", 0)

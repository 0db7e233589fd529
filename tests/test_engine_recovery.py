"""Engine state recovery with real processes (reference_services/SPEC.md section 6): the
pipeline runs with a recorder, the execution engine (Rust, then its Python twin) is killed
with SIGKILL mid-run and restarted on the same command store. Its positions, realized P&L,
open orders and next order id equal those published before the kill, those in its store
and those in the recorder's database; no order id is given twice; risk limits and a pause
set by command and an engaged kill switch survive the restart until `resume`."""

from __future__ import annotations

import json
import signal
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from test_services import (  # noqa: F401  (rust_bins, registry, make_run: fixtures)
    Collector,
    Run,
    make_run,
    registry,
    rust_bins,
)

from tradewire.channels import CommandsClient
from tradewire.messages import CommandAck, Order, Position, StrategyCommand
from tradewire.persistence import open_engine
from tradewire.persistence.recorder import Recorder

IMPLS = ("rust", "python")
STATE_KEY = "execution-engine/state"
SC = StrategyCommand

pytestmark = pytest.mark.timeout(240)


def stored_state(path: Path) -> dict[str, Any]:
    """The engine state committed in the command store (read while no engine runs)."""
    with sqlite3.connect(path) as db:
        row = db.execute("SELECT value FROM handler_state WHERE key = ?", (STATE_KEY,)).fetchone()
    assert row is not None, "no engine state in the store"
    state: dict[str, Any] = json.loads(row[0])
    return state


def last_positions(col: Collector) -> dict[str, Position]:
    out: dict[str, Position] = {}
    for p in col.messages("positions"):
        out[p.symbol] = p
    return out


def order_n(order_id: str) -> int:
    return int(order_id.rsplit("-", 1)[1])


def settle(col: Collector, quiet: float = 0.5) -> None:
    """Until no order or position update arrived for `quiet` seconds (signals go on)."""
    last = -1
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        n = len(col.got["orders"]) + len(col.got["positions"])
        if n == last:
            return
        last = n
        time.sleep(quiet)
    raise AssertionError("orders and positions never settled")


def wait_for(what: Callable[[], bool], timeout: float, why: str) -> None:
    deadline = time.monotonic() + timeout
    while not what():
        assert time.monotonic() < deadline, f"timed out waiting: {why}"
        time.sleep(0.02)


@pytest.mark.parametrize("impl", IMPLS)
def test_engine_sigkill_resumes_its_state(
    rust_bins: Path,  # noqa: F811
    make_run: Callable[..., Run],  # noqa: F811
    impl: str,
) -> None:
    run = make_run(
        market_data={"rate": 600.0, "wait_subscribers": 2},
        execution={"run_id": ""},  # a run id of the start time: the recovered one goes on
        risk={"max_position_size": 1e9, "max_daily_loss": 1e12},
        command_store={"path": "engine.sqlite"},
    )
    store = run.ipc / "engine.sqlite"
    db_url = f"sqlite:///{run.ipc / 'recorded.db'}"
    db = open_engine(db_url)
    stop_rec = threading.Event()
    ee = run.start("execution-engine", impl)  # its publishers are bound once it is ready
    recorder = Recorder(
        db,
        orders=run.endpoint("orders"),
        positions=run.endpoint("positions"),
        snapshot_interval=3600,
        flush_interval=0.05,
    )
    rec_thread = threading.Thread(target=recorder.run, kwargs={"stop": stop_rec}, daemon=True)
    rec_thread.start()
    sb = run.start("signal-bridge", impl)
    col = Collector(run)
    md = run.start("market-data", impl)
    try:
        col.wait(lambda: len(col.orders(Order.FILLED)) >= 3, why="3 fills")
        with CommandsClient(run.endpoint("commands")) as client:
            ack = client.send(
                SC(type=SC.UPDATE_RISK_LIMITS, parameters={"order_quantity": 7.0}), timeout=10
            )
            assert ack.outcome == CommandAck.APPLIED, ack
            col.wait(
                lambda: any(o.quantity == 7.0 for o in col.orders(Order.FILLED)), why="fill of 7"
            )
            ack = client.send(SC(type=SC.PAUSE_TRADING, symbol="MSFT"), timeout=10)
            assert ack.outcome == CommandAck.APPLIED, ack
            ack = client.send(SC(type=SC.KILL_SWITCH), timeout=10)
            assert ack.outcome == CommandAck.APPLIED, ack

            def kill_rejections() -> int:
                rejected = col.orders(Order.REJECTED)
                return sum(o.rejection_reason == "kill switch engaged" for o in rejected)

            col.wait(lambda: kill_rejections() >= 3, why="kill switch rejections")

            # kill -9 mid-run: signals keep coming while it is down
            assert run.stop(ee, signal.SIGKILL) == -signal.SIGKILL
            settle(col)
            seen = list(col.messages("orders"))
            state = stored_state(store)
            positions = last_positions(col)
            n_before = max(order_n(o.order_id) for o in seen)
            wait_for(lambda: recorder.stats.recorded >= 1, 10, "recorder")
            run_id = seen[0].order_id.rsplit("-", 1)[0]
            # subscribers never saw an order the store does not hold (the store may be one
            # batch ahead: committed, then killed before it was published)
            n_store = state["orders_created"]
            assert n_before <= n_store <= n_before + 8, (n_before, n_store)
            assert state["run"] == run_id
            assert state["kill_switch"] is True
            assert state["paused"] == ["MSFT"]
            assert state["limits"]["order_quantity"] == 7.0
            assert state["open_orders"] == []
            held = {
                p["symbol"]: (p["book"]["quantity"], p["book"]["avg_cost"], p["book"]["realized"])
                for p in state["positions"]
            }
            if n_before == n_store:  # nothing was cut off: what was published is the state
                published = {
                    s: (p.quantity, p.avg_cost, p.realized_pnl) for s, p in positions.items()
                }
                # a symbol whose signals never filled has no Position update yet
                assert held == {s: published.get(s, (0.0, 0.0, 0.0)) for s in held}
            realized_before = sum(r for _, _, r in held.values())
            k = len(col.got["positions"])
            started = time.monotonic()
            ee = run.start("execution-engine", impl)
            ready_s = time.monotonic() - started
            # stderr is read on its own thread: the line may follow the ready line
            wait_for(lambda: "run id" in "".join(ee.err), 10, "the recovery log")
            log = "".join(ee.err)
            assert "recovered state from" in log, log
            assert f"next order id {run_id}-{n_store + 1}" in log, log
            assert "kill switch ENGAGED" in log, log
            assert "paused MSFT" in log, log
            # the recovered positions are published first; with the kill switch engaged
            # nothing fills, so they are still the positions when the next orders arrive
            col.wait(
                lambda: {p.symbol for _, p in col.got["positions"][k:]} >= set(held),
                timeout=30,
                why="recovered positions",
            )
            col.wait(
                lambda: any(order_n(o.order_id) > n_store for o in col.messages("orders")),
                timeout=30,
                why="orders after the restart",
            )
            after = [o for o in col.messages("orders") if order_n(o.order_id) > n_store]
            assert min(order_n(o.order_id) for o in after) == n_store + 1
            assert {o.order_id.rsplit("-", 1)[0] for o in after} == {run_id}
            # still engaged after the restart: every order is rejected
            assert all(o.status in (Order.CREATED, Order.REJECTED) for o in after), after
            assert all(
                o.rejection_reason == "kill switch engaged"
                for o in after
                if o.status == Order.REJECTED
            )
            now = {
                s: (p.quantity, p.avg_cost, p.realized_pnl) for s, p in last_positions(col).items()
            }
            assert now == held

            def recorded_positions() -> dict[str, tuple[float, float, float]]:
                with db.connect() as conn:
                    rows = conn.execute(sa.text("SELECT * FROM positions"))
                    return {r.symbol: (r.quantity, r.avg_cost, r.realized_pnl) for r in rows}

            # the recorder follows the restarted publisher on its own schedule
            deadline = time.monotonic() + 20
            while recorded_positions() != held and time.monotonic() < deadline:
                time.sleep(0.1)
            assert recorded_positions() == held
            ack = client.send(SC(type=SC.RESUME_TRADING), timeout=10)
            assert (ack.outcome, ack.reason) == (CommandAck.APPLIED, ""), ack
            n_fills = len(col.orders(Order.FILLED))
            col.wait(
                lambda: len(col.orders(Order.FILLED)) >= n_fills + 3,
                timeout=30,
                why="fills after resume",
            )
            # the limit set by command before the kill still holds
            assert all(o.quantity == 7.0 for o in col.orders(Order.FILLED)[n_fills:])
        summary = run.stop_ok(md)
        assert summary["published"] > 0
        run.stop_ok(sb)
        settle(col)
        ee_summary = run.stop_ok(ee)
    finally:
        col.close()
        stop_rec.set()
        rec_thread.join(timeout=10)
        recorder.close()

    created = col.orders(Order.CREATED)
    ids = [o.order_id for o in created]
    assert len(set(ids)) == len(ids), "an order id was given twice"
    origins = [o.client_order_id for o in created]
    assert len(set(origins)) == len(origins), "a signal produced two orders"
    final = last_positions(col)
    assert ee_summary["positions"] == {s: p.quantity for s, p in final.items()}
    realized = sum(p.realized_pnl for p in final.values())
    assert ee_summary["realized_pnl"] == pytest.approx(realized, abs=1e-9)
    with db.connect() as conn:
        final_rows = {r.symbol: r for r in conn.execute(sa.text("SELECT * FROM positions"))}
        recorded_ids = {
            r[0] for r in conn.execute(sa.text("SELECT DISTINCT order_id FROM order_audit_trail"))
        }
    db.dispose()
    assert recorded_ids == set(ids)
    for symbol, p in final.items():
        r = final_rows[symbol]
        assert (r.quantity, r.avg_cost, r.realized_pnl) == (p.quantity, p.avg_cost, p.realized_pnl)
    print(
        f"\n{impl}: restart to ready {ready_s * 1e3:.0f} ms; recovered next order id "
        f"{run_id}-{n_store + 1} (published up to {n_before}); realized P&L {realized_before}; "
        f"{len(ids)} orders, final {ee_summary['positions']}"
    )


@pytest.mark.parametrize("impl", IMPLS)
def test_fresh_starts_flat_on_purpose(rust_bins: Path, impl: str) -> None:  # noqa: F811
    """A kill switch survives a clean restart too; `--fresh` discards it, and says so."""
    from test_services_commands import engine_config

    from tradewire.channels import MarketDataPublisher, OrdersSubscriber, SignalsPublisher
    from tradewire.messages import MarketData, TradingSignal

    def logged(svc: Any, text: str) -> str:
        wait_for(lambda: text in "".join(svc.err), 10, text)
        return "".join(svc.err)

    with engine_config() as run:
        ee = run.start("execution-engine", impl)
        logged(ee, "starting flat")
        with CommandsClient(run.endpoint("commands")) as client:
            assert client.send(SC(type=SC.KILL_SWITCH), timeout=10).outcome == CommandAck.APPLIED
        run.stop_ok(ee)
        ee = run.start("execution-engine", impl)
        assert "kill switch ENGAGED" in logged(ee, "recovered state from")
        run.stop_ok(ee)
        ee = run.start("execution-engine", impl, "--fresh")
        log = logged(ee, "--fresh: starting flat")
        assert "recovered state" not in log
        with (
            MarketDataPublisher(run.endpoint("market_data")) as md,
            SignalsPublisher(run.endpoint("signals")) as signals,
            OrdersSubscriber(run.endpoint("orders"), subscribe_timeout=10) as sub,
        ):
            assert signals.wait_for_subscribers(1, timeout=20), ee.stderr()
            assert md.wait_for_subscribers(1, timeout=20), ee.stderr()
            md.publish(MarketData(symbol="A", timestamp_us=1, bid=99.0, ask=101.0, price=100))
            signals.publish(TradingSignal(symbol="A", signal=TradingSignal.BUY, timestamp_us=1))
            statuses = []
            while Order.FILLED not in statuses and Order.REJECTED not in statuses:
                got = sub.recv(timeout=10)
                assert got is not None, ee.stderr()
                statuses.append(got.message.status)
            assert statuses[-1] == Order.FILLED  # the kill switch went with the state
        run.stop_ok(ee)
        # and the flat state is what the store holds now
        ee = run.start("execution-engine", impl)
        log = logged(ee, "recovered state from")
        assert "kill switch off" in log and "next order id c-2" in log, log
        run.stop_ok(ee)

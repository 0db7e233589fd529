"""The reference services as real processes (reference_services/SPEC.md): each alone in
both languages, Rust and Python pipelines producing identical streams, the kill switch,
risk-limit rejections with their reason, and SIGKILL + restart without duplicate orders
(the engine's recovered state in detail: test_engine_recovery.py)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tradewire.channels import (
    CommandsClient,
    MarketDataSubscriber,
    OrdersSubscriber,
    PositionsSubscriber,
    SignalsSubscriber,
)
from tradewire.messages import CommandAck, Order, StrategyCommand
from tradewire.ml import ModelRegistry, TradingModel, export_onnx, labelled_dataset

ROOT = Path(__file__).resolve().parents[1]
PY_DIR = ROOT / "reference_services" / "python"
RUST_DIR = ROOT / "target" / "release"
NAMES = ("market-data", "signal-bridge", "execution-engine")
IMPLS = ("rust", "python")
WARMUP = 49  # ticks per symbol before the first feature row

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def rust_bins() -> Path:
    if shutil.which("cargo") is None:
        pytest.fail("cargo is needed to build the reference services")
    subprocess.run(
        ["cargo", "build", "--release", "--locked", *(f"-p={n}" for n in NAMES)],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    return RUST_DIR


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small model, registered as `trading_model` (the configured name)."""
    data = labelled_dataset(n_series=2, length=3000, seed=1)
    model = TradingModel.init(1)
    model.fit(data.x, data.y, epochs=3, seed=1)
    root = tmp_path_factory.mktemp("models")
    ModelRegistry(root).register(export_onnx(model, root / "m.onnx"), name="trading_model")
    return root


# -- processes ----------------------------------------------------------------------------


def service_cmd(name: str, impl: str) -> list[str]:
    if impl == "rust":
        return [str(RUST_DIR / name)]
    return [sys.executable, str(PY_DIR / f"{name.replace('-', '_')}.py")]


@dataclass
class Service:
    name: str
    impl: str
    proc: subprocess.Popen[str]
    lines: list[dict[str, Any]] = field(default_factory=list)
    ready: threading.Event = field(default_factory=threading.Event)
    err: list[str] = field(default_factory=list)
    readers: list[threading.Thread] = field(default_factory=list)

    def finish(self) -> None:
        """After exit: take the last lines, close the pipes."""
        for t in self.readers:
            t.join(timeout=5)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()

    def summary(self) -> dict[str, Any]:
        found = [line["summary"] for line in self.lines if "summary" in line]
        assert len(found) == 1, f"{self.name}: summaries {found}\n{self.stderr()}"
        result: dict[str, Any] = found[0]
        return result

    def stderr(self) -> str:
        return "".join(self.err[-30:])


@dataclass
class Run:
    """One configuration (file + environment) and the processes started with it."""

    config: Path
    ipc: Path
    env: dict[str, str]
    services: list[Service] = field(default_factory=list)

    def endpoint(self, channel: str) -> str:
        return self.env[f"TRADEWIRE__ENDPOINTS__{channel.upper()}"]

    def kill_all(self) -> None:
        """SIGKILL whatever still runs (each service's process group), collect the output,
        remove the ipc directory."""
        for svc in self.services:
            if svc.proc.poll() is None:
                os.killpg(svc.proc.pid, signal.SIGKILL)
                svc.proc.wait()
            svc.finish()
        shutil.rmtree(self.ipc, ignore_errors=True)

    def start(self, name: str, impl: str, *extra: str, timeout: float = 30.0) -> Service:
        cmd = service_cmd(name, impl)
        proc = subprocess.Popen(
            [*cmd, "--config", str(self.config), *extra],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env,
            cwd=self.ipc,
            start_new_session=True,
        )
        svc = Service(name, impl, proc)
        self.services.append(svc)

        def out() -> None:
            assert proc.stdout is not None
            for raw in proc.stdout:
                line = json.loads(raw)  # stdout carries JSON lines only
                svc.lines.append(line)
                if line.get("ready"):
                    assert line == {"service": name, "impl": impl, "ready": True}
                    svc.ready.set()

        def err() -> None:
            assert proc.stderr is not None
            for raw in proc.stderr:
                svc.err.append(raw)

        svc.readers = [threading.Thread(target=f, daemon=True) for f in (out, err)]
        for t in svc.readers:
            t.start()
        deadline = time.monotonic() + timeout
        while not svc.ready.wait(0.02):
            assert proc.poll() is None, f"{name} ({impl}) exited:\n{svc.stderr()}"
            assert time.monotonic() < deadline, f"{name} ({impl}) not ready:\n{svc.stderr()}"
        return svc

    def stop(self, svc: Service, sig: int = signal.SIGTERM) -> int:
        if svc.proc.poll() is None:
            svc.proc.send_signal(sig)
        code = svc.proc.wait(timeout=15)
        svc.finish()
        return code

    def stop_ok(self, svc: Service) -> dict[str, Any]:
        code = self.stop(svc)
        assert code == 0, f"{svc.name} ({svc.impl}) exited {code}:\n{svc.stderr()}"
        return svc.summary()

    def wait_exit(self, svc: Service, timeout: float = 60.0) -> dict[str, Any]:
        code = svc.proc.wait(timeout=timeout)
        svc.finish()
        assert code == 0, f"{svc.name} exited {code}:\n{svc.stderr()}"
        return svc.summary()


def toml_value(v: Any) -> str:
    return json.dumps(v) if not isinstance(v, bool) else str(v).lower()


@pytest.fixture
def make_run(registry: Path) -> Iterator[Callable[..., Run]]:
    runs: list[Run] = []

    def make(**sections: dict[str, Any]) -> Run:
        ipc = Path(tempfile.mkdtemp(prefix="tws-", dir="/tmp"))
        conf: dict[str, dict[str, Any]] = {
            "market_data": {"symbols": ["AAPL", "MSFT", "GOOG"], "rate": 1000.0, "seed": 7},
            "model": {"registry": str(registry), "name": "trading_model"},
            "signal": {"threshold": 0.45},
            "execution": {"run_id": "t"},
        }
        for name, values in sections.items():
            conf.setdefault(name, {}).update(values)
        text = "".join(
            f"[{name}]\n" + "".join(f"{k} = {toml_value(v)}\n" for k, v in values.items())
            for name, values in conf.items()
        )
        config = ipc / "tw.toml"
        config.write_text(text)
        env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEWIRE__")}
        for channel in ("market_data", "signals", "orders", "positions", "commands"):
            env[f"TRADEWIRE__ENDPOINTS__{channel.upper()}"] = f"ipc://{ipc}/{channel}"
        run = Run(config, ipc, env)
        runs.append(run)
        return run

    yield make
    for run in runs:
        run.kill_all()


def ipc_files(run: Run) -> list[str]:
    return sorted(p.name for p in run.ipc.iterdir() if p.name != "tw.toml")


# -- stream capture ------------------------------------------------------------------------


class Collector:
    """Subscribes to signals, orders and positions; keeps (receive time, message)."""

    def __init__(self, run: Run) -> None:
        self.stop = threading.Event()
        self.got: dict[str, list[tuple[float, Any]]] = {
            "signals": [],
            "orders": [],
            "positions": [],
        }
        self.events: list[Any] = []
        self.threads = []
        for channel, cls in (
            ("signals", SignalsSubscriber),
            ("orders", OrdersSubscriber),
            ("positions", PositionsSubscriber),
        ):
            sub = cls(run.endpoint(channel), subscribe_timeout=10.0)
            t = threading.Thread(target=self._pump, args=(channel, sub), daemon=True)
            t.start()
            self.threads.append(t)

    def _pump(self, channel: str, sub: Any) -> None:
        with sub:
            while not self.stop.is_set():
                got = sub.recv(timeout=0.05)
                if got is not None:
                    self.got[channel].append((time.monotonic(), got.message))
            self.events.extend(sub.events)

    def messages(self, channel: str) -> list[Any]:
        return [m for _, m in self.got[channel]]

    def orders(self, status: int) -> list[Any]:
        return [m for m in self.messages("orders") if m.status == status]

    def wait(self, what: Callable[[], bool], timeout: float = 20.0, why: str = "") -> None:
        deadline = time.monotonic() + timeout
        while not what():
            assert time.monotonic() < deadline, f"timed out waiting: {why}"
            time.sleep(0.02)

    def settle(self, quiet: float = 0.5, timeout: float = 30.0) -> None:
        """Wait until nothing has arrived for `quiet` seconds."""
        deadline = time.monotonic() + timeout
        last = -1
        while time.monotonic() < deadline:
            n = sum(len(v) for v in self.got.values())
            if n == last:
                return
            last = n
            time.sleep(quiet)
        raise AssertionError("streams never settled")

    def close(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=2)


# -- each service alone --------------------------------------------------------------------


@pytest.mark.parametrize("impl", IMPLS)
def test_market_data_alone(rust_bins: Path, make_run: Callable[..., Run], impl: str) -> None:
    run = make_run(market_data={"rate": 0.0})
    md = run.start("market-data", impl, "--count", "300", "--symbols", "X,Y", "--seed", "3")
    summary = run.wait_exit(md)
    assert summary["published"] == 300
    assert summary["symbols"] == ["X", "Y"]
    assert ipc_files(run) == []


@pytest.mark.parametrize("impl", IMPLS)
def test_market_data_csv_replay(rust_bins: Path, make_run: Callable[..., Run], impl: str) -> None:
    run = make_run(market_data={"rate": 0.0, "wait_subscribers": 1})
    csv = run.ipc / "ticks.csv"
    csv.write_text(
        "symbol,price,volume,timestamp_us,bid,ask\n# comment\n"
        "AAPL,101.5,300,1000,101.4,101.6\nMSFT,250.25,10,,,\n"
    )
    md = run.start("market-data", impl, "--csv", str(csv))
    with MarketDataSubscriber(run.endpoint("market_data"), subscribe_timeout=10) as sub:
        got = [sub.recv(timeout=10) for _ in range(2)]
    assert run.wait_exit(md)["published"] == 2
    a, b = (g.message for g in got if g is not None)
    assert (a.symbol, a.price, a.volume, a.timestamp_us, a.bid, a.ask, a.exchange) == (
        "AAPL",
        101.5,
        300.0,
        1000,
        101.4,
        101.6,
        "CSV",
    )
    assert (b.symbol, b.bid, b.ask) == ("MSFT", 250.25, 250.25)
    assert b.timestamp_us > 1_600_000_000_000_000  # no timestamp: the wall clock
    bad = run.ipc / "bad.csv"
    bad.write_text("symbol,price\nAAPL,abc\n")
    cmd = service_cmd("market-data", impl)
    done = subprocess.run(
        [*cmd, "--config", str(run.config), "--csv", str(bad)],
        capture_output=True,
        text=True,
        env=run.env,
        timeout=60,
    )
    assert done.returncode == 1 and "bad.csv:2" in done.stderr, done.stderr
    assert ipc_files(run) == ["bad.csv", "ticks.csv"]


@pytest.mark.parametrize("impl", IMPLS)
def test_bridge_and_engine_alone(rust_bins: Path, make_run: Callable[..., Run], impl: str) -> None:
    run = make_run()
    sb = run.start("signal-bridge", impl)
    ee = run.start("execution-engine", impl)
    assert set(ipc_files(run)) == {
        "signals",
        "signals.ctl",
        "orders",
        "orders.ctl",
        "positions",
        "positions.ctl",
        "commands",
    }
    with CommandsClient(run.endpoint("commands")) as client:
        ack = client.send(StrategyCommand(type=StrategyCommand.PAUSE_TRADING, symbol="AAPL"))
        assert ack.outcome == CommandAck.APPLIED
        ack = client.send(
            StrategyCommand(
                type=StrategyCommand.UPDATE_RISK_LIMITS, parameters={"max_position_size": -5}
            )
        )
        assert ack.outcome == CommandAck.REJECTED
        assert ack.reason == "max_position_size must be a finite number > 0, got -5.0"
    assert run.stop_ok(sb)["ticks"] == 0
    summary = run.stop_ok(ee)
    assert summary["commands"] == 2 and summary["orders"] == 0
    assert ipc_files(run) == []


@pytest.mark.parametrize("impl", IMPLS)
def test_bad_config_names_field_and_file(
    rust_bins: Path, make_run: Callable[..., Run], impl: str
) -> None:
    run = make_run()
    for name in NAMES:
        env = {**run.env, "TRADEWIRE__RISK__MAX_DAILY_LOSS": "lots"}
        cmd = service_cmd(name, impl)
        done = subprocess.run(
            [*cmd, "--config", str(run.config)], capture_output=True, text=True, env=env, timeout=60
        )
        assert done.returncode == 2, done.stderr
        assert "tw.toml" in done.stderr and "risk.max_daily_loss" in done.stderr, done.stderr
        assert "TRADEWIRE__RISK__MAX_DAILY_LOSS" in done.stderr
        assert done.stdout == ""


# -- pipelines ------------------------------------------------------------------------------

PARITY_TICKS = 3000


def run_pipeline(
    run: Run, impl: str | dict[str, str]
) -> tuple[Collector, dict[str, dict[str, Any]]]:
    """Engine and bridge first, the collector, then market data, which waits for the
    bridge's and the engine's handshakes (SPEC.md 6) and stops after PARITY_TICKS. `impl`:
    one language for all three, or one per service."""
    impls = {n: impl for n in NAMES} if isinstance(impl, str) else impl
    ee = run.start("execution-engine", impls["execution-engine"])
    sb = run.start("signal-bridge", impls["signal-bridge"])
    col = Collector(run)
    md = run.start("market-data", impls["market-data"])
    summaries = {"market-data": run.wait_exit(md)}
    n_symbols = 3
    want = PARITY_TICKS - WARMUP * n_symbols
    try:
        col.wait(lambda: len(col.got["signals"]) >= want, timeout=60, why="every signal")
    except AssertionError as exc:
        run.stop(sb)
        raise AssertionError(
            f"{exc}: {len(col.got['signals'])} of {want}; {impls}; market-data "
            f"{summaries['market-data']}; bridge {sb.lines[-1:]}\n{sb.stderr()}"
        ) from None
    col.settle()
    summaries["signal-bridge"] = run.stop_ok(sb)
    summaries["execution-engine"] = run.stop_ok(ee)
    col.close()
    assert ipc_files(run) == []
    return col, summaries


PARITY_SETTINGS: dict[str, dict[str, Any]] = {
    "market_data": {
        "rate": 5000.0,
        "count": PARITY_TICKS,
        "wait_subscribers": 2,
        "sim_start_us": 1_700_000_000_000_000,
    },
    "risk": {"max_position_size": 300.0, "max_daily_loss": 200.0},
}


def test_rust_and_python_pipelines_publish_identical_streams(
    rust_bins: Path, make_run: Callable[..., Run]
) -> None:
    streams = {}
    summaries = {}
    for impl in IMPLS:
        col, summaries[impl] = run_pipeline(make_run(**PARITY_SETTINGS), impl)
        streams[impl] = {ch: col.messages(ch) for ch in ("signals", "orders", "positions")}
        assert not [e for e in col.events if e.kind == "unrecoverable_gap"]

    rust, py = streams["rust"], streams["python"]
    assert len(rust["signals"]) == PARITY_TICKS - 3 * WARMUP
    for channel in ("signals", "orders", "positions"):
        assert len(rust[channel]) == len(py[channel]), channel
        for i, (a, b) in enumerate(zip(rust[channel], py[channel], strict=True)):
            assert a == b, f"{channel}[{i}]:\nrust   {a}\npython {b}"
    # The run exercises every path: fills, both risk rejections, non-zero P&L.
    orders = rust["orders"]
    reasons = {o.rejection_reason.split(":")[0] for o in orders if o.status == Order.REJECTED}
    assert reasons == {"max_position_size", "max_daily_loss"}, reasons
    assert sum(o.status == Order.FILLED for o in orders) >= 10
    texts = {o.rejection_reason for o in orders if o.status == Order.REJECTED}
    assert {
        "max_position_size: position would be 400.0, limit 300.0",
        "max_position_size: position would be -400.0, limit 300.0",
    } & texts, texts
    assert any(
        t.startswith("max_daily_loss: daily P&L -") and t.endswith(", limit -200.0") for t in texts
    ), texts
    print(f"\nparity run: {summaries['rust']['execution-engine']}")
    for key in (
        "signals",
        "orders",
        "filled",
        "rejected",
        "rejections",
        "positions",
        "realized_pnl",
        "unrealized_pnl",
        "duplicate_signals",
        "stale_quotes",
    ):
        assert (
            summaries["rust"]["execution-engine"][key]
            == summaries["python"]["execution-engine"][key]
        ), key
    for key in ("ticks", "warming", "signals", "buy", "sell", "hold"):
        assert (
            summaries["rust"]["signal-bridge"][key] == summaries["python"]["signal-bridge"][key]
        ), key
    assert summaries["rust"]["market-data"]["published"] == PARITY_TICKS


MIXED = {"market-data": "rust", "signal-bridge": "python", "execution-engine": "rust"}
MIXED_BACK = {"market-data": "python", "signal-bridge": "rust", "execution-engine": "python"}


@pytest.mark.slow  # three pipelines, about 10 s
def test_mixed_language_pipelines_match_all_rust(
    rust_bins: Path, make_run: Callable[..., Run]
) -> None:
    """Every link crossing languages both ways (Rust -> Python -> Rust and Python ->
    Rust -> Python) publishes the same signals, orders and positions as all-Rust."""
    streams = {}
    for label, impls in (("rust", "rust"), ("mixed", MIXED), ("mixed-back", MIXED_BACK)):
        col, summaries = run_pipeline(make_run(**PARITY_SETTINGS), impls)
        streams[label] = {ch: col.messages(ch) for ch in ("signals", "orders", "positions")}
        assert not [e for e in col.events if e.kind == "unrecoverable_gap"], label
        assert summaries["market-data"]["published"] == PARITY_TICKS
    rust = streams["rust"]
    assert len(rust["signals"]) == PARITY_TICKS - 3 * WARMUP
    assert sum(o.status == Order.FILLED for o in rust["orders"]) >= 10
    for label in ("mixed", "mixed-back"):
        for channel in ("signals", "orders", "positions"):
            other = streams[label][channel]
            assert len(other) == len(rust[channel]), (label, channel)
            for i, (a, b) in enumerate(zip(rust[channel], other, strict=True)):
                assert a == b, f"{label} {channel}[{i}]:\nrust  {a}\n{label} {b}"


def live_pipeline(run: Run, impl: str) -> tuple[Service, Service, Service, Collector]:
    ee = run.start("execution-engine", impl)
    sb = run.start("signal-bridge", impl)
    col = Collector(run)
    md = run.start("market-data", impl)
    return md, sb, ee, col


def stop_all(run: Run, col: Collector, *services: Service) -> list[dict[str, Any]]:
    out = [run.stop_ok(s) for s in services]
    col.close()
    assert ipc_files(run) == []
    return out


@pytest.mark.parametrize("impl", IMPLS)
def test_kill_switch_pause_and_risk_limits(
    rust_bins: Path, make_run: Callable[..., Run], impl: str
) -> None:
    run = make_run(
        market_data={"rate": 1000.0, "wait_subscribers": 2},
        risk={"max_position_size": 1e9, "max_daily_loss": 1e12},
    )
    md, sb, ee, col = live_pipeline(run, impl)
    col.wait(lambda: len(col.orders(Order.FILLED)) >= 3, why="3 fills")
    with CommandsClient(run.endpoint("commands")) as client:
        sent = time.monotonic()
        ack = client.send(StrategyCommand(type=StrategyCommand.KILL_SWITCH, reason="test"))
        ack_s = time.monotonic() - sent
        assert ack.outcome == CommandAck.APPLIED, ack
        assert ack.reason == "kill switch engaged; 0 open orders cancelled"
        kill_us = ack.engine_timestamp_us
        n = len(col.messages("orders"))
        col.wait(
            lambda: (
                sum(o.rejection_reason == "kill switch engaged" for o in col.messages("orders")[n:])
                >= 3
            ),
            why="3 kill rejections",
        )
        after = [o for o in col.messages("orders") if o.timestamp_us > kill_us]
        # No order from a tick after the acknowledgement fills; each is rejected, with
        # the reason. (Ticks carry their wall-clock creation time; the ack its apply time.)
        assert after
        assert all(o.status in (Order.CREATED, Order.REJECTED) for o in after), after
        assert all(
            o.rejection_reason == "kill switch engaged" for o in after if o.status == Order.REJECTED
        )
        # And in the stream's order: after the first kill rejection, no fill at all.
        stream = col.messages("orders")
        first = next(i for i, o in enumerate(stream) if o.rejection_reason.startswith("kill"))
        assert not [o for o in stream[first:] if o.status in (Order.SUBMITTED, Order.FILLED)]

        ack = client.send(StrategyCommand(type=StrategyCommand.RESUME_TRADING))
        assert (ack.outcome, ack.reason) == (CommandAck.APPLIED, "")
        n = len(col.orders(Order.FILLED))
        col.wait(lambda: len(col.orders(Order.FILLED)) > n, why="fills after resume")

        ack = client.send(StrategyCommand(type=StrategyCommand.PAUSE_TRADING, symbol="AAPL"))
        assert ack.outcome == CommandAck.APPLIED
        col.wait(
            lambda: any(
                o.rejection_reason == "trading paused for AAPL" for o in col.messages("orders")
            ),
            why="paused AAPL",
        )
        ack = client.send(StrategyCommand(type=StrategyCommand.RESUME_TRADING, symbol="AAPL"))
        assert ack.outcome == CommandAck.APPLIED

        # A risk-limit rejection carries its reason.
        ack = client.send(
            StrategyCommand(
                type=StrategyCommand.UPDATE_RISK_LIMITS, parameters={"max_position_size": 50.0}
            )
        )
        assert ack.outcome == CommandAck.APPLIED
        n = len(col.messages("orders"))
        col.wait(
            lambda: any(
                o.rejection_reason.startswith("max_position_size: position would be ")
                and o.rejection_reason.endswith(", limit 50.0")
                for o in col.messages("orders")[n:]
            ),
            why="position-limit reject",
        )
    _, sb_s, ee_s = stop_all(run, col, md, sb, ee)
    assert ee_s["rejections"]["kill_switch"] >= 3
    assert ee_s["rejections"]["paused"] >= 1
    assert ee_s["rejections"]["max_position_size"] >= 1
    assert ee_s["commands"] == 5
    assert ack_s < 1.0
    print(
        f"\n{impl}: kill switch ack {ack_s * 1e3:.2f} ms; tick->signal latency {sb_s['latency_us']}"
    )


@pytest.mark.parametrize(
    ("impl", "victim"),
    [("rust", "signal-bridge"), ("python", "execution-engine"), ("rust", "market-data")],
)
def test_sigkill_and_restart_resumes_without_duplicate_orders(
    rust_bins: Path, make_run: Callable[..., Run], impl: str, victim: str
) -> None:
    run = make_run(
        market_data={"rate": 1000.0, "wait_subscribers": 2},
        execution={"run_id": ""},
        risk={"max_position_size": 1e9, "max_daily_loss": 1e12},
    )
    md, sb, ee, col = live_pipeline(run, impl)
    col.wait(lambda: len(col.orders(Order.FILLED)) >= 3, why="3 fills")
    services = {"market-data": md, "signal-bridge": sb, "execution-engine": ee}
    assert run.stop(services[victim], signal.SIGKILL) == -signal.SIGKILL
    time.sleep(0.3)
    before = len(col.orders(Order.FILLED))
    if victim == "market-data":  # the running subscribers reconnect without a handshake
        run.env["TRADEWIRE__MARKET_DATA__WAIT_SUBSCRIBERS"] = "0"
    services[victim] = run.start(victim, impl)
    col.wait(
        lambda: len(col.orders(Order.FILLED)) >= before + 3,
        timeout=30,
        why="fills after the restart",
    )
    stop_all(
        run, col, services["market-data"], services["signal-bridge"], services["execution-engine"]
    )
    created = col.orders(Order.CREATED)
    ids = [o.order_id for o in created]
    origins = [o.client_order_id for o in created]
    assert len(set(ids)) == len(ids), "an order id was reused"
    assert len(set(origins)) == len(origins), "a signal produced two orders"
    filled = col.orders(Order.FILLED)
    assert len({o.order_id for o in filled}) == len(filled)
    if victim == "execution-engine":
        # the restarted engine recovered its state: the same run, numbered on
        assert len({o.order_id.split("-")[0] for o in created}) == 1

"""Shared pieces of the Python twins of the reference services (reference_services/SPEC.md).

The process contract (arguments, configuration, ready/summary lines, SIGTERM/SIGINT,
ipc cleanup), the deterministic random walk and CSV replay (SPEC 3), the signal rule
(SPEC 4) and the execution engine's rules (SPEC 5). Each mirrors
reference_services/rust/common (and signal-bridge's service.rs) operation for operation.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from tradewire.config import ConfigError, TradewireConfig, load_config
from tradewire.messages import (
    CommandAck,
    MarketData,
    Order,
    Position,
    StrategyCommand,
    TradingSignal,
)
from tradewire.transport import JournalOptions, Subscriber, SubscribeTimeout

MASK64 = 0xFFFF_FFFF_FFFF_FFFF
SQRT3 = 1.7320508075688772
REGIME_TICKS = 200
QUOTES_KEPT = 4096
QUOTE_WAIT = 1.0
RISK_PARAMETERS = ("max_daily_loss", "max_position_size", "order_quantity")


# -- process contract -------------------------------------------------------------------


def fmt_num(x: float) -> str:
    """A double as text (SPEC 6): Rust's `{:?}` — shortest round trip, exponent `e-5`."""
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    text = repr(float(x))
    if "e" in text:
        mantissa, exp = text.split("e")
        text = f"{mantissa}e{int(exp)}"
    return text


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


# -- market data (SPEC 3) ---------------------------------------------------------------


class SplitMix64:
    def __init__(self, seed: int) -> None:
        self.state = seed & MASK64

    def next_u64(self) -> int:
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK64
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        return z ^ (z >> 31)

    def uniform(self) -> float:
        return (self.next_u64() >> 11) * (1.0 / 9007199254740992.0)


@dataclass
class _SymbolState:
    symbol: str
    mid: float
    ret: float = 0.0
    regime: float = 0.0
    ticks: int = 0


class RandomWalk:
    def __init__(
        self, symbols: Sequence[str], seed: int, start_price: float, volatility: float
    ) -> None:
        self.rng = SplitMix64(seed)
        self.symbols = [_SymbolState(s, start_price) for s in symbols]
        self.start_price = start_price
        self.volatility = volatility
        self.index = 0

    def tick(self, timestamp_us: int) -> MarketData:
        s = self.symbols[self.index % len(self.symbols)]
        self.index += 1
        uniform = self.rng.uniform
        if s.ticks % REGIME_TICKS == 0:
            s.regime = float(math.floor(uniform() * 3.0)) - 1.0
        u1 = uniform()
        u2 = uniform()
        u3 = uniform()
        u4 = uniform()
        shock = ((((u1 + u2) + u3) + u4) - 2.0) * SQRT3 * self.volatility
        s.ret = 0.3 * s.ret + 0.0006 * s.regime + shock
        s.mid = s.mid * (1.0 + s.ret)
        if not (math.isfinite(s.mid) and s.mid > 0.0):
            s.mid = self.start_price
        half = s.mid * (0.5 + uniform()) * 0.0001
        bid = s.mid - half
        ask = s.mid + half
        volume = float(math.floor(1000.0 * (1.0 + abs(s.ret) * 200.0) * (0.5 + uniform())))
        bid_size = 100.0 * (float(math.floor(uniform() * 10.0)) + 1.0)
        ask_size = 100.0 * (float(math.floor(uniform() * 10.0)) + 1.0)
        s.ticks += 1
        return MarketData(
            symbol=s.symbol,
            price=s.mid,
            volume=volume,
            timestamp_us=timestamp_us,
            exchange="SIM",
            bid=bid,
            ask=ask,
            bid_size=bid_size,
            ask_size=ask_size,
        )


def read_csv(path: Path) -> list[MarketData]:
    """CSV ticks (SPEC 3.3); `timestamp_us` 0 means "use the clock". ValueError on a bad
    line, naming the file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"{path}: cannot read: {exc}") from None
    header: list[str] | None = None
    out: list[MarketData] = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        cells = [c.strip() for c in line.split(",")]
        if header is None:
            header = [c.lower() for c in cells]
            for need in ("symbol", "price"):
                if need not in header:
                    raise ValueError(f'{path}:{lineno}: the header has no "{need}" column')
            continue
        if len(cells) != len(header):
            raise ValueError(f"{path}:{lineno}: {len(cells)} cells, the header has {len(header)}")
        row = dict(zip(header, cells, strict=True))

        def num(name: str, default: float, row: dict[str, str] = row, n: int = lineno) -> float:
            value = row.get(name, "")
            if value == "":
                return default
            try:
                x = float(value)
            except ValueError:
                x = math.nan
            if not math.isfinite(x):
                raise ValueError(f'{path}:{n}: {name} "{value}" is not a number')
            return x

        symbol = row.get("symbol", "")
        if not symbol or symbol.startswith("~"):
            raise ValueError(f'{path}:{lineno}: bad symbol "{symbol}"')
        if row.get("price", "") == "":
            raise ValueError(f"{path}:{lineno}: price is missing")
        price = num("price", math.nan)
        ts_text = row.get("timestamp_us", "")
        try:
            ts = int(ts_text) if ts_text else 0
        except ValueError:
            raise ValueError(
                f'{path}:{lineno}: timestamp_us "{ts_text}" is not an integer'
            ) from None
        out.append(
            MarketData(
                symbol=symbol,
                price=price,
                volume=num("volume", 0.0),
                timestamp_us=ts,
                exchange=row.get("exchange") or "CSV",
                bid=num("bid", price),
                ask=num("ask", price),
                bid_size=num("bid_size", 0.0),
                ask_size=num("ask_size", 0.0),
            )
        )
    return out


# -- signal rule (SPEC 4) ---------------------------------------------------------------


def decide(p: Sequence[Any], threshold: float) -> tuple[TradingSignal.SignalType, float]:
    """(TradingSignal.SignalType, confidence) from float32 probabilities (buy, hold, sell)."""
    m = max(p[0], p[1], p[2])
    if p[0] == m and float(p[0]) > threshold:
        kind = TradingSignal.BUY
    elif p[2] == m and float(p[2]) > threshold:
        kind = TradingSignal.SELL
    else:
        kind = TradingSignal.HOLD
    return kind, float(m)


# -- execution engine (SPEC 5) ----------------------------------------------------------


@dataclass
class Limits:
    max_position_size: float
    max_daily_loss: float
    order_quantity: float


@dataclass
class _Pos:
    symbol: str
    q: float = 0.0
    c: float = 0.0
    r: float = 0.0
    mark: float = 0.0

    def unrealized(self) -> float:
        return 0.0 if self.q == 0.0 else self.q * (self.mark - self.c)

    def fill(self, d: float, p: float) -> None:
        q = self.q
        x = abs(d)
        if q == 0.0 or (q > 0.0) == (d > 0.0):
            q2 = q + d
            self.c = (abs(q) * self.c + x * p) / abs(q2)
            self.q = q2
        else:
            closed = min(abs(q), x)
            sign = 1.0 if q > 0.0 else -1.0
            self.r = self.r + closed * (p - self.c) * sign
            q2 = q + d
            if q2 == 0.0:
                self.c = 0.0
            elif (q2 > 0.0) != (q > 0.0):
                self.c = p
            self.q = q2


@dataclass
class EngineStats:
    signals: int = 0
    orders: int = 0
    filled: int = 0
    rejected: int = 0
    rejections: dict[str, int] = field(
        default_factory=lambda: {
            "kill_switch": 0,
            "paused": 0,
            "max_position_size": 0,
            "max_daily_loss": 0,
        }
    )
    commands: int = 0
    duplicate_signals: int = 0
    stale_quotes: int = 0
    dropped_signals: int = 0


Output = Order | Position
_WAIT = object()


class Engine:
    """The execution engine's rules without I/O (mirror of rust/common/src/engine.rs)."""

    def __init__(self, run: str, limits: Limits) -> None:
        self.run = run
        self.limits = limits
        self.n = 0
        self.quotes: dict[str, deque[tuple[int, float, float]]] = {}
        self.pending: deque[tuple[TradingSignal, float]] = deque()
        self.last_t: dict[str, int] = {}
        self.positions: dict[str, _Pos] = {}  # insertion order = first appearance
        self.paused_all = False
        self.paused: set[str] = set()
        self.kill = False
        self.open: list[Order] = []  # SUBMITTED, not yet FILLED: what the kill switch cancels
        self.stats = EngineStats()

    def pnl(self) -> tuple[float, float]:
        r = 0.0
        u = 0.0
        for p in self.positions.values():
            r += p.r
            u += p.unrealized()
        return r, u

    def on_quote(self, md: MarketData, now: float, out: list[Output]) -> None:
        q = self.quotes.get(md.symbol)
        if q is None:
            q = self.quotes[md.symbol] = deque(maxlen=QUOTES_KEPT)
        q.append((md.timestamp_us, md.bid, md.ask))
        self._drain(now, out)

    def on_signal(self, signal_: TradingSignal, now: float, out: list[Output]) -> None:
        self.stats.signals += 1
        self.pending.append((signal_, now))
        self._drain(now, out)

    def on_timer(self, now: float, out: list[Output]) -> None:
        self._drain(now, out)

    def _lookup(self, symbol: str, t: int, waited: float) -> object | tuple[float, float] | None:
        q = self.quotes.get(symbol)
        if not q:
            return None if waited >= QUOTE_WAIT else _WAIT
        newest = q[-1]
        if newest[0] < t:
            if waited >= QUOTE_WAIT:
                self.stats.stale_quotes += 1
                return newest[1], newest[2]
            return _WAIT
        for ts, b, a in reversed(q):
            if ts <= t:
                return b, a
        self.stats.stale_quotes += 1
        return q[0][1], q[0][2]

    def _drain(self, now: float, out: list[Output]) -> None:
        while self.pending:
            sig, since = self.pending[0]
            t = sig.timestamp_us
            last = self.last_t.get(sig.symbol)
            if last is not None and t <= last:
                self.stats.duplicate_signals += 1
                self.pending.popleft()
                continue
            found = self._lookup(sig.symbol, t, now - since)
            if found is _WAIT:
                return
            self.pending.popleft()
            if found is None:
                self.stats.dropped_signals += 1
                continue
            assert isinstance(found, tuple)
            self.last_t[sig.symbol] = t
            self._apply(sig, found[0], found[1], out)

    def _apply(self, sig: TradingSignal, bid: float, ask: float, out: list[Output]) -> None:
        s = sig.symbol
        t = sig.timestamp_us
        pos = self.positions.get(s)
        if pos is None:
            pos = self.positions[s] = _Pos(s)
        pos.mark = (bid + ask) / 2.0
        if sig.signal == TradingSignal.BUY:
            side = Order.BUY
        elif sig.signal == TradingSignal.SELL:
            side = Order.SELL
        else:
            self._position(pos, t, False, out)
            return
        self.n += 1
        self.stats.orders += 1
        quantity = self.limits.order_quantity
        price = ask if side == Order.BUY else bid

        def update(status: Order.OrderStatus, reason: str = "") -> Order:
            return Order(
                order_id=f"{self.run}-{self.n}",
                client_order_id=f"{s}@{t}",
                symbol=s,
                side=side,
                quantity=quantity,
                price=price,
                type=Order.MARKET,
                status=status,
                timestamp_us=t,
                rejection_reason=reason,
            )

        out.append(update(Order.CREATED))
        d = quantity if side == Order.BUY else -quantity
        reason = self._check(pos, d)
        if reason is not None:
            self.stats.rejected += 1
            out.append(update(Order.REJECTED, reason))
            self._position(pos, t, False, out)
            return
        out.append(update(Order.SUBMITTED))
        self.open.append(update(Order.SUBMITTED))
        # A market order fills at once, at the matched quote (5.2).
        filled = self.open.pop()
        filled.status = Order.FILLED
        out.append(filled)
        self.stats.filled += 1
        pos.fill(d, price)
        self._position(pos, t, True, out)

    def _check(self, pos: _Pos, d: float) -> str | None:
        q = pos.q
        after = q + d
        reducing = abs(after) < abs(q)
        rej = self.stats.rejections
        if self.kill:
            rej["kill_switch"] += 1
            return "kill switch engaged"
        if self.paused_all:
            rej["paused"] += 1
            return "trading paused"
        if pos.symbol in self.paused:
            rej["paused"] += 1
            return f"trading paused for {pos.symbol}"
        limit = self.limits.max_position_size
        if abs(after) > limit and not reducing:
            rej["max_position_size"] += 1
            return f"max_position_size: position would be {fmt_num(after)}, limit {fmt_num(limit)}"
        pnl = 0.0
        for p in self.positions.values():
            pnl += p.r + p.unrealized()
        loss = self.limits.max_daily_loss
        if pnl <= -loss and not reducing:
            rej["max_daily_loss"] += 1
            return f"max_daily_loss: daily P&L {fmt_num(pnl)}, limit -{fmt_num(loss)}"
        return None

    def _position(self, p: _Pos, t: int, filled: bool, out: list[Output]) -> None:
        if not filled and p.q == 0.0:
            return
        out.append(
            Position(
                symbol=p.symbol,
                quantity=p.q,
                avg_cost=p.c,
                current_price=p.mark,
                unrealized_pnl=p.unrealized(),
                realized_pnl=p.r,
                last_updated_us=t,
            )
        )

    def on_command(self, cmd: StrategyCommand, out: list[Output]) -> tuple[CommandAck.Outcome, str]:
        """(CommandAck.Outcome, reason), SPEC 5.5; order updates it causes (the kill
        switch's CANCELLED) go to `out`."""
        self.stats.commands += 1
        if cmd.type == StrategyCommand.UPDATE_RISK_LIMITS:
            if not cmd.parameters:
                return CommandAck.REJECTED, "no parameters"
            new = Limits(**vars(self.limits))
            for k in sorted(cmd.parameters):
                v = cmd.parameters[k]
                if k not in RISK_PARAMETERS:
                    return (
                        CommandAck.REJECTED,
                        f"unknown parameter {k} (known: {', '.join(RISK_PARAMETERS)})",
                    )
                if not (math.isfinite(v) and v > 0.0):
                    return CommandAck.REJECTED, f"{k} must be a finite number > 0, got {fmt_num(v)}"
                setattr(new, k, v)
            self.limits = new
            return CommandAck.APPLIED, ""
        if cmd.type == StrategyCommand.PAUSE_TRADING:
            if cmd.symbol:
                self.paused.add(cmd.symbol)
            else:
                self.paused_all = True
            return CommandAck.APPLIED, ""
        if cmd.type == StrategyCommand.RESUME_TRADING:
            if not cmd.symbol:
                self.paused_all = False
                self.paused.clear()
                self.kill = False
                return CommandAck.APPLIED, ""
            self.paused.discard(cmd.symbol)
            if self.kill:
                return CommandAck.APPLIED, "kill switch still engaged"
            if self.paused_all:
                return CommandAck.APPLIED, "trading still paused"
            return CommandAck.APPLIED, ""
        if cmd.type == StrategyCommand.KILL_SWITCH:
            self.kill = True
            cancelled = len(self.open)
            for order in self.open:
                order.status = Order.CANCELLED
                out.append(order)
            self.open.clear()
            return CommandAck.APPLIED, f"kill switch engaged; {cancelled} open orders cancelled"
        return CommandAck.REJECTED, f"unknown command type {cmd.type}"


def now_us() -> int:
    return time.time_ns() // 1000

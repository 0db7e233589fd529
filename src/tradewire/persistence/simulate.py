"""A synthetic execution engine: a deterministic stream of order state changes and the
positions they produce, published on the orders and positions channels.

For demos, tests and load: `python -m tradewire.persistence.simulate --orders E --positions E`.
Positions are kept by average cost (`tradewire.persistence.pnl`), like a real engine would
report them, so `Position.realized_pnl` can be checked against the recorded fills.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from google.protobuf.message import Message

from tradewire.channels import OrdersPublisher, PositionsPublisher
from tradewire.messages import Order, Position
from tradewire.persistence.pnl import Ledger

SYMBOLS = ("AAPL", "MSFT", "GOOG", "AMZN", "NVDA")
_START_PRICES = {"AAPL": 187.5, "MSFT": 410.0, "GOOG": 165.0, "AMZN": 180.0, "NVDA": 120.0}


@dataclass
class SyntheticEngine:
    """Order lifecycles (CREATED, SUBMITTED, then FILLED / PARTIALLY_FILLED+FILLED /
    CANCELLED / REJECTED) on a per-symbol random walk; a Position after every fill.
    The same seed and start give the same stream."""

    seed: int = 7
    start_us: int = 1_764_028_800_000_000  # 2025-11-25 00:00 UTC
    step_us: int = 1_000
    symbols: Sequence[str] = SYMBOLS
    max_position: float = 500.0
    ledger: Ledger = field(default_factory=Ledger)

    def __iter__(self) -> Iterator[Order | Position]:
        rng = random.Random(self.seed)
        mids = {s: _START_PRICES.get(s, 100.0) for s in self.symbols}
        now = self.start_us
        for n in itertools.count(1):
            symbol = rng.choice(self.symbols)
            mids[symbol] = max(1.0, mids[symbol] * (1 + rng.gauss(0, 0.0015)))
            held = self.ledger.book(symbol).quantity
            buy_bias = 0.5 - 0.4 * max(-1.0, min(1.0, held / self.max_position))
            side = Order.BUY if rng.random() < buy_bias else Order.SELL
            qty = float(rng.randint(1, 20) * 5)
            offset = 0.0002 * mids[symbol] * (1 if side == Order.BUY else -1)
            price = round(mids[symbol] + offset, 2)
            order = Order(order_id=f"ORD-{self.seed}-{n:09d}", client_order_id=f"c{n}",
                          symbol=symbol, side=side, quantity=qty, price=price,
                          type=Order.LIMIT)  # fmt: skip
            outcome = rng.random()
            states: list[tuple[int, str]] = [(Order.CREATED, ""), (Order.SUBMITTED, "")]
            if outcome < 0.85:
                states.append((Order.FILLED, ""))
            elif outcome < 0.90:
                states += [(Order.PARTIALLY_FILLED, ""), (Order.FILLED, "")]
            elif outcome < 0.97:
                states.append((Order.CANCELLED, ""))
            else:
                states.append((Order.REJECTED, "risk: max order value"))
            for status, reason in states:
                now += self.step_us
                update = Order()
                update.CopyFrom(order)
                update.status = status  # type: ignore[assignment]
                update.timestamp_us = now
                update.rejection_reason = reason
                yield update
                if status == Order.FILLED:
                    signed = qty if side == Order.BUY else -qty
                    self.ledger.fill(symbol, signed, price)
                    book = self.ledger.book(symbol)
                    yield Position(symbol=symbol, quantity=book.quantity,
                                   avg_cost=book.avg_cost, current_price=mids[symbol],
                                   unrealized_pnl=book.unrealized(mids[symbol]),
                                   realized_pnl=book.realized, last_updated_us=now)  # fmt: skip


def cycle_pool(pool: Sequence[Message]) -> Iterator[Message]:
    """`pool` over and over as one continuing stream: pass k (from 0) moves event time k
    pool spans later and gives orders ids of their own (order_id + "-k"), so a long load
    run looks like a real engine's (unique ids, time moving forward), not a loop of the
    same keys. The messages are changed in place: each is published before the next."""
    yield from pool
    if not pool:
        return
    base: list[tuple[Message, str | None, int]] = []
    for m in pool:
        if isinstance(m, Order):
            base.append((m, m.order_id, m.timestamp_us))
        else:
            assert isinstance(m, Position)
            base.append((m, None, m.last_updated_us))
    times = [ts for _, _, ts in base]
    span = max(times) - min(times)
    span += max(1, span // max(1, len(times) - 1))  # keep the spacing across passes
    for k in itertools.count(1):
        shift, suffix = k * span, f"-{k}"
        for m, order_id, ts in base:
            if order_id is not None:
                m.order_id = order_id + suffix  # type: ignore[attr-defined]
                m.timestamp_us = ts + shift  # type: ignore[attr-defined]
            else:
                m.last_updated_us = ts + shift  # type: ignore[attr-defined]
            yield m


def _publish_loop(pubs: dict[type[Message], OrdersPublisher | PositionsPublisher],
                  stream: Iterator[Message], count: int, rate: float,
                  duration: float | None) -> tuple[int, float]:  # fmt: skip
    """Publish up to `count` messages (those of the channels in `pubs`), paced at `rate`
    per second (0: as fast as possible). Returns (published, seconds)."""
    start = time.perf_counter()
    deadline = None if duration is None else start + duration
    sent = 0
    wanted = (m for m in stream if type(m) in pubs)
    chunk = 1 if rate <= 0 else max(1, int(rate / 1000))
    while sent < count:
        if rate > 0:
            ahead = sent / rate - (time.perf_counter() - start)
            if ahead > 0:
                time.sleep(ahead)
        for message in itertools.islice(wanted, min(chunk, count - sent)):
            pubs[type(message)].publish(message)  # type: ignore[arg-type]
            sent += 1
        if deadline is not None and time.perf_counter() >= deadline:
            break
    return sent, time.perf_counter() - start


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tradewire.persistence.simulate",
                                     description=__doc__.splitlines()[0])  # fmt: skip
    parser.add_argument("--orders", help="orders publisher endpoint (omit: not published)")
    parser.add_argument("--positions", help="positions publisher endpoint")
    parser.add_argument("--count", type=int, default=10_000, help="messages to publish")
    parser.add_argument("--rate", type=float, default=0.0, help="messages/s (0: unpaced)")
    parser.add_argument("--duration", type=float, default=None, help="stop after S seconds")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--start-us", type=int, default=None,
                        help="event time of the first message (default: now)")  # fmt: skip
    parser.add_argument("--step-us", type=int, default=1000, help="event time per message")
    parser.add_argument("--ring", type=int, default=100_000, help="publisher replay ring")
    parser.add_argument("--pool", type=int, default=0,
                        help="prebuild N messages and cycle them, ids and times moving on "
                             "(for load: no generation cost; see cycle_pool)")  # fmt: skip
    parser.add_argument("--wait-stdin", action="store_true",
                        help="print a ready line, publish after a line on stdin, then serve "
                             "replays until stdin closes")  # fmt: skip
    parser.add_argument("--hold", type=float, default=1.0,
                        help="serve replays this long after the last message")  # fmt: skip
    args = parser.parse_args(argv)
    if not (args.orders or args.positions):
        parser.error("give --orders and/or --positions")
    start_us = args.start_us if args.start_us is not None else time.time_ns() // 1000
    engine = SyntheticEngine(seed=args.seed, start_us=start_us, step_us=args.step_us)
    pubs: dict[type[Message], OrdersPublisher | PositionsPublisher] = {}
    if args.orders:
        pubs[Order] = OrdersPublisher(args.orders, ring_size=args.ring)
    if args.positions:
        pubs[Position] = PositionsPublisher(args.positions, ring_size=args.ring)
    stream: Iterator[Message] = iter(engine)
    if args.pool:
        pool = list(itertools.islice((m for m in engine if type(m) in pubs), args.pool))
        stream = cycle_pool(pool)
    ids = {pub.channel.name: f"{pub.publisher_id:016x}" for pub in pubs.values()}
    try:
        if args.wait_stdin:
            print(json.dumps({"ready": True, "publisher_ids": ids}), flush=True)
            sys.stdin.readline()
        sent, seconds = _publish_loop(pubs, stream, args.count, args.rate, args.duration)
        summary = {"published": sent, "seconds": round(seconds, 3),
                   "msgs_per_sec": round(sent / seconds, 1) if seconds else 0.0,
                   "last_seq": {p.channel.name: p.stats.sent for p in pubs.values()},
                   "publisher_ids": ids}  # fmt: skip
        print(json.dumps(summary), flush=True)
        if args.wait_stdin:
            sys.stdin.read()
        else:
            time.sleep(args.hold)
    finally:
        for pub in pubs.values():
            pub.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

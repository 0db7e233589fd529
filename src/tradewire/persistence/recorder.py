"""The recorder: order updates and positions from the SDK subscribers into the database.

Flow: the calling thread receives (in sequence order, per publisher, from the transport),
drops anything at or below the stored sequence of its (publisher_id, channel), turns
messages into rows and hands batches to one writer thread, which commits each batch in one
transaction (executemany, insert-or-ignore). stream_progress is written in the same
transaction as the rows it covers, so after a crash or restart the database says exactly
what was stored.

Restart: for a publisher whose id is in stream_progress (the same publisher process as
before), the subscriber starts from the stored sequence instead of "now" and asks the
publisher's replay ring for what was missed; for a publisher never seen before it asks for
everything the ring still holds (`backfill`). Anything the ring no longer holds arrives as
an unrecoverable-gap event and is written to stream_gaps.

Snapshots are periodic in *event time*: when a position update crosses a multiple of the
snapshot interval (by its last_updated_us), every current position is written as of that
boundary. They are therefore a function of the stream alone: a restarted recorder or a
replay writes the same snapshots.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
import zmq

from tradewire import wire
from tradewire._gen import registry
from tradewire.channels import OrdersSubscriber, PositionsSubscriber
from tradewire.messages import Order, Position
from tradewire.persistence import store
from tradewire.persistence.store import Batch
from tradewire.transport import Received, Subscriber, TransportEvent

log = logging.getLogger("tradewire.persistence")

_EPOCH = datetime(1970, 1, 1)
_SIDE = {number: name.lower() for name, number in Order.OrderSide.items()}
_TYPE = {number: name.lower() for name, number in Order.OrderType.items()}
_STATUS = {number: name.lower() for name, number in Order.OrderStatus.items()}


def utc_of_us(us: int) -> datetime:
    """Naive UTC datetime of microseconds since the epoch (exact, no float rounding)."""
    return _EPOCH + timedelta(microseconds=us)


_SECONDS_TEXT: dict[int, str] = {}


def utc_text_of_us(us: int) -> str:
    """utc_of_us(us) as the text SQLAlchemy's SQLite DateTime stores ("YYYY-MM-DD
    HH:MM:SS.ffffff"), which PostgreSQL also parses as a timestamp; the text of each second
    is cached, so this costs one divmod and one format per row."""
    seconds, micros = divmod(us, 1_000_000)
    text = _SECONDS_TEXT.get(seconds)
    if text is None:
        if len(_SECONDS_TEXT) >= 100_000:
            _SECONDS_TEXT.clear()
        d = _EPOCH + timedelta(seconds=seconds)
        text = _SECONDS_TEXT[seconds] = (f"{d.year:04d}-{d.month:02d}-{d.day:02d} "
                                         f"{d.hour:02d}:{d.minute:02d}:{d.second:02d}")  # fmt: skip
    return f"{text}.{micros:06d}"


_PID_HEX: dict[int, str] = {}


def pid_hex(publisher_id: int) -> str:
    text = _PID_HEX.get(publisher_id)
    if text is None:
        if len(_PID_HEX) >= 10_000:
            _PID_HEX.clear()
        text = _PID_HEX[publisher_id] = f"{publisher_id:016x}"
    return text


@dataclass
class RecorderStats:
    orders: int = 0
    positions: int = 0
    duplicates: int = 0
    snapshots: int = 0
    lost: int = 0
    batches: int = 0
    rows_committed: int = 0
    first_recv_ns: int = 0
    last_commit_ns: int = 0
    commit_seconds: float = 0.0
    events: list[TransportEvent] = field(default_factory=list)

    @property
    def recorded(self) -> int:
        return self.orders + self.positions

    def rate(self) -> float:
        """Messages per second from the first receive to the last commit."""
        span = (self.last_commit_ns - self.first_recv_ns) / 1e9
        return self.recorded / span if span > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "orders": self.orders, "positions": self.positions, "duplicates": self.duplicates,
            "snapshots": self.snapshots, "lost": self.lost, "batches": self.batches,
            "rows_committed": self.rows_committed, "msgs_per_sec": round(self.rate(), 1),
            "commit_seconds": round(self.commit_seconds, 3),
        }  # fmt: skip


class Recorder:
    """Records the orders and positions channels into `engine`'s database.

    Use `run()` for the subscribe-and-record loop, or feed `ingest_order` /
    `ingest_position` yourself (any source of Received messages) and call `flush()`.
    """

    def __init__(
        self,
        engine: sa.Engine,
        *,
        orders: str | None = None,
        positions: str | None = None,
        snapshot_interval: float = 60.0,
        batch_size: int = 5000,
        flush_interval: float = 0.1,
        rcvhwm: int = 0,
        resume: bool = True,
        backfill: bool = True,
        subscribe_timeout: float | None = 10.0,
        context: zmq.Context[Any] | None = None,
        subscriber_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.engine = engine
        self.stats = RecorderStats()
        self._batch_size = max(1, batch_size)
        self._flush_interval = flush_interval
        self._snapshot_us = int(snapshot_interval * 1_000_000)
        self._batch = Batch()
        self._batch_started = 0.0
        with engine.connect() as conn:
            self._hwm: dict[tuple[str, str], int] = {
                (pid, channel.name): seq
                for channel in (registry.ORDERS, registry.POSITIONS)
                for pid, seq in store.load_progress(conn, channel.name).items()
            }
            self._positions = store.load_positions(conn)
            self._last_snapshot_us = store.last_snapshot_us(conn)
        self._queue: queue.Queue[Batch | None] = queue.Queue(maxsize=16)
        self._error: BaseException | None = None
        self._writer = threading.Thread(target=self._write_loop, name="tradewire-recorder-db",
                                        daemon=True)  # fmt: skip
        self._writer.start()
        self._subscribers: list[tuple[Subscriber[Any], Callable[[Any], None]]] = []
        options: dict[str, Any] = dict(subscriber_options or {})
        options.update(rcvhwm=rcvhwm, subscribe_timeout=subscribe_timeout, context=context,
                       on_event=self._on_event, backfill=backfill)  # fmt: skip
        try:
            if orders:
                sub_o = OrdersSubscriber(
                    orders, resume_from=self._resume_map(registry.ORDERS.name, resume), **options
                )
                self._subscribers.append((sub_o, self.ingest_order))
            if positions:
                sub_p = PositionsSubscriber(
                    positions, resume_from=self._resume_map(registry.POSITIONS.name, resume),
                    **options,
                )  # fmt: skip
                self._subscribers.append((sub_p, self.ingest_position))
        except BaseException:
            self.close()
            raise

    def _resume_map(self, channel: str, resume: bool) -> dict[int, int]:
        if not resume:
            return {}
        return {int(pid, 16): seq for (pid, ch), seq in self._hwm.items() if ch == channel}

    # -- ingest (calling thread) ---------------------------------------------------------

    def _fresh(self, env: wire.Envelope) -> tuple[str, bool]:
        """(publisher hex, True when env.seq is not stored yet); advances the progress."""
        pid = pid_hex(env.publisher_id)
        key = (pid, env.channel)
        seq = env.seq
        if seq <= self._hwm.get(key, 0):
            self.stats.duplicates += 1
            return pid, False
        self._hwm[key] = seq
        progress = self._batch.progress.get(key)
        if progress is None:  # the stream's first message in this batch
            if not self.stats.first_recv_ns:
                self.stats.first_recv_ns = time.time_ns()
            if not self._batch_started:
                self._batch_started = time.monotonic()
            progress = self._batch.progress[key] = {
                "publisher_id": pid, "channel": env.channel, "first_seq": seq,
                "last_seq": seq, "messages": 0, "lost": 0, "updated_ns": 0,
            }  # fmt: skip
        progress["last_seq"] = seq
        progress["messages"] += 1
        return pid, True

    def ingest_order(self, got: Received[Order]) -> None:
        env, o = got.envelope, got.message
        pid, fresh = self._fresh(env)
        if not fresh:
            return
        ts_us = o.timestamp_us or env.send_ts_ns // 1000
        # a store.ORDER_COLUMNS tuple (recorded_ts_ns is set per transaction)
        self._batch.orders.append((
            pid, env.channel, env.seq, env.key_seq, o.order_id, o.client_order_id, o.symbol,
            _SIDE.get(o.side) or str(o.side), _TYPE.get(o.type) or str(o.type),
            _STATUS.get(o.status) or str(o.status), o.quantity, o.price, o.rejection_reason,
            ts_us, utc_text_of_us(ts_us), env.send_ts_ns, time.time_ns(),
            bool(env.flags & wire.FLAG_REPLAY),
        ))  # fmt: skip
        self.stats.orders += 1

    def ingest_position(self, got: Received[Position]) -> None:
        env, p = got.envelope, got.message
        pid, fresh = self._fresh(env)
        if not fresh:
            return
        ts_us = p.last_updated_us or env.send_ts_ns // 1000
        self._maybe_snapshot(ts_us)
        row = {
            "symbol": p.symbol, "quantity": p.quantity, "avg_cost": p.avg_cost,
            "current_price": p.current_price, "unrealized_pnl": p.unrealized_pnl,
            "realized_pnl": p.realized_pnl, "last_updated_us": ts_us,
            "last_updated_utc": utc_of_us(ts_us), "publisher_id": pid, "channel": env.channel,
            "seq": env.seq, "send_ts_ns": env.send_ts_ns, "recv_ts_ns": time.time_ns(),
        }  # fmt: skip
        self._positions[p.symbol] = row
        self._batch.positions[p.symbol] = row
        self.stats.positions += 1

    def _maybe_snapshot(self, ts_us: int) -> None:
        """Snapshot every position as of the latest interval boundary at or before ts_us,
        once per boundary, before the update at ts_us is applied."""
        if self._snapshot_us <= 0:
            return
        boundary = ts_us - ts_us % self._snapshot_us
        if boundary <= self._last_snapshot_us:
            return
        self._last_snapshot_us = boundary
        when = utc_of_us(boundary)
        for symbol in sorted(self._positions):
            pos = self._positions[symbol]
            self._batch.snapshots.append({
                "snapshot_us": boundary, "symbol": symbol, "snapshot_time": when,
                "quantity": pos["quantity"], "avg_cost": pos["avg_cost"],
                "current_price": pos["current_price"], "unrealized_pnl": pos["unrealized_pnl"],
                "realized_pnl": pos["realized_pnl"], "last_updated_us": pos["last_updated_us"],
            })  # fmt: skip
            self.stats.snapshots += 1

    def _on_event(self, event: TransportEvent) -> None:
        self.stats.events.append(event)
        if event.kind != "unrecoverable_gap":
            if event.kind in ("publisher_restart", "peer_lost", "peer_back"):
                log.info("%s", event)
            return
        pid = pid_hex(event.publisher_id)
        key = (pid, event.channel)
        count = event.last - event.first + 1
        self.stats.lost += count
        self._batch.gaps.append({
            "publisher_id": pid, "channel": event.channel, "first_seq": event.first,
            "last_seq": event.last, "reason": event.detail, "recorded_ns": time.time_ns(),
        })  # fmt: skip
        progress = self._batch.progress.setdefault(key, {
            "publisher_id": pid, "channel": event.channel, "first_seq": event.first,
            "last_seq": 0, "messages": 0, "lost": 0, "updated_ns": 0,
        })  # fmt: skip
        progress["lost"] += count
        progress["last_seq"] = max(progress["last_seq"], event.last, self._hwm.get(key, 0))
        self._hwm[key] = max(self._hwm.get(key, 0), event.last)
        if not self._batch_started:
            self._batch_started = time.monotonic()

    # -- batching ------------------------------------------------------------------------

    def flush(self) -> None:
        """Hand the pending rows to the writer (blocks while it is 16 batches behind)."""
        self._raise_writer_error()
        if self._batch.empty():
            return
        batch, self._batch, self._batch_started = self._batch, Batch(), 0.0
        while True:
            try:
                self._queue.put(batch, timeout=0.5)
                return
            except queue.Full:
                self._raise_writer_error()

    def sync(self) -> None:
        """Flush and wait until everything ingested so far is committed."""
        self.flush()
        self._queue.join()
        self._raise_writer_error()

    def _raise_writer_error(self) -> None:
        if self._error is not None:
            raise RuntimeError(f"recorder database writer failed: {self._error}") from self._error

    def _write_loop(self) -> None:
        while True:
            batch = self._queue.get()
            try:
                if batch is None:
                    return
                if self._error is None:
                    self._commit(batch)
            except BaseException as exc:
                self._error = exc
                log.exception("recorder database writer failed")
            finally:
                self._queue.task_done()

    def _commit(self, batch: Batch) -> None:
        for attempt in range(10):
            now = time.time_ns()
            batch.recorded_ts_ns = now
            for row in batch.progress.values():
                row["updated_ns"] = now
            t0 = time.perf_counter()
            try:
                with self.engine.begin() as conn:
                    store.write_batch(conn, batch)
                break
            except sa.exc.OperationalError:  # the server went away: retry the whole batch
                if attempt == 9:
                    raise
                log.warning("database write failed, retrying", exc_info=True)
                time.sleep(min(5.0, 0.1 * 2**attempt))
        self.stats.commit_seconds += time.perf_counter() - t0
        self.stats.batches += 1
        self.stats.rows_committed += len(batch)
        self.stats.last_commit_ns = time.time_ns()

    # -- the loop ------------------------------------------------------------------------

    def run(self, count: int | None = None, duration: float | None = None,
            stop: threading.Event | None = None) -> RecorderStats:  # fmt: skip
        """Record until `count` new messages (both channels), `duration` seconds, or `stop`;
        everything received is committed before it returns."""
        if not self._subscribers:
            raise ValueError("nothing to record: give orders= and/or positions= endpoints")
        deadline = None if duration is None else time.monotonic() + duration
        target = None if count is None else self.stats.recorded + count
        sockets = [sock for sub, _ in self._subscribers for sock in sub.sockets()]
        try:
            while not (stop is not None and stop.is_set()):
                now = time.monotonic()
                if deadline is not None and now >= deadline:
                    break
                got_any = self._drain(target)
                if target is not None and self.stats.recorded >= target:
                    break
                pending = len(self._batch)
                if pending >= self._batch_size or (
                    self._batch_started and now - self._batch_started >= self._flush_interval
                ):
                    self.flush()
                if not got_any:
                    wait = 0.05
                    if self._batch_started:
                        wait = max(0.0, self._flush_interval - (now - self._batch_started))
                    if deadline is not None:
                        wait = max(0.0, min(wait, deadline - now))
                    zmq.select(sockets, [], [], wait)
        finally:
            self.sync()
        return self.stats

    def _drain(self, target: int | None) -> bool:
        got_any = False
        for sub, handle in self._subscribers:
            for _ in range(self._batch_size):
                got = sub.recv(timeout=0)
                if got is None:
                    break
                handle(got)
                got_any = True
                if target is not None and self.stats.recorded >= target:
                    return True
        return got_any

    def subscribers(self) -> Iterable[Subscriber[Any]]:
        return [sub for sub, _ in self._subscribers]

    def close(self) -> None:
        """Commit what is pending, stop the writer, close the subscribers."""
        try:
            if self._writer.is_alive():
                self.sync()
        finally:
            if self._writer.is_alive():
                self._queue.put(None)
                self._writer.join(timeout=30)
            for sub, _ in self._subscribers:
                sub.close()

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

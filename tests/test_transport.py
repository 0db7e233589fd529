"""The runtime under the typed clients, on real ZMQ sockets (ipc)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import zmq

from tradewire import wire
from tradewire.channels import (
    CommandsClient,
    CommandsServer,
    MarketDataPublisher,
    MarketDataSubscriber,
)
from tradewire.messages import CommandAck, MarketData, StrategyCommand
from tradewire.transport import CommandTimeout, Received


@pytest.fixture
def endpoint(tmp_path: Path) -> str:
    return f"ipc://{tmp_path}/sock"


def _until_received(
    pub: MarketDataPublisher, sub: MarketDataSubscriber, tick: MarketData
) -> Received[MarketData]:
    """Publish until the subscription is live (ZMQ's slow-joiner window), bounded."""
    for _ in range(500):
        pub.publish(tick)
        got = sub.recv(timeout=0.01)
        if got is not None:
            return got
    raise AssertionError("subscription never became live")


def test_key_filter_delivers_only_subscribed_symbols(endpoint: str) -> None:
    with MarketDataPublisher(endpoint) as pub, MarketDataSubscriber(endpoint, keys=["AAPL"]) as sub:
        _until_received(pub, sub, MarketData(symbol="AAPL", price=1))
        for i in range(50):
            pub.publish(MarketData(symbol="AAPLX", price=i))
            pub.publish(MarketData(symbol="MSFT", price=i))
            pub.publish(MarketData(symbol="AAPL", price=i))
        got = [sub.recv(timeout=2) for _ in range(50)]
        assert all(g is not None and g.message.symbol == "AAPL" for g in got)
        assert [g.message.price for g in got if g] == list(range(50))
        assert sub.recv(timeout=0.05) is None
        assert sub.stats.gaps == 0


def test_sequence_numbers_and_publisher_identity(endpoint: str) -> None:
    with MarketDataPublisher(endpoint) as pub, MarketDataSubscriber(endpoint) as sub:
        first = _until_received(pub, sub, MarketData(symbol="A"))
        nxt = [pub.publish(MarketData(symbol="B" if i % 2 else "A")) for i in range(10)]
        got = [sub.recv(timeout=2) for _ in range(10)]
        assert [g.envelope.seq for g in got if g] == nxt
        assert all(g and g.envelope.publisher_id == pub.publisher_id for g in got)
        assert first.envelope.fingerprint == pub.channel.message.fingerprint


def test_gaps_are_counted_per_key_when_filtered(endpoint: str) -> None:
    ctx = zmq.Context.instance()
    raw = ctx.socket(zmq.PUB)
    raw.bind(endpoint)
    try:
        with MarketDataSubscriber(endpoint, keys=["AAPL"]) as sub:

            def frame(key_seq: int) -> bytes:
                return wire.encode_message(
                    "market_data",
                    MarketData(symbol="AAPL"),
                    key="AAPL",
                    publisher_id=9,
                    seq=key_seq * 3,
                    key_seq=key_seq,
                    send_ts_ns=1,
                )

            for _ in range(500):
                raw.send(frame(1))
                if sub.recv(timeout=0.01):
                    break
            for key_seq in (2, 3, 7, 8):  # 4, 5, 6 lost
                raw.send(frame(key_seq))
            got = [sub.recv(timeout=2) for _ in range(4)]
            assert [g.envelope.key_seq for g in got if g] == [2, 3, 7, 8]
            assert (sub.stats.gaps, sub.stats.missed) == (1, 3)
    finally:
        raw.close(0)


def test_malformed_frames_are_counted_and_the_subscriber_keeps_running(endpoint: str) -> None:
    ctx = zmq.Context.instance()
    raw = ctx.socket(zmq.PUB)
    raw.bind(endpoint)
    good = wire.encode_message(
        "market_data", MarketData(symbol="A"), key="A", publisher_id=1, seq=1, send_ts_ns=1
    )
    try:
        with MarketDataSubscriber(endpoint) as sub:
            for _ in range(500):
                raw.send(good)
                if sub.recv(timeout=0.01):
                    break
            raw.send(b"market_data/A\0garbage")
            raw.send(good[:-3])
            raw.send(good.replace(b"TW", b"XX", 1))
            raw.send(good)
            assert sub.recv(timeout=2) is not None
            assert dict(sub.stats.rejected) == {"truncated": 2, "bad_magic": 1}
    finally:
        raw.close(0)


def _serve(server: CommandsServer, stop: threading.Event) -> threading.Thread:
    thread = threading.Thread(target=server.serve, args=(stop.is_set,), daemon=True)
    thread.start()
    return thread


def test_command_is_acknowledged_and_applied_once(endpoint: str) -> None:
    applied: list[str] = []

    def handle(cmd: StrategyCommand) -> CommandAck:
        applied.append(cmd.command_id)
        return CommandAck(outcome=CommandAck.APPLIED, engine_timestamp_us=42)

    stop = threading.Event()
    with CommandsServer(endpoint, handle) as server, CommandsClient(endpoint) as client:
        thread = _serve(server, stop)
        cmd = StrategyCommand(type=StrategyCommand.KILL_SWITCH, command_id="k-1")
        first = client.send(cmd, timeout=5)
        again = client.send(cmd, timeout=5)  # a retry of the same id
        stop.set()
        thread.join(5)
    assert applied == ["k-1"]
    assert (first.command_id, first.outcome, first.duplicate) == ("k-1", CommandAck.APPLIED, False)
    assert (again.outcome, again.duplicate, again.engine_timestamp_us) == (
        CommandAck.APPLIED,
        True,
        42,
    )


def test_command_sent_before_the_server_exists_is_applied_once_it_appears(endpoint: str) -> None:
    applied: list[int] = []
    result: list[CommandAck] = []

    def handle(cmd: StrategyCommand) -> CommandAck:
        applied.append(cmd.type)
        return CommandAck(outcome=CommandAck.APPLIED)

    with CommandsClient(endpoint) as client:
        sender = threading.Thread(
            target=lambda: result.append(
                client.send(
                    StrategyCommand(type=StrategyCommand.KILL_SWITCH),
                    timeout=10,
                    retry_interval=0.05,
                )
            )
        )
        sender.start()
        deadline = time.monotonic() + 5
        while client.stats.sent < 3 and time.monotonic() < deadline:  # retried: no server yet
            time.sleep(0.005)
        assert client.stats.sent >= 3 and not result
        stop = threading.Event()
        with CommandsServer(endpoint, handle) as server:
            thread = _serve(server, stop)
            sender.join(10)
            stop.set()
            thread.join(5)
    assert applied == [StrategyCommand.KILL_SWITCH]
    assert result and result[0].outcome == CommandAck.APPLIED


def test_command_times_out_with_a_clear_error(endpoint: str) -> None:
    with CommandsClient(endpoint) as client, pytest.raises(CommandTimeout, match="no ack"):
        client.send(
            StrategyCommand(type=StrategyCommand.PAUSE_TRADING), timeout=0.3, retry_interval=0.1
        )


def test_generic_classes_refuse_a_channel_of_the_wrong_pattern(endpoint: str) -> None:
    from tradewire._gen import registry
    from tradewire.transport import Publisher

    with pytest.raises(ValueError, match="COMMAND, not PUB_SUB"):
        Publisher[StrategyCommand](endpoint, channel=registry.COMMANDS)

"""A user's consumer: must pass mypy --strict against the generated clients."""

from tradewire.channels import CommandsClient, MarketDataPublisher, MarketDataSubscriber
from tradewire.messages import CommandAck, MarketData, StrategyCommand


def mid(endpoint: str) -> float | None:
    with MarketDataSubscriber(endpoint, keys=["AAPL"]) as sub:
        got = sub.recv(timeout=0.1)
        if got is None:
            return None
        tick: MarketData = got.message
        return (tick.bid + tick.ask) / 2


def publish(endpoint: str) -> int:
    with MarketDataPublisher(endpoint) as pub:
        return pub.publish(MarketData(symbol="AAPL", price=1.0))


def kill(endpoint: str) -> bool:
    with CommandsClient(endpoint) as client:
        ack: CommandAck = client.send(StrategyCommand(type=StrategyCommand.KILL_SWITCH))
        return ack.outcome == CommandAck.APPLIED

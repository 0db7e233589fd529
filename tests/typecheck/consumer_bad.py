"""Type errors the generated signatures must catch (mypy must fail on each line marked)."""

from tradewire.channels import MarketDataPublisher, MarketDataSubscriber
from tradewire.messages import MarketData, Order


def wrong_message(endpoint: str) -> None:
    with MarketDataPublisher(endpoint) as pub:
        pub.publish(Order(order_id="x"))  # E: Order is not MarketData


def wrong_field(endpoint: str) -> None:
    with MarketDataSubscriber(endpoint) as sub:
        got = sub.recv()
        if got is not None:
            print(got.message.order_id)  # E: MarketData has no order_id


def wrong_field_type() -> MarketData:
    return MarketData(symbol=1)  # E: symbol is a str

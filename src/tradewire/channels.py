"""Typed clients for every channel declared in schema/ (generated), e.g.

with MarketDataPublisher("ipc:///tmp/md.ipc") as pub:
    pub.publish(MarketData(symbol="AAPL", price=187.5))
"""

from tradewire._gen.channels import *  # noqa: F403
from tradewire._gen.channels import __all__ as __all__

"""All tradewire.v1 message classes (generated from schema/), by their plain names.

from tradewire.messages import MarketData
"""

from tradewire._gen.messages import *  # noqa: F403
from tradewire._gen.messages import __all__ as __all__

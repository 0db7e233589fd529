"""Hypothesis strategies for every message type (generated), for your own tests.

Needs the `testing` extra: `pip install tradewire[testing]`.
"""

from tradewire._gen.strategies import *  # noqa: F403
from tradewire._gen.strategies import __all__ as __all__

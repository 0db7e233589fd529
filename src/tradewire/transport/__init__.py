"""ZeroMQ runtime: publishers, subscribers, acknowledged commands (WIRE.md section 7).

The generated typed clients in `tradewire.channels` are thin subclasses that bind
`_channel`; these classes can also be used directly with `channel=`.
"""

from tradewire.transport._base import Received, Stats, TransportEvent, control_endpoint
from tradewire.transport.command_store import CommandState, CommandStoreOptions
from tradewire.transport.commands import CommandClient, CommandServer, CommandTimeout
from tradewire.transport.journal import JournalOptions
from tradewire.transport.publisher import Publisher
from tradewire.transport.security import CurveClient, CurveKeyPair, CurveServer
from tradewire.transport.subscriber import Subscriber, SubscribeTimeout

__all__ = [
    "CommandClient",
    "CommandServer",
    "CommandState",
    "CommandStoreOptions",
    "CommandTimeout",
    "CurveClient",
    "CurveKeyPair",
    "CurveServer",
    "JournalOptions",
    "Publisher",
    "Received",
    "Stats",
    "SubscribeTimeout",
    "Subscriber",
    "TransportEvent",
    "control_endpoint",
]

"""What the schema declares: message types and channels (filled in by generated code)."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Generic, TypeVar

from google.protobuf.message import Message

M = TypeVar("M", bound=Message)


class Pattern(enum.Enum):
    """How a channel moves its messages (schema enum `tradewire.v1.Pattern`)."""

    PUB_SUB = 1
    COMMAND = 2


@dataclass(frozen=True)
class MessageType(Generic[M]):
    """A schema message with its envelope identity."""

    type_id: int
    full_name: str
    cls: type[M]
    fingerprint: int


@dataclass(frozen=True)
class Channel(Generic[M]):
    """A channel declared with the `(tradewire.v1.channel)` option."""

    name: str
    message: MessageType[M]
    pattern: Pattern
    key_field: str = ""
    last_value: bool = False
    reply: MessageType[Message] | None = None
    description: str = ""

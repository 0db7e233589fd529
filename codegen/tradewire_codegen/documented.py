"""Schema rule: every message, field, enum and enum value of the schema carries a comment."""

from __future__ import annotations

from collections.abc import Iterator

from google.protobuf.descriptor_pb2 import (
    DescriptorProto,
    EnumDescriptorProto,
    FileDescriptorProto,
)

# Path components of descriptor.proto (SourceCodeInfo.Location.path).
_FILE_MESSAGE, _FILE_ENUM = 4, 5
_MSG_FIELD, _MSG_NESTED, _MSG_ENUM = 2, 3, 4
_ENUM_VALUE = 2


def _enum_items(
    enum: EnumDescriptorProto, path: tuple[int, ...], name: str
) -> Iterator[tuple[tuple[int, ...], str]]:
    yield path, f"enum {name}"
    for i, value in enumerate(enum.value):
        yield (*path, _ENUM_VALUE, i), f"enum value {name}.{value.name}"


def _message_items(
    msg: DescriptorProto, path: tuple[int, ...], name: str
) -> Iterator[tuple[tuple[int, ...], str]]:
    if msg.options.map_entry:
        return  # synthesized for map fields; the map field itself is documented
    yield path, f"message {name}"
    for i, field in enumerate(msg.field):
        yield (*path, _MSG_FIELD, i), f"field {name}.{field.name}"
    for i, nested in enumerate(msg.nested_type):
        yield from _message_items(nested, (*path, _MSG_NESTED, i), f"{name}.{nested.name}")
    for i, enum in enumerate(msg.enum_type):
        yield from _enum_items(enum, (*path, _MSG_ENUM, i), f"{name}.{enum.name}")


def undocumented(file: FileDescriptorProto) -> list[str]:
    """Items of `file` with neither a leading nor a trailing comment, named in order."""
    commented = {
        tuple(loc.path)
        for loc in file.source_code_info.location
        if loc.leading_comments.strip() or loc.trailing_comments.strip()
    }
    items: list[tuple[tuple[int, ...], str]] = []
    for i, msg in enumerate(file.message_type):
        items.extend(_message_items(msg, (_FILE_MESSAGE, i), msg.name))
    for i, enum in enumerate(file.enum_type):
        items.extend(_enum_items(enum, (_FILE_ENUM, i), enum.name))
    return [label for path, label in items if path not in commented]

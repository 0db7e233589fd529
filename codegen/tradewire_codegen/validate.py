"""Schema rules codegen enforces before generating anything."""

from __future__ import annotations

import re

from google.protobuf.descriptor_pb2 import FieldDescriptorProto

from tradewire_codegen.documented import undocumented
from tradewire_codegen.errors import SchemaError
from tradewire_codegen.naming import upper_snake
from tradewire_codegen.schema import Schema

SCHEMA_PACKAGE = "tradewire.v1"
CHANNEL_NAME = re.compile(r"[a-z0-9_]{1,32}")
TYPE_ID_MAX = 65535


def _is_option_file(schema: Schema, file: str) -> bool:
    """Files that declare extensions (options.proto) define options, not wire messages."""
    proto = next(f for f in schema.files if f.name == file)
    return len(proto.extension) > 0


def validate(schema: Schema, schema_label: str = "schema") -> None:
    """Raise SchemaError listing every problem, each naming its file and item."""
    problems: list[str] = []

    def where(file: str) -> str:
        return f"{schema_label}/{file}"

    # type ids
    channel_messages = {c.message for c in schema.channels} | {
        c.reply for c in schema.channels if c.reply
    }
    seen_ids: dict[int, str] = {}
    for msg in schema.schema_messages():
        needs_id = (
            msg.package == SCHEMA_PACKAGE
            and len(msg.path) == 1
            and not _is_option_file(schema, msg.file)
        ) or msg.full_name in channel_messages
        if msg.type_id is None:
            if needs_id:
                problems.append(
                    f"{where(msg.file)}: {msg.full_name}: missing (tradewire.v1.type_id)"
                )
            continue
        if not 1 <= msg.type_id <= TYPE_ID_MAX:
            problems.append(
                f"{where(msg.file)}: {msg.full_name}: type_id {msg.type_id} out of range "
                f"1..{TYPE_ID_MAX}"
            )
            continue
        other = seen_ids.get(msg.type_id)
        if other is not None:
            first = schema.messages[other]
            problems.append(
                f"{where(msg.file)}: {msg.full_name}: duplicate type_id {msg.type_id} "
                f"(also on {other} in {where(first.file)})"
            )
        else:
            seen_ids[msg.type_id] = msg.full_name

    # channels
    names: dict[str, str] = {}
    keys: dict[str, tuple[str, str]] = {}
    for ch in schema.channels:
        item = f"{where(ch.file)}: channel {ch.name!r}"
        if not CHANNEL_NAME.fullmatch(ch.name):
            problems.append(f"{item}: name must match [a-z0-9_]{{1,32}}")
        if ch.name in names:
            problems.append(f"{item}: duplicate channel name (also in {where(names[ch.name])})")
        names.setdefault(ch.name, ch.file)
        carried = schema.messages.get(ch.message)
        if carried is None:
            problems.append(f"{item}: message {ch.message!r} not found")
        if ch.pattern not in ("PUB_SUB", "COMMAND"):
            problems.append(f"{item}: pattern must be PUB_SUB or COMMAND, not {ch.pattern}")
        if ch.pattern == "COMMAND" and not ch.reply:
            problems.append(f"{item}: COMMAND channel needs a reply message")
        if ch.pattern == "PUB_SUB" and ch.reply:
            problems.append(f"{item}: PUB_SUB channel cannot have a reply ({ch.reply!r})")
        if ch.reply and ch.reply not in schema.messages:
            problems.append(f"{item}: reply message {ch.reply!r} not found")
        if ch.key_field and carried is not None:
            field = carried.field(ch.key_field)
            if field is None:
                problems.append(
                    f"{item}: key_field {ch.key_field!r} is not a field of {ch.message}"
                )
            elif (
                field.type != FieldDescriptorProto.TYPE_STRING
                or field.label == FieldDescriptorProto.LABEL_REPEATED
            ):
                problems.append(
                    f"{item}: key_field {ch.key_field!r} of {ch.message} must be a singular "
                    "string field"
                )
            else:
                previous = keys.setdefault(ch.message, (ch.key_field, ch.name))
                if previous[0] != ch.key_field:
                    problems.append(
                        f"{item}: {ch.message} is keyed by {previous[0]!r} on channel "
                        f"{previous[1]!r}; one message has one key field"
                    )

    # generated identifiers must not collide (registry constants share one namespace)
    idents: dict[str, str] = {}
    for msg in schema.typed_messages():
        idents.setdefault(f"{upper_snake(msg.name)}_TYPE", msg.full_name)
    for ch in schema.channels:
        ident = upper_snake(ch.name)
        if ident in idents and idents[ident] != f"channel {ch.name}":
            problems.append(
                f"{where(ch.file)}: channel {ch.name!r}: generated name {ident} collides with "
                f"{idents[ident]}"
            )
        idents.setdefault(ident, f"channel {ch.name}")
    type_consts: dict[str, str] = {}
    for msg in schema.typed_messages():
        const = f"{upper_snake(msg.name)}_TYPE"
        if const in type_consts:
            problems.append(
                f"{where(msg.file)}: {msg.full_name}: generated name {const} collides with "
                f"{type_consts[const]}"
            )
        type_consts.setdefault(const, msg.full_name)

    # documentation: units, ranges and meaning live in the .proto, so every item has a comment
    for proto in schema.files:
        if proto.name in schema.schema_files:
            problems.extend(
                f"{where(proto.name)}: {item}: undocumented (add a comment)"
                for item in undocumented(proto)
            )

    if problems:
        raise SchemaError(problems)

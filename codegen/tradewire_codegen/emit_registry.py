"""`tradewire/_gen/registry.py`: MessageType and Channel constants."""

from __future__ import annotations

from tradewire_codegen.fingerprint import fingerprint
from tradewire_codegen.header import PY_HEADER
from tradewire_codegen.naming import upper_snake
from tradewire_codegen.pyutil import Pb2Modules, from_import, py_hex, py_str
from tradewire_codegen.schema import Schema
from tradewire_codegen.validate import SCHEMA_PACKAGE


def type_const(name: str) -> str:
    """`MarketData` -> `MARKET_DATA_TYPE`."""
    return f"{upper_snake(name)}_TYPE"


def render_registry(schema: Schema) -> str:
    typed = schema.typed_messages()
    mods = Pb2Modules(typed)
    needs_message = any(c.reply for c in schema.channels)
    out = [
        PY_HEADER.rstrip("\n"),
        '"""Message types and channels declared in schema/, with type ids and fingerprints."""',
        "",
        "from __future__ import annotations",
        "",
        "from typing import Any, cast" if needs_message else "from typing import Any",
        "",
    ]
    if needs_message:
        out += ["from google.protobuf.message import Message", ""]
    out += [
        *mods.imports(),
        *from_import("tradewire.catalog", ["Channel", "MessageType", "Pattern"]),
        "",
        f"SCHEMA_PACKAGE = {py_str(SCHEMA_PACKAGE)}",
        "",
    ]
    for msg in typed:
        cls = mods.ref(msg)
        out += [
            f"{type_const(msg.name)} = MessageType[{cls}](",
            f"    type_id={msg.type_id},",
            f"    full_name={py_str(msg.full_name)},",
            f"    cls={cls},",
            f"    fingerprint={py_hex(fingerprint(msg.full_name, msg.proto))},",
            ")",
            f'"""`{msg.full_name}`, envelope type id {msg.type_id}."""',
            "",
        ]
    out += ["MESSAGE_TYPES: tuple[MessageType[Any], ...] = ("]
    out += [f"    {type_const(m.name)}," for m in typed]
    out += [")", '"""Every message type, by type id."""', ""]
    for ch in schema.channels:
        msg = schema.messages[ch.message]
        reply = "None"
        if ch.reply:
            reply = f'cast("MessageType[Message]", {type_const(schema.messages[ch.reply].name)})'
        desc = py_str(ch.description)
        desc_line = f"    description={desc},"
        if len(desc_line) > 100:
            desc_line = f"    description=(\n        {desc}\n    ),"
        out += [
            f"{upper_snake(ch.name)} = Channel[{mods.ref(msg)}](",
            f"    name={py_str(ch.name)},",
            f"    message={type_const(msg.name)},",
            f"    pattern=Pattern.{ch.pattern},",
            f"    key_field={py_str(ch.key_field)},",
            f"    last_value={ch.last_value},",
            f"    reply={reply},",
            desc_line,
            ")",
            f'"""Channel `{ch.name}`."""',
            "",
        ]
    out += ["CHANNELS: tuple[Channel[Any], ...] = ("]
    out += [f"    {upper_snake(c.name)}," for c in schema.channels]
    out += [")", '"""Every channel, in declaration order."""', ""]
    return "\n".join(out)

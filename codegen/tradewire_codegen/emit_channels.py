"""`tradewire/_gen/channels.py`: typed clients bound to each channel."""

from __future__ import annotations

from tradewire_codegen.header import PY_HEADER
from tradewire_codegen.naming import camel, upper_snake
from tradewire_codegen.pyutil import Pb2Modules, docstring, from_import
from tradewire_codegen.schema import ChannelInfo, Schema

ROLES = {
    "PUB_SUB": (("Publisher", "Publisher", "publishes"), ("Subscriber", "Subscriber", "receives")),
    "COMMAND": (("Client", "CommandClient", "sends"), ("Server", "CommandServer", "serves")),
}


def class_names(channel: ChannelInfo) -> list[tuple[str, str, str]]:
    """(generated class, runtime base class, verb) for each role of the channel."""
    return [(camel(channel.name) + role, base, verb) for role, base, verb in ROLES[channel.pattern]]


def render_channels(schema: Schema) -> str:
    msgs = [schema.messages[c.message] for c in schema.channels]
    msgs += [schema.messages[c.reply] for c in schema.channels if c.reply]
    mods = Pb2Modules(msgs)
    bases = sorted({base for c in schema.channels for _, base, _ in class_names(c)})
    out = [
        PY_HEADER.rstrip("\n"),
        '"""Typed clients for every channel declared in schema/."""',
        "",
        "from __future__ import annotations",
        "",
        *from_import("tradewire._gen", ["registry"]),
        *mods.imports(),
        *(from_import("tradewire.transport", bases) if bases else []),
        "",
        "__all__ = [",
        *sorted(f'    "{name}",' for c in schema.channels for name, _, _ in class_names(c)),
        "]",
    ]
    for ch in schema.channels:
        msg = schema.messages[ch.message]
        params = mods.ref(msg)
        if ch.reply:
            params += ", " + mods.ref(schema.messages[ch.reply])
        for name, base, verb in class_names(ch):
            key = f"keyed by `{ch.key_field}`" if ch.key_field else "no key"
            summary = f"{base} on channel `{ch.name}`: {verb} `{msg.full_name}`, {key}."
            notes = [ch.description] if ch.description else []
            if ch.reply:
                notes.append(f"Each command is answered with a `{ch.reply}`.")
            if ch.last_value:
                notes.append("The last value per key is state (late joiners may get a snapshot).")
            text = summary + ("\n\n" + " ".join(notes) if notes else "")
            out += [
                "",
                "",
                f"class {name}({base}[{params}]):",
                *docstring(text, "    "),
                "",
                f"    _channel = registry.{upper_snake(ch.name)}",
            ]
    out.append("")
    return "\n".join(out)

"""`crates/tradewire/src/gen/channels.rs`: message type and channel constants for Rust."""

from __future__ import annotations

from tradewire_codegen.emit_registry import type_const
from tradewire_codegen.errors import CodegenError
from tradewire_codegen.fingerprint import fingerprint
from tradewire_codegen.header import RS_HEADER
from tradewire_codegen.naming import camel, rust_field, snake, upper_snake
from tradewire_codegen.schema import MessageInfo, Schema
from tradewire_codegen.validate import SCHEMA_PACKAGE

RUST_MODULE = "v1"


def rust_str(value: str) -> str:
    """A Rust string literal."""
    out = []
    for ch in value:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{{{ord(ch):x}}}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def rust_hex(value: int) -> str:
    digits = f"{value:016x}"
    return "0x" + "_".join(digits[i : i + 4] for i in range(0, 16, 4))


def rust_type(msg: MessageInfo) -> str:
    """The prost type of a message: `v1::MarketData`, nested `v1::outer::Inner`."""
    if msg.package != SCHEMA_PACKAGE:
        raise CodegenError(
            f"{msg.file}: {msg.full_name}: Rust output supports package {SCHEMA_PACKAGE} only"
        )
    modules = [snake(p) for p in msg.path[:-1]]
    return "::".join([RUST_MODULE, *modules, camel(msg.path[-1])])


def render_rust_channels(schema: Schema) -> str:
    """Unformatted Rust source; rustfmt makes it final."""
    typed = schema.typed_messages()
    keyed: dict[str, str] = {}
    for ch in schema.channels:
        if ch.key_field:
            keyed.setdefault(ch.message, ch.key_field)
    imports = ["Channel"] if schema.channels else []
    imports += ["Keyed"] if keyed else []
    imports += ["MessageType"]
    imports += ["Pattern"] if schema.channels else []
    imports += ["SchemaMessage"] if typed else []
    out = [
        RS_HEADER.rstrip("\n"),
        f"use crate::catalog::{{{', '.join(imports)}}};",
        f"use crate::{RUST_MODULE};",
        "",
    ]
    for msg in typed:
        out += [
            f"/// `{msg.full_name}`.",
            f"pub const {type_const(msg.name)}: MessageType = MessageType {{ "
            f"type_id: {msg.type_id}, full_name: {rust_str(msg.full_name)}, "
            f"fingerprint: {rust_hex(fingerprint(msg.full_name, msg.proto))} }};",
        ]
    out += [
        "",
        "/// Every message type, by type id.",
        "pub const MESSAGE_TYPES: &[MessageType] = &["
        f"{', '.join(type_const(m.name) for m in typed)}];",
        "",
    ]
    out += [
        "/// Every message type with its payload re-encoder (prost decode + encode).",
        "pub const CODECS: &[(MessageType, crate::wire::Reencode)] = &["
        + ", ".join(
            f"({type_const(m.name)}, crate::wire::reencode::<{rust_type(m)}>)" for m in typed
        )
        + "];",
        "",
    ]
    for msg in typed:
        out += [
            f"impl SchemaMessage for {rust_type(msg)} {{ const TYPE: MessageType = "
            f"{type_const(msg.name)}; }}",
            "",
        ]
    for ch in schema.channels:
        msg = schema.messages[ch.message]
        reply = f"Some({type_const(schema.messages[ch.reply].name)})" if ch.reply else "None"
        pattern = {"PUB_SUB": "PubSub", "COMMAND": "Command"}[ch.pattern]
        doc = (
            f"/// Channel `{ch.name}`: {ch.description}"
            if ch.description
            else (f"/// Channel `{ch.name}`.")
        )
        out += [
            doc,
            f"pub const {upper_snake(ch.name)}: Channel = Channel {{ name: {rust_str(ch.name)}, "
            f"message: {type_const(msg.name)}, pattern: Pattern::{pattern}, "
            f"key_field: {rust_str(ch.key_field)}, last_value: {str(ch.last_value).lower()}, "
            f"reply: {reply}, description: {rust_str(ch.description)} }};",
        ]
    out += [
        "",
        "/// Every channel, in declaration order.",
        "pub const CHANNELS: &[Channel] = &["
        f"{', '.join(upper_snake(c.name) for c in schema.channels)}];",
    ]
    for full_name, key in keyed.items():
        out += [
            "",
            f"impl Keyed for {rust_type(schema.messages[full_name])} {{ fn key(&self) -> &str "
            f"{{ &self.{rust_field(key)} }} }}",
        ]
    out.append("")
    return "\n".join(out)

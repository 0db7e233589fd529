"""Schema fingerprints (conformance/WIRE.md section 3)."""

from __future__ import annotations

import hashlib

from google.protobuf.descriptor_pb2 import DescriptorProto, FieldDescriptorProto

_REFERENCE_KINDS = {
    FieldDescriptorProto.TYPE_MESSAGE: "message",
    FieldDescriptorProto.TYPE_ENUM: "enum",
    FieldDescriptorProto.TYPE_GROUP: "group",
}


def field_type(field: FieldDescriptorProto) -> str:
    """`double`, `int64`, ... or `message:<full name>` / `enum:<full name>`."""
    kind = _REFERENCE_KINDS.get(field.type)
    if kind is not None:
        return f"{kind}:{field.type_name.lstrip('.')}"
    return FieldDescriptorProto.Type.Name(field.type).removeprefix("TYPE_").lower()


def fingerprint(full_name: str, message: DescriptorProto) -> int:
    """Fingerprint of one message type, exactly as WIRE.md section 3 defines it.

    The SHA-256 of UTF-8 text with one line per item, each ending in a newline: the full
    message name, then for each field in ascending number `<number> <label> <type>`, where
    label is `repeated` or `singular` and type is the protobuf type name or
    `message:<full name>` / `enum:<full name>` (maps are repeated map-entry messages).
    Field names and nested definitions are left out. The fingerprint is the first 8 bytes
    of the digest read as a little-endian u64.
    """
    lines = [full_name]
    for field in sorted(message.field, key=lambda f: f.number):
        label = "repeated" if field.label == FieldDescriptorProto.LABEL_REPEATED else "singular"
        lines.append(f"{field.number} {label} {field_type(field)}")
    text = "".join(line + "\n" for line in lines)
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "little")

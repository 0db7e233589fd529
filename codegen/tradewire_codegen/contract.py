"""The wire contract of a schema (what `schema/tradewire.lock.json` records)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.protobuf.descriptor_pb2 import FieldDescriptorProto

from tradewire_codegen.errors import CodegenError
from tradewire_codegen.schema import Schema

LOCK_FORMAT = 1


@dataclass(frozen=True)
class FieldContract:
    number: int
    name: str
    type: str
    """`double`, `string`, `message`, `enum`, ... (protobuf type name)."""
    type_name: str
    """Full name of the message or enum type, else empty."""
    label: str
    """`optional`, `repeated` or `required` (proto3 singular fields are `optional`)."""


@dataclass(frozen=True)
class MessageContract:
    full_name: str
    type_id: int | None
    map_entry: bool
    fields: tuple[FieldContract, ...]
    reserved_ranges: tuple[tuple[int, int], ...]
    """Inclusive [start, end] ranges."""
    reserved_names: tuple[str, ...]

    def reserves(self, number: int) -> bool:
        return any(lo <= number <= hi for lo, hi in self.reserved_ranges)


@dataclass(frozen=True)
class EnumContract:
    full_name: str
    values: dict[str, int]
    reserved_ranges: tuple[tuple[int, int], ...]
    """Inclusive [start, end] ranges."""
    reserved_names: tuple[str, ...]

    def reserves(self, number: int) -> bool:
        return any(lo <= number <= hi for lo, hi in self.reserved_ranges)


@dataclass(frozen=True)
class ChannelContract:
    name: str
    message: str
    pattern: str
    key_field: str
    reply: str
    last_value: bool


@dataclass(frozen=True)
class FileContract:
    package: str
    messages: dict[str, MessageContract]
    enums: dict[str, EnumContract]
    channels: dict[str, ChannelContract]


@dataclass(frozen=True)
class Contract:
    files: dict[str, FileContract]

    def messages(self) -> dict[str, tuple[str, MessageContract]]:
        return {n: (f, m) for f, fc in self.files.items() for n, m in fc.messages.items()}

    def enums(self) -> dict[str, tuple[str, EnumContract]]:
        return {n: (f, e) for f, fc in self.files.items() for n, e in fc.enums.items()}

    def channels(self) -> dict[str, tuple[str, ChannelContract]]:
        return {n: (f, c) for f, fc in self.files.items() for n, c in fc.channels.items()}


def _type_name(field: FieldDescriptorProto) -> str:
    return FieldDescriptorProto.Type.Name(field.type).removeprefix("TYPE_").lower()


def _label(field: FieldDescriptorProto) -> str:
    return FieldDescriptorProto.Label.Name(field.label).removeprefix("LABEL_").lower()


def extract(schema: Schema) -> Contract:
    """The contract of the schema directory's files (imports such as descriptor.proto excluded)."""
    files: dict[str, FileContract] = {}
    for name in schema.schema_files:
        proto = next(f for f in schema.files if f.name == name)
        messages = {
            m.full_name: MessageContract(
                full_name=m.full_name,
                type_id=m.type_id,
                map_entry=m.is_map_entry,
                fields=tuple(
                    FieldContract(
                        number=f.number,
                        name=f.name,
                        type=_type_name(f),
                        type_name=f.type_name.lstrip("."),
                        label=_label(f),
                    )
                    for f in sorted(m.proto.field, key=lambda f: f.number)
                ),
                # DescriptorProto reserved ranges are end-exclusive
                reserved_ranges=tuple((r.start, r.end - 1) for r in m.proto.reserved_range),
                reserved_names=tuple(m.proto.reserved_name),
            )
            for m in schema.messages.values()
            if m.file == name
        }
        enums = {
            e.full_name: EnumContract(
                full_name=e.full_name,
                values={v.name: v.number for v in e.proto.value},
                # EnumDescriptorProto reserved ranges are end-inclusive
                reserved_ranges=tuple((r.start, r.end) for r in e.proto.reserved_range),
                reserved_names=tuple(e.proto.reserved_name),
            )
            for e in schema.enums.values()
            if e.file == name
        }
        channels = {
            c.name: ChannelContract(
                name=c.name,
                message=c.message,
                pattern=c.pattern,
                key_field=c.key_field,
                reply=c.reply,
                last_value=c.last_value,
            )
            for c in schema.channels
            if c.file == name
        }
        files[name] = FileContract(proto.package, messages, enums, channels)
    return Contract(files)


# --- JSON ------------------------------------------------------------------------------------


def to_json(contract: Contract) -> str:
    """Pretty, key-sorted JSON with a trailing newline."""
    doc: dict[str, Any] = {
        "format": LOCK_FORMAT,
        "files": {
            path: {
                "package": fc.package,
                "messages": {
                    name: {
                        "type_id": m.type_id,
                        "map_entry": m.map_entry,
                        "fields": [
                            {
                                "number": f.number,
                                "name": f.name,
                                "type": f.type,
                                "type_name": f.type_name,
                                "label": f.label,
                            }
                            for f in m.fields
                        ],
                        "reserved_ranges": [list(r) for r in m.reserved_ranges],
                        "reserved_names": list(m.reserved_names),
                    }
                    for name, m in fc.messages.items()
                },
                "enums": {
                    name: {
                        "values": e.values,
                        "reserved_ranges": [list(r) for r in e.reserved_ranges],
                        "reserved_names": list(e.reserved_names),
                    }
                    for name, e in fc.enums.items()
                },
                "channels": {
                    name: {
                        "message": c.message,
                        "pattern": c.pattern,
                        "key_field": c.key_field,
                        "reply": c.reply,
                        "last_value": c.last_value,
                    }
                    for name, c in fc.channels.items()
                },
            }
            for path, fc in contract.files.items()
        },
    }
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


class _Reader:
    """Typed access to a parsed lock file, with errors that say where it is malformed."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, where: str, what: str) -> CodegenError:
        return CodegenError(f"{self.source}: {where}: {what}")

    def obj(self, value: Any, where: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(where, "expected an object")
        return value

    def lst(self, value: Any, where: str) -> list[Any]:
        if not isinstance(value, list):
            raise self.fail(where, "expected a list")
        return value

    def int_(self, value: Any, where: str) -> int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise self.fail(where, "expected an integer")
        return value

    def str_(self, value: Any, where: str) -> str:
        if not isinstance(value, str):
            raise self.fail(where, "expected a string")
        return value

    def ranges(self, value: Any, where: str) -> tuple[tuple[int, int], ...]:
        out = []
        for r in self.lst(value, where):
            pair = self.lst(r, where)
            if len(pair) != 2:
                raise self.fail(where, "expected [start, end] ranges")
            out.append((self.int_(pair[0], where), self.int_(pair[1], where)))
        return tuple(out)

    def names(self, value: Any, where: str) -> tuple[str, ...]:
        return tuple(self.str_(v, where) for v in self.lst(value, where))


def from_json(text: str, source: str) -> Contract:
    """Parse a lock file written by `to_json`."""
    r = _Reader(source)
    try:
        doc = r.obj(json.loads(text), "top level")
    except json.JSONDecodeError as exc:
        raise CodegenError(f"{source}: not valid JSON ({exc})") from exc
    if doc.get("format") != LOCK_FORMAT:
        raise r.fail("format", f"unsupported lock format {doc.get('format')!r}")
    files: dict[str, FileContract] = {}
    for path, fdoc in r.obj(doc.get("files"), "files").items():
        f = r.obj(fdoc, path)
        messages: dict[str, MessageContract] = {}
        for name, mdoc in r.obj(f.get("messages", {}), f"{path} messages").items():
            m = r.obj(mdoc, name)
            type_id = m.get("type_id")
            fields = []
            for fd in r.lst(m.get("fields", []), f"{name} fields"):
                fo = r.obj(fd, f"{name} fields")
                fields.append(
                    FieldContract(
                        number=r.int_(fo.get("number"), f"{name} field number"),
                        name=r.str_(fo.get("name"), f"{name} field name"),
                        type=r.str_(fo.get("type"), f"{name} field type"),
                        type_name=r.str_(fo.get("type_name", ""), f"{name} field type_name"),
                        label=r.str_(fo.get("label"), f"{name} field label"),
                    )
                )
            messages[name] = MessageContract(
                full_name=name,
                type_id=None if type_id is None else r.int_(type_id, f"{name} type_id"),
                map_entry=bool(m.get("map_entry", False)),
                fields=tuple(fields),
                reserved_ranges=r.ranges(m.get("reserved_ranges", []), f"{name} reserved_ranges"),
                reserved_names=r.names(m.get("reserved_names", []), f"{name} reserved_names"),
            )
        enums: dict[str, EnumContract] = {}
        for name, edoc in r.obj(f.get("enums", {}), f"{path} enums").items():
            e = r.obj(edoc, name)
            enums[name] = EnumContract(
                full_name=name,
                values={
                    r.str_(k, f"{name} values"): r.int_(v, f"{name} values")
                    for k, v in r.obj(e.get("values"), f"{name} values").items()
                },
                reserved_ranges=r.ranges(e.get("reserved_ranges", []), f"{name} reserved_ranges"),
                reserved_names=r.names(e.get("reserved_names", []), f"{name} reserved_names"),
            )
        channels: dict[str, ChannelContract] = {}
        for name, cdoc in r.obj(f.get("channels", {}), f"{path} channels").items():
            c = r.obj(cdoc, f"channel {name}")
            channels[name] = ChannelContract(
                name=name,
                message=r.str_(c.get("message"), f"channel {name} message"),
                pattern=r.str_(c.get("pattern"), f"channel {name} pattern"),
                key_field=r.str_(c.get("key_field", ""), f"channel {name} key_field"),
                reply=r.str_(c.get("reply", ""), f"channel {name} reply"),
                last_value=bool(c.get("last_value", False)),
            )
        files[path] = FileContract(
            package=r.str_(f.get("package", ""), f"{path} package"),
            messages=messages,
            enums=enums,
            channels=channels,
        )
    return Contract(files)


def read_lock(path: Path) -> Contract:
    return from_json(path.read_text(encoding="utf-8"), str(path))

"""The schema as codegen sees it: messages, enums, type ids and channels from descriptors."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import Message

from tradewire_codegen.protoc import proto_files, run_protoc

TYPE_ID_EXTENSION = "tradewire.v1.type_id"
CHANNEL_EXTENSION = "tradewire.v1.channel"
PATTERN_NAMES = {0: "PATTERN_UNSPECIFIED", 1: "PUB_SUB", 2: "COMMAND"}


@dataclass(frozen=True)
class MessageInfo:
    """One message definition (top-level or nested)."""

    full_name: str
    path: tuple[str, ...]
    """Names from the top-level message down to this one."""
    file: str
    package: str
    proto: descriptor_pb2.DescriptorProto
    type_id: int | None
    syntax: str

    @property
    def name(self) -> str:
        return self.path[-1]

    @property
    def is_map_entry(self) -> bool:
        return self.proto.options.map_entry

    def field(self, name: str) -> descriptor_pb2.FieldDescriptorProto | None:
        return next((f for f in self.proto.field if f.name == name), None)


@dataclass(frozen=True)
class EnumInfo:
    """One enum definition (top-level or nested)."""

    full_name: str
    path: tuple[str, ...]
    file: str
    proto: descriptor_pb2.EnumDescriptorProto
    syntax: str

    @property
    def closed(self) -> bool:
        """Proto2 enums are closed: unknown numbers cannot be stored in the field."""
        return self.syntax == "proto2"


@dataclass(frozen=True)
class ChannelInfo:
    """One `(tradewire.v1.channel)` option entry."""

    file: str
    name: str
    message: str
    pattern: str
    """`PUB_SUB`, `COMMAND` or `PATTERN_UNSPECIFIED`."""
    key_field: str
    last_value: bool
    reply: str
    description: str


@dataclass(frozen=True)
class Schema:
    """A compiled schema directory."""

    descriptor_set: bytes
    files: tuple[descriptor_pb2.FileDescriptorProto, ...]
    """Every file of the descriptor set (imports included), in protoc's order."""
    schema_files: tuple[str, ...]
    """Names of the files that come from the schema directory, sorted."""
    messages: dict[str, MessageInfo]
    enums: dict[str, EnumInfo]
    channels: tuple[ChannelInfo, ...]
    python_out: dict[str, bytes]

    def schema_messages(self) -> Iterator[MessageInfo]:
        """Messages defined in the schema directory, in file then declaration order."""
        wanted = set(self.schema_files)
        return (m for m in self.messages.values() if m.file in wanted)

    def typed_messages(self) -> list[MessageInfo]:
        """Messages carrying a type id, by type id."""
        typed = [m for m in self.schema_messages() if m.type_id is not None]
        return sorted(typed, key=lambda m: (m.type_id or 0, m.full_name))


def _walk_messages(
    prefix: str, path: tuple[str, ...], protos: list[descriptor_pb2.DescriptorProto]
) -> Iterator[tuple[str, tuple[str, ...], descriptor_pb2.DescriptorProto]]:
    for proto in protos:
        full = f"{prefix}.{proto.name}" if prefix else proto.name
        here = (*path, proto.name)
        yield full, here, proto
        yield from _walk_messages(full, here, list(proto.nested_type))


def _find_extension(pool: descriptor_pool.DescriptorPool, name: str) -> Any:
    try:
        return pool.FindExtensionByName(name)
    except KeyError:
        return None


class _Options:
    """Reads tradewire's custom options out of serialized option messages."""

    def __init__(self, files: list[descriptor_pb2.FileDescriptorProto]) -> None:
        pool = descriptor_pool.DescriptorPool()
        for f in files:
            pool.Add(f)
        self._file_cls = message_factory.GetMessageClass(
            pool.FindMessageTypeByName("google.protobuf.FileOptions")
        )
        self._msg_cls = message_factory.GetMessageClass(
            pool.FindMessageTypeByName("google.protobuf.MessageOptions")
        )
        # Extension handles are typed Any: the stubs only type extensions of generated classes.
        self._type_id: Any = _find_extension(pool, TYPE_ID_EXTENSION)
        self._channel: Any = _find_extension(pool, CHANNEL_EXTENSION)

    def type_id(self, options: descriptor_pb2.MessageOptions) -> int | None:
        if self._type_id is None:
            return None
        parsed = self._msg_cls.FromString(options.SerializeToString())
        if not parsed.HasExtension(self._type_id):
            return None
        return int(parsed.Extensions[self._type_id])

    def channels(self, options: descriptor_pb2.FileOptions) -> list[Message]:
        if self._channel is None:
            return []
        parsed = self._file_cls.FromString(options.SerializeToString())
        return list(parsed.Extensions[self._channel])


def _attr(message: Message, name: str) -> Any:
    """A field of a dynamically built message class (not visible to the type checker)."""
    return getattr(message, name)


def load_schema(schema_dir: Path, *, python: bool = False) -> Schema:
    """Compile `schema_dir` with protoc and index what codegen needs."""
    out = run_protoc(schema_dir, python=python)
    fds = descriptor_pb2.FileDescriptorSet.FromString(out.descriptor_set)
    files = list(fds.file)
    schema_files = tuple(proto_files(schema_dir))
    options = _Options(files)
    messages: dict[str, MessageInfo] = {}
    enums: dict[str, EnumInfo] = {}
    channels: list[ChannelInfo] = []
    for f in files:
        syntax = f.syntax or "proto2"
        for full, path, proto in _walk_messages(f.package, (), list(f.message_type)):
            messages[full] = MessageInfo(
                full_name=full,
                path=path,
                file=f.name,
                package=f.package,
                proto=proto,
                type_id=options.type_id(proto.options),
                syntax=syntax,
            )
            for e in proto.enum_type:
                enums[f"{full}.{e.name}"] = EnumInfo(
                    full_name=f"{full}.{e.name}",
                    path=(*path, e.name),
                    file=f.name,
                    proto=e,
                    syntax=syntax,
                )
        for e in f.enum_type:
            full = f"{f.package}.{e.name}" if f.package else e.name
            enums[full] = EnumInfo(
                full_name=full, path=(e.name,), file=f.name, proto=e, syntax=syntax
            )
        for spec in options.channels(f.options):
            pattern = int(_attr(spec, "pattern"))
            channels.append(
                ChannelInfo(
                    file=f.name,
                    name=str(_attr(spec, "name")),
                    message=str(_attr(spec, "message")),
                    pattern=PATTERN_NAMES.get(pattern, f"pattern {pattern}"),
                    key_field=str(_attr(spec, "key_field")),
                    last_value=bool(_attr(spec, "last_value")),
                    reply=str(_attr(spec, "reply")),
                    description=str(_attr(spec, "description")),
                )
            )
    return Schema(
        descriptor_set=out.descriptor_set,
        files=tuple(files),
        schema_files=schema_files,
        messages=messages,
        enums=enums,
        channels=tuple(channels),
        python_out=out.python,
    )

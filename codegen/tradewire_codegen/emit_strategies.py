"""`tradewire/_gen/strategies.py`: hypothesis strategies built from the descriptors."""

from __future__ import annotations

from google.protobuf.descriptor_pb2 import FieldDescriptorProto as F

from tradewire_codegen.header import PY_HEADER
from tradewire_codegen.naming import snake
from tradewire_codegen.pyutil import Pb2Modules, py_str
from tradewire_codegen.schema import MessageInfo, Schema

# Module-level strategies the generated code may use, in the order they are written.
BASE_STRATEGIES: dict[str, str] = {
    "_DOUBLE": "st.floats(allow_nan=True, allow_infinity=True)",
    "_FLOAT": "st.floats(width=32, allow_nan=True, allow_infinity=True)",
    "_INT32": "st.integers(min_value=-(2**31), max_value=2**31 - 1)",
    "_INT64": "st.integers(min_value=-(2**63), max_value=2**63 - 1)",
    "_UINT32": "st.integers(min_value=0, max_value=2**32 - 1)",
    "_UINT64": "st.integers(min_value=0, max_value=2**64 - 1)",
    "_BOOL": "st.booleans()",
    "_TEXT": 'st.text(st.characters(codec="utf-8"))',
    "_KEY": 'st.text(st.characters(codec="utf-8", exclude_characters="\\x00"), max_size=16)',
    "_BYTES": "st.binary(max_size=64)",
}
BASE_DOCS = {
    "_TEXT": "Valid Unicode text (no surrogates).",
    "_KEY": "A valid topic key: no NUL, at most 16 characters, so at most 64 UTF-8 bytes.",
}

SCALARS = {
    F.TYPE_DOUBLE: "_DOUBLE",
    F.TYPE_FLOAT: "_FLOAT",
    F.TYPE_INT32: "_INT32",
    F.TYPE_SINT32: "_INT32",
    F.TYPE_SFIXED32: "_INT32",
    F.TYPE_INT64: "_INT64",
    F.TYPE_SINT64: "_INT64",
    F.TYPE_SFIXED64: "_INT64",
    F.TYPE_UINT32: "_UINT32",
    F.TYPE_FIXED32: "_UINT32",
    F.TYPE_UINT64: "_UINT64",
    F.TYPE_FIXED64: "_UINT64",
    F.TYPE_BOOL: "_BOOL",
    F.TYPE_STRING: "_TEXT",
    F.TYPE_BYTES: "_BYTES",
}
COLLECTION_SIZE = 4


def function_name(msg: MessageInfo, public: bool) -> str:
    """`market_data` for typed messages, `_outer_inner` for messages only used by fields."""
    name = "_".join(snake(part) for part in msg.path)
    return name if public else f"_{name}"


def _isort_key(name: str) -> tuple[int, str]:
    kind = 0 if name.isupper() else 1 if name[:1].isupper() else 2
    return kind, name


class _Emitter:
    def __init__(self, schema: Schema) -> None:
        self.schema = schema
        self.typed = schema.typed_messages()
        self.keys = {c.message: c.key_field for c in schema.channels if c.key_field}
        self.used: set[str] = set()
        self.uses_enum = False
        generated = set(schema.schema_files)
        # messages reachable from typed messages through fields, map entries excluded
        self.targets: list[MessageInfo] = []
        pending = list(self.typed)
        seen: set[str] = set()
        while pending:
            msg = pending.pop(0)
            if msg.full_name in seen or msg.file not in generated:
                continue
            seen.add(msg.full_name)
            if not msg.is_map_entry:
                self.targets.append(msg)
            for field in msg.proto.field:
                if field.type == F.TYPE_MESSAGE:
                    pending.append(schema.messages[field.type_name.lstrip(".")])
        self.target_names = {m.full_name for m in self.targets}
        self.public = {m.full_name for m in self.typed}
        self.mods = Pb2Modules(self.targets)

    def value(self, field: F, key_field: bool = False) -> str:
        """Strategy expression for one value of the field (ignoring label)."""
        if field.type == F.TYPE_ENUM:
            enum = self.schema.enums[field.type_name.lstrip(".")]
            numbers = ", ".join(str(v.number) for v in enum.proto.value)
            if enum.closed:
                return f"st.sampled_from(({numbers},))"
            self.uses_enum = True
            self.used.add("_INT32")
            return f"_enum({numbers})"
        if field.type in (F.TYPE_MESSAGE, F.TYPE_GROUP):
            target = self.schema.messages[field.type_name.lstrip(".")]
            if target.full_name not in self.target_names:
                return "st.none()"  # defined outside schema/: left unset
            return f"st.deferred({function_name(target, target.full_name in self.public)})"
        name = "_KEY" if key_field else SCALARS[field.type]
        self.used.add(name)
        return name

    def field(self, msg: MessageInfo, field: F) -> str:
        if field.type == F.TYPE_MESSAGE:
            entry = self.schema.messages[field.type_name.lstrip(".")]
            if entry.is_map_entry:
                key, value = (
                    self.value(f) for f in sorted(entry.proto.field, key=lambda f: f.number)
                )
                return f"st.dictionaries({key}, {value}, max_size={COLLECTION_SIZE})"
        if field.label == F.LABEL_REPEATED:
            return f"st.lists({self.value(field)}, max_size={COLLECTION_SIZE})"
        value = self.value(field, key_field=self.keys.get(msg.full_name) == field.name)
        if field.type == F.TYPE_MESSAGE or field.HasField("oneof_index"):
            return value if value == "st.none()" else f"st.none() | {value}"
        return value

    def function(self, msg: MessageInfo) -> list[str]:
        public = msg.full_name in self.public
        cls = self.mods.ref(msg)
        lines = [
            "",
            "",
            f"def {function_name(msg, public)}() -> st.SearchStrategy[{cls}]:",
            f'    """`{msg.full_name}` with every field drawn."""',
            "    return st.builds(",
            f"        {cls},",
        ]
        for field in sorted(msg.proto.field, key=lambda f: f.number):
            lines.append(f"        {field.name}={self.field(msg, field)},")
        lines.append("    )")
        return lines

    def render(self) -> str:
        functions = [line for msg in self.targets for line in self.function(msg)]
        names = [function_name(m, True) for m in self.typed] + ["STRATEGIES", "any_message"]
        out = [
            PY_HEADER.rstrip("\n"),
            '"""Hypothesis strategies for every message type declared in schema/.',
            "",
            "Doubles include NaN, +-inf and -0.0; integers span their type's full range; text",
            "is valid Unicode; maps and repeated fields hold several entries; open enums draw",
            "declared values and sometimes unknown ones; channel key fields draw valid topic keys.",
            '"""',
            "",
            "from __future__ import annotations",
            "",
            "from google.protobuf.message import Message",
            "from hypothesis import strategies as st",
            "",
            *self.mods.imports(),
            "",
            "__all__ = [",
            *(f'    "{n}",' for n in sorted(names, key=_isort_key)),
            "]",
            "",
        ]
        for name, expr in BASE_STRATEGIES.items():
            if name in self.used:
                out.append(f"{name} = {expr}")
                if name in BASE_DOCS:
                    out.append(f'"""{BASE_DOCS[name]}"""')
        if self.uses_enum:
            out += [
                "",
                "",
                "def _enum(*numbers: int) -> st.SearchStrategy[int]:",
                '    """Declared enum values, sometimes an unknown one (proto3 enums are open)."""',
                "    return st.sampled_from(numbers) | _INT32",
            ]
        out += functions
        out += ["", "", "STRATEGIES: dict[str, st.SearchStrategy[Message]] = {"]
        out += [f"    {py_str(m.full_name)}: {function_name(m, True)}()," for m in self.typed]
        out += [
            "}",
            '"""A strategy per message type, by full name."""',
            "",
            "",
            "def any_message() -> st.SearchStrategy[Message]:",
            '    """Any message of any type declared in schema/."""',
            "    return st.one_of(*STRATEGIES.values())",
            "",
        ]
        return "\n".join(out)


def render_strategies(schema: Schema) -> str:
    return _Emitter(schema).render()

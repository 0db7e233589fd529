"""Wire-level breaking-change rules between two contracts."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from tradewire_codegen.contract import Contract, EnumContract, FieldContract, MessageContract

WIRE_TYPES = {
    **dict.fromkeys(
        ["int32", "int64", "uint32", "uint64", "sint32", "sint64", "bool", "enum"], "varint"
    ),
    **dict.fromkeys(["fixed64", "sfixed64", "double"], "i64"),
    **dict.fromkeys(["string", "bytes", "message"], "len"),
    **dict.fromkeys(["fixed32", "sfixed32", "float"], "i32"),
    "group": "group",
}
# Types that read each other's encoding (same wire type and same interpretation).
COMPATIBLE = {
    **dict.fromkeys(["int32", "int64", "uint32", "uint64", "bool"], "varint"),
    **dict.fromkeys(["sint32", "sint64"], "zigzag"),
    **dict.fromkeys(["fixed64", "sfixed64"], "fixed64"),
    **dict.fromkeys(["fixed32", "sfixed32"], "fixed32"),
    **dict.fromkeys(["string", "bytes"], "bytes"),
}


@dataclass(frozen=True)
class Violation:
    """One breaking change, located in the baseline's file."""

    file: str
    message: str
    field: str | None
    number: int | None
    rule: str
    detail: str

    def line(self) -> str:
        if self.field is not None:
            return f"{self.file}: {self.message}.{self.field} ({self.number}): {self.detail}"
        return f"{self.file}: {self.message}: {self.detail}"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Types:
    """Field types as the wire sees them (map fields resolved to `map<K, V>`)."""

    def __init__(self, contract: Contract) -> None:
        self.messages = {n: m for n, (_, m) in contract.messages().items()}

    def describe(self, f: FieldContract) -> str:
        entry = self.messages.get(f.type_name) if f.type == "message" else None
        if entry is not None and entry.map_entry and len(entry.fields) == 2:
            key, value = entry.fields
            return f"map<{self.describe(key)}, {self.describe(value)}>"
        return f"{f.type} {f.type_name}" if f.type_name else f.type

    def group(self, f: FieldContract) -> str:
        """Equal groups read each other's encoding."""
        entry = self.messages.get(f.type_name) if f.type == "message" else None
        if entry is not None and entry.map_entry and len(entry.fields) == 2:
            key, value = entry.fields
            return f"map<{self.group(key)}, {self.group(value)}>"
        if f.type_name:
            return f"{f.type}:{f.type_name}"
        return COMPATIBLE.get(f.type, f.type)


def _field_change(
    old: FieldContract, new: FieldContract, old_types: _Types, new_types: _Types
) -> tuple[str, str] | None:
    """(rule, detail) when the field's encoding changed incompatibly."""
    was, now = old_types.describe(old), new_types.describe(new)
    if old.name != new.name and was != now:
        return (
            "field_number_reused",
            f"number reused: was `{old.name}` ({was}), now `{new.name}` ({now})",
        )
    old_wire, new_wire = WIRE_TYPES.get(old.type, old.type), WIRE_TYPES.get(new.type, new.type)
    if old_wire != new_wire:
        return (
            "wire_type_changed",
            f"wire type changed from {was} ({old_wire}) to {now} ({new_wire})",
        )
    if old_types.group(old) != new_types.group(new):
        return "type_changed", f"type changed from {was} to {now} (incompatible encoding)"
    if (old.label == "repeated") != (new.label == "repeated"):
        return "label_changed", f"label changed from {old.label} to {new.label}"
    return None


def _parent_deleted(
    name: str,
    new_messages: dict[str, tuple[str, MessageContract]],
    old_messages: dict[str, tuple[str, MessageContract]],
) -> bool:
    parent = name.rsplit(".", 1)[0]
    return parent in old_messages and parent not in new_messages


def _messages(old: Contract, new: Contract) -> list[Violation]:
    out: list[Violation] = []
    old_types, new_types = _Types(old), _Types(new)
    old_msgs, new_msgs = old.messages(), new.messages()
    for name, (file, om) in sorted(old_msgs.items()):
        if om.map_entry:
            continue  # compared through the map field that uses it (`map<K, V>`)
        if name not in new_msgs:
            if not _parent_deleted(name, new_msgs, old_msgs):
                out.append(Violation(file, name, None, None, "message_deleted", "message deleted"))
            continue
        nm = new_msgs[name][1]
        if om.type_id is not None and nm.type_id != om.type_id:
            if nm.type_id is None:
                out.append(
                    Violation(
                        file, name, None, None, "type_id_removed", f"type_id {om.type_id} removed"
                    )
                )
            else:
                out.append(
                    Violation(
                        file,
                        name,
                        None,
                        None,
                        "type_id_changed",
                        f"type_id changed from {om.type_id} to {nm.type_id}",
                    )
                )
        old_fields = {f.number: f for f in om.fields}
        new_fields = {f.number: f for f in nm.fields}
        for number, of in sorted(old_fields.items()):
            nf = new_fields.get(number)
            if nf is None:
                if not nm.reserves(number):
                    out.append(
                        Violation(
                            file,
                            name,
                            of.name,
                            number,
                            "field_deleted",
                            "field deleted without reserving its number",
                        )
                    )
                continue
            change = _field_change(of, nf, old_types, new_types)
            if change is not None:
                out.append(Violation(file, name, of.name, number, *change))
        for number, nf in sorted(new_fields.items()):
            if number not in old_fields and om.reserves(number):
                out.append(
                    Violation(
                        file,
                        name,
                        nf.name,
                        number,
                        "reserved_number_reused",
                        f"field `{nf.name}` uses number {number}, reserved in the baseline",
                    )
                )
    return out


def _enum_value_kept(value: str, number: int, new: EnumContract) -> bool:
    return number in new.values.values() or new.reserves(number) or value in new.reserved_names


def _enums(old: Contract, new: Contract) -> list[Violation]:
    out: list[Violation] = []
    old_msgs, new_msgs = old.messages(), new.messages()
    new_enums = new.enums()
    for name, (file, oe) in sorted(old.enums().items()):
        if name not in new_enums:
            if not _parent_deleted(name, new_msgs, old_msgs):
                out.append(Violation(file, name, None, None, "enum_deleted", "enum deleted"))
            continue
        ne = new_enums[name][1]
        for value, number in sorted(oe.values.items(), key=lambda kv: (kv[1], kv[0])):
            if not _enum_value_kept(value, number, ne):
                out.append(
                    Violation(
                        file,
                        name,
                        value,
                        number,
                        "enum_value_deleted",
                        "enum value deleted without reserving its number or name",
                    )
                )
        old_numbers = set(oe.values.values())
        for value, number in sorted(ne.values.items(), key=lambda kv: (kv[1], kv[0])):
            if number not in old_numbers and oe.reserves(number):
                out.append(
                    Violation(
                        file,
                        name,
                        value,
                        number,
                        "reserved_number_reused",
                        f"enum value `{value}` uses number {number}, reserved in the baseline",
                    )
                )
    return out


def _channels(old: Contract, new: Contract) -> list[Violation]:
    out: list[Violation] = []
    new_channels = new.channels()
    for name, (file, oc) in sorted(old.channels().items()):
        subject = f"channel {name}"
        if name not in new_channels:
            out.append(Violation(file, subject, None, None, "channel_removed", "channel removed"))
            continue
        nc = new_channels[name][1]
        for attr in ("message", "pattern", "key_field", "reply"):
            was, now = getattr(oc, attr), getattr(nc, attr)
            if was != now:
                out.append(
                    Violation(
                        file,
                        subject,
                        None,
                        None,
                        "channel_changed",
                        f"{attr} changed from {was!r} to {now!r}",
                    )
                )
    return out


def find_breaking(old: Contract, new: Contract) -> list[Violation]:
    """Every wire-level incompatibility of `new` with `old`, in a stable order."""
    return _messages(old, new) + _enums(old, new) + _channels(old, new)

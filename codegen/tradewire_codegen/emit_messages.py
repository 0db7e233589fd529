"""`tradewire/_gen/messages.py`: every typed message class under its plain name."""

from __future__ import annotations

from tradewire_codegen.emit_pb2 import GEN_PACKAGE
from tradewire_codegen.header import PY_HEADER
from tradewire_codegen.naming import py_module
from tradewire_codegen.pyutil import from_import
from tradewire_codegen.schema import Schema


def render_messages(schema: Schema) -> str:
    top = [m for m in schema.typed_messages() if len(m.path) == 1]
    by_module: dict[str, list[str]] = {}
    for msg in top:
        by_module.setdefault(py_module(msg.file), []).append(msg.name)
    out = [
        PY_HEADER.rstrip("\n"),
        '"""Every message type declared in schema/, by its plain name."""',
        "",
    ]
    for module in sorted(by_module):
        out += from_import(f"{GEN_PACKAGE}.{module}", sorted(by_module[module]))
    out += ["", "__all__ = ["]
    out += [f'    "{name}",' for name in sorted(m.name for m in top)]
    out += ["]", ""]
    return "\n".join(out)

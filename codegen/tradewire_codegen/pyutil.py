"""Small helpers for writing Python source that is ruff-clean as generated."""

from __future__ import annotations

import json
import textwrap
from collections import defaultdict

from tradewire_codegen.emit_pb2 import GEN_PACKAGE
from tradewire_codegen.naming import py_module
from tradewire_codegen.schema import MessageInfo

LINE_LENGTH = 100


def py_str(value: str) -> str:
    """A double-quoted Python string literal."""
    return json.dumps(value, ensure_ascii=False)


def py_hex(value: int) -> str:
    """`0x0123_4567_89AB_CDEF` (uppercase digits, as ruff format writes them)."""
    digits = f"{value:016X}"
    return "0x" + "_".join(digits[i : i + 4] for i in range(0, 16, 4))


def docstring(text: str, indent: str) -> list[str]:
    """A docstring as lines (first line, blank, wrapped paragraphs), each with `indent`."""
    paragraphs = [p for p in text.split("\n\n") if p.strip()]
    width = LINE_LENGTH - len(indent)
    if len(paragraphs) == 1 and len(indent) + len(paragraphs[0]) + 6 <= LINE_LENGTH:
        return [f'{indent}"""{paragraphs[0]}"""']
    lines: list[str] = []
    for i, paragraph in enumerate(paragraphs):
        if i:
            lines.append("")
        wrapped = textwrap.wrap(" ".join(paragraph.split()), width=width - (3 if i == 0 else 0))
        lines.extend(wrapped)
    lines[0] = '"""' + lines[0]
    lines.append('"""')
    return [f"{indent}{line}" if line else "" for line in lines]


def from_import(module: str, names: list[str]) -> list[str]:
    """`from module import a, b` on one line, or parenthesized one per line if too long."""
    one = f"from {module} import {', '.join(names)}"
    if len(one) <= LINE_LENGTH:
        return [one]
    return [f"from {module} import (", *(f"    {n}," for n in names), ")"]


class Pb2Modules:
    """Aliases and imports for the `_pb2` modules that define the given messages."""

    def __init__(self, messages: list[MessageInfo]) -> None:
        self._module_of = {m.full_name: py_module(m.file) for m in messages}
        modules = sorted(set(self._module_of.values()))
        base_count: dict[str, int] = defaultdict(int)
        for module in modules:
            base_count[module.rsplit(".", 1)[-1]] += 1
        self._alias = {
            module: (
                module.rsplit(".", 1)[-1]
                if base_count[module.rsplit(".", 1)[-1]] == 1
                else module.replace(".", "_")
            )
            for module in modules
        }

    def ref(self, message: MessageInfo) -> str:
        """`market_data_pb2.MarketData` (nested: `x_pb2.Outer.Inner`)."""
        return f"{self._alias[self._module_of[message.full_name]]}.{'.'.join(message.path)}"

    def imports(self) -> list[str]:
        """The import lines, grouped by package, sorted."""
        by_package: dict[str, list[str]] = defaultdict(list)
        aliased: list[str] = []
        for module, alias in sorted(self._alias.items()):
            package, base = module.rsplit(".", 1)
            if alias == base:
                by_package[package].append(base)
            else:
                aliased.append(f"from {GEN_PACKAGE}.{package} import {base} as {alias}")
        lines: list[str] = []
        for package in sorted(by_package):
            lines += from_import(f"{GEN_PACKAGE}.{package}", sorted(by_package[package]))
        return sorted(lines + aliased) if aliased else lines

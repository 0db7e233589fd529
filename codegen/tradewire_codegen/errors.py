"""Errors raised by the code generator; the CLI prints them and exits non-zero."""

from __future__ import annotations


class CodegenError(Exception):
    """A failure the user can act on (missing tool, protoc error, bad input)."""


class SchemaError(CodegenError):
    """The schema violates tradewire's rules; `problems` holds one line per violation."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems

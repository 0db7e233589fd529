"""Identifier conventions shared by the Python and Rust emitters."""

from __future__ import annotations

import re

_WORD = re.compile(r"[A-Z]+(?=[A-Z][a-z0-9]|$|[^A-Za-z0-9])|[A-Z]?[a-z0-9]+|[A-Z]+")

RUST_KEYWORDS = frozenset(
    {
        "as",
        "async",
        "await",
        "break",
        "const",
        "continue",
        "crate",
        "dyn",
        "else",
        "enum",
        "extern",
        "false",
        "fn",
        "for",
        "if",
        "impl",
        "in",
        "let",
        "loop",
        "match",
        "mod",
        "move",
        "mut",
        "pub",
        "ref",
        "return",
        "self",
        "Self",
        "static",
        "struct",
        "super",
        "trait",
        "true",
        "type",
        "unsafe",
        "use",
        "where",
        "while",
        "abstract",
        "become",
        "box",
        "do",
        "final",
        "macro",
        "override",
        "priv",
        "typeof",
        "unsized",
        "virtual",
        "yield",
        "try",
        "gen",
    }
)


def words(name: str) -> list[str]:
    """Split `MarketData`, `market_data`, `HTTPRequest2` into lowercase words."""
    return [w.lower() for w in _WORD.findall(name)]


def snake(name: str) -> str:
    """`MarketData` -> `market_data`."""
    return "_".join(words(name))


def upper_snake(name: str) -> str:
    """`MarketData` -> `MARKET_DATA`."""
    return snake(name).upper()


def camel(name: str) -> str:
    """`market_data` -> `MarketData`; prost's type naming (`HTTPRequest` -> `HttpRequest`)."""
    return "".join(w[:1].upper() + w[1:] for w in words(name))


def rust_field(name: str) -> str:
    """The prost field identifier for a proto field name (`type` -> `r#type`)."""
    ident = snake(name)
    if ident in {"self", "super", "crate", "Self"}:
        return ident + "_"
    return "r#" + ident if ident in RUST_KEYWORDS else ident


def py_module(proto_file: str) -> str:
    """`tradewire/v1/market_data.proto` -> `tradewire.v1.market_data_pb2` (protoc's rule)."""
    stem = proto_file.removesuffix(".proto")
    return stem.replace("-", "_").replace("/", ".") + "_pb2"

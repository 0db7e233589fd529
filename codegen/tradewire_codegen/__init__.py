"""tradewire's code generator: protobuf schema -> Python and Rust bindings, lock, breaking check."""

from tradewire_codegen.cli import main

__all__ = ["main"]

"""tradewire: protocol-first messaging for Python research and Rust execution."""

__version__ = "0.1.0"

"""Run protoc (grpc_tools, in-process) over a schema directory."""

from __future__ import annotations

import importlib
import importlib.resources
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tradewire_codegen.errors import CodegenError


@dataclass(frozen=True)
class ProtocOutput:
    """What one protoc run produced."""

    descriptor_set: bytes
    """FileDescriptorSet with imports and source info, as protoc wrote it."""
    python: dict[str, bytes]
    """`--python_out` / `--pyi_out` files by path relative to the output root (posix)."""


def proto_files(schema_dir: Path) -> list[str]:
    """All `**/*.proto` under `schema_dir`, as sorted posix paths relative to it."""
    if not schema_dir.is_dir():
        raise CodegenError(f"{schema_dir}: schema directory not found")
    found = sorted(p.relative_to(schema_dir).as_posix() for p in schema_dir.rglob("*.proto"))
    if not found:
        raise CodegenError(f"{schema_dir}: no .proto files")
    return found


def _grpc_tools() -> tuple[Any, Path]:
    try:
        module = importlib.import_module("grpc_tools.protoc")
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise CodegenError(
            f"grpcio-tools is needed for codegen: pip install 'tradewire[codegen]' ({exc})"
        ) from exc
    include = Path(str(importlib.resources.files("grpc_tools") / "_proto"))
    return module, include


def _run(args: list[str]) -> None:
    """Call protoc in-process, capturing what it writes to stderr (fd 2)."""
    module, _ = _grpc_tools()
    with tempfile.TemporaryFile() as err:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(err.fileno(), 2)
        try:
            code = int(module.main(["protoc", *args]))
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        err.seek(0)
        messages = err.read().decode("utf-8", errors="replace").strip()
    if code != 0:
        raise CodegenError(f"protoc failed (exit {code}):\n{messages}")


def run_protoc(schema_dir: Path, *, python: bool) -> ProtocOutput:
    """Compile every proto of `schema_dir` (sorted) into a descriptor set (+ Python if asked)."""
    schema_dir = schema_dir.resolve()
    files = proto_files(schema_dir)
    _, include = _grpc_tools()
    with tempfile.TemporaryDirectory(prefix="tradewire-protoc-") as tmp:
        out = Path(tmp)
        set_path = out / "descriptor_set.binpb"
        py_out = out / "python"
        py_out.mkdir()
        args = [
            f"--proto_path={schema_dir}",
            f"--proto_path={include}",
            "--include_imports",
            "--include_source_info",
            f"--descriptor_set_out={set_path}",
        ]
        if python:
            args += [f"--python_out={py_out}", f"--pyi_out={py_out}"]
        _run([*args, *(str(schema_dir / f) for f in files)])
        generated = {
            p.relative_to(py_out).as_posix(): p.read_bytes()
            for p in sorted(py_out.rglob("*"))
            if p.is_file()
        }
        return ProtocOutput(descriptor_set=set_path.read_bytes(), python=generated)

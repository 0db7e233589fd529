"""Everything `tradewire codegen` produces, as a map of relative path -> bytes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tradewire_codegen.emit_channels import render_channels
from tradewire_codegen.emit_messages import render_messages
from tradewire_codegen.emit_pb2 import python_files
from tradewire_codegen.emit_registry import render_registry
from tradewire_codegen.emit_rust import render_rust_channels
from tradewire_codegen.emit_strategies import render_strategies
from tradewire_codegen.header import PY_HEADER
from tradewire_codegen.schema import load_schema
from tradewire_codegen.tools import prost, rustfmt
from tradewire_codegen.validate import validate

PY_DIR = "src/tradewire/_gen"
RS_DIR = "crates/tradewire/src/gen"
DESCRIPTOR_SET = f"{PY_DIR}/tradewire_v1.binpb"
RS_CHANNELS = f"{RS_DIR}/channels.rs"


@dataclass(frozen=True)
class Options:
    """Where to read the schema and which outputs to build."""

    root: Path
    schema: Path
    prost: bool = True
    cargo_workspace: Path | None = None
    """Workspace to run the prost generator in; defaults to `root`."""

    def label(self) -> str:
        """How error messages name the schema directory."""
        try:
            return self.schema.resolve().relative_to(self.root.resolve()).as_posix()
        except ValueError:
            return str(self.schema)


def _rustfmt_cwd(root: Path) -> Path:
    """The deepest existing directory on the way to the Rust output (for rustfmt.toml lookup)."""
    here = root / RS_DIR
    while not here.is_dir() and here != root:
        here = here.parent
    return here


def generate(opts: Options) -> dict[str, bytes]:
    """Compile, validate and render every output; nothing is written."""
    schema = load_schema(opts.schema.resolve(), python=True)
    validate(schema, opts.label())
    files: dict[str, bytes] = {DESCRIPTOR_SET: schema.descriptor_set}
    for rel, data in python_files(schema.python_out).items():
        files[f"{PY_DIR}/{rel}"] = data
    modules = {
        "__init__.py": PY_HEADER + '"""Code generated from schema/ by `tradewire codegen`."""\n',
        "registry.py": render_registry(schema),
        "messages.py": render_messages(schema),
        "channels.py": render_channels(schema),
        "strategies.py": render_strategies(schema),
    }
    for name, text in modules.items():
        files[f"{PY_DIR}/{name}"] = text.encode("utf-8")
    rust = rustfmt(render_rust_channels(schema), _rustfmt_cwd(opts.root))
    files[RS_CHANNELS] = rust.encode("utf-8")
    if opts.prost:
        workspace = opts.cargo_workspace or opts.root
        for name, data in prost(schema.descriptor_set, workspace).items():
            files[f"{RS_DIR}/{name}"] = data
    return dict(sorted(files.items()))


def managed_files(root: Path, *, prost: bool) -> set[str]:
    """Existing files under the generated paths that codegen owns (for stale/extra checks)."""
    found: set[str] = set()
    py_dir = root / PY_DIR
    if py_dir.is_dir():
        for path in py_dir.rglob("*"):
            rel = path.relative_to(root).as_posix()
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                found.add(rel)
    if (root / RS_CHANNELS).is_file():
        found.add(RS_CHANNELS)
    if prost and (root / RS_DIR).is_dir():
        # prost writes one `<package>.rs` per package: dotted names, unlike hand-written modules
        found |= {p.relative_to(root).as_posix() for p in (root / RS_DIR).glob("*.*.rs")}
    return found

"""Load the contract to compare against: a lock file or the schema at a git ref."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from tradewire_codegen.contract import Contract, extract, read_lock
from tradewire_codegen.errors import CodegenError
from tradewire_codegen.schema import load_schema


def _git(repo: Path, *args: str) -> bytes:
    try:
        proc = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, check=False)
    except FileNotFoundError as exc:
        raise CodegenError("git not found on PATH") from exc
    if proc.returncode != 0:
        stderr = proc.stderr.decode("utf-8", errors="replace").strip()
        raise CodegenError(f"`git {' '.join(args)}` failed: {stderr}")
    return proc.stdout


def schema_at_ref(ref: str, schema_dir: Path) -> Contract:
    """The contract of `schema_dir` as committed at git `ref`."""
    schema_dir = schema_dir.resolve()
    top = Path(_git(schema_dir, "rev-parse", "--show-toplevel").decode().strip()).resolve()
    rel = schema_dir.relative_to(top).as_posix()
    listed = _git(top, "ls-tree", "-r", "--name-only", ref, "--", f"{rel}/").decode("utf-8")
    protos = [p for p in listed.splitlines() if p.endswith(".proto")]
    if not protos:
        raise CodegenError(f"git ref {ref!r} has no .proto files under {rel}/")
    with tempfile.TemporaryDirectory(prefix="tradewire-baseline-") as tmp:
        base = Path(tmp)
        for path in protos:
            target = base / Path(path).relative_to(rel)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(_git(top, "show", f"{ref}:{path}"))
        return extract(load_schema(base))


def load_baseline(against: str, root: Path, schema_dir: Path) -> Contract:
    """`against` is a lock file (`*.json` that exists, relative to `root`) or a git ref."""
    lock = Path(against) if Path(against).is_absolute() else root / against
    if against.endswith(".json") and lock.is_file():
        return read_lock(lock)
    try:
        return schema_at_ref(against, schema_dir)
    except CodegenError as exc:
        hint = " (no such lock file either)" if against.endswith(".json") else ""
        raise CodegenError(f"--against {against}{hint}: {exc}") from exc

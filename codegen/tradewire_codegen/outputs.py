"""Write generated files into a tree, or compare them with what is there."""

from __future__ import annotations

import difflib
from pathlib import Path

DIFF_HEAD = 20


def write_outputs(root: Path, files: dict[str, bytes], existing: set[str]) -> list[str]:
    """Write changed files, delete stale generated ones; return the paths touched."""
    touched: list[str] = []
    for rel, data in files.items():
        path = root / rel
        if path.is_file() and path.read_bytes() == data:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        touched.append(rel)
    for rel in sorted(existing - files.keys()):
        (root / rel).unlink()
        touched.append(rel)
        parent = (root / rel).parent
        while parent != root and parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()
            parent = parent.parent
    return touched


def _diff_head(rel: str, old: bytes, new: bytes) -> list[str]:
    try:
        old_text, new_text = old.decode("utf-8"), new.decode("utf-8")
    except UnicodeDecodeError:
        return [f"    (binary: {len(old)} bytes committed, {len(new)} bytes generated)"]
    diff = list(
        difflib.unified_diff(
            old_text.splitlines(),
            new_text.splitlines(),
            f"{rel} (committed)",
            f"{rel} (generated)",
            lineterm="",
            n=1,
        )
    )
    head = [f"    {line}" for line in diff[:DIFF_HEAD]]
    if len(diff) > DIFF_HEAD:
        head.append(f"    ... ({len(diff) - DIFF_HEAD} more diff lines)")
    return head


def compare_outputs(root: Path, files: dict[str, bytes], existing: set[str]) -> list[str]:
    """Report lines for every stale, missing or extra file; empty when all match."""
    report: list[str] = []
    for rel, data in files.items():
        path = root / rel
        if not path.is_file():
            report.append(f"missing: {rel}")
            continue
        current = path.read_bytes()
        if current != data:
            report.append(f"stale: {rel}")
            report += _diff_head(rel, current, data)
    for rel in sorted(existing - files.keys()):
        report.append(f"extra: {rel} (not generated from the schema)")
    return report

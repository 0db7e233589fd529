"""Generated clients carry their message types: mypy --strict accepts correct consumers and
rejects wrong message types, fields and field types."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent / "typecheck"


def _mypy(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(path)],
        capture_output=True,
        text=True,
        cwd=HERE,
    )


@pytest.mark.slow
def test_correct_consumer_passes_mypy_strict() -> None:
    result = _mypy(HERE / "consumer_ok.py")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_wrong_types_are_reported_on_each_marked_line() -> None:
    source = (HERE / "consumer_bad.py").read_text().splitlines()
    marked = {i + 1 for i, line in enumerate(source) if "# E:" in line}
    result = _mypy(HERE / "consumer_bad.py")
    assert result.returncode == 1
    flagged = {int(m) for m in re.findall(r"consumer_bad\.py:(\d+): error", result.stdout)}
    assert marked <= flagged, result.stdout

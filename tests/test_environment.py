"""The Python environment is the one uv.lock pins, and a stale lock is reported.

`make venv` (.ci/python-env) installs exactly what uv.lock says; these tests check the result
in the interpreter running them, so a hand-installed or cached version cannot pass unseen.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]


def _uv() -> str:
    uv = Path(sys.prefix) / "bin" / "uv"
    if not uv.exists():
        pytest.fail(f"uv is not in {sys.prefix}: the environment was not made by `make venv`")
    return str(uv)


def _locked_for_this_interpreter() -> dict[str, str]:
    """name -> version of every package uv.lock installs here (all extras, dev group)."""
    out = subprocess.run(
        [_uv(), "export", "--frozen", "--all-extras", "--no-hashes", "--no-emit-project",
         "--no-header", "--no-annotate"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    pins: dict[str, str] = {}
    for line in out.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", "-")):
            continue
        req = Requirement(line)
        if req.marker is not None and not req.marker.evaluate():
            continue
        (spec,) = req.specifier
        assert spec.operator == "==", f"uv export gave a range, not a pin: {line}"
        pins[canonicalize_name(req.name)] = spec.version
    return pins


def test_every_locked_package_is_installed_at_its_locked_version() -> None:
    pins = _locked_for_this_interpreter()
    # torch and its CUDA libraries are pinned for Linux only: the marker filter keeps them here
    assert len(pins) > 50 and "torch" in pins, f"uv export listed only: {sorted(pins)}"
    wrong = {}
    for name, version in pins.items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            installed = "missing"
        if installed.split("+")[0] != version.split("+")[0]:
            wrong[name] = f"locked {version}, installed {installed}"
    assert not wrong, f"run `make venv`: {wrong}"


def test_lock_matches_pyproject() -> None:
    result = subprocess.run(
        [_uv(), "lock", "--check", "--offline"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, f"uv.lock is stale, run `make lock`:\n{result.stderr}"


def test_a_stale_lock_fails_the_install_and_names_the_fix(tmp_path: Path) -> None:
    """pyproject.toml changed, uv.lock not: .ci/python-env stops before installing anything."""
    (tmp_path / ".ci").mkdir()
    shutil.copy(ROOT / ".ci" / "python-env", tmp_path / ".ci" / "python-env")
    shutil.copy(ROOT / "uv.lock", tmp_path / "uv.lock")
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert '  "rich>=13",\n' in pyproject
    (tmp_path / "pyproject.toml").write_text(pyproject.replace('  "rich>=13",\n', ""))
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "uv").symlink_to(_uv())  # the locked uv: no bootstrap download
    result = subprocess.run(
        ["bash", str(tmp_path / ".ci" / "python-env")],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
        env={**os.environ, "VENV": str(venv), "UV_OFFLINE": "1"},
    )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    assert "uv.lock is out of date with pyproject.toml: run `make lock`" in result.stderr
    assert sorted(p.name for p in venv.iterdir()) == ["bin"], "it installed into the venv"

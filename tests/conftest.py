"""Shared fixtures: the repository root and the Rust binaries the tests talk to."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def rust_bin_dir() -> Path:
    """target/release with the workspace binaries built (cargo is quick when up to date).
    Set TRADEWIRE_BIN_DIR to test prebuilt binaries of your own."""
    if env_dir := os.environ.get("TRADEWIRE_BIN_DIR"):
        return Path(env_dir)
    if shutil.which("cargo") is None:
        pytest.fail("cargo is needed to build the Rust peer binaries (or set TRADEWIRE_BIN_DIR)")
    subprocess.run(
        ["cargo", "build", "--release", "--locked", "-p", "tradewire", "--bins"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    return ROOT / "target" / "release"

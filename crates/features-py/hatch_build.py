"""Hatchling build hook: compile the PyO3 extension `tradewire._features` with cargo.

Why not maturin as the build backend: maturin's editable install puts exactly one directory
(`python-source`) on sys.path, but the wheel also ships `codegen/tradewire_codegen` as a
top-level package, which must stay importable (and editable) from codegen/. Hatchling
already does that; this hook adds the extension:

* wheel: `cargo build --release -p tradewire-features-py`, shipped as
  `tradewire/_features.abi3.so` (abi3, CPython >= 3.11), wheel tagged cp311-abi3-<platform>;
* editable (`pip install -e .`): the same library copied next to the sources
  (`src/tradewire/_features.abi3.so`, git-ignored), so the editable path finds it.

Re-run `pip install -e .` after changing crates/features or crates/features-py.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

CRATE = "tradewire-features-py"
LIB = {"linux": "lib_features.so", "darwin": "lib_features.dylib", "win32": "_features.dll"}
EXT = "_features.pyd" if sys.platform == "win32" else "_features.abi3.so"


class FeaturesExtensionHook(BuildHookInterface):  # type: ignore[misc]
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        root = Path(self.root)
        cargo = shutil.which("cargo") or str(Path.home() / ".cargo" / "bin" / "cargo")
        if not Path(cargo).exists() and shutil.which("cargo") is None:
            raise RuntimeError("cargo not found: install Rust (rustup) to build tradewire._features")
        env = dict(os.environ, PYO3_PYTHON=sys.executable)
        cmd = [
            cargo, "build", "--release", "-p", CRATE,
            "--features", "pyo3/extension-module",
            "--manifest-path", str(root / "Cargo.toml"),
        ]
        subprocess.run(cmd, cwd=root, env=env, check=True)
        target = Path(env.get("CARGO_TARGET_DIR", root / "target"))
        built = target / "release" / LIB.get(sys.platform, LIB["linux"])
        if not built.exists():
            raise RuntimeError(f"cargo did not produce {built}")

        if version == "editable":
            dest = root / "src" / "tradewire" / EXT
            tmp = dest.with_suffix(".tmp")
            shutil.copyfile(built, tmp)
            os.replace(tmp, dest)
        else:
            build_data["force_include"][str(built)] = f"tradewire/{EXT}"
        build_data["pure_python"] = False
        plat = sysconfig.get_platform().replace("-", "_").replace(".", "_")
        build_data["tag"] = f"cp311-abi3-{plat}"

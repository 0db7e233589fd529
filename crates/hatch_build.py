"""Hatchling build hook: compile the PyO3 extensions with cargo:
`tradewire._features` (crates/features-py), `tradewire._wire` (crates/wire-py) and
`tradewire._rules` (crates/rules-py).

Why not maturin as the build backend: maturin's editable install puts exactly one directory
(`python-source`) on sys.path, but the wheel also ships `codegen/tradewire_codegen` as a
top-level package, which must stay importable (and editable) from codegen/. Hatchling
already does that; this hook adds the extension:

* wheel: `cargo build --release -p tradewire-features-py -p tradewire-wire-py
  -p tradewire-rules-py`, shipped as `tradewire/_features.abi3.so`, `tradewire/_wire.abi3.so`
  and `tradewire/_rules.abi3.so` (abi3, CPython >= 3.11), wheel tagged cp311-abi3-<platform>;
* editable (`pip install -e .`): the same libraries copied next to the sources
  (`src/tradewire/*.abi3.so`, git-ignored), so the editable path finds them.

Re-run `pip install -e .` (or `make venv`) after changing the crates behind them.
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

EXTENSIONS = {  # crate: module
    "tradewire-features-py": "_features",
    "tradewire-wire-py": "_wire",
    "tradewire-rules-py": "_rules",
}


def _built_name(module: str) -> str:
    return {"darwin": f"lib{module}.dylib", "win32": f"{module}.dll"}.get(
        sys.platform, f"lib{module}.so"
    )


def _installed_name(module: str) -> str:
    return f"{module}.pyd" if sys.platform == "win32" else f"{module}.abi3.so"


class FeaturesExtensionHook(BuildHookInterface):  # type: ignore[misc]
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        root = Path(self.root)
        cargo = shutil.which("cargo") or str(Path.home() / ".cargo" / "bin" / "cargo")
        if not Path(cargo).exists() and shutil.which("cargo") is None:
            raise RuntimeError(
                "cargo not found: install Rust (rustup) to build tradewire's extensions"
            )
        env = dict(os.environ, PYO3_PYTHON=sys.executable)
        packages = [arg for crate in EXTENSIONS for arg in ("-p", crate)]
        cmd = [
            cargo,
            "build",
            "--release",
            *packages,
            "--locked",
            "--features",
            "pyo3/extension-module",
            "--manifest-path",
            str(root / "Cargo.toml"),
        ]
        subprocess.run(cmd, cwd=root, env=env, check=True)
        target = Path(env.get("CARGO_TARGET_DIR", root / "target"))
        for module in EXTENSIONS.values():
            built = target / "release" / _built_name(module)
            if not built.exists():
                raise RuntimeError(f"cargo did not produce {built}")
            if version == "editable":
                dest = root / "src" / "tradewire" / _installed_name(module)
                tmp = dest.with_suffix(".tmp")
                shutil.copyfile(built, tmp)
                os.replace(tmp, dest)
            else:
                build_data["force_include"][str(built)] = f"tradewire/{_installed_name(module)}"
        build_data["pure_python"] = False
        plat = sysconfig.get_platform().replace("-", "_").replace(".", "_")
        build_data["tag"] = f"cp311-abi3-{plat}"

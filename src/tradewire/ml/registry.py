"""Model registry (seed §7.2), made safe; read by Python and by Rust (signal-bridge).

One JSON file, ``<root>/registry.json``, next to the model files it lists::

    {
      "format": "tradewire.model-registry/1",
      "latest": 2,
      "pins": {"production": 1},
      "models": [
        {"version": 1, "name": "strategy", "file": "strategy-v1.onnx",
         "sha256": "<hex of the file>", "feature_names": ["rsi", ...],
         "input": "features", "output": "signal_probabilities",
         "classes": ["buy", "hold", "sell"], "created_at": "<ISO 8601 UTC>",
         "metadata": {...}}
      ]
    }

* ``file`` is relative to the registry directory (the registry can be moved or mounted).
* Registering copies the model into the registry under a new version number; versions
  are never rewritten. The registry file and model files are written atomically
  (temp file + fsync + rename) under an exclusive lock, so a reader never sees a partial
  file and concurrent registrations do not lose entries.
* Loading resolves ``"latest"``, a version number (``3`` / ``"3"`` / ``"v3"``) or a pin
  name, then checks the file's sha256 and that the stored feature names equal the
  caller's (tradewire.features.FEATURE_NAMES by default) before any inference.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from tradewire import features as tf
from tradewire.ml.data import CLASSES
from tradewire.ml.export import INPUT_NAME, META_FEATURES, OUTPUT_NAME, atomic_write_bytes

FORMAT: Final = "tradewire.model-registry/1"
REGISTRY_FILE: Final = "registry.json"


class RegistryError(Exception):
    """The registry or a requested model is unusable."""


class IntegrityError(RegistryError):
    """A model file does not match the sha256 recorded in the registry."""


class FeatureMismatchError(RegistryError):
    """A model was trained on other features (or another order) than the caller computes."""


@dataclass(frozen=True)
class ModelEntry:
    version: int
    name: str
    path: Path  # absolute
    sha256: str
    feature_names: tuple[str, ...]
    classes: tuple[str, ...] = CLASSES
    input: str = INPUT_NAME
    output: str = OUTPUT_NAME
    created_at: str = ""
    metadata: Mapping[str, Any] = field(default_factory=dict)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def check_feature_names(stored: Sequence[str], expected: Sequence[str], what: str) -> None:
    if tuple(stored) != tuple(expected):
        raise FeatureMismatchError(
            f"{what} was trained on features {list(stored)}, "
            f"but the caller computes {list(expected)}"
        )


class ModelRegistry:
    def __init__(self, root: str | os.PathLike[str] = "models") -> None:
        self.root = Path(root)
        self.file = self.root / REGISTRY_FILE

    # ---- reading ----

    def _read(self) -> dict[str, Any]:
        if not self.file.exists():
            return {"format": FORMAT, "latest": None, "pins": {}, "models": []}
        try:
            data = json.loads(self.file.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise RegistryError(f"{self.file} is not valid JSON: {e}") from e
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise RegistryError(f"{self.file}: unknown registry format (want {FORMAT!r})")
        return data

    def _entry(self, raw: Mapping[str, Any]) -> ModelEntry:
        return ModelEntry(
            version=int(raw["version"]),
            name=str(raw["name"]),
            path=self.root / str(raw["file"]),
            sha256=str(raw["sha256"]),
            feature_names=tuple(raw["feature_names"]),
            classes=tuple(raw.get("classes", CLASSES)),
            input=str(raw.get("input", INPUT_NAME)),
            output=str(raw.get("output", OUTPUT_NAME)),
            created_at=str(raw.get("created_at", "")),
            metadata=dict(raw.get("metadata", {})),
        )

    def entries(self) -> list[ModelEntry]:
        return [self._entry(m) for m in self._read()["models"]]

    def pins(self) -> dict[str, int]:
        return {str(k): int(v) for k, v in self._read()["pins"].items()}

    def resolve(self, spec: str | int = "latest") -> ModelEntry:
        """`"latest"`, a version (3, "3", "v3") or a pin name -> its entry (unverified)."""
        data = self._read()
        by_version = {int(m["version"]): m for m in data["models"]}
        if spec == "latest":
            if data.get("latest") is None:
                raise RegistryError(f"{self.file}: no model registered")
            version = int(data["latest"])
        elif isinstance(spec, int) or spec.lstrip("v").isdigit():
            version = int(spec) if isinstance(spec, int) else int(spec.lstrip("v"))
        elif spec in data["pins"]:
            version = int(data["pins"][spec])
        else:
            raise RegistryError(f"{self.file}: no pin or version {spec!r}")
        if version not in by_version:
            raise RegistryError(f"{self.file}: no model version {version}")
        return self._entry(by_version[version])

    def load(
        self, spec: str | int = "latest", expected_features: Sequence[str] = tf.FEATURE_NAMES
    ) -> ModelEntry:
        """Resolve and verify: sha256 of the file and feature names/order."""
        entry = self.resolve(spec)
        if not entry.path.exists():
            raise RegistryError(f"model file {entry.path} (version {entry.version}) is missing")
        digest = sha256_file(entry.path)
        if digest != entry.sha256:
            raise IntegrityError(
                f"{entry.path}: sha256 {digest} != registered {entry.sha256} "
                f"(version {entry.version}); refusing to load"
            )
        check_feature_names(entry.feature_names, expected_features, f"model v{entry.version}")
        return entry

    def session(
        self, spec: str | int = "latest", expected_features: Sequence[str] = tf.FEATURE_NAMES
    ) -> Any:
        """A verified onnxruntime.InferenceSession (registry and embedded names checked)."""
        ort: Any = importlib.import_module("onnxruntime")  # untyped; imported only to infer

        entry = self.load(spec, expected_features)
        sess = ort.InferenceSession(str(entry.path), providers=["CPUExecutionProvider"])
        embedded = sess.get_modelmeta().custom_metadata_map.get(META_FEATURES)
        if embedded is not None:
            check_feature_names(json.loads(embedded), expected_features, str(entry.path))
        return sess

    # ---- writing ----

    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, Any]]:
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / ".registry.lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                data = self._read()
                yield data
                payload = json.dumps(data, indent=2, sort_keys=False) + "\n"
                atomic_write_bytes(self.file, payload.encode("utf-8"))
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def register(
        self,
        model_file: str | os.PathLike[str],
        *,
        name: str = "strategy",
        feature_names: Sequence[str] = tf.FEATURE_NAMES,
        metadata: Mapping[str, Any] | None = None,
        make_latest: bool = True,
    ) -> ModelEntry:
        """Copy `model_file` into the registry as the next version and record it."""
        if not name or not all(c.isalnum() or c in "-_" for c in name):
            raise RegistryError(f"model name {name!r}: use letters, digits, '-' and '_'")
        blob = Path(model_file).read_bytes()
        with self._locked() as data:
            version = max((int(m["version"]) for m in data["models"]), default=0) + 1
            file = f"{name}-v{version}.onnx"
            atomic_write_bytes(self.root / file, blob)
            raw = {
                "version": version,
                "name": name,
                "file": file,
                "sha256": hashlib.sha256(blob).hexdigest(),
                "feature_names": list(feature_names),
                "input": INPUT_NAME,
                "output": OUTPUT_NAME,
                "classes": list(CLASSES),
                "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "metadata": dict(metadata or {}),
            }
            data["models"].append(raw)
            if make_latest:
                data["latest"] = version
        return self._entry(raw)

    def pin(self, pin: str, version: int) -> None:
        """Name a version (e.g. "production"); pins resolve like versions."""
        if pin == "latest" or pin.lstrip("v").isdigit():
            raise RegistryError(f"pin name {pin!r} would shadow a version or 'latest'")
        with self._locked() as data:
            if version not in {int(m["version"]) for m in data["models"]}:
                raise RegistryError(f"no model version {version}")
            data["pins"][pin] = version

    def set_latest(self, version: int) -> None:
        """Point `latest` at an existing version (promote or roll back)."""
        with self._locked() as data:
            if version not in {int(m["version"]) for m in data["models"]}:
                raise RegistryError(f"no model version {version}")
            data["latest"] = version

"""Every conformance case, in run order."""

from __future__ import annotations

import json
from pathlib import Path

from tradewire.conformance.cases import codec, evolution, latency, transport
from tradewire.conformance.context import Case


def all_cases(conformance_dir: Path) -> list[Case]:
    vectors = conformance_dir / "vectors"
    unknown = []
    for path in sorted(vectors.glob("*.json")):
        if path.name != "envelope.json":
            for vec in json.loads(path.read_text())["cases"]:
                if "known_only_hex" in vec:
                    unknown.append(bytes.fromhex(vec["envelope_hex"]))
    out = [
        *codec.cases(vectors),
        *evolution.cases(conformance_dir / "schema_v2" / "tradewire_v2.binpb"),
        *transport.cases(unknown),
        *latency.cases(),
    ]
    names = [c.name for c in out]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise RuntimeError(f"duplicate case names: {sorted(dup)}")
    return out

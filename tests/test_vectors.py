"""Every golden message vector decodes and re-encodes in Python as the rules say."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.message import Message

from tradewire import wire
from tradewire._gen import registry

ROOT = Path(__file__).resolve().parents[1]
VECTORS = ROOT / "conformance" / "vectors"
BY_NAME = {t.full_name: t for t in registry.MESSAGE_TYPES}


def _message_cases() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for path in sorted(VECTORS.glob("*.json")):
        body = json.loads(path.read_text())
        if "message" in body:
            out += [(body["message"], case) for case in body["cases"]]
    return out


CASES = _message_cases()


def test_every_message_type_has_vectors() -> None:
    assert {name for name, _ in CASES} == set(BY_NAME)


@pytest.mark.parametrize(
    ("message", "case"), CASES, ids=[f"{m.split('.')[-1]}.{c['name']}" for m, c in CASES]
)
def test_vector_roundtrips_in_python(message: str, case: dict[str, Any]) -> None:
    cls: type[Message] = BY_NAME[message].cls
    payload = bytes.fromhex(case["payload_hex"])
    decoded = cls.FromString(payload)
    again = decoded.SerializeToString()
    if case["canonical"]:
        # Unknown fields survive decode -> encode in Python, so this holds for them too.
        assert again == payload
    else:
        assert _same(cls.FromString(again), decoded)
    if "known_only_hex" in case:
        assert again != bytes.fromhex(case["known_only_hex"])
        stripped = cls.FromString(payload)
        stripped.DiscardUnknownFields()
        assert stripped.SerializeToString() == bytes.fromhex(case["known_only_hex"])
    env = wire.decode_frame(bytes.fromhex(case["envelope_hex"]))
    assert env.payload == payload
    assert env.type_id == BY_NAME[message].type_id
    assert env.fingerprint == BY_NAME[message].fingerprint
    assert env.encode().hex() == case["envelope_hex"]


def _same(a: Message, b: Message) -> bool:
    """Equality that treats NaN as equal to NaN (protobuf's == does not)."""
    for field in a.DESCRIPTOR.fields:
        x, y = getattr(a, field.name), getattr(b, field.name)
        if isinstance(x, float) and math.isnan(x):
            if not (isinstance(y, float) and math.isnan(y)):
                return False
        elif hasattr(x, "items"):
            if dict(x.items()) != dict(y.items()):
                return False
        elif x != y:
            return False
    return True


def test_vectors_cover_the_edge_cases_the_spec_lists() -> None:
    names = {c["name"] for _, c in CASES}
    for required in (
        "defaults",
        "int64_min",
        "int64_max",
        "int_negative",
        "double_nan",
        "double_pos_inf",
        "double_neg_inf",
        "double_neg_zero",
        "unicode_strings",
        "empty_strings_others_set",
        "unknown_fields",
    ):
        assert required in names
    assert any(n.startswith("map_") for n in names)
    assert any(n.startswith("unknown_enum_") for n in names)


def test_committed_vectors_are_what_the_generator_writes() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "conformance" / "generate_vectors.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr

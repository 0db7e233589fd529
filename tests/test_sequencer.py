"""The sequencer case table (conformance/vectors/sequencer/cases.json) through the Python
binding of the Rust sequencer; crates/tradewire/tests/sequencer_cases.rs runs the same
table in Rust."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tradewire._wire import Sequencer

TABLE = Path(__file__).parent.parent / "conformance" / "vectors" / "sequencer" / "cases.json"
MS = 1_000_000


def load() -> dict[str, Any]:
    table: dict[str, Any] = json.loads(TABLE.read_text())
    return table


def run(case: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """Feeds a case's steps; returns what came out, in the table's form."""
    options = {**defaults, **case.get("options", {})}
    seq = Sequencer(
        start=options["start"],
        recover=options["recover"],
        replay_timeout=options["replay_timeout_ms"] / 1000,
        plausible_jump=options["plausible_jump"],
    )
    delivered: list[str] = []
    asks: list[list[Any]] = []
    events: list[list[Any]] = []
    for step in case["steps"]:
        op, now = step["op"], step.get("t", 0) * MS
        if op == "handshake":
            targets = [(k, n) for k, n in step["targets"]]
            seq.handshake(step["pid"], targets, step["newer"], now)
        elif op == "heartbeat":
            seq.heartbeat(step["pid"], [(k, n) for k, n in step["targets"]], now)
        elif op in ("data", "replayed"):
            item = step.get("id", f"{step['pid']:x}:{step['key']}:{step['n']}")
            feed = seq.data if op == "data" else seq.replayed
            if feed(step["pid"], step["key"], step["n"], item, now) == 0:
                delivered.append(item)
        elif op == "end":
            seq.replay_end(
                step["by"],
                step["pid"],
                step["key"],
                step["from"],
                step["to"],
                step["unknown"],
                step["last_seq"],
                now,
            )
        elif op == "timer":
            seq.timer(now)
        else:
            raise ValueError(f"unknown op {op!r} in case {case['name']}")
        delivered += seq.take_ready()
        asks += [list(a) for a in seq.take_asks()]
        events += [list(e[:5]) for e in seq.take_events()]
    stats = {k: v for k, v in seq.stats().items() if v}
    return {"delivered": delivered, "asks": asks, "events": events, "stats": stats}


TABLE_DATA = load()


@pytest.mark.parametrize("case", TABLE_DATA["cases"], ids=lambda c: c["name"])
def test_sequencer_case(case: dict[str, Any]) -> None:
    got = run(case, TABLE_DATA["defaults"])
    assert got == case["expect"], case["description"]


def test_forged_frames_never_reach_the_application() -> None:
    for case in TABLE_DATA["cases"]:
        assert "forged" not in run(case, TABLE_DATA["defaults"])["delivered"], case["name"]

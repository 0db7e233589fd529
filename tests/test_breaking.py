"""tradewire codegen breaking: each wire rule on deliberate edits of a tmp schema copy."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from tradewire_codegen import main

ROOT = Path(__file__).resolve().parents[1]
V1 = "schema/tradewire/v1"


def run(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


class Project:
    """A tmp copy of schema/ with a baseline lock of it."""

    def __init__(self, root: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.root = root
        self.capsys = capsys
        shutil.copytree(ROOT / "schema", root / "schema")
        self.lock()

    def lock(self) -> None:
        assert run(self.capsys, "lock", "--root", self.root, "--out", "base.lock.json")[0] == 0

    def edit(self, file: str, old: str, new: str) -> None:
        edit(self.root / V1 / file, old, new)

    def breaking(self, against: str = "base.lock.json") -> tuple[int, list[dict[str, Any]]]:
        code, out, _ = run(
            self.capsys, "breaking", "--root", self.root, "--against", against, "--json"
        )
        return code, json.loads(out)

    def lines(self, against: str = "base.lock.json") -> tuple[int, str]:
        code, out, _ = run(self.capsys, "breaking", "--root", self.root, "--against", against)
        return code, out


@pytest.fixture
def project(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Project:
    return Project(tmp_path, capsys)


def rules(violations: list[dict[str, Any]]) -> set[tuple[str, str, str | None, int | None]]:
    return {(v["rule"], v["message"], v["field"], v["number"]) for v in violations}


def test_unchanged_schema_passes(project: Project) -> None:
    code, out = project.lines()
    assert code == 0
    assert out.strip() == "no breaking changes against base.lock.json"
    assert project.breaking() == (0, [])


def test_current_schema_passes_against_committed_lock(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys, "breaking", "--root", ROOT, "--against", "schema/tradewire.lock.json"
    )
    assert code == 0, out


def test_deleted_field(project: Project) -> None:
    project.edit("market_data.proto", "double price = 2;", "")
    code, out = project.lines()
    assert code == 1
    assert (
        "tradewire/v1/market_data.proto: tradewire.v1.MarketData.price (2): field deleted "
        "without reserving its number"
    ) in out.splitlines()
    code, violations = project.breaking()
    assert violations == [
        {
            "file": "tradewire/v1/market_data.proto",
            "message": "tradewire.v1.MarketData",
            "field": "price",
            "number": 2,
            "rule": "field_deleted",
            "detail": "field deleted without reserving its number",
        }
    ]


def test_deleted_field_with_reserved_number_passes(project: Project) -> None:
    project.edit("market_data.proto", "double price = 2;", "reserved 2;")
    assert project.breaking() == (0, [])


def test_changed_type_double_to_string(project: Project) -> None:
    project.edit("market_data.proto", "double price = 2;", "string price = 2;")
    code, violations = project.breaking()
    assert code == 1
    assert rules(violations) == {("wire_type_changed", "tradewire.v1.MarketData", "price", 2)}
    assert "double (i64) to string (len)" in violations[0]["detail"]


def test_reused_reserved_number(project: Project) -> None:
    project.edit("market_data.proto", "double price = 2;", "reserved 2;")
    project.lock()  # baseline now reserves 2
    project.edit("market_data.proto", "reserved 2;", "string note = 2;")
    code, violations = project.breaking()
    assert code == 1
    assert rules(violations) == {("reserved_number_reused", "tradewire.v1.MarketData", "note", 2)}


def test_number_reused_with_other_name_and_type(project: Project) -> None:
    project.edit("market_data.proto", "string exchange = 5;", "int64 venue_id = 5;")
    assert rules(project.breaking()[1]) == {
        ("field_number_reused", "tradewire.v1.MarketData", "exchange", 5)
    }


def test_rename_only_is_not_breaking(project: Project) -> None:
    project.edit("market_data.proto", "string exchange = 5;", "string venue = 5;")
    assert project.breaking() == (0, [])


def test_incompatible_changes_within_a_wire_type(project: Project) -> None:
    project.edit("market_data.proto", "int64 timestamp_us = 4;", "sint64 timestamp_us = 4;")
    project.edit("market_data.proto", "string symbol = 1;", "repeated string symbol = 1;")
    project.edit("signals.proto", "SignalType signal = 2;", "int32 signal = 2;")
    project.edit(
        "signals.proto", "map<string, double> features = 5;", "map<string, float> features = 5;"
    )
    project.edit("heartbeat.proto", "uint64 last_seq = 2;", "int64 last_seq = 2;")  # compatible
    assert rules(project.breaking()[1]) == {
        ("type_changed", "tradewire.v1.MarketData", "timestamp_us", 4),
        ("label_changed", "tradewire.v1.MarketData", "symbol", 1),
        ("type_changed", "tradewire.v1.TradingSignal", "signal", 2),
        ("type_changed", "tradewire.v1.TradingSignal", "features", 5),
    }


def test_deleted_enum_value(project: Project) -> None:
    project.edit("commands.proto", "KILL_SWITCH = 3;", "")
    code, out = project.lines()
    assert code == 1
    assert (
        "tradewire/v1/commands.proto: tradewire.v1.StrategyCommand.CommandType.KILL_SWITCH (3):"
        " enum value deleted without reserving its number or name"
    ) in out


@pytest.mark.parametrize("reservation", ["reserved 3;", 'reserved "KILL_SWITCH";'])
def test_deleted_enum_value_with_reservation_passes(project: Project, reservation: str) -> None:
    project.edit("commands.proto", "KILL_SWITCH = 3;", reservation)
    assert project.breaking() == (0, [])


def test_deleted_enum_and_message(project: Project) -> None:
    project.edit("signals.proto", "SignalType signal = 2;", "reserved 2;")
    text = (project.root / V1 / "signals.proto").read_text()
    start = text.index("  // What the model suggests doing.")
    end = text.index("  }\n", start) + 4
    (project.root / V1 / "signals.proto").write_text(text[:start] + text[end:])
    heartbeat = project.root / V1 / "heartbeat.proto"
    text = heartbeat.read_text()
    heartbeat.write_text(text[: text.index("// Sent by a publisher")])
    assert rules(project.breaking()[1]) == {
        ("enum_deleted", "tradewire.v1.TradingSignal.SignalType", None, None),
        ("message_deleted", "tradewire.v1.Heartbeat", None, None),
    }


def test_changed_and_removed_type_id(project: Project) -> None:
    project.edit("heartbeat.proto", "type_id) = 7", "type_id) = 8")
    project.edit("execution.proto", "option (tradewire.v1.type_id) = 4;", "")
    assert rules(project.breaking()[1]) == {
        ("type_id_changed", "tradewire.v1.Heartbeat", None, None),
        ("type_id_removed", "tradewire.v1.Position", None, None),
    }


def test_removed_and_changed_channels(project: Project) -> None:
    path = project.root / V1 / "channels.proto"
    text = path.read_text()
    start = text.index('option (tradewire.v1.channel) = {\n  name: "orders"')
    end = text.index("};\n", start) + 3
    path.write_text(text[:start] + text[end:])
    project.edit(
        "channels.proto",
        'message: "tradewire.v1.Position"\n  pattern: PUB_SUB\n  key_field: "symbol"',
        'message: "tradewire.v1.Position"\n  pattern: PUB_SUB\n  key_field: ""',
    )
    code, out = project.lines()
    assert code == 1
    lines = out.splitlines()
    assert "tradewire/v1/channels.proto: channel orders: channel removed" in lines
    assert (
        "tradewire/v1/channels.proto: channel positions: key_field changed from 'symbol' to ''"
    ) in lines


def test_against_a_git_ref(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if shutil.which("git") is None:
        pytest.skip("git not installed")
    repo = tmp_path / "repo"
    shutil.copytree(ROOT / "schema", repo / "schema")
    (repo / "schema/tradewire.lock.json").unlink(missing_ok=True)
    (repo / "README").write_text("not a proto\n")

    def git(*args: str) -> None:
        subprocess.run(
            [
                "git",
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@example.com",
                "-c",
                "commit.gpgsign=false",
                *args,
            ],
            cwd=repo,
            check=True,
            capture_output=True,
        )

    git("init", "-q")
    git("add", ".")
    git("commit", "-q", "-m", "baseline")
    code, out, _ = run(capsys, "breaking", "--root", repo, "--against", "HEAD")
    assert (code, out.strip()) == (0, "no breaking changes against HEAD")

    edit(repo / V1 / "market_data.proto", "double price = 2;", "")
    edit(repo / V1 / "heartbeat.proto", "type_id) = 7", "type_id) = 9")
    code, out, _ = run(capsys, "breaking", "--root", repo, "--against", "HEAD")
    assert code == 1
    lines = out.splitlines()
    assert (
        "tradewire/v1/market_data.proto: tradewire.v1.MarketData.price (2): field deleted "
        "without reserving its number"
    ) in lines
    assert (
        "tradewire/v1/heartbeat.proto: tradewire.v1.Heartbeat: type_id changed from 7 to 9" in lines
    )

    code, _, err = run(capsys, "breaking", "--root", repo, "--against", "no-such-ref")
    assert code == 1
    assert "--against no-such-ref" in err

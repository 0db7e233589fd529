"""The conformance suite against tradewire's own reference testees.

- the matrix (Python runner x Python testee, x Rust testee) passes with the committed
  failure lists;
- every deliberate breakage of the Python testee (`--break MODE`) is caught by the case
  named for it;
- failure lists cannot go stale: a listed case that passes, or a listed name that is no
  case, fails the run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from tradewire.cli import main as cli_main
from tradewire.conformance import runner
from tradewire.conformance.cases import all_cases

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conformance"
PY_TESTEE = f"{sys.executable} -m tradewire.conformance.testee"


@pytest.fixture(scope="module")
def rust_testee() -> str:
    name = "tradewire-conformance-testee"
    env_dir = os.environ.get("TRADEWIRE_BIN_DIR")
    if env_dir and (Path(env_dir) / name).exists():
        return str(Path(env_dir) / name)
    if shutil.which("cargo") is None:
        pytest.fail("cargo is needed to build the Rust testee (or set TRADEWIRE_BIN_DIR)")
    subprocess.run(
        ["cargo", "build", "--release", "--locked", "-p", "conformance-testee"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    return str(ROOT / "target" / "release" / name)


def _run(testee: str, *patterns: str, failure_list: Path | None = None) -> runner.Report:
    return runner.run(
        testee,
        conformance_dir=CONF,
        patterns=list(patterns),
        budgets=CONF / "budgets.toml",
        failure_list=failure_list,
    )


def _explain(report: runner.Report) -> str:
    return "\n" + runner.table(report)


def test_case_names_and_levels() -> None:
    cases = all_cases(CONF)
    names = [c.name for c in cases]
    assert len(names) == len(set(names))
    categories = {c.category for c in cases}
    assert {"Codec", "Envelope", "Transport", "Relay", "SchemaEvolution", "Latency"} <= categories
    assert all(len(c.name.split(".")) >= 2 for c in cases)
    vectors = sum(
        len(json.loads(p.read_text())["cases"])
        for p in (CONF / "vectors").glob("*.json")
        if p.name != "envelope.json"
    )
    assert sum(1 for n in names if n.startswith("Codec.Vector.")) == vectors
    assert {c.level for c in cases} == {"required", "recommended"}


# the matrix in two runs per testee (each well inside the per-test timeout): every case
# but the Latency ones, then the Latency ones against the committed budgets
NOT_LATENCY = ["Codec.*", "Envelope.*", "SchemaEvolution.*", "Transport.*", "Relay.*"]
LATENCY = {
    "Latency.EchoRtt.ipc": "echo_rtt.ipc",
    "Latency.EchoRtt.tcp": "echo_rtt.tcp",
    "Latency.TickToSignal": "tick_to_signal",
    "Latency.KillSwitchAck": "kill_switch_ack",
}


def test_matrix_covers_every_case() -> None:
    names = [c.name for c in all_cases(CONF)]
    assert sorted(c.name for c in runner.select(all_cases(CONF), NOT_LATENCY)) == sorted(
        n for n in names if n not in LATENCY
    )
    assert set(names) >= set(LATENCY)


def _assert_latency(report: runner.Report) -> None:
    """Every Latency case passed the committed budget and reported it with the figures."""
    budgets = tomllib.loads((CONF / "budgets.toml").read_text())
    assert {r.case.name for r in report.results} == set(LATENCY)
    for result in report.results:
        assert result.status == "pass", _explain(report)
        table = LATENCY[result.case.name]
        budget = budgets
        for part in table.split("."):
            budget = budget[part]
        figures = result.measured[table]
        assert figures["samples"] == budget["samples"] >= 10_000 and figures["lost"] == 0
        assert figures["rate_hz"] == budget["rate_hz"]
        assert 0 < figures["p50_us"] <= figures["p99_us"] <= figures["p99.9_us"]
        assert figures["budget_us"] == {
            "p50": budget["p50_us"],
            "p99": budget["p99_us"],
            "p99.9": budget["p99_9_us"],
        }
        assert "not_reported" not in figures
    print(json.dumps({r.case.name: r.measured for r in report.results}, indent=1))


def test_matrix_python_testee(tmp_path: Path) -> None:
    report = _run(PY_TESTEE, *NOT_LATENCY, failure_list=CONF / "failures" / "python.txt")
    assert report.ok, _explain(report)
    assert report.implementation.startswith("tradewire-python")
    xml = ET.fromstring(runner.junit(report))
    assert int(xml.find("testsuite").get("tests", "0")) > 0  # type: ignore[union-attr]


def test_latency_python_testee() -> None:
    report = _run(PY_TESTEE, "Latency.*", failure_list=CONF / "failures" / "python.txt")
    assert report.ok, _explain(report)
    _assert_latency(report)


def test_matrix_rust_testee(rust_testee: str) -> None:
    """Rust testee: codec through tradewire::wire, transport cases Python x Rust both ways."""
    report = _run(rust_testee, *NOT_LATENCY, failure_list=CONF / "failures" / "rust.txt")
    assert report.ok, _explain(report)
    assert report.implementation.startswith("tradewire-rust")
    xfail = {r.case.name for r in report.results if r.status == "xfail"}
    assert xfail == {
        "Codec.UnknownFields.PreservedOnReencode",
        "SchemaEvolution.V2ToV1.NewFieldsPreserved",
    }
    assert sum(1 for r in report.results if r.case.category == "Transport") >= 20


def test_latency_rust_testee(rust_testee: str) -> None:
    report = _run(rust_testee, "Latency.*", failure_list=CONF / "failures" / "rust.txt")
    assert report.ok, _explain(report)
    _assert_latency(report)


@pytest.mark.parametrize(
    ("mode", "patterns", "caught_by"),
    [
        (
            "drop-every-1000th-seq",
            ["Transport.PubSub.*"],
            {"Transport.PubSub.TesteePublisher", "Transport.PubSub.TesteeSubscriber"},
        ),
        (
            "bad-field-encoding",
            ["Codec.Vector.MarketData.typical", "Codec.Vector.Position.*"],
            {"Codec.Vector.MarketData.typical", "Codec.Vector.Position.typical"},
        ),
        ("relay-reencode", ["Relay.PayloadUnchanged"], {"Relay.PayloadUnchanged"}),
        (
            "double-ack",
            ["Transport.Command.*"],
            {"Transport.Command.AckOncePerCopy", "Transport.Command.Idempotency"},
        ),
        ("forget-commands", ["Transport.Command.*"], {"Transport.Command.RestartIdempotency"}),
    ],
)
def test_broken_testee_is_caught(mode: str, patterns: list[str], caught_by: set[str]) -> None:
    report = _run(f"{PY_TESTEE} --break {mode}", *patterns)
    assert not report.ok
    failed = {r.case.name for r in report.results if r.status == "fail"}
    assert caught_by <= failed, _explain(report)


def test_listed_failures_are_expected(tmp_path: Path) -> None:
    """A broken mode whose failing cases are listed passes the run (xfail)."""
    listed = tmp_path / "broken.txt"
    listed.write_text(
        "# double-ack breaks these\nTransport.Command.AckOncePerCopy\n"
        "Transport.Command.Idempotency  # trailing comment\n"
        "Transport.Command.RestartIdempotency\n"
    )
    report = _run(f"{PY_TESTEE} --break double-ack", "Transport.Command.*", failure_list=listed)
    assert report.ok, _explain(report)
    assert {r.case.name for r in report.results if r.status == "xfail"} == {
        "Transport.Command.AckOncePerCopy",
        "Transport.Command.Idempotency",
        "Transport.Command.RestartIdempotency",
    }


def test_stale_failure_list_fails_the_run(tmp_path: Path) -> None:
    passing = tmp_path / "stale.txt"
    passing.write_text("Envelope.TypeIds\n")
    report = _run(PY_TESTEE, "Envelope.*", failure_list=passing)
    assert not report.ok
    assert [r.status for r in report.results if r.case.name == "Envelope.TypeIds"] == ["xpass"]
    assert "XPASS" in runner.table(report)

    unknown = tmp_path / "unknown.txt"
    unknown.write_text("Envelope.NoSuchCase\n")
    report = _run(PY_TESTEE, "Envelope.TypeIds", failure_list=unknown)
    assert not report.ok
    assert report.stale_entries == ["Envelope.NoSuchCase"]


def test_cli_exit_status_json_and_junit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    junit = tmp_path / "out.xml"
    code = cli_main(
        [
            "conformance",
            "--testee",
            PY_TESTEE,
            "--cases",
            "Codec.Reject.*",
            "--json",
            "--junit",
            str(junit),
        ]
    )
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["ok"] and out["summary"]["fail"] == 0
    assert all(r["name"].startswith("Codec.Reject.") for r in out["results"])
    suites = ET.parse(junit).getroot().findall("testsuite")
    assert [s.get("name") for s in suites] == ["conformance.Codec"]
    code = cli_main(
        [
            "conformance",
            "--testee",
            f"{PY_TESTEE} --break relay-reencode",
            "--cases",
            "Relay.PayloadUnchanged",
            "--quiet",
        ]
    )
    assert code == 1
    assert "Relay.PayloadUnchanged" in capsys.readouterr().out

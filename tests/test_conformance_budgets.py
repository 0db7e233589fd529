"""Latency budgets of the conformance suite: a missed budget fails the case with the
measured figure and the limit; a malformed or missing budgets file is a clear error
before any case runs."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from tradewire.cli import main as cli_main
from tradewire.conformance.context import MEASUREMENTS, BudgetError, Budgets, min_samples

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conformance"
PY_TESTEE = f"{sys.executable} -m tradewire.conformance.testee"
# a command that cannot start: errors about the budgets must come before the testee
NO_TESTEE = str(ROOT / "no-such-testee")

ECHO = """
[echo_rtt.ipc]
rate_hz = 2000
samples = {samples}
warmup = 20
p50_us = {p50}

[echo_rtt.tcp]
rate_hz = 2000
samples = {samples}
warmup = 20
p50_us = {p50}
"""


def _conformance(
    capsys: pytest.CaptureFixture[str], budgets: Path, testee: str = PY_TESTEE
) -> tuple[int, str, str]:
    code = cli_main(
        [
            "conformance",
            "--testee",
            testee,
            "--cases",
            "Latency.Echo*",
            "--budgets",
            str(budgets),
            "--json",
        ]
    )
    out, err = capsys.readouterr()
    return code, out, err


def test_missed_budget_fails_the_case(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    budgets = tmp_path / "tight.toml"
    budgets.write_text(ECHO.format(samples=300, p50=1))
    code, out, _ = _conformance(capsys, budgets)
    report = json.loads(out)
    assert code == 1 and not report["ok"]
    assert [r["name"] for r in report["results"]] == ["Latency.EchoRtt.ipc", "Latency.EchoRtt.tcp"]
    for r in report["results"]:
        assert r["status"] == "fail", r
        (figures,) = r["measured"].values()
        assert figures["samples"] == 300 and figures["lost"] == 0 and figures["rate_hz"] == 2000
        assert figures["budget_us"] == {"p50": 1.0}
        # 300 samples: p50 only; p99 (1000) and p99.9 (10000) are said to be left out
        assert "p99_us" not in figures and "p99.9_us" not in figures
        assert figures["not_reported"] == [
            "p99 (needs >= 1000 samples)",
            "p99.9 (needs >= 10000 samples)",
        ]
        p50 = figures["p50_us"]
        assert p50 > 1
        assert f"p50 {p50:.1f} us > budget 1 us" in r["detail"], r["detail"]
        assert str(budgets) in r["detail"] and "300 samples at 2000 Hz" in r["detail"]


def test_met_budget_passes_and_reports_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same run with a generous limit passes: the budget is what decides."""
    budgets = tmp_path / "generous.toml"
    budgets.write_text(ECHO.format(samples=300, p50=10_000_000))
    code, out, _ = _conformance(capsys, budgets)
    report = json.loads(out)
    assert code == 0 and report["ok"], out
    for r in report["results"]:
        (figures,) = r["measured"].values()
        assert r["status"] == "pass" and 0 < figures["p50_us"] < 10_000_000
        assert figures["budget_us"] == {"p50": 10_000_000.0}


@pytest.mark.parametrize(
    ("text", "where", "problem"),
    [
        (
            ECHO.format(samples=300, p50=1000) + "p95_us = 10\n",
            "[echo_rtt.tcp] p95_us",
            "unknown key",
        ),
        (ECHO.format(samples=300, p50=-5), "[echo_rtt.ipc] p50_us", "positive"),
        (ECHO.format(samples='"many"', p50=1000), "[echo_rtt.ipc] samples", "integer"),
        (ECHO.format(samples=300, p50='"fast"'), "[echo_rtt.ipc] p50_us", "number"),
        (ECHO.format(samples=300, p50="true"), "[echo_rtt.ipc] p50_us", "number"),
        (ECHO.format(samples=-1, p50=1000), "[echo_rtt.ipc] samples", ">= 1"),
        ("[echo_rtt.udp]\nrate_hz = 1\n", "[echo_rtt.udp]", "unknown table"),
        ("[kill_switch]\nrate_hz = 1\n", "[kill_switch]", "unknown table"),
        (
            "[tick_to_signal]\nrate_hz = 100\nwarmup = 0\np50_us = 9\n",
            "[tick_to_signal]",
            "missing samples",
        ),
        (
            "[tick_to_signal]\nrate_hz = 100\nsamples = 2000\nwarmup = 0\np99_9_us = 9\n",
            "[tick_to_signal] p99_9_us",
            "needs samples >= 10000 (have 2000)",
        ),
        ("[tick_to_signal\nrate_hz = 1\n", "not valid TOML", ""),
    ],
)
def test_malformed_budgets_file_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, where: str, problem: str
) -> None:
    budgets = tmp_path / "bad budgets.toml"
    budgets.write_text(text)
    code, out, err = _conformance(capsys, budgets, testee=NO_TESTEE)
    assert code == 2 and out == ""
    assert err.startswith("tradewire conformance: error: budgets ")
    assert f"{budgets}: {where}" in err and problem in err, err
    with pytest.raises(BudgetError, match=re.escape(where)):
        Budgets.load(budgets)


def test_missing_budgets_file_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.toml"
    code, out, err = _conformance(capsys, missing, testee=NO_TESTEE)
    assert code == 2 and out == ""
    assert f"{missing}: budgets file not found" in err


def test_case_without_its_table_fails_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    budgets = tmp_path / "only-ipc.toml"
    budgets.write_text(ECHO.format(samples=300, p50=10_000_000).split("[echo_rtt.tcp]")[0])
    code, out, _ = _conformance(capsys, budgets)
    results = {r["name"]: r for r in json.loads(out)["results"]}
    assert code == 1
    assert results["Latency.EchoRtt.ipc"]["status"] == "pass"
    assert results["Latency.EchoRtt.tcp"]["status"] == "fail"
    assert f"{budgets}: no [echo_rtt.tcp] table" in results["Latency.EchoRtt.tcp"]["detail"]


def test_committed_budgets_are_complete() -> None:
    """Every measurement has explicit limits for every percentile it has samples for."""
    loaded = Budgets.load(CONF / "budgets.toml")
    assert sorted(loaded.budgets) == sorted(MEASUREMENTS)
    for budget in loaded.budgets.values():
        assert budget.samples >= min_samples("p99.9") == 10_000
        assert set(budget.limits_us) == {"p50", "p99", "p99.9"}
        assert budget.limits_us["p50"] < budget.limits_us["p99"] < budget.limits_us["p99.9"]
        assert budget.limits_us["p50"] <= 2_000  # tighter than the old 10 ms everywhere
        assert budget.rate_hz >= 1000

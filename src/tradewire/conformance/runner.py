"""Run conformance cases against a testee; apply the failure list; report.

Result of a case:
- pass / fail: it passed / failed and is not in the failure list
- xfail: it failed and the failure list expects that
- xpass: it passed although the failure list says it fails (a stale entry)

The run fails on any `fail` or `xpass`, and on failure-list entries that name no case, so
a failure list can never go stale silently.
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from tradewire.conformance.cases import all_cases
from tradewire.conformance.client import TesteeError, TesteeProcess
from tradewire.conformance.context import Budgets, Case, CaseFailed, Context

BAD = ("fail", "xpass")


@dataclass
class Result:
    case: Case
    passed: bool
    detail: str
    seconds: float
    measured: dict[str, Any] = field(default_factory=dict)
    status: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.case.name,
            "level": self.case.level,
            "status": self.status,
            "passed": self.passed,
            "seconds": round(self.seconds, 3),
            "detail": self.detail,
            "pair": self.case.pair,
            "measured": self.measured,
        }


@dataclass
class Report:
    testee: str
    implementation: str
    results: list[Result]
    stale_entries: list[str]

    @property
    def ok(self) -> bool:
        return not self.stale_entries and not any(r.status in BAD for r in self.results)

    def counts(self) -> dict[str, int]:
        out = {"pass": 0, "fail": 0, "xfail": 0, "xpass": 0}
        for r in self.results:
            out[r.status] += 1
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "testee": self.testee,
            "implementation": self.implementation,
            "ok": self.ok,
            "summary": self.counts(),
            "stale_failure_list_entries": self.stale_entries,
            "results": [r.as_dict() for r in self.results],
        }


def read_failure_list(path: Path | None) -> set[str]:
    if path is None:
        return set()
    names = set()
    for line in path.read_text().splitlines():
        name = line.split("#", 1)[0].strip()
        if name:
            names.add(name)
    return names


def select(cases: list[Case], patterns: list[str]) -> list[Case]:
    if not patterns:
        return cases
    return [c for c in cases if any(fnmatch.fnmatchcase(c.name, p) for p in patterns)]


def run(
    testee_command: str,
    *,
    conformance_dir: Path,
    patterns: list[str] | None = None,
    budgets: Path | None = None,
    failure_list: Path | None = None,
    progress: Any = None,
) -> Report:
    every = all_cases(conformance_dir)
    cases = select(every, patterns or [])
    expected = read_failure_list(failure_list)
    known = {c.name for c in every}
    chosen = {c.name for c in cases}
    stale = sorted(n for n in expected if n not in known)
    if budgets is None and (conformance_dir / "budgets.toml").exists():
        budgets = conformance_dir / "budgets.toml"
    budget_table = Budgets.load(budgets)  # BudgetError before the testee starts
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="twconf-") as tmp:
        testee = TesteeProcess(testee_command)
        implementation = testee.hello.implementation
        try:
            for case in cases:
                if not testee.in_sync:
                    testee.close()
                    testee = TesteeProcess(testee_command)
                ctx = Context(testee, Path(tmp), budget_table)
                ctx.case_name = case.name
                result = _run_one(case, ctx)
                result.status = _status(result.passed, case.name in expected)
                results.append(result)
                if progress is not None:
                    progress(result)
        finally:
            testee.close()
    stale += sorted(n for n in expected if n in chosen and n not in {r.case.name for r in results})
    return Report(testee_command, implementation, results, stale)


def _run_one(case: Case, ctx: Context) -> Result:
    t0 = time.perf_counter()
    try:
        case.run(ctx)
        passed, detail = True, ""
    except CaseFailed as exc:
        passed, detail = False, str(exc)
    except TesteeError as exc:
        passed, detail = False, f"testee: {exc}"
    except Exception as exc:
        tb = traceback.format_exc(limit=3)
        passed, detail = False, f"runner error {type(exc).__name__}: {exc}\n{tb}"
    if not passed:
        with contextlib.suppress(Exception):
            ctx.stop()
    return Result(case, passed, detail, time.perf_counter() - t0, dict(ctx.measured))


def _status(passed: bool, listed: bool) -> str:
    if listed:
        return "xpass" if passed else "xfail"
    return "pass" if passed else "fail"


# -- output --------------------------------------------------------------------------------

LABEL = {"pass": "PASS", "fail": "FAIL", "xfail": "XFAIL", "xpass": "XPASS"}


def progress_line(result: Result) -> str:
    detail = result.detail.splitlines()[0][:110] if result.detail else ""
    if result.measured:
        detail = "; ".join(_figures(v) for v in result.measured.values()) + (
            f" | {detail}" if detail else ""
        )
    return (
        f"{LABEL[result.status]:<6}{result.case.level[:3]:<5}{result.case.name:<58}"
        f"{result.seconds:7.2f}s  {detail}"
    ).rstrip()


def _figures(m: dict[str, Any]) -> str:
    """`p50=268.5us p99=3519.5us ... budget p50<=2000us p99<=30000us`, one measurement."""
    parts = []
    for k, v in m.items():
        if k == "budget_us" and isinstance(v, dict):
            parts.append("budget " + " ".join(f"{q}<={lim:g}us" for q, lim in v.items()))
        elif k == "not_reported":
            parts.append("not reported: " + ", ".join(v))
        elif k.endswith("_us"):
            parts.append(f"{k.removesuffix('_us')}={v}us")
        else:
            parts.append(f"{k}={v}")
    return " ".join(parts)


def table(report: Report, verbose: bool = False) -> str:
    lines = [f"testee: {report.testee} ({report.implementation})", ""]
    lines.append(f"{'result':<6}{'lvl':<5}{'case':<58}{'time':>8}  detail")
    for r in report.results:
        if verbose or r.status != "pass" or r.measured:
            lines.append(progress_line(r))
    by_cat: dict[str, dict[str, int]] = {}
    for r in report.results:
        cat = by_cat.setdefault(r.case.category, {"pass": 0, "fail": 0, "xfail": 0, "xpass": 0})
        cat[r.status] += 1
    lines.append("")
    lines.append(f"{'category':<18}{'pass':>6}{'fail':>6}{'xfail':>7}{'xpass':>7}")
    for name, c in by_cat.items():
        lines.append(f"{name:<18}{c['pass']:>6}{c['fail']:>6}{c['xfail']:>7}{c['xpass']:>7}")
    for name in report.stale_entries:
        lines.append(f"STALE failure-list entry: {name} (no such case, or it did not run)")
    c = report.counts()
    lines.append("")
    lines.append(
        f"conformance: {c['pass']} passed, {c['fail']} failed, {c['xfail']} expected "
        f"failures, {c['xpass']} unexpectedly passed -> {'OK' if report.ok else 'FAILED'}"
    )
    return "\n".join(lines)


def junit(report: Report) -> bytes:
    root = ET.Element("testsuites", name="tradewire-conformance")
    suites: dict[str, ET.Element] = {}
    for r in report.results:
        cat = r.case.category
        if cat not in suites:
            suites[cat] = ET.SubElement(root, "testsuite", name=f"conformance.{cat}")
            props = ET.SubElement(suites[cat], "properties")
            ET.SubElement(props, "property", name="testee", value=report.testee)
            ET.SubElement(props, "property", name="implementation", value=report.implementation)
        tc = ET.SubElement(
            suites[cat],
            "testcase",
            classname=f"conformance.{cat}",
            name=r.case.name,
            time=f"{r.seconds:.3f}",
        )
        if r.status == "fail":
            ET.SubElement(
                tc,
                "failure",
                message=r.detail.splitlines()[0][:500] if r.detail else "",
                type=r.case.level,
            ).text = r.detail
        elif r.status == "xpass":
            ET.SubElement(
                tc,
                "failure",
                message="listed in the failure list but passed",
                type="stale-failure-list",
            )
        elif r.status == "xfail":
            ET.SubElement(tc, "skipped", message=f"expected failure: {r.detail[:300]}")
        if r.measured:
            ET.SubElement(tc, "system-out").text = json.dumps(r.measured)
    if report.stale_entries:
        suite = ET.SubElement(root, "testsuite", name="conformance.FailureList")
        for name in report.stale_entries:
            tc = ET.SubElement(suite, "testcase", classname="conformance.FailureList", name=name)
            ET.SubElement(tc, "failure", message="failure-list entry names no case that ran")
    for suite in root.iter("testsuite"):
        cases = list(suite.iter("testcase"))
        suite.set("tests", str(len(cases)))
        suite.set("failures", str(sum(1 for t in cases if t.find("failure") is not None)))
        suite.set("skipped", str(sum(1 for t in cases if t.find("skipped") is not None)))
        suite.set("errors", "0")
    ET.indent(root)
    data: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return data

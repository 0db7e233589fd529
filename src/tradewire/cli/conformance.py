"""`tradewire conformance`: run the conformance suite against a testee command."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def default_dir() -> Path:
    from tradewire.roundtrip import repo_root

    return repo_root() / "conformance"


def _run(args: argparse.Namespace) -> int:
    import logging

    from tradewire.conformance import runner
    from tradewire.conformance.context import BudgetError

    # the runner's own SDK endpoints warn about the gaps the cases cause on purpose
    logging.getLogger("tradewire.transport").setLevel(logging.ERROR)

    cdir: Path = args.conformance_dir or default_dir()
    if args.list:
        from tradewire.conformance.cases import all_cases

        for case in runner.select(all_cases(cdir), args.cases):
            print(f"{case.name}  [{case.level}]  {case.description}")
        return 0

    def progress(result: Any) -> None:
        if not args.json:
            print(
                runner.progress_line(result),
                file=sys.stderr if args.quiet else sys.stdout,
                flush=True,
            )

    try:
        report = runner.run(
            args.testee,
            conformance_dir=cdir,
            patterns=args.cases,
            budgets=args.budgets,
            failure_list=args.failure_list,
            progress=None if args.quiet else progress,
        )
    except BudgetError as exc:
        print(f"tradewire conformance: error: budgets {exc}", file=sys.stderr)
        return 2
    if args.junit:
        args.junit.write_bytes(runner.junit(report))
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        print()
        print(runner.table(report))
    return 0 if report.ok else 1


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "conformance",
        help="run the conformance suite against a testee (conformance/README.md)",
        description="Start the testee command, run the cases (Category.Case), report. Exit 1 "
        "on an unexpected failure, a listed case that passes, or a stale failure-list entry.",
    )
    parser.add_argument(
        "--testee",
        required=True,
        help="command that speaks conformance/TESTEE.md, e.g. "
        '"python -m tradewire.conformance.testee"',
    )
    parser.add_argument(
        "--cases",
        action="append",
        default=[],
        metavar="GLOB",
        help="only cases matching GLOB (repeatable), e.g. 'Transport.*'",
    )
    parser.add_argument(
        "--budgets",
        type=Path,
        default=None,
        help="latency budgets, validated before the run (default conformance/budgets.toml)",
    )
    parser.add_argument(
        "--failure-list",
        type=Path,
        default=None,
        help="expected failures of this testee, one case name per line",
    )
    parser.add_argument("--junit", type=Path, default=None, help="write JUnit XML here")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--quiet", action="store_true", help="no per-case progress lines")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    parser.add_argument(
        "--conformance-dir",
        type=Path,
        default=None,
        help="directory with vectors/ and schema_v2/ (default: this checkout's)",
    )
    parser.set_defaults(handler=_run)

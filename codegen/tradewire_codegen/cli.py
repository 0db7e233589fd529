"""`tradewire codegen`: argument parsing and the three commands."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from tradewire_codegen.baseline import load_baseline
from tradewire_codegen.breaking import find_breaking
from tradewire_codegen.contract import extract, to_json
from tradewire_codegen.errors import CodegenError, SchemaError
from tradewire_codegen.generate import Options, generate, managed_files
from tradewire_codegen.outputs import compare_outputs, write_outputs
from tradewire_codegen.schema import load_schema

DEFAULT_LOCK = "schema/tradewire.lock.json"


def _location_args(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    default_root = argparse.SUPPRESS if suppress else "."
    default_schema = argparse.SUPPRESS if suppress else "schema"
    parser.add_argument(
        "--root",
        type=Path,
        default=default_root,
        help="project root: outputs and relative paths are resolved against it (default: .)",
    )
    parser.add_argument(
        "--schema",
        default=default_schema,
        metavar="DIR",
        help="schema directory, relative to --root (default: schema)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tradewire codegen",
        description="Generate the Python and Rust bindings from the protobuf schema.",
    )
    _location_args(parser, suppress=False)
    parser.add_argument(
        "--check",
        action="store_true",
        help="generate into memory and compare with the committed files; exit 1 if any differ",
    )
    parser.add_argument(
        "--no-prost",
        dest="prost",
        action="store_false",
        help="skip the Rust prost structs (tradewire.v1.rs), which need cargo",
    )
    parser.add_argument(
        "--cargo-workspace",
        type=Path,
        default=None,
        metavar="DIR",
        help="Cargo workspace holding crates/tradewire-protogen (default: --root)",
    )
    sub = parser.add_subparsers(dest="command", metavar="{lock,breaking}")
    lock = sub.add_parser(
        "lock",
        help="write the wire contract as JSON",
        description="Write the wire contract of the schema (messages, fields, reserved numbers, "
        "enums, type ids, channels) as sorted, pretty JSON.",
    )
    _location_args(lock, suppress=True)
    lock.add_argument(
        "--out",
        default=DEFAULT_LOCK,
        help=f"lock file to write, relative to --root (default: {DEFAULT_LOCK})",
    )
    breaking = sub.add_parser(
        "breaking",
        help="report wire-breaking changes against a baseline",
        description="Compare the schema with a baseline and list every wire-breaking change.",
    )
    _location_args(breaking, suppress=True)
    breaking.add_argument(
        "--against",
        required=True,
        metavar="REF|LOCK",
        help="a lock file (*.json, relative to --root) or a git ref (commit, branch, tag)",
    )
    breaking.add_argument("--json", action="store_true", help="print violations as a JSON list")
    return parser


def _paths(args: argparse.Namespace) -> tuple[Path, Path]:
    root = Path(args.root)
    schema = Path(args.schema)
    return root, schema if schema.is_absolute() else root / schema


def _generate(args: argparse.Namespace) -> int:
    root, schema = _paths(args)
    opts = Options(root=root, schema=schema, prost=args.prost, cargo_workspace=args.cargo_workspace)
    files = generate(opts)
    existing = managed_files(root, prost=args.prost)
    if args.check:
        report = compare_outputs(root, files, existing)
        if report:
            print("\n".join(report))
            print("generated code is out of date: run `tradewire codegen`", file=sys.stderr)
            return 1
        print(f"generated code is up to date ({len(files)} files)")
        return 0
    touched = write_outputs(root, files, existing)
    for rel in touched:
        print(f"wrote {rel}" if rel in files else f"removed {rel}")
    print(f"{len(files)} generated files, {len(touched)} changed")
    return 0


def _lock(args: argparse.Namespace) -> int:
    root, schema = _paths(args)
    out = Path(args.out) if Path(args.out).is_absolute() else root / args.out
    text = to_json(extract(load_schema(schema.resolve())))
    out.parent.mkdir(parents=True, exist_ok=True)
    if not out.is_file() or out.read_text(encoding="utf-8") != text:
        out.write_text(text, encoding="utf-8")
    print(f"wrote {out}")
    return 0


def _breaking(args: argparse.Namespace) -> int:
    root, schema = _paths(args)
    baseline = load_baseline(args.against, root, schema)
    current = extract(load_schema(schema.resolve()))
    violations = find_breaking(baseline, current)
    if args.json:
        print(json.dumps([v.as_dict() for v in violations], indent=2))
    elif violations:
        print("\n".join(v.line() for v in violations))
        print(f"{len(violations)} breaking change(s) against {args.against}", file=sys.stderr)
    else:
        print(f"no breaking changes against {args.against}")
    return 1 if violations else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `tradewire codegen` and `python -m tradewire_codegen`."""
    args = build_parser().parse_args(None if argv is None else list(argv))
    handlers = {None: _generate, "lock": _lock, "breaking": _breaking}
    try:
        return handlers[args.command](args)
    except SchemaError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        return 1
    except CodegenError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1

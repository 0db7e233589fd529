"""Shrinks pytest-benchmark's JSON (drops every round's raw timings) and writes micro.md:
median and min per benchmark, and tradewire's cost over raw upb per message type.

    python benches/summarize_micro.py benches/results/micro.json
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any


def summarize(path: Path) -> str:
    report = json.loads(path.read_text())
    for bench in report["benchmarks"]:
        bench["stats"].pop("data", None)
    path.write_text(json.dumps(report, indent=1) + "\n")
    median = {b["name"]: b["stats"]["median"] * 1e6 for b in report["benchmarks"]}
    lines = [
        f"Machine: {report['machine_info'].get('cpu', {}).get('brand_raw', '?')}, "
        f"Python {report['machine_info'].get('python_version', '?')}  ",
        f"Date: {report['datetime']}",
        "",
        "| benchmark | median µs | min µs | rounds |",
        "|---|---:|---:|---:|",
    ]
    for b in report["benchmarks"]:
        s: dict[str, Any] = b["stats"]
        lines.append(
            f"| {b['name']} | {s['median'] * 1e6:,.2f} | {s['min'] * 1e6:,.2f} | {s['rounds']:,} |"
        )
    types = sorted(
        {m.group(1) for n in median if (m := re.match(r"test_every_type_\w+\[(\w+)\]", n))}
    )
    if types:
        lines += [
            "",
            "### tradewire envelope vs raw upb, per message type (median µs)",
            "",
            "| type | raw serialize | wire encode | raw parse | wire decode + parse |",
            "|---|---:|---:|---:|---:|",
        ]
        for t in types:
            cols = [
                median.get(f"test_every_type_{k}[{t}]", float("nan"))
                for k in ("raw_serialize", "wire_encode", "raw_parse", "wire_decode")
            ]
            lines.append(f"| {t} | " + " | ".join(f"{c:.2f}" for c in cols) + " |")
    table = "\n".join(lines) + "\n"
    path.with_suffix(".md").write_text(table)
    return table


if __name__ == "__main__":
    print(summarize(Path(sys.argv[1])))

"""The benchmark scripts (benches/run_transport.py and its peers) still run and report what
`make bench` publishes: a tiny run of every phase, checked for sane figures."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benches"))

import run_transport as rt  # noqa: E402


@pytest.fixture(scope="module")
def bench_bin() -> Path:
    subprocess.run(
        ["cargo", "build", "--release", "--locked", "-p", "tradewire-bench"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    return ROOT / "target" / "release" / "tradewire-bench"


def _percentiles_ok(r: dict[str, Any], samples: int) -> None:
    assert r["samples"] == samples
    assert 0 < r["p50_us"] <= r["p99_us"] <= r["p999_us"]


@pytest.mark.parametrize(("client", "server"), [("py", "rust"), ("rust", "py")])
def test_typed_echo_rtt_across_languages(
    bench_bin: Path, tmp_path: Path, client: str, server: str
) -> None:
    r = rt.rtt("t", client, server, "typed", f"ipc://{tmp_path}/e", 300, 0.0, tmp_path / "s")
    _percentiles_ok(r, 300)
    assert len((tmp_path / "s").read_text().split()) == 300
    assert r["bytes"] > 75  # the envelope around the MarketData payload


def test_throughput_delivers_everything(bench_bin: Path, tmp_path: Path) -> None:
    r = rt.throughput("t", "rust", "py", "typed", 5_000, f"ipc://{tmp_path}/t")
    assert r["received"] == 5_000
    assert r["published_per_sec"] > 0 and r["received_per_sec"] > 0


def test_kill_switch_under_load_reports_ack_latency(bench_bin: Path, tmp_path: Path) -> None:
    r = rt.kill_switch_under_load(
        "py", f"ipc://{tmp_path}/md", f"ipc://{tmp_path}/cmd", 200, 500.0, 20_000.0
    )
    _percentiles_ok(r, 200)
    assert r["commands_applied"] >= 200  # warm-up + samples, each acknowledged by the engine
    assert r["market_data_received"] > 0


@pytest.mark.parametrize("lang", ["rust", "py"])
def test_command_store_rows_compare_with_memory(bench_bin: Path, tmp_path: Path, lang: str) -> None:
    r = rt.command_ack_latency(
        lang, "off", f"ipc://{tmp_path}/c", tmp_path / "c.sqlite", 200, 1000.0
    )
    _percentiles_ok(r, 200)
    assert (tmp_path / "c.sqlite").exists()  # the server kept its applied ids there
    rows = [
        {"case": "memory", "rate": 1000.0, **r},
        {"case": "store", "rate": 1000.0, **r, "ratio_p50": 1.0, "ratio_p99": 1.0},
    ]
    table = rt.command_store_markdown(rows)
    assert "| store | 1,000 | 200 |" in table and "p99 vs memory" in table


def test_codec_markdown_and_goals(bench_bin: Path) -> None:
    codec = rt.envelope_codec(500)
    assert [c["bytes"] for c in codec] == [codec[0]["bytes"]] * 2  # the same frame
    assert all(c["encode_ns"] > 0 and c["decode_ns"] > 0 for c in codec)
    rtt = [
        {"case": "raw pyzmq", "rate": 0.0, "client": "py", "p50_us": 100.0, "p99_us": 200.0,
         "p999_us": 300.0},
        {"case": "tradewire Python↔Python", "rate": 0.0, "client": "py", "p50_us": 120.0,
         "p99_us": 400.0, "p999_us": 500.0, "ratio_p50": 1.2, "ratio_p99": 2.0},
    ]  # fmt: skip
    report: dict[str, Any] = {"machine": "m", "date": "d", "samples": 1, "rtt": {"ipc": rtt},
                              "throughput": [], "codec": codec, "kill_switch": []}  # fmt: skip
    report["goals"] = rt.goals(report)
    met = {g["goal"]: g["met"] for g in report["goals"]}
    assert met == {
        "Python typed RTT p50 ≤ 1.25x raw pyzmq (ipc, max rate)": True,
        "Python typed RTT p99 ≤ 1.5x raw pyzmq (ipc, max rate)": False,
    }
    table = rt.markdown(report)
    assert "### Envelope codec" in table and "| Python typed RTT p99 ≤ 1.5x" in table

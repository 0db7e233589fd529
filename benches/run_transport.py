"""End-to-end transport benchmarks, tradewire beside the raw transports, in one run.

    python benches/run_transport.py [--samples 20000] [--rounds 3] [--quick] [--out DIR]

RTT: a PAIR echo with one frame per message, same MarketData, closed loop (max rate) and
at a fixed rate; raw pyzmq and raw libzmq (Rust zmq crate) are the baselines.
Throughput: PUB/SUB, raw vs tradewire Publisher/Subscriber (sequence, handshake, replay).
Every RTT and throughput case runs `--rounds` times, interleaved, and reports the median
(ratios: the median of same-round ratios), so a noisy spell of a shared VM does not land
on one side of a comparison only.
Kill switch under load: `tradewire-engine-demo` publishes MarketData at 100k msg/s to a
subscriber while acknowledging kill switches sent at a fixed rate by a Python or a Rust
CommandClient.
Journal: publish rate with no subscriber, the publisher journal (WIRE.md 7.6, fsync
`interval`) on vs off, Rust (`tradewire-publish`) and Python (`--journal-only` runs just
this).
Command store: command ack latency (fixed rate, closed loop) with durable idempotency
(the command store, fsync on and off) vs the in-memory id window, Rust server + Rust client
and Python server + Python client, interleaved rounds, ratios within the same round
(`--command-store-only` runs just this).
Writes transport.json, transport.md and rtt_cdf.png; prints the Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PY_PEER = [sys.executable, str(ROOT / "benches" / "py_peer.py")]
RUST_PEER = [str(ROOT / "target" / "release" / "tradewire-bench")]
ENGINE = ROOT / "target" / "release" / "tradewire-engine-demo"
PEERS = {"py": PY_PEER, "rust": RUST_PEER}

RTT_CASES = [  # name, client, server, mode
    ("raw pyzmq", "py", "py", "raw"),
    ("raw pyzmq, server busy 2 µs (control)", "py", "py", "raw+work"),
    ("raw libzmq (Rust)", "rust", "rust", "raw"),
    ("tradewire Python↔Python", "py", "py", "typed"),
    ("tradewire Python→Rust", "py", "rust", "typed"),
    ("tradewire Rust↔Rust", "rust", "rust", "typed"),
]
THROUGHPUT_CASES = [  # name, publisher, subscriber, mode, count
    ("raw pyzmq PUB→SUB", "py", "py", "raw", 200_000),
    ("tradewire Python→Python", "py", "py", "typed", 200_000),
    ("raw libzmq (Rust) PUB→SUB", "rust", "rust", "raw", 1_000_000),
    ("tradewire Rust→Rust", "rust", "rust", "typed", 1_000_000),
    ("tradewire Rust→Python", "rust", "py", "typed", 200_000),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def endpoint(transport: str, tmp: Path, name: str) -> str:
    if transport == "ipc":
        return f"ipc://{tmp}/{name}"
    return f"tcp://127.0.0.1:{free_port()}"


def _ready(proc: subprocess.Popen[str]) -> None:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.strip().startswith('{"ready"'):
        raise RuntimeError(f"peer did not start: {line!r}")


def rtt(
    name: str,
    client: str,
    server: str,
    mode: str,
    ep: str,
    samples: int,
    rate: float,
    samples_out: Path,
) -> dict[str, Any]:
    srv = subprocess.Popen(
        [*PEERS[server], "echo-server", "--endpoint", ep, "--mode", mode],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        _ready(srv)
        out = subprocess.run(
            [
                *PEERS[client],
                "echo-client",
                "--endpoint",
                ep,
                "--mode",
                mode,
                "--count",
                str(samples),
                "--warmup",
                str(max(1000, samples // 10)),
                "--rate",
                str(rate),
                "--samples-out",
                str(samples_out),
            ],
            capture_output=True,
            text=True,
            timeout=600,
            check=True,
        )
        srv.wait(30)
    finally:
        srv.kill()
        srv.wait()
        if srv.stdout:
            srv.stdout.close()
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    result.update(case=name, mode=mode, client=client, server=server, rate=rate)
    return result


def _reap(*procs: subprocess.Popen[str] | None) -> None:
    """Kill and wait for the peers a phase started, closing their pipes."""
    for proc in procs:
        if proc is not None:
            proc.kill()
            proc.wait()
            for stream in (proc.stdin, proc.stdout):
                if stream:
                    stream.close()


def throughput(name: str, pub: str, sub: str, mode: str, count: int, ep: str) -> dict[str, Any]:
    p = subprocess.Popen(
        [*PEERS[pub], "pub", "--endpoint", ep, "--mode", mode, "--count", str(count)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    s = None
    try:
        _ready(p)
        s = subprocess.Popen(
            [*PEERS[sub], "sub", "--endpoint", ep, "--mode", mode, "--count", str(count)],
            stdout=subprocess.PIPE,
            text=True,
        )
        _ready(s)
        assert p.stdin is not None and p.stdout is not None and s.stdout is not None
        p.stdin.write("go\n")
        p.stdin.flush()
        sent = json.loads(p.stdout.readline())
        received = json.loads(s.stdout.readline())
        p.stdin.write("done\n")
        p.stdin.flush()
        p.wait(30)
        s.wait(30)
    finally:
        _reap(p, s)
    return {
        "case": name,
        "mode": mode,
        "publisher": pub,
        "subscriber": sub,
        "published_per_sec": sent["msgs_per_sec"],
        "received": received["count"],
        "received_per_sec": received["msgs_per_sec"],
        "count": count,
    }


def kill_switch_under_load(
    client: str, md_ep: str, cmd_ep: str, samples: int, rate: float, md_rate: float
) -> dict[str, Any]:
    """`tradewire-engine-demo` publishes `md_rate` MarketData/s to a Rust subscriber while
    its command thread acknowledges the kill switches `client` sends at `rate`/s."""
    warmup = max(200, samples // 20)
    engine = subprocess.Popen(
        [str(ENGINE), "--md", md_ep, "--commands", cmd_ep, "--rate", str(md_rate)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert engine.stdin is not None and engine.stdout is not None
    lines: list[str] = []  # read on a thread: one line per kill switch must never block it
    reader = threading.Thread(target=lambda: lines.extend(engine.stdout or ()), daemon=True)
    sub = None
    try:
        if engine.stdout.readline().strip() != "ready":
            raise RuntimeError("tradewire-engine-demo did not start")
        reader.start()
        count = int(md_rate * (samples + warmup) / rate * 0.9)
        sub = subprocess.Popen(
            [*RUST_PEER, "sub", "--endpoint", md_ep, "--mode", "typed", "--count", str(count)],
            stdout=subprocess.PIPE,
            text=True,
        )
        _ready(sub)
        client_args = ["--count", str(samples), "--warmup", str(warmup), "--rate", str(rate)]
        out = subprocess.run(
            [*PEERS[client], "kill-client", "--endpoint", cmd_ep, *client_args],
            capture_output=True,
            text=True,
            timeout=600,
            check=True,
        )
        assert sub.stdout is not None
        received = json.loads(sub.stdout.readline())
        sub.wait(30)
        engine.stdin.close()  # EOF: the engine stops and prints its summary
        engine.wait(30)
        reader.join(10)
    finally:
        _reap(engine, sub)
    done = next(line.split() for line in lines if line.startswith("done "))
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    result.update(
        case=f"kill switch from {'Python' if client == 'py' else 'Rust'} → Rust engine",
        client=client,
        command_rate=rate,
        market_data_published_per_sec=float(done[2]),
        market_data_received=received["count"],
        market_data_received_per_sec=received["msgs_per_sec"],
        commands_applied=sum(line.startswith("kill ") for line in lines),
    )
    return result


def envelope_codec(count: int) -> list[dict[str, Any]]:
    """ns per MarketData frame: encode, and decode + typed parse; Python and Rust, best of 5."""
    import timeit

    sys.path.insert(0, str(ROOT / "benches"))
    from py_peer import TICK, typed_decode, typed_frame

    frame = typed_frame(TICK, 1)
    enc = min(timeit.repeat(lambda: typed_frame(TICK, 1), number=count, repeat=5)) / count
    dec = min(timeit.repeat(lambda: typed_decode(frame), number=count, repeat=5)) / count
    out = subprocess.run(
        [*RUST_PEER, "codec", "--count", str(count * 10)],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    rust = json.loads(out.stdout.strip().splitlines()[-1])
    return [
        {"codec": "Python (upb + tradewire.wire)", "bytes": len(frame),
         "encode_ns": enc * 1e9, "decode_ns": dec * 1e9},
        {"codec": "Rust (prost + tradewire::wire)", **rust},
    ]  # fmt: skip


def rtt_rounds(
    transport: str,
    rates: tuple[float, ...],
    rounds: int,
    samples: int,
    tmp: Path,
    cdf: dict[str, Path],
) -> list[dict[str, Any]]:
    """Every RTT case at every rate, `rounds` times, interleaved so that a slow spell of the
    machine hits baseline and tradewire alike. Percentiles are the median over rounds, and
    each ratio is the median of the per-round ratios (tradewire / its raw baseline, same
    round)."""
    by_round: list[list[dict[str, Any]]] = []
    for k in range(rounds):
        runs: list[dict[str, Any]] = []
        for rate in rates:
            for name, client, server, mode in RTT_CASES:
                tag = f"{transport}-{k}-{len(runs)}"
                sample_file = tmp / f"{tag}.txt"
                ep = endpoint(transport, tmp, f"e{tag}")
                r = rtt(name, client, server, mode, ep, samples, rate, sample_file)
                runs.append(r)
                if transport == "ipc" and not rate and k == rounds - 1:
                    cdf[name] = sample_file
                print(
                    f"  rtt {transport} round {k + 1} {name} rate={rate or 'max'}: "
                    f"p50 {r['p50_us']:.1f} p99 {r['p99_us']:.1f} µs",
                    file=sys.stderr,
                )
        for r in runs:
            base = "raw pyzmq" if r["client"] == "py" else "raw libzmq (Rust)"
            same = [x for x in runs if x["case"] == base and x["rate"] == r["rate"]]
            if same and r["case"] != base:
                r["ratio_p50"] = r["p50_us"] / same[0]["p50_us"]
                r["ratio_p99"] = r["p99_us"] / same[0]["p99_us"]
        by_round.append(runs)
    keys = ("p50_us", "p99_us", "p999_us", "ratio_p50", "ratio_p99")
    return [median_of([runs[i] for runs in by_round], keys) for i in range(len(by_round[0]))]


def median_of(runs: list[dict[str, Any]], keys: tuple[str, ...]) -> dict[str, Any]:
    """The first run with each of `keys` replaced by its median over `runs` (the per-run
    values kept under "rounds")."""
    out = dict(runs[0])
    for key in keys:
        if key in out:
            value = statistics.median(r[key] for r in runs)
            out[key] = round(value, 3) if key.startswith("ratio") else value
    if "received" in out:
        out["received"] = min(r["received"] for r in runs)
    out["rounds"] = [{k: r[k] for k in keys if k in r} for r in runs]
    return out


def markdown(report: dict[str, Any]) -> str:
    lines = [f"Machine: {report['machine']}  ", f"Date: {report['date']}", ""]
    for transport, runs in report["rtt"].items():
        lines += [
            f"### RTT over {transport} (µs, {report['samples']:,} samples after warm-up; "
            f"median of {report.get('rounds', 1)} interleaved rounds)",
            "",
            "| case | rate | p50 | p99 | p99.9 | vs raw p50 | vs raw p99 |",
            "|---|---|---:|---:|---:|---:|---:|",
        ]
        for r in runs:
            rate = "max" if not r["rate"] else f"{r['rate']:,.0f}/s"
            lines.append(
                f"| {r['case']} | {rate} | "
                f"{r['p50_us']:.1f} | {r['p99_us']:.1f} | {r['p999_us']:.1f} | "
                f"{r.get('ratio_p50', '') or ''} | {r.get('ratio_p99', '') or ''} |"
            )
        lines.append("")
    lines += [
        f"### Pub/sub throughput (MarketData, ipc; median of {report.get('rounds', 1)} "
        "interleaved rounds)",
        "",
        "| case | published msg/s | received msg/s | received |",
        "|---|---:|---:|---:|",
    ]
    for r in report["throughput"]:
        lines.append(
            f"| {r['case']} | {r['published_per_sec']:,.0f} | "
            f"{r['received_per_sec']:,.0f} | {r['received']:,}/{r['count']:,} |"
        )
    codec = report.get("codec", [])
    if codec:
        lines += [
            "",
            "### Envelope codec (MarketData frame, ns per message, best of 5)",
            "",
            "| codec | frame bytes | encode ns | decode + parse ns |",
            "|---|---:|---:|---:|",
        ]
        for r in codec:
            lines.append(
                f"| {r['codec']} | {r['bytes']} | {r['encode_ns']:,.0f} | {r['decode_ns']:,.0f} |"
            )
    kill = report.get("kill_switch", [])
    if kill:
        lines += [
            "",
            "### Kill-switch acknowledgement under load (ipc, µs)",
            "",
            "| case | commands/s | samples | p50 | p99 | p99.9 | market data published/s "
            "| received/s |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in kill:
            lines.append(
                f"| {r['case']} | {r['command_rate']:,.0f} | {r['samples']:,} | "
                f"{r['p50_us']:.1f} | {r['p99_us']:.1f} | {r['p999_us']:.1f} | "
                f"{r['market_data_published_per_sec']:,.0f} | "
                f"{r['market_data_received_per_sec']:,.0f} |"
            )
    goals = report.get("goals", [])
    if goals:
        lines += ["", "### Goals", "", "| goal | measured | met |", "|---|---:|---|"]
        for g in goals:
            lines.append(f"| {g['goal']} | {g['measured']} | {'yes' if g['met'] else 'no'} |")
    return "\n".join(lines) + "\n"


def goals(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's goals against this run's figures (ratios within the same run)."""
    out: list[dict[str, Any]] = []

    def rtt_row(transport: str, case: str, rate: float) -> dict[str, Any] | None:
        runs = report["rtt"].get(transport, [])
        return next((r for r in runs if r["case"] == case and r["rate"] == rate), None)

    for transport in report["rtt"]:
        for rate in sorted({r["rate"] for r in report["rtt"][transport]}):
            label = f"{transport}, {'max rate' if not rate else f'{rate:,.0f}/s'}"
            py = rtt_row(transport, "tradewire Python↔Python", rate)
            rust = rtt_row(transport, "tradewire Rust↔Rust", rate)
            if py and "ratio_p50" in py:
                out.append(
                    _goal(
                        f"Python typed RTT p50 ≤ 1.25x raw pyzmq ({label})",
                        py["ratio_p50"],
                        1.25,
                        "x",
                    )
                )
                out.append(
                    _goal(
                        f"Python typed RTT p99 ≤ 1.5x raw pyzmq ({label})",
                        py["ratio_p99"],
                        1.5,
                        "x",
                    )
                )
            if rust and "ratio_p50" in rust:
                out.append(
                    _goal(
                        f"Rust↔Rust RTT p50 ≤ 1.15x raw libzmq ({label})",
                        rust["ratio_p50"],
                        1.15,
                        "x",
                    )
                )
    tp = {r["case"]: r for r in report["throughput"]}
    for case in ("tradewire Python→Python", "tradewire Rust→Python"):
        if case in tp:
            out.append(
                _goal(
                    f"Python typed subscriber ≥ 400k MarketData/s ({case})",
                    tp[case]["received_per_sec"],
                    400_000,
                    "msg/s",
                    at_least=True,
                )
            )
    if "tradewire Rust→Rust" in tp:
        out.append(
            _goal(
                "Rust publisher ≥ 1.5M msg/s over ipc",
                tp["tradewire Rust→Rust"]["published_per_sec"],
                1_500_000,
                "msg/s",
                at_least=True,
            )
        )
    for r in report.get("kill_switch", []):
        out.append(
            _goal(
                f"kill-switch ack p99 ≤ 2 ms under 100k msg/s ({r['case']})",
                r["p99_us"],
                2000,
                "µs",
            )
        )
    return out


def _goal(
    goal: str, value: float, limit: float, unit: str, *, at_least: bool = False
) -> dict[str, Any]:
    met = value >= limit if at_least else value <= limit
    shown = f"{value:,.0f} {unit}" if unit != "x" else f"{value:.2f}x"
    return {"goal": goal, "measured": shown, "value": value, "limit": limit, "met": met}


def plot_cdf(sample_files: dict[str, Path], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for label, path in sample_files.items():
        values = [float(v) for v in path.read_text().split()]
        if values:
            ax.plot(values, [(i + 1) / len(values) for i in range(len(values))], label=label)
    ax.set_xscale("log")
    ax.set_xlabel("round-trip time (µs, log scale)")
    ax.set_ylabel("fraction of messages")
    ax.set_title("Echo RTT over ipc, max rate")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def _py_publish_rate(ep: str, journal: Path | None, count: int) -> float:
    """Python Publisher's publish rate (msg/s), in this process, no subscriber."""
    from tradewire.channels import MarketDataPublisher
    from tradewire.messages import MarketData
    from tradewire.transport import JournalOptions

    pub = MarketDataPublisher(ep, journal=JournalOptions(journal) if journal else None)
    try:
        ticks = [MarketData(symbol=s, price=100.0) for s in ("AAPL", "MSFT", "GOOG")]
        started = time.perf_counter()
        for i in range(count):
            pub.publish(ticks[i % 3])
        return count / (time.perf_counter() - started)
    finally:
        pub.close()


def journal_publish_rates(count: int, tmp: Path) -> list[dict[str, Any]]:
    """Publish rate with the journal off vs on (default options), per language."""
    rows = []
    for lang, n in (("Rust", count), ("Python", min(count, 200_000))):
        rates: dict[bool, float] = {}
        for on in (False, True):
            ep = endpoint("ipc", tmp, f"j-{lang}-{on}")
            jdir = tmp / f"journal-{lang}-{on}"
            if lang == "Rust":
                cmd = [str(ROOT / "target" / "release" / "tradewire-publish"), "--endpoint", ep]
                cmd += ["--count", str(n), *(["--journal", str(jdir)] if on else [])]
                out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=600)
                rates[on] = float(json.loads(out.stdout.strip().splitlines()[-1])["msgs_per_sec"])
            else:
                rates[on] = _py_publish_rate(ep, jdir if on else None, n)
        rows.append(
            {
                "case": f"tradewire {lang} publish, journal on vs off",
                "count": n,
                "off_per_sec": rates[False],
                "on_per_sec": rates[True],
                "ratio": rates[True] / rates[False],
            }
        )
    return rows


STORE_VARIANTS = (  # label, extra server arguments (the store file is appended per run)
    ("in memory", None),
    ("store, fsync off", "off"),
    ("store, fsync on", "on"),
)


def command_ack_latency(
    lang: str, fsync: str | None, ep: str, store: Path, samples: int, rate: float
) -> dict[str, Any]:
    """Ack latency of kill switches sent at `rate`/s to a command server of `lang`, with the
    durable store (`fsync` on/off) or without (None)."""
    extra = [] if fsync is None else ["--store", str(store), "--store-fsync", fsync]
    if lang == "rust":
        server_cmd = [str(ROOT / "target" / "release" / "tradewire-command-server")]
        server_cmd += ["--endpoint", ep, "--exit-on-eof", *extra]
    else:
        server_cmd = [*PY_PEER, "command-server", "--endpoint", ep, *extra]
    srv = subprocess.Popen(server_cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        _ready(srv)
        # the Rust server prints a line per command: drain it, a full pipe would stall it
        threading.Thread(target=lambda: [None for _ in srv.stdout or ()], daemon=True).start()
        client_args = ["--count", str(samples), "--warmup", str(max(200, samples // 10))]
        out = subprocess.run(
            [*PEERS[lang], "kill-client", "--endpoint", ep, *client_args, "--rate", str(rate)],
            capture_output=True,
            text=True,
            timeout=600,
            check=True,
        )
        assert srv.stdin is not None
        srv.stdin.close()
        srv.wait(30)
    finally:
        _reap(srv)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def command_store_rows(rounds: int, samples: int, rate: float, tmp: Path) -> list[dict[str, Any]]:
    """Per language and store variant: p50/p99 ack latency (median over interleaved rounds)
    and the ratio to the in-memory window of the same round."""
    rows = []
    for lang in ("rust", "py"):
        by_round: list[list[dict[str, Any]]] = []
        for k in range(rounds):
            runs = []
            for label, fsync in STORE_VARIANTS:
                tag = f"cs-{lang}-{k}-{fsync}"
                r = command_ack_latency(
                    lang, fsync, endpoint("ipc", tmp, tag), tmp / f"{tag}.sqlite", samples, rate
                )
                r["case"] = f"{'Rust' if lang == 'rust' else 'Python'} server, {label}"
                runs.append(r)
                print(
                    f"  command ack {r['case']} round {k + 1}: "
                    f"p50 {r['p50_us']:.1f} p99 {r['p99_us']:.1f} µs",
                    file=sys.stderr,
                )
            for r in runs[1:]:
                r["ratio_p50"] = r["p50_us"] / runs[0]["p50_us"]
                r["ratio_p99"] = r["p99_us"] / runs[0]["p99_us"]
            by_round.append(runs)
        keys = ("p50_us", "p99_us", "p999_us", "ratio_p50", "ratio_p99")
        for i in range(len(STORE_VARIANTS)):
            row = median_of([runs[i] for runs in by_round], keys)
            row.update(rate=rate)
            rows.append(row)
    return rows


def command_store_markdown(rows: list[dict[str, Any]]) -> str:
    lines = [
        "",
        "### Command ack latency, durable idempotency vs in memory (ipc, µs; median of "
        "interleaved rounds, ratios within a round)",
        "",
        "| case | commands/s | samples | p50 | p99 | p99.9 | p50 vs memory | p99 vs memory |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['case']} | {r['rate']:,.0f} | {r['samples']:,} | {r['p50_us']:.1f} | "
            f"{r['p99_us']:.1f} | {r['p999_us']:.1f} | {r.get('ratio_p50', '') or ''} | "
            f"{r.get('ratio_p99', '') or ''} |"
        )
    return "\n".join(lines) + "\n"


def journal_markdown(rows: list[dict[str, Any]]) -> str:
    lines = [
        "",
        "| journal (no subscriber, fsync interval) | off msg/s | on msg/s | on / off |",
        "|---|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['case']} | {r['off_per_sec']:,.0f} | {r['on_per_sec']:,.0f} | {r['ratio']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=20_000)
    parser.add_argument("--fixed-rate", type=float, default=5_000.0)
    parser.add_argument("--kill-rate", type=float, default=1_000.0, help="kill switches/s")
    parser.add_argument("--market-data-rate", type=float, default=100_000.0)
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="runs of every RTT and throughput case, interleaved; the median is reported",
    )
    parser.add_argument("--quick", action="store_true", help="few samples, ipc only (smoke)")
    parser.add_argument("--out", type=Path, default=ROOT / "benches" / "results")
    parser.add_argument(
        "--journal-only", action="store_true", help="only the journal on/off publish rates"
    )
    parser.add_argument(
        "--command-store-only",
        action="store_true",
        help="only the command ack latency with the durable store vs in memory",
    )
    parser.add_argument(
        "--command-rate", type=float, default=500.0, help="commands/s of the command store rows"
    )
    args = parser.parse_args()
    if args.journal_only:
        with tempfile.TemporaryDirectory() as tmp_name:
            print(journal_markdown(journal_publish_rates(1_000_000, Path(tmp_name))))
        return 0
    if args.command_store_only:
        with tempfile.TemporaryDirectory() as tmp_name:
            samples = 1_000 if args.quick else 5_000
            rows = command_store_rows(
                1 if args.quick else args.rounds, samples, args.command_rate, Path(tmp_name)
            )
            print(command_store_markdown(rows))
        return 0
    samples = 2_000 if args.quick else args.samples
    rounds = 1 if args.quick else args.rounds
    args.out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "samples": samples,
        "rounds": rounds,
        "rtt": {},
        "throughput": [],
    }
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        cdf: dict[str, Path] = {}
        rates = (0.0,) if args.quick else (0.0, args.fixed_rate)
        for transport in ("ipc",) if args.quick else ("ipc", "tcp"):
            report["rtt"][transport] = rtt_rounds(transport, rates, rounds, samples, tmp, cdf)
        tp_rounds = [  # round-major, like the RTT rounds
            [
                throughput(
                    name,
                    pub,
                    sub,
                    mode,
                    min(count, 50_000) if args.quick else count,
                    endpoint("ipc", tmp, f"t{n}-{k}"),
                )
                for n, (name, pub, sub, mode, count) in enumerate(THROUGHPUT_CASES)
            ]
            for k in range(rounds)
        ]
        report["throughput"] = [
            median_of([runs[n] for runs in tp_rounds], ("published_per_sec", "received_per_sec"))
            for n in range(len(THROUGHPUT_CASES))
        ]
        for r in report["throughput"]:
            print(
                f"  throughput {r['case']}: {r['received_per_sec']:,.0f} msg/s received",
                file=sys.stderr,
            )
        report["codec"] = envelope_codec(20_000 if args.quick else 200_000)
        kill_samples = 1_000 if args.quick else args.samples
        report["kill_switch"] = [
            kill_switch_under_load(
                client,
                endpoint("ipc", tmp, f"k{client}-md"),
                endpoint("ipc", tmp, f"k{client}-cmd"),
                kill_samples,
                args.kill_rate,
                args.market_data_rate,
            )
            for client in ("py", "rust")
        ]
        for r in report["kill_switch"]:
            print(
                f"  {r['case']}: p50 {r['p50_us']:.1f} p99 {r['p99_us']:.1f} µs, market data "
                f"{r['market_data_published_per_sec']:,.0f} msg/s",
                file=sys.stderr,
            )
        report["journal"] = journal_publish_rates(50_000 if args.quick else 1_000_000, tmp)
        report["command_store"] = command_store_rows(
            rounds, 1_000 if args.quick else 5_000, args.command_rate, tmp
        )
        plot_cdf(cdf, args.out / "rtt_cdf.png")
    report["goals"] = goals(report)
    (args.out / "transport.json").write_text(json.dumps(report, indent=2) + "\n")
    table = (
        markdown(report)
        + journal_markdown(report["journal"])
        + command_store_markdown(report["command_store"])
    )
    (args.out / "transport.md").write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Python peers of `make bench` (same roles and flags as the Rust `tradewire-bench`).

    python benches/py_peer.py echo-server --endpoint E --mode raw|typed
    python benches/py_peer.py echo-client --endpoint E --mode raw|typed --count N
                              [--warmup W] [--rate R] [--samples-out FILE]
    python benches/py_peer.py pub|sub --endpoint E --mode raw|typed --count N
    python benches/py_peer.py kill-client --endpoint E --count N [--warmup W] [--rate R]
    python benches/py_peer.py command-server --endpoint E [--store FILE] [--store-fsync on|off]

raw: bare pyzmq PAIR (echo) / PUB-SUB with the protobuf payload in one frame.
raw+work (echo-server): raw, but busy for 2 µs before echoing, about what the typed
server spends on decode + encode: a control for what that much work costs in wake-ups.
typed: tradewire's envelope + typed decode on both ends (echo), or the tradewire
Publisher/Subscriber with sequence tracking, handshake and replay (pub/sub).
kill-client: tradewire's CommandsClient sending kill switches at a fixed rate (ack latency).
command-server: tradewire's CommandsServer until EOF on stdin; with `--store`, applied ids
are kept in that durable store and the handler records each application as state committed
with them (as `tradewire-command-server --store`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import zmq

from tradewire import wire
from tradewire.channels import (
    CommandsClient,
    CommandsServer,
    MarketDataPublisher,
    MarketDataSubscriber,
)
from tradewire.latency import percentile
from tradewire.messages import CommandAck, MarketData, StrategyCommand

TICK = MarketData(
    symbol="AAPL",
    price=187.52,
    volume=300,
    timestamp_us=1_764_000_000_000_000,
    exchange="NASDAQ",
    bid=187.51,
    ask=187.53,
    bid_size=1200,
    ask_size=800,
)


WORK_S = 2e-6


def typed_frame(message: MarketData, seq: int) -> bytes:
    return wire.encode_message(
        "market_data",
        message,
        key=message.symbol,
        publisher_id=7,
        seq=seq,
        send_ts_ns=time.time_ns(),
    )


def typed_decode(frame: bytes) -> MarketData:
    return wire.parse_payload(wire.decode_frame(frame), MarketData)


def echo_server(args: argparse.Namespace) -> None:
    sock: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.PAIR)
    sock.bind(args.endpoint)
    print(json.dumps({"ready": True}), flush=True)
    seq = 0
    while True:
        frame = sock.recv()
        if not frame:
            break
        if args.mode == "typed":
            seq += 1
            sock.send(typed_frame(typed_decode(frame), seq))
        elif args.mode == "raw+work":
            until = time.perf_counter() + WORK_S  # the control: raw, plus typed-sized work
            while time.perf_counter() < until:
                pass
            sock.send(frame)
        else:
            sock.send(frame)
    sock.close(0)


def echo_client(args: argparse.Namespace) -> None:
    sock: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.PAIR)
    sock.connect(args.endpoint)
    raw = TICK.SerializeToString()
    interval = 1 / args.rate if args.rate else 0.0
    samples: list[float] = []
    size = len(raw)
    start = time.perf_counter()
    perf = time.perf_counter_ns
    for i in range(args.warmup + args.count):
        if interval:
            due = start + i * interval
            while time.perf_counter() < due:
                pass
        t0 = perf()
        if args.mode == "typed":
            frame = typed_frame(TICK, i + 1)
            sock.send(frame)
            back = typed_decode(sock.recv())
            size = len(frame)
            if back.symbol != TICK.symbol:
                raise SystemExit("echo changed the message")
        else:
            sock.send(raw)
            sock.recv()
        if i >= args.warmup:
            samples.append((perf() - t0) / 1000)
    sock.send(b"")
    sock.close(linger=1000)
    report_samples(args, samples, size)


def report_samples(args: argparse.Namespace, samples: list[float], size: int) -> None:
    samples.sort()
    if args.samples_out:
        with open(args.samples_out, "w") as out:
            out.write("".join(f"{s:.3f}\n" for s in samples))
    print(
        json.dumps(
            {
                "samples": len(samples),
                "bytes": size,
                "p50_us": percentile(samples, 50),
                "p99_us": percentile(samples, 99),
                "p999_us": percentile(samples, 99.9),
                "mean_us": sum(samples) / len(samples),
            }
        )
    )


def kill_client(args: argparse.Namespace) -> None:
    interval = 1 / (args.rate or 1000.0)
    samples: list[float] = []
    perf = time.perf_counter_ns
    with CommandsClient(args.endpoint) as client:
        start = time.perf_counter()
        for i in range(args.warmup + args.count):
            delay = start + i * interval - time.perf_counter()
            if delay > 0:
                time.sleep(delay)  # pacing between samples
            t0 = perf()
            ack = client.send(StrategyCommand(type=StrategyCommand.KILL_SWITCH), timeout=5)
            if i >= args.warmup:
                samples.append((perf() - t0) / 1000)
            if ack.outcome != CommandAck.APPLIED:
                raise SystemExit(f"kill switch not applied: {ack.reason}")
    report_samples(args, samples, 0)


def command_server(args: argparse.Namespace) -> None:
    import threading

    from tradewire.transport import CommandState, CommandStoreOptions

    store = CommandStoreOptions(args.store, fsync=args.store_fsync == "on") if args.store else None
    state: CommandState | None = None
    applications = 0

    def handle(cmd: StrategyCommand) -> CommandAck:
        nonlocal applications
        if state is not None:
            state.put(f"applications/{applications:020}", cmd.command_id.encode())
            applications += 1
        return CommandAck(outcome=CommandAck.APPLIED)

    with CommandsServer(args.endpoint, handle, store=store) as server:
        state = server.state
        eof = threading.Event()

        def wait_eof() -> None:
            sys.stdin.read()
            eof.set()

        threading.Thread(target=wait_eof, daemon=True).start()
        print(json.dumps({"ready": True}), flush=True)
        server.serve(until=eof.is_set, poll_interval=0.05)


def publisher(args: argparse.Namespace) -> None:
    if args.mode == "typed":
        with MarketDataPublisher(args.endpoint, sndhwm=0, ring_size=args.count) as pub:
            print(json.dumps({"ready": True}), flush=True)
            sys.stdin.readline()  # the orchestrator says go once the subscriber is live
            t0 = time.perf_counter()
            for _ in range(args.count):
                pub.publish(TICK)
            report(args.count, t0)
            sys.stdin.readline()
        return
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
    sock = ctx.socket(zmq.PUB)
    sock.sndhwm = 0
    sock.bind(args.endpoint)
    print(json.dumps({"ready": True}), flush=True)
    sys.stdin.readline()
    raw = TICK.SerializeToString()
    t0 = time.perf_counter()
    for _ in range(args.count):
        sock.send(raw)
    report(args.count, t0)
    sys.stdin.readline()
    sock.close(0)


def subscriber(args: argparse.Namespace) -> None:
    if args.mode == "typed":
        with MarketDataSubscriber(args.endpoint, rcvhwm=0) as sub:  # unbounded, like raw
            print(json.dumps({"ready": True}), flush=True)
            got, t0 = 0, 0.0
            while got < args.count:
                if sub.recv(timeout=10) is None:
                    break
                if not got:
                    t0 = time.perf_counter()
                got += 1
            report(got, t0)
        return
    sock: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.SUB)
    sock.rcvhwm = 0
    sock.subscribe(b"")
    sock.connect(args.endpoint)
    time.sleep(0.3)  # raw PUB/SUB has no handshake: the baseline waits out the slow joiner
    print(json.dumps({"ready": True}), flush=True)
    got, t0 = 0, 0.0
    parse = MarketData.FromString
    sock.rcvtimeo = 10_000  # a blocking recv per message: pyzmq's fastest plain loop
    while got < args.count:
        try:
            parse(sock.recv())
        except zmq.Again:
            break
        if not got:
            t0 = time.perf_counter()
        got += 1
    report(got, t0)
    sock.close(0)


def report(count: int, t0: float) -> None:
    seconds = max(time.perf_counter() - t0, 1e-9)
    print(
        json.dumps({"count": count, "seconds": seconds, "msgs_per_sec": count / seconds}),
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    roles = ["echo-server", "echo-client", "pub", "sub", "kill-client", "command-server"]
    parser.add_argument("role", choices=roles)
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--mode", choices=["raw", "raw+work", "typed"], default="typed")
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--warmup", type=int, default=2_000)
    parser.add_argument("--rate", type=float, default=0.0)
    parser.add_argument("--samples-out", default="")
    parser.add_argument("--store", default="")
    parser.add_argument("--store-fsync", choices=["on", "off"], default="on")
    args = parser.parse_args()
    {
        "echo-server": echo_server,
        "echo-client": echo_client,
        "pub": publisher,
        "sub": subscriber,
        "kill-client": kill_client,
        "command-server": command_server,
    }[args.role](args)


if __name__ == "__main__":
    main()

"""A scripted engine process: market data at a fixed rate plus a command server, in one
process, for the kill-switch-under-load test. Prints `ready` once bound, then runs until
killed; on each kill switch it prints `kill <command_id> <ticks published> <ticks/s>`."""

from __future__ import annotations

import argparse
import sys
import threading
import time

from tradewire.channels import CommandsServer, MarketDataPublisher
from tradewire.messages import CommandAck, MarketData, StrategyCommand


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--md", required=True, help="market data endpoint")
    parser.add_argument("--commands", required=True, help="command endpoint")
    parser.add_argument("--rate", type=float, default=100_000, help="ticks per second")
    args = parser.parse_args()
    halted = threading.Event()
    published = 0

    def handle(cmd: StrategyCommand) -> CommandAck:
        if cmd.type == StrategyCommand.KILL_SWITCH:
            halted.set()
            elapsed = time.perf_counter() - start
            print(f"kill {cmd.command_id} {published} {published / elapsed:.0f}", flush=True)
        return CommandAck(outcome=CommandAck.APPLIED, engine_timestamp_us=time.time_ns() // 1000)

    start = time.perf_counter()
    with MarketDataPublisher(args.md) as pub, CommandsServer(args.commands, handle) as server:
        serving = threading.Thread(target=server.serve, args=(lambda: False,), daemon=True)
        serving.start()
        print("ready", flush=True)
        tick = MarketData(symbol="AAPL", exchange="TEST")
        batch = max(1, int(args.rate // 1000))  # publish in 1 ms slices
        while True:
            due = int((time.perf_counter() - start) * args.rate)
            if published >= due:
                time.sleep(0.0002)
                continue
            for _ in range(min(batch, due - published)):
                tick.price = 100 + (published % 100) / 100
                pub.publish(tick)
                published += 1


if __name__ == "__main__":
    sys.exit(main())

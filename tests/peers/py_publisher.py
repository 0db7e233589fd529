"""A scripted market-data publisher process for multi-process tests.

stdin/stdout protocol, one line each: prints `ready <publisher_id>`; on `go N [RATE]`
publishes N messages (symbols cycled, at RATE msg/s if given) and prints `done <last_seq>`;
on `wait N [TIMEOUT]` prints `subscribed N` once N subscribers completed the subscription
handshake (`timeout N` if they did not within TIMEOUT s, default 30); on `exit` closes and
exits 0.
"""

from __future__ import annotations

import argparse
import sys
import time

from tradewire.channels import MarketDataPublisher
from tradewire.messages import MarketData
from tradewire.transport import JournalOptions


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--ring", type=int, default=100_000)
    parser.add_argument("--symbols", default="AAPL,MSFT,GOOG")
    parser.add_argument("--heartbeat", type=float, default=0.2)
    parser.add_argument("--journal", default="", help="journal directory (default: none)")
    args = parser.parse_args()
    symbols = args.symbols.split(",")
    journal = JournalOptions(args.journal) if args.journal else None
    with MarketDataPublisher(
        args.endpoint, ring_size=args.ring, heartbeat_interval=args.heartbeat, journal=journal
    ) as pub:
        print(f"ready {pub.publisher_id}", flush=True)
        tick = MarketData(exchange="TEST")
        seq = 0
        for line in sys.stdin:
            command, _, arg = line.strip().partition(" ")
            if command == "go":
                count, _, rate = arg.partition(" ")
                interval = 1 / float(rate) if rate else 0.0
                started = time.perf_counter()
                for i in range(int(count)):
                    if interval:
                        while time.perf_counter() - started < i * interval:
                            time.sleep(interval / 4)
                    tick.symbol = symbols[i % len(symbols)]
                    tick.price = 100.0 + (i % 1000) / 100
                    tick.timestamp_us = i
                    seq = pub.publish(tick)
                print(f"done {seq}", flush=True)
            elif command == "wait":
                n, _, timeout = arg.partition(" ")
                ok = pub.wait_for_subscribers(int(n or 1), float(timeout or 30))
                print(f"{'subscribed' if ok else 'timeout'} {n or 1}", flush=True)
            elif command == "exit":
                break
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A Python command server on a durable store, for the restart tests: the twin of
`tradewire-command-server --store`. Each application takes `--handler-ms` and is recorded
as handler state `applications/<n, 20 digits>` = the command id, committed with the id and
its ack, so the store counts every application. Prints `{"ready":true}` once bound, then
serves until killed or until EOF on stdin."""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time

from tradewire.channels import CommandsServer
from tradewire.messages import CommandAck, StrategyCommand
from tradewire.transport import CommandState, CommandStoreOptions

APPLICATIONS = "applications/"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--store", default="", help="store file; none: ids in memory only")
    parser.add_argument("--store-fsync", choices=["on", "off"], default="on")
    parser.add_argument("--handler-ms", type=float, default=0.0)
    args = parser.parse_args()
    store = CommandStoreOptions(args.store, fsync=args.store_fsync == "on") if args.store else None
    state: CommandState | None = None
    applications = 0

    def handle(cmd: StrategyCommand) -> CommandAck:
        nonlocal applications
        if args.handler_ms:
            time.sleep(args.handler_ms / 1000)
        if state is not None:
            state.put(f"{APPLICATIONS}{applications:020}", cmd.command_id.encode())
            applications += 1
        return CommandAck(outcome=CommandAck.APPLIED)

    with CommandsServer(args.endpoint, handle, store=store) as server:
        state = server.state
        if state is not None:
            held = state.items(APPLICATIONS)
            applications = int(held[-1][0][len(APPLICATIONS) :]) + 1 if held else 0
        stop = threading.Event()

        def wait_eof() -> None:
            sys.stdin.read()
            stop.set()

        threading.Thread(target=wait_eof, daemon=True).start()
        print(json.dumps({"ready": True}), flush=True)
        server.serve(until=stop.is_set, poll_interval=0.02)
        print(json.dumps({"summary": server.stats.as_dict()}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

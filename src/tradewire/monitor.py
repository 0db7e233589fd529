"""`tradewire monitor`: the seed's realtime monitor on the typed subscriber."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from google.protobuf.json_format import MessageToDict

from tradewire._gen import registry
from tradewire.catalog import Pattern
from tradewire.transport import Received, Subscriber


def _line(received: Received[Any], as_json: bool) -> str:
    env = received.envelope
    if as_json:
        return json.dumps(
            {
                "channel": env.channel,
                "key": env.key,
                "publisher_id": f"{env.publisher_id:016x}",
                "seq": env.seq,
                "key_seq": env.key_seq,
                "send_ts_ns": env.send_ts_ns,
                "message": MessageToDict(received.message, preserving_proto_field_name=True),
            }
        )
    body = MessageToDict(received.message, preserving_proto_field_name=True)
    fields = " ".join(f"{k}={v}" for k, v in body.items())
    return f"[{env.channel} #{env.seq}] {fields}"


def run(args: argparse.Namespace) -> int:
    channels = {c.name: c for c in registry.CHANNELS if c.pattern is Pattern.PUB_SUB}
    channel = channels.get(args.channel)
    if channel is None:
        print(
            f"unknown pub/sub channel {args.channel!r}; known: {', '.join(sorted(channels))}",
            file=sys.stderr,
        )
        return 2
    seen = 0
    with Subscriber[Any](args.endpoint, channel=channel, keys=args.symbols) as sub:
        try:
            while args.count <= 0 or seen < args.count:
                received = sub.recv(timeout=args.timeout or None)
                if received is None:
                    print(f"no message for {args.timeout}s", file=sys.stderr)
                    return 1
                seen += 1
                print(_line(received, args.json), flush=True)
        except KeyboardInterrupt:
            pass
        stats = sub.stats.as_dict()
    if stats["gaps"] or stats["rejected"]:
        print(f"stats: {json.dumps(stats)}", file=sys.stderr)
    return 0

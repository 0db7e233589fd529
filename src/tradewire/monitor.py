"""`tradewire monitor`: the seed's realtime monitor on the typed subscriber."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from google.protobuf.json_format import MessageToDict

from tradewire._gen import registry
from tradewire.catalog import Pattern
from tradewire.transport import Received, Subscriber, SubscribeTimeout, TransportEvent


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

    def show(event: TransportEvent) -> None:
        if args.json:
            print(json.dumps(event.as_dict()), flush=True)
        else:
            span = f" {event.first}..{event.last}" if event.last else ""
            print(f"[{event.channel}] {event.kind}{span} {event.detail}".rstrip(), flush=True)

    seen = 0
    try:
        sub = Subscriber[Any](
            args.endpoint,
            channel=channel,
            keys=args.symbols,
            on_event=show,
            subscribe_timeout=args.timeout or None,
            peer_timeout=args.peer_timeout,
            start="earliest" if args.from_start else "latest",
        )
    except SubscribeTimeout as exc:
        print(str(exc), file=sys.stderr)
        return 1
    with sub:
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

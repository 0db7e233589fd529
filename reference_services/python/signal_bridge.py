"""signal-bridge, Python twin of reference_services/rust/signal-bridge (SPEC.md).

    python reference_services/python/signal_bridge.py [--config PATH]

Features per tick with tradewire.features.FeatureState (the Rust crate through PyO3, so
the numbers are the Rust service's), the registry's model through onnxruntime (the same
library the Rust service loads), the signal decided by tradewire.rules (the Rust service's
rule), published with the Python SDK.
"""

from __future__ import annotations

import importlib
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from twin_common import (
    Latency,
    Lifecycle,
    config_or_exit,
    ensure_ipc_dir,
    journal_options,
    log,
    parse_args,
    remove_ipc,
    subscribe,
)

from tradewire import features as tf
from tradewire.channels import MarketDataSubscriber, SignalsPublisher
from tradewire.messages import TradingSignal
from tradewire.ml.export import META_FEATURES
from tradewire.ml.registry import ModelEntry, ModelRegistry, RegistryError, check_feature_names
from tradewire.rules import decide

NAME = "signal-bridge"
ort: Any = importlib.import_module("onnxruntime")  # untyped


def choose_model(registry: str, spec: str, name: str) -> ModelEntry:
    """SPEC.md: the entry named `name` (any when empty) for `spec`, verified."""
    path = Path(registry)
    reg = ModelRegistry(path if path.is_dir() else path.parent)
    if name:
        if spec == "latest":
            latest: ModelEntry | None
            try:
                latest = reg.resolve("latest")
            except RegistryError:
                latest = None
            if latest is None or latest.name != name:
                versions = [e.version for e in reg.entries() if e.name == name]
                if not versions:
                    names = sorted({e.name for e in reg.entries()})
                    raise RegistryError(
                        f"{reg.file}: no model named {name!r} (registered: {names})"
                    )
                spec = str(max(versions))
        else:
            entry = reg.resolve(spec)
            if entry.name != name:
                raise RegistryError(
                    f"{reg.file}: {spec!r} is model v{entry.version} named {entry.name!r}, "
                    f"not {name!r}"
                )
    return reg.load(spec)


def session_for(entry: ModelEntry) -> Any:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(entry.path), options, providers=["CPUExecutionProvider"])
    embedded = sess.get_modelmeta().custom_metadata_map.get(META_FEATURES)
    if embedded is not None:
        check_feature_names(json.loads(embedded), tf.FEATURE_NAMES, str(entry.path))
    return sess


def main() -> int:
    args = parse_args(NAME)
    cfg = config_or_exit(NAME, args.config)
    life = Lifecycle(NAME)
    try:
        entry = choose_model(cfg.model.registry, cfg.model.version, cfg.model.name)
        sess = session_for(entry)
    except (RegistryError, OSError, ValueError) as exc:
        life.fail(f"cannot load the model: {exc}")
        return 1
    log(NAME, f"model {entry.path}")
    threshold = cfg.signal.threshold
    names = tf.FEATURE_NAMES

    out_ep = cfg.endpoints.signals
    ensure_ipc_dir(out_ep)
    try:
        publisher = SignalsPublisher(out_ep, journal=journal_options(cfg, "signals", out_ep))
    except OSError as exc:
        life.fail(f"cannot bind {out_ep}: {exc}")
        return 1
    life.ready()

    in_ep = cfg.endpoints.market_data
    # start="earliest": a publisher's stream is taken from its seq 1 (replayed from its ring),
    # so ticks published before this subscription completed are not silently skipped.
    sub = subscribe(
        lambda: MarketDataSubscriber(in_ep, subscribe_timeout=0.5, start="earliest"), life.stop
    )
    if sub is not None:
        log(NAME, f"subscribed to {in_ep}")
    states: dict[str, Any] = {}
    counts = dict.fromkeys(("ticks", "warming", "bad_ticks", "signals", "buy", "sell", "hold"), 0)
    kinds = {TradingSignal.BUY: "buy", TradingSignal.SELL: "sell", TradingSignal.HOLD: "hold"}
    latency = Latency()
    process = Latency()
    x = np.zeros((1, tf.N_FEATURES), dtype=np.float32)
    feed = {entry.input: x}
    outputs = [entry.output]
    while sub is not None and not life.stopping():
        got = sub.recv(timeout=0.1)
        if got is None:
            continue
        t_recv = time.perf_counter()
        tick = got.message
        counts["ticks"] += 1
        state = states.get(tick.symbol)
        if state is None:
            state = states[tick.symbol] = tf.FeatureState()
        try:
            row = state.update(tick.price, tick.volume)
        except ValueError as exc:
            counts["bad_ticks"] += 1
            log(NAME, f"bad tick for {tick.symbol}: {exc}")
            continue
        if row is None:
            counts["warming"] += 1
            continue
        x[0, :] = row  # float64 -> float32, round to nearest
        probs = sess.run(outputs, feed)[0][0]
        kind, confidence = decide(probs, threshold)
        counts[kinds[kind]] += 1
        publisher.publish(
            TradingSignal(
                symbol=tick.symbol,
                signal=kind,
                confidence=confidence,
                timestamp_us=tick.timestamp_us,
                features=dict(zip(names, row, strict=True)),
            )
        )
        counts["signals"] += 1
        latency.record((time.time_ns() - got.envelope.send_ts_ns) / 1000.0)
        process.record((time.perf_counter() - t_recv) * 1e6)
    gaps = sub.stats.gaps if sub is not None else 0
    if sub is not None:
        sub.close()
    publisher.close()
    remove_ipc(out_ep, control=True)
    life.summary(
        {
            **counts,
            "gaps": gaps,
            "latency_us": latency.summary(),
            "process_us": process.summary(),
        }
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

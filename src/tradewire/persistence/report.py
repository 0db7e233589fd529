"""`tradewire report`: an HTML page with PNG plots of what the recorder stored.

- pnl.png: cumulative realized P&L (average cost, from the fills in the audit trail) and, when
  snapshots exist, total P&L (realized + unrealized reported by the engine) at each snapshot;
- positions.png: quantity per symbol over time (snapshots, then the current position);
- latency_cdf.png: CDF of end-to-end latency, publisher send time (send_ts_ns) to the
  recorder's receive (recv_ts_ns) and to the start of the transaction that stored the row
  (recorded_ts_ns). Replayed messages (recovered after a gap or a recorder restart) are
  shown separately: their latency includes the outage.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from tradewire.persistence.database import TradingDatabase

MAX_POINTS = 5000


@dataclass
class Report:
    index: Path
    plots: list[Path]


def _thin(df: pd.DataFrame, limit: int = MAX_POINTS) -> pd.DataFrame:
    """At most `limit` rows, evenly spaced, always keeping the last."""
    if len(df) <= limit:
        return df
    keep = np.unique(np.linspace(0, len(df) - 1, limit).astype(int))
    return df.iloc[keep]


def _figure() -> Figure:
    fig = Figure(figsize=(9, 4.5), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _empty(ax: Any, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.4")


def plot_pnl(db: TradingDatabase, snapshots: pd.DataFrame, path: Path) -> None:
    fig = _figure()
    ax = fig.add_subplot()
    curve = db.realized_pnl_curve()
    if curve.empty and snapshots.empty:
        _empty(ax, "no fills recorded")
    if not curve.empty:
        thin = _thin(curve)
        ax.plot(thin["timestamp_utc"], thin["cumulative_pnl"], drawstyle="steps-post",
                label="realized (average cost, from fills)", color="tab:blue")  # fmt: skip
    if not snapshots.empty:
        total = (snapshots.assign(total=snapshots["realized_pnl"] + snapshots["unrealized_pnl"])
                 .groupby("snapshot_time")["total"].sum())  # fmt: skip
        ax.plot(total.index, total.to_numpy(), label="total: realized + unrealized (snapshots)",
                color="tab:orange", marker="." if len(total) < 200 else None)  # fmt: skip
    ax.axhline(0, color="0.6", linewidth=0.8)
    ax.set_title("P&L")
    ax.set_xlabel("time (UTC)")
    ax.set_ylabel("P&L (quote currency)")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="best")
    fig.autofmt_xdate()
    fig.savefig(path)


def plot_positions(snapshots: pd.DataFrame, current: pd.DataFrame, path: Path) -> None:
    fig = _figure()
    ax = fig.add_subplot()
    if snapshots.empty and current.empty:
        _empty(ax, "no positions recorded")
    frames = [snapshots[["snapshot_time", "symbol", "quantity"]].rename(
        columns={"snapshot_time": "time"})] if not snapshots.empty else []  # fmt: skip
    if not current.empty:
        frames.append(current[["last_updated_utc", "symbol", "quantity"]].rename(
            columns={"last_updated_utc": "time"}))  # fmt: skip
    if frames:
        series = pd.concat(frames).sort_values("time")
        for symbol, rows in series.groupby("symbol"):
            thin = _thin(rows)
            ax.plot(thin["time"], thin["quantity"], drawstyle="steps-post", label=str(symbol))
        ax.legend(loc="best", ncols=min(5, series["symbol"].nunique()))
    ax.axhline(0, color="0.6", linewidth=0.8)
    ax.set_title("Positions over time (snapshots, then current)")
    ax.set_xlabel("time (UTC)")
    ax.set_ylabel("quantity (units, signed)")
    ax.grid(alpha=0.3)
    fig.autofmt_xdate()
    fig.savefig(path)


def latency_stats(latency: pd.DataFrame) -> pd.DataFrame:
    """Percentiles (ms) of send->receive and send->recorded, live and replayed."""
    rows = []
    for label, subset in (("live", latency[~latency["replayed"].astype(bool)]),
                          ("replayed", latency[latency["replayed"].astype(bool)])):  # fmt: skip
        if subset.empty:
            continue
        for what, column in (("send->receive", "recv_ts_ns"), ("send->recorded", "recorded_ts_ns")):
            ms = (subset[column] - subset["send_ts_ns"]).to_numpy(dtype=float) / 1e6
            p50, p90, p99, p999 = np.percentile(ms, [50, 90, 99, 99.9])
            rows.append({"messages": label, "latency": what, "count": len(ms),
                         "p50_ms": p50, "p90_ms": p90, "p99_ms": p99, "p99.9_ms": p999,
                         "max_ms": ms.max()})  # fmt: skip
    return pd.DataFrame(rows)


def plot_latency(latency: pd.DataFrame, path: Path) -> None:
    fig = _figure()
    ax = fig.add_subplot()
    if latency.empty:
        _empty(ax, "no order updates recorded")
    styles = {"live": "-", "replayed": ":"}
    colors = {"send->receive": "tab:blue", "send->recorded": "tab:green"}
    replayed = latency["replayed"].astype(bool) if not latency.empty else pd.Series([], dtype=bool)
    for label, subset in (("live", latency[~replayed]), ("replayed", latency[replayed])):
        if subset.empty:
            continue
        for what, column in (("send->receive", "recv_ts_ns"), ("send->recorded", "recorded_ts_ns")):
            ms = np.sort((subset[column] - subset["send_ts_ns"]).to_numpy(dtype=float) / 1e6)
            ms = np.maximum(ms, 1e-3)  # log axis: clamp clock noise at 1 us
            q = np.linspace(0, 1, min(len(ms), MAX_POINTS))
            ax.plot(np.quantile(ms, q), q, styles[label], color=colors[what],
                    label=f"{what} ({label}, n={len(ms):,})")  # fmt: skip
    ax.set_xscale("log")
    ax.set_ylim(0, 1.0)
    for level in (0.5, 0.99):
        ax.axhline(level, color="0.7", linewidth=0.8, linestyle="--")
    ax.set_title("End-to-end latency CDF (publisher send_ts_ns to recorder)")
    ax.set_xlabel("latency (ms, log scale)")
    ax.set_ylabel("fraction of messages")
    ax.grid(alpha=0.3, which="both")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="best", fontsize="small")
    fig.savefig(path)


def _table(df: pd.DataFrame, floatfmt: str = "{:,.2f}") -> str:
    if df.empty:
        return "<p class=none>none</p>"
    return df.to_html(index=False, border=0, classes="t", na_rep="",
                      float_format=floatfmt.format)  # fmt: skip


def build(db: TradingDatabase, out: Path) -> Report:
    """Write out/index.html and its PNGs; returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    counts = db.counts()
    positions = db.get_positions()
    snapshots = db.get_position_snapshots(datetime(1970, 1, 1), datetime(9999, 1, 1))
    latency = db.get_latency()
    curve = db.realized_pnl_curve()
    days = sorted({ts.date() for ts in curve["timestamp_utc"]}) if not curve.empty else []
    daily = [db.calculate_daily_pnl(day) for day in days[-10:]]
    daily_df = pd.concat(daily) if daily else pd.DataFrame()
    plots = [out / "pnl.png", out / "positions.png", out / "latency_cdf.png"]
    plot_pnl(db, snapshots, plots[0])
    plot_positions(snapshots, positions, plots[1])
    plot_latency(latency, plots[2])
    shown_positions = positions[["symbol", "quantity", "avg_cost", "current_price",
                                 "unrealized_pnl", "realized_pnl", "last_updated_utc"]] \
        if not positions.empty else positions  # fmt: skip
    progress = db.get_stream_progress()
    gaps = db.get_stream_gaps()
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    url = html.escape(db.engine.url.render_as_string(hide_password=True))
    sections = [
        f"<h1>tradewire report</h1><p>{url} &middot; generated {generated}</p>",
        "<h2>Stored rows</h2>" + _table(pd.DataFrame([counts])),
        '<h2>P&amp;L</h2><img src="pnl.png" alt="P&amp;L curve">',
        "<h3>Daily realized P&amp;L (average cost; last 10 UTC days with fills)</h3>"
        + _table(daily_df),
        '<h2>Positions</h2><img src="positions.png" alt="positions over time">'
        + _table(shown_positions),
        '<h2>Latency</h2><img src="latency_cdf.png" alt="latency CDF">'
        + _table(latency_stats(latency) if not latency.empty else pd.DataFrame(), "{:,.3f}"),
        "<h2>Streams</h2>" + _table(progress, "{:,.0f}"),
        "<h3>Unrecoverable gaps</h3>" + _table(gaps, "{:,.0f}"),
    ]
    page = (
        "<!doctype html><html><head><meta charset=utf-8><title>tradewire report</title>"
        "<style>body{font-family:system-ui,sans-serif;max-width:1040px;margin:2em auto;"
        "color:#222}img{max-width:100%;border:1px solid #ddd}table.t{border-collapse:collapse;"
        "font-size:.85em;margin:.5em 0 1.5em}table.t td,table.t th{padding:.2em .6em;"
        "border-bottom:1px solid #eee;text-align:right}.none{color:#888}</style></head><body>"
        + "\n".join(sections)
        + "</body></html>\n"
    )
    index = out / "index.html"
    index.write_text(page, encoding="utf-8")
    return Report(index, plots)

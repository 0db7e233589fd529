"""`tradewire report`: HTML with readable PNG plots, from SQLite and PostgreSQL."""

from __future__ import annotations

import itertools
from pathlib import Path

import matplotlib.image as plt_image
import numpy as np
from test_persistence import DAY1_US, db_url, feed  # noqa: F401  (db_url: fixture)

from tradewire.cli import main
from tradewire.messages import Order
from tradewire.persistence import TradingDatabase, open_engine
from tradewire.persistence.recorder import Recorder
from tradewire.persistence.report import build, latency_stats
from tradewire.persistence.simulate import SyntheticEngine

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TAB_BLUE, TAB_GREEN = (0x1F, 0x77, 0xB4), (0x2C, 0xA0, 0x2C)  # the CDF lines' colours


def _pixels_of(path: Path, rgb: tuple[int, int, int]) -> int:
    """Pixels of `path` within a small distance of colour `rgb`."""
    image = (plt_image.imread(path)[..., :3] * 255).astype(int)
    return int((abs(image - np.array(rgb)).max(axis=-1) <= 24).sum())


def test_report_html_and_plots(db_url: str, tmp_path: Path) -> None:  # noqa: F811
    messages = list(itertools.islice(SyntheticEngine(seed=2, start_us=DAY1_US,
                                                     step_us=50_000), 5000))  # fmt: skip
    engine = open_engine(db_url)
    with Recorder(engine, snapshot_interval=10) as rec:
        feed(rec, messages)
    report = build(TradingDatabase(engine), tmp_path / "out")
    page = report.index.read_text()
    for plot in report.plots:
        data = plot.read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 20_000, plot  # drawn, not blank
        assert f'src="{plot.name}"' in page
    assert "Daily realized P&amp;L" in page and "AAPL" in page
    assert [p.name for p in report.plots] == ["pnl.png", "positions.png", "latency_cdf.png"]
    cdf = report.plots[2]
    assert cdf.exists() and cdf.stat().st_size > 20_000
    # both CDF curves are drawn: send->receive (blue) and send->recorded (green)
    assert _pixels_of(cdf, TAB_BLUE) > 500 and _pixels_of(cdf, TAB_GREEN) > 500
    latency = TradingDatabase(engine).get_latency()
    orders = sum(isinstance(m, Order) for m in messages)
    assert len(latency) == orders and (latency["recv_ts_ns"] >= latency["send_ts_ns"]).all()
    stats = latency_stats(latency)
    assert set(stats["latency"]) == {"send->receive", "send->recorded"}
    assert stats["count"].tolist() == [orders, orders]
    engine.dispose()


def test_report_of_an_empty_database(tmp_path: Path, capsys: object) -> None:
    db = f"sqlite:///{tmp_path}/empty.db"
    assert main(["report", "--db", db, "--out", str(tmp_path / "r")]) == 0
    assert (tmp_path / "r" / "index.html").exists()
    assert all((tmp_path / "r" / n).stat().st_size > 0
               for n in ("pnl.png", "positions.png", "latency_cdf.png"))  # fmt: skip
    # no data, no curves: what makes the check in test_report_html_and_plots meaningful
    cdf = tmp_path / "r" / "latency_cdf.png"
    assert _pixels_of(cdf, TAB_BLUE) == 0 and _pixels_of(cdf, TAB_GREEN) == 0

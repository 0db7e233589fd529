"""`tradewire report`: HTML with readable PNG plots, from SQLite and PostgreSQL."""

from __future__ import annotations

import itertools
from pathlib import Path

from test_persistence import DAY1_US, db_url, feed  # noqa: F401  (db_url: fixture)

from tradewire.cli import main
from tradewire.persistence import TradingDatabase, open_engine
from tradewire.persistence.recorder import Recorder
from tradewire.persistence.report import build, latency_stats
from tradewire.persistence.simulate import SyntheticEngine

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


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
    stats = latency_stats(TradingDatabase(engine).get_latency())
    assert set(stats["latency"]) == {"send->receive", "send->recorded"}
    engine.dispose()


def test_report_of_an_empty_database(tmp_path: Path, capsys: object) -> None:
    db = f"sqlite:///{tmp_path}/empty.db"
    assert main(["report", "--db", db, "--out", str(tmp_path / "r")]) == 0
    assert (tmp_path / "r" / "index.html").exists()
    assert all((tmp_path / "r" / n).stat().st_size > 0
               for n in ("pnl.png", "positions.png", "latency_cdf.png"))  # fmt: skip

"""Issue 4, test 3 with a Rust engine: a kill switch from a Python client is acknowledged
while `tradewire-engine-demo` publishes 100 k msg/s of market data from the same process
to the same Python process. Asserted (see `test_kill_switch_under_load.py`): the ack, a
publish rate of at least 95 k msg/s over the second around the command, and market data
received while the command was in flight."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_kill_switch_under_load import check, kill_under_load


@pytest.mark.slow
def test_kill_switch_is_acknowledged_by_a_rust_engine_under_market_data_load(
    rust_bin_dir: Path, tmp_path: Path
) -> None:
    md, cmd = f"ipc://{tmp_path}/md", f"ipc://{tmp_path}/cmd"
    argv = [str(rust_bin_dir / "tradewire-engine-demo"), "--md", md, "--commands", cmd,
            "--rate", "100000"]  # fmt: skip
    check(kill_under_load(argv, md, cmd), "Rust engine", min_rate=95_000)

"""The shared configuration (tradewire.toml): Python (tradewire.config) and Rust
(crates/config) read it the same way, with the same overrides and errors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest

from tradewire.cli import main as cli_main
from tradewire.config import ConfigError, TradewireConfig, load_config

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("TRADEWIRE__") or name == "TRADEWIRE_CONFIG":
            monkeypatch.delenv(name)


@pytest.fixture(scope="module")
def rust_config() -> Path:
    if shutil.which("cargo") is None:
        pytest.fail("cargo is needed to build tradewire-config")
    subprocess.run(
        ["cargo", "build", "--release", "--locked", "-p", "tradewire-config"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    return ROOT / "target" / "release" / "tradewire-config"


def test_repo_file_is_the_defaults() -> None:
    config = load_config(ROOT / "tradewire.toml")
    assert config.file == (ROOT / "tradewire.toml").resolve()
    defaults = TradewireConfig().as_dict()
    got = config.as_dict()
    assert got["model"]["registry"] == str(ROOT / "models" / "registry.json")
    got["model"]["registry"] = defaults["model"]["registry"]
    assert got == defaults


def test_default_path_and_environment_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert load_config().file is None  # no ./tradewire.toml: defaults
    (tmp_path / "tradewire.toml").write_text("[risk]\norder_quantity = 7\n")
    assert load_config().risk.order_quantity == 7.0
    other = tmp_path / "other.toml"
    other.write_text("[risk]\norder_quantity = 9\n")
    monkeypatch.setenv("TRADEWIRE_CONFIG", str(other))
    assert load_config().risk.order_quantity == 9.0
    monkeypatch.setenv("TRADEWIRE_CONFIG", str(tmp_path / "missing.toml"))
    with pytest.raises(ConfigError, match=r"missing\.toml: no such configuration file"):
        load_config()


def test_environment_overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    file = tmp_path / "tw.toml"
    file.write_text('[model]\nregistry = "m"\n[market_data]\nsymbols = ["A"]\n')
    monkeypatch.setenv("TRADEWIRE__ENDPOINTS__MARKET_DATA", "ipc:///tmp/run1/md")
    monkeypatch.setenv("tradewire__risk__max_position_size", "500")
    monkeypatch.setenv("TRADEWIRE__MARKET_DATA__SYMBOLS", "X, Y")
    config = load_config(file)
    assert config.endpoints.market_data == "ipc:///tmp/run1/md"
    assert config.risk.max_position_size == 500.0
    assert config.market_data.symbols == ["X", "Y"]
    assert config.model.registry == str(tmp_path / "m")
    monkeypatch.setenv("TRADEWIRE__MARKET_DATA__SYMBOLS", '["Z"]')
    assert load_config(file).market_data.symbols == ["Z"]


BAD_FILES = [
    ('[risk]\nmax_position_size = "x"\n', "risk.max_position_size"),
    ("[foo]\na = 1\n", "foo"),
    ("[endpoints]\nbogus = 1\n", "endpoints.bogus"),
    ('[endpoints]\nsignals = "http://x"\n', "endpoints.signals"),
    ("[market_data]\nsymbols = []\n", "market_data.symbols"),
    ("[market_data]\nrate = -1\n", "market_data.rate"),
    ("[signal]\nthreshold = 1.5\n", "signal.threshold"),
    ("[risk]\norder_quantity = 0\n", "risk.order_quantity"),
    ("[risk\n", "not valid TOML"),
    ("[command_store]\nwindow_s = 0.5\n", "command_store.window_s"),
    ("[command_store]\nwindow_s = inf\n", "command_store.window_s"),
]


@pytest.mark.parametrize(("text", "field"), BAD_FILES)
def test_bad_values_name_field_and_file(
    tmp_path: Path, rust_config: Path, text: str, field: str
) -> None:
    file = tmp_path / "bad.toml"
    file.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(file)
    assert str(file) in str(err.value) and field in str(err.value)
    done = subprocess.run([str(rust_config), "--config", str(file)], capture_output=True, text=True)
    assert done.returncode == 2
    assert str(file) in done.stderr and field in done.stderr, done.stderr


BAD_ENV = [
    ("TRADEWIRE__RISK__MAX_DAILY_LOSS", "lots", "risk.max_daily_loss"),
    ("TRADEWIRE__MARKET_DATA__SEED", "1.5", "market_data.seed"),
    ("TRADEWIRE__RISK__MAX_POSITON", "1", "risk.max_positon"),
    ("TRADEWIRE__NOPE__X", "1", "TRADEWIRE__NOPE__X"),
    ("TRADEWIRE__RISK", "1", "TRADEWIRE__RISK"),
]


@pytest.mark.parametrize(("name", "value", "field"), BAD_ENV)
def test_bad_environment_names_the_variable(
    tmp_path: Path,
    rust_config: Path,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    value: str,
    field: str,
) -> None:
    file = tmp_path / "tw.toml"
    file.write_text("")
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as err:
        load_config(file)
    assert field in str(err.value) and name in str(err.value)
    done = subprocess.run([str(rust_config), "--config", str(file)], capture_output=True, text=True)
    assert done.returncode == 2
    assert field in done.stderr and name in done.stderr, done.stderr


def normalized(data: dict[str, Any]) -> dict[str, Any]:
    copy: dict[str, Any] = json.loads(json.dumps(data, sort_keys=True))
    return copy


@pytest.mark.parametrize(
    ("text", "env"),
    [
        ("", {}),
        (
            '[market_data]\nsymbols = ["A", "B"]\nrate = 5\nseed = -3\n'
            '[model]\nregistry = "reg"\nversion = "v2"\n[execution]\nrun_id = "x"\n',
            {"TRADEWIRE__RISK__ORDER_QUANTITY": "2.5", "TRADEWIRE__MARKET_DATA__CSV": "t.csv"},
        ),
        (
            '[command_store]\npath = "state/commands.sqlite"\nwindow_s = 3600\n',
            {"TRADEWIRE__COMMAND_STORE__FSYNC": "false"},
        ),
    ],
)
def test_rust_and_python_agree(
    tmp_path: Path,
    rust_config: Path,
    monkeypatch: pytest.MonkeyPatch,
    text: str,
    env: dict[str, str],
) -> None:
    file = tmp_path / "tw.toml"
    file.write_text(text)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    py = {"file": str(load_config(file).file), **load_config(file).as_dict()}
    done = subprocess.run(
        [str(rust_config), "--config", str(file)], capture_output=True, text=True, check=True
    )
    assert normalized(json.loads(done.stdout)) == normalized(py)


def test_config_show(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "tw.toml"
    file.write_text("[risk]\norder_quantity = 3\n")
    monkeypatch.setenv("TRADEWIRE__SIGNAL__THRESHOLD", "0.7")
    assert cli_main(["config", "show", "--config", str(file), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["file"] == str(file.resolve())
    assert shown["risk"]["order_quantity"] == 3.0
    assert shown["signal"]["threshold"] == 0.7
    assert cli_main(["config", "show", "--config", str(file)]) == 0
    text = capsys.readouterr().out
    assert "[risk]\nmax_position_size = 1000.0\nmax_daily_loss = 10000.0\norder_quantity = 3.0" in (
        text
    )
    assert tomllib.loads(text)["signal"]["threshold"] == 0.7  # the text form is TOML
    file.write_text("[risk]\norder_quantity = -1\n")
    assert cli_main(["config", "show", "--config", str(file)]) == 2
    assert "risk.order_quantity" in capsys.readouterr().err

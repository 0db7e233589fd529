"""The shared configuration, `tradewire.toml`, validated (pydantic-settings).

The same file is read by the Rust services (crates/config, `tradewire_config`); both
apply the same rules (reference_services/SPEC.md section 2):

* `load_config(path)`: `path`, else `$TRADEWIRE_CONFIG`, else `./tradewire.toml`; a
  missing default file means the built-in defaults (the values of the repo's file).
* Every key can be overridden by `TRADEWIRE__<SECTION>__<KEY>` (any case), e.g.
  `TRADEWIRE__ENDPOINTS__MARKET_DATA=ipc:///tmp/run1/md`. Lists take a JSON array or a
  comma-separated list. Unknown sections, keys or variables are errors.
* A bad value raises :class:`ConfigError` naming the file, the field and, when it came
  from the environment, the variable.
* Relative paths (`model.registry`, `market_data.csv`) are resolved against the
  directory of the file; the loaded configuration holds them absolute.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

if TYPE_CHECKING:
    from tradewire.transport.command_store import CommandStoreOptions

__all__ = [
    "DEFAULT_FILE",
    "ENV_FILE_VAR",
    "ENV_PREFIX",
    "Budgets",
    "CommandStoreSettings",
    "ConfigError",
    "Endpoints",
    "ExecutionSettings",
    "JournalSettings",
    "MarketDataSettings",
    "ModelSettings",
    "RiskSettings",
    "SignalSettings",
    "TradewireConfig",
    "config_path",
    "load_config",
]

ENV_PREFIX: Final = "TRADEWIRE__"
ENV_FILE_VAR: Final = "TRADEWIRE_CONFIG"
DEFAULT_FILE: Final = "tradewire.toml"
_SCHEMES: Final = ("ipc://", "tcp://", "inproc://")


class ConfigError(ValueError):
    """The configuration cannot be used; the message names the file and the field."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _endpoint(value: str) -> str:
    if not value.startswith(_SCHEMES):
        raise ValueError(f"{value!r} is not an ipc://, tcp:// or inproc:// endpoint")
    return value


class Endpoints(_Section):
    market_data: str = "ipc:///tmp/tradewire/market_data"
    signals: str = "ipc:///tmp/tradewire/signals"
    orders: str = "ipc:///tmp/tradewire/orders"
    positions: str = "ipc:///tmp/tradewire/positions"
    commands: str = "ipc:///tmp/tradewire/commands"

    _check = field_validator("*")(_endpoint)


class MarketDataSettings(_Section):
    symbols: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["AAPL", "MSFT", "GOOG"]
    )
    rate: float = Field(default=1000.0, ge=0, allow_inf_nan=False)
    seed: int = 42
    start_price: float = Field(default=100.0, gt=0, allow_inf_nan=False)
    csv: str = ""
    volatility: float = Field(default=0.004, ge=0, allow_inf_nan=False)
    sim_start_us: int = Field(default=0, ge=0)
    count: int = Field(default=0, ge=0)
    duration: float = Field(default=0.0, ge=0, allow_inf_nan=False)
    wait_subscribers: int = Field(default=0, ge=0)
    wait_timeout: float = Field(default=10.0, ge=0, allow_inf_nan=False)

    @field_validator("symbols", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                try:
                    return json.loads(text)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"not a JSON array: {exc}") from None
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @field_validator("symbols")
    @classmethod
    def _check_symbols(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("at least one symbol is needed")
        for symbol in value:
            if not symbol or symbol.startswith("~") or "\0" in symbol:
                raise ValueError(f"bad symbol {symbol!r} (empty, '~'-prefixed or NUL)")
        return value


class ModelSettings(_Section):
    registry: str = "models/registry.json"
    name: str = "trading_model"
    version: str = "latest"


class SignalSettings(_Section):
    threshold: float = Field(default=0.6, gt=0, lt=1)


class RiskSettings(_Section):
    max_position_size: float = Field(default=1000.0, gt=0, allow_inf_nan=False)
    max_daily_loss: float = Field(default=10000.0, gt=0, allow_inf_nan=False)
    order_quantity: float = Field(default=100.0, gt=0, allow_inf_nan=False)


class ExecutionSettings(_Section):
    run_id: str = ""


class Budgets(_Section):
    tick_to_signal_p99_us: int = Field(default=5000, ge=0)
    kill_switch_ack_p99_us: int = Field(default=2000, ge=0)


class JournalSettings(_Section):
    """`[journal]`: the publishers' on-disk journal (WIRE.md section 7.6)."""

    enabled: bool = True
    dir: str = ""  # one sub-directory per channel; "": <temp>/tradewire/journal/<endpoint>
    segment_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    retention_bytes: int = Field(default=1024 * 1024 * 1024, ge=0)
    retention_age_s: float = Field(default=86400.0, ge=0, allow_inf_nan=False)
    fsync: Literal["never", "interval", "always"] = "interval"
    fsync_interval_ms: int = Field(default=100, gt=0)

    def dir_for(self, channel: str, endpoint: str) -> Path | None:
        """The journal directory of the publisher of `channel` bound at `endpoint`, or
        None when journals are off (as crates/config `Journal::dir_for`)."""
        if not self.enabled:
            return None
        if self.dir:
            return Path(self.dir) / channel
        from tradewire.transport.journal import default_dir

        return default_dir(endpoint)


class CommandStoreSettings(_Section):
    """`[command_store]`: the command servers' durable record of applied command ids
    (WIRE.md section 7.5)."""

    enabled: bool = True
    path: str = ""  # "": <temp dir>/tradewire/commands/<endpoint>.sqlite
    window_s: float = Field(default=86400.0, ge=1, allow_inf_nan=False)
    fsync: bool = True

    def path_for(self, endpoint: str) -> Path | None:
        """The store file of the command server bound at `endpoint`, or None when the
        store is off (as crates/config `CommandStore::path_for`)."""
        if not self.enabled:
            return None
        if self.path:
            return Path(self.path)
        from tradewire.transport.command_store import default_path

        return default_path(endpoint)

    def options_for(self, endpoint: str) -> CommandStoreOptions | None:
        """The `store=` of the command server bound at `endpoint`, or None when off."""
        path = self.path_for(endpoint)
        if path is None:
            return None
        from tradewire.transport.command_store import CommandStoreOptions

        return CommandStoreOptions(path, window=self.window_s, fsync=self.fsync)


class TradewireConfig(BaseSettings):
    """The whole file. `file` is where it was read from (None: defaults only)."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        case_sensitive=False,
        extra="forbid",
        frozen=True,
    )

    endpoints: Endpoints = Field(default_factory=Endpoints)
    market_data: MarketDataSettings = Field(default_factory=MarketDataSettings)
    model: ModelSettings = Field(default_factory=ModelSettings)
    signal: SignalSettings = Field(default_factory=SignalSettings)
    risk: RiskSettings = Field(default_factory=RiskSettings)
    execution: ExecutionSettings = Field(default_factory=ExecutionSettings)
    budgets: Budgets = Field(default_factory=Budgets)
    journal: JournalSettings = Field(default_factory=JournalSettings)
    command_store: CommandStoreSettings = Field(default_factory=CommandStoreSettings)

    _file: Path | None = PrivateAttr(default=None)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The file's values arrive as init arguments; the environment overrides them.
        return env_settings, init_settings

    @property
    def file(self) -> Path | None:
        return self._file

    def as_dict(self) -> dict[str, Any]:
        """Every section and key (JSON types), as `tradewire config show --json` prints."""
        return self.model_dump(mode="json")


def config_path(path: str | os.PathLike[str] | None = None) -> tuple[Path, bool]:
    """The file to read and whether it was asked for explicitly (flag or environment)."""
    if path is not None and str(path):
        return Path(path), True
    from_env = os.environ.get(ENV_FILE_VAR, "")
    if from_env:
        return Path(from_env), True
    return Path(DEFAULT_FILE), False


def _env_overrides(environ: Mapping[str, str]) -> dict[tuple[str, str], tuple[str, str]]:
    """(section, key) -> (variable, value) for every TRADEWIRE__ variable; unknown names
    are errors."""
    found: dict[tuple[str, str], tuple[str, str]] = {}
    sections = TradewireConfig.model_fields
    for name, value in environ.items():
        if not name.upper().startswith(ENV_PREFIX):
            continue
        parts = name[len(ENV_PREFIX) :].lower().split("__")
        if len(parts) != 2 or parts[0] not in sections:
            raise ConfigError(
                f"{name}: not a configuration key (want {ENV_PREFIX}<SECTION>__<KEY>, "
                f"sections: {', '.join(sections)})"
            )
        section, key = parts
        annotation = sections[section].annotation
        assert isinstance(annotation, type) and issubclass(annotation, BaseModel)
        if key not in annotation.model_fields:
            raise ConfigError(
                f"{name}: no key {section}.{key} (keys: {', '.join(annotation.model_fields)})"
            )
        found[(section, key)] = (name, value)
    return found


def _describe(exc: ValidationError, where: str, env: Mapping[tuple[str, str], Any]) -> str:
    lines = []
    for err in exc.errors():
        loc = tuple(str(part) for part in err["loc"])
        field = ".".join(loc) or "(file)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key" if len(loc) > 1 else "unknown section"
        line = f"{where}: {field}: {msg}"
        source = env.get((loc[0], loc[1])) if len(loc) >= 2 else None
        if source is not None:
            line += f" (from environment {source[0]}={source[1]!r})"
        elif "input" in err and err["type"] != "extra_forbidden":
            line += f" (got {err['input']!r})"
        lines.append(line)
    return "\n".join(lines)


def load_config(path: str | os.PathLike[str] | None = None) -> TradewireConfig:
    """Read, override from the environment, validate. Raises ConfigError."""
    file, explicit = config_path(path)
    data: dict[str, Any] = {}
    source: Path | None = None
    if file.is_file():
        try:
            data = tomllib.loads(file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{file}: cannot read: {exc}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{file}: not valid TOML: {exc}") from None
        source = file.resolve()
    elif explicit:
        raise ConfigError(f"{file}: no such configuration file")
    env = _env_overrides(os.environ)
    where = str(file) if source is not None else "(defaults, no configuration file)"
    try:
        config = TradewireConfig(**data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, where, env)) from None
    base = source.parent if source is not None else Path.cwd()

    def absolute(value: str) -> str:
        return str(base / value) if value and not Path(value).is_absolute() else value

    config = config.model_copy(
        update={
            "model": config.model.model_copy(update={"registry": absolute(config.model.registry)}),
            "market_data": config.market_data.model_copy(
                update={"csv": absolute(config.market_data.csv)}
            ),
            "journal": config.journal.model_copy(update={"dir": absolute(config.journal.dir)}),
            "command_store": config.command_store.model_copy(
                update={"path": absolute(config.command_store.path)}
            ),
        }
    )
    config._file = source
    return config

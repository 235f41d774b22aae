"""Settings, parsed once at the entry point and passed in as values.

Sources, strongest first: keyword arguments, ``BIRTHRIGHT_*`` environment variables, the
workspace's ``birthright.toml``, defaults. Nothing below the entry points reads these.
"""

from __future__ import annotations

import tomllib
from ipaddress import ip_network
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from birthright.errors import ConfigError
from birthright.workspace import Workspace

SOFTHSM2_MODULE = "/usr/lib/softhsm/libsofthsm2.so"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BIRTHRIGHT_", extra="forbid")

    workspace: Path = Path("birthright-workspace")
    database_url: str = ""
    organization: str = "Birthright Devices"
    product: str = "BR-SENSOR-1"
    serial_prefix: str = Field(default="BRS", pattern=r"^[A-Z0-9-]{1,16}$")
    host: str = "127.0.0.1"
    port: int = Field(default=8470, ge=0, le=65535)
    #: Base URL devices and relying parties use to reach CRL and OCSP.
    public_url: str = ""
    #: "file": passphrase-encrypted PKCS#8 in the workspace (dev); "pkcs11": keys in a token.
    ca_key_storage: Literal["file", "pkcs11"] = "file"
    pkcs11_module: str = SOFTHSM2_MODULE
    ca_token_label: str = "birthright-ca"  # noqa: S105 - a token label, not a secret
    #: Serve HTTPS with the workspace's server certificate (and ask stations for theirs).
    tls: bool = True
    #: Require stations to authenticate (mutual TLS + RFC 9421 signed requests with counters).
    #: Turning it off trusts the station id in the body: for isolated logic tests only.
    station_auth: bool = True
    #: Serve EST (RFC 7030) under /.well-known/est for standard enrollment clients. EST clients
    #: authenticate by TLS certificate alone, without signed requests (ADR 0014): off unless on.
    est: bool = False
    #: Require an operator session or API token on the operator endpoints (ADR 0013).
    #: Turning it off lets anyone act as an operator: for isolated logic tests only.
    operator_auth: bool = True
    #: Console session expiry: idle minutes and absolute hours.
    console_idle_minutes: int = Field(default=30, ge=1, le=24 * 60)
    console_absolute_hours: int = Field(default=12, ge=1, le=7 * 24)
    nonce_ttl_seconds: int = Field(default=60, ge=1, le=3600)
    #: The ``aud`` a device-auth token must name to be accepted by this service.
    device_auth_audience: str = Field(default="birthright", min_length=1, max_length=128)
    max_body_bytes: int = Field(default=64 * 1024, ge=1024)
    #: Requests per second per client address (token bucket, per service process; 0: off).
    #: Many stations of a site may share one address: keep it well above their sum.
    rate_limit_client_per_second: float = Field(default=1000.0, ge=0)
    rate_limit_client_burst: int = Field(default=2000, ge=1)
    #: Requests per second per station (a line needs ~2; the benchmark pushes ~60; 0: off).
    rate_limit_station_per_second: float = Field(default=100.0, ge=0)
    rate_limit_station_burst: int = Field(default=200, ge=1)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    #: "json": one JSON object per line (ts, level, logger, message, request_id, ...).
    log_format: Literal["json", "text"] = "json"
    #: Addresses (CIDR) allowed to read /metrics; everyone else gets 403 metrics_forbidden.
    metrics_allow: list[str] = Field(default=["127.0.0.0/8", "::1/128"], max_length=64)
    #: How long a scrape reuses the quota gauges it read from the database (0: never).
    metrics_cache_seconds: float = Field(default=5.0, ge=0, le=300)
    #: Worker processes of `birthright serve` (each with its own connections and CA handle).
    workers: int = Field(default=1, ge=1, le=64)
    #: How often the service signs the audit chain head (0 disables the checkpointer).
    audit_checkpoint_seconds: float = Field(default=60.0, ge=0)
    #: Generate yesterday's reconciliation report (every format, signed, kept) once a day.
    report_schedule: bool = True
    #: UTC time of day (HH:MM) after which yesterday's report is generated.
    report_daily_at: str = Field(default="06:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    #: How often the service checks whether a scheduled report is due.
    report_check_seconds: float = Field(default=60.0, gt=0, le=86400)
    #: Deliver fleet events to subscribed webhooks from this process (ADR 0012).
    event_dispatch: bool = True
    #: How often the dispatcher looks for due deliveries.
    event_poll_seconds: float = Field(default=0.5, gt=0, le=60)
    #: Attempts per delivery before it is dead-lettered.
    event_max_attempts: int = Field(default=10, ge=1, le=50)
    #: Delay before the first retry; each further retry doubles it (up to ten minutes).
    event_first_retry_seconds: float = Field(default=1.0, gt=0, le=3600)
    #: How long a receiver has to answer one delivery.
    event_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    #: A claimed delivery whose dispatcher died is tried again after this (> the timeout).
    event_lease_seconds: float = Field(default=60.0, gt=0, le=3600)

    @field_validator("log_level", mode="before")
    @classmethod
    def _level_upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        if not value:
            return value
        try:
            url = make_url(value)
        except ArgumentError as e:
            raise ValueError("not a database URL (sqlite:///path or postgresql://...)") from e
        if url.get_backend_name() not in ("sqlite", "postgresql"):
            raise ValueError(
                f"unsupported database {url.get_backend_name()!r}: sqlite or postgresql"
            )
        if url.get_backend_name() == "postgresql" and not url.host and not url.query.get("host"):
            raise ValueError("a PostgreSQL URL needs a host")
        return value

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str) -> str:
        if not value:
            return value
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an absolute http(s) URL, e.g. https://identity.example.com")
        return value

    @field_validator("metrics_allow")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for network in value:
            try:
                ip_network(network, strict=False)
            except ValueError as e:
                raise ValueError(f"{network!r} is not an address or CIDR network") from e
        return value

    @property
    def ws(self) -> Workspace:
        return Workspace(self.workspace)

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.ws.database_file}"

    @property
    def effective_public_url(self) -> str:
        scheme = "https" if self.tls else "http"
        return (self.public_url or f"{scheme}://{self.host}:{self.port}").rstrip("/")


def load_settings(workspace: Path | None = None, **overrides: Any) -> Settings:
    """Build settings from the workspace file, the environment and ``overrides``."""
    return load_settings_from(workspace, config_file=None, overrides=overrides)


def load_settings_from(
    workspace: Path | None, *, config_file: Path | None, overrides: dict[str, Any]
) -> Settings:
    """Build settings from the workspace file, ``config_file``, the environment and ``overrides``.

    Strongest last: defaults, the workspace's ``birthright.toml``, ``config_file``, the
    ``BIRTHRIGHT_*`` environment, ``overrides``. ``config_file`` may name the workspace itself
    (an explicit ``workspace`` argument wins). Any unknown key or bad value is a
    :class:`ConfigError` that names the setting and where it came from.
    """
    source = "the environment"
    try:
        config_values: dict[str, Any] = {}
        if config_file is not None:
            source = str(config_file)
            config_values = _read_toml(config_file)
        source = "the environment"
        if workspace is None and "workspace" in config_values:
            workspace = Path(config_values["workspace"])
        probe = Settings(workspace=workspace) if workspace else Settings()
        file_values: dict[str, Any] = {}
        if probe.ws.settings_file.exists():
            source = str(probe.ws.settings_file)
            file_values = _read_toml(probe.ws.settings_file)
            Settings.model_validate({**file_values, "workspace": probe.workspace})
        if config_values:
            source = str(config_file)
            Settings.model_validate({**config_values, "workspace": probe.workspace})
        source = "the environment or arguments"
        env_only = Settings(workspace=probe.workspace)
        merged = {**file_values, **config_values, **_explicit_env(env_only), **overrides}
        merged["workspace"] = probe.workspace
        return Settings.model_validate(merged)
    except ValidationError as e:
        raise ConfigError(f"invalid settings in {source}: {_problems(e)}") from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{source} is not valid TOML: {e}") from e
    except OSError as e:
        raise ConfigError(f"cannot read {source}: {e.strerror or e}") from e


def _read_toml(path: Path) -> dict[str, Any]:
    with path.open("rb") as f:
        return tomllib.load(f)


def _problems(error: ValidationError) -> str:
    """One short phrase per problem: ``setting: what is wrong``."""
    problems = []
    for e in error.errors():
        where = ".".join(str(p) for p in e.get("loc", ())) or "settings"
        if e.get("type") == "extra_forbidden":
            problems.append(f"{where}: unknown setting")
        else:
            problems.append(f"{where}: {e.get('msg', 'invalid')}")
    return "; ".join(problems)


def _explicit_env(settings: Settings) -> dict[str, Any]:
    """Values that came from the environment (so they beat the settings file)."""
    defaults = Settings.model_construct()
    return {
        k: v
        for k, v in settings.model_dump().items()
        if k != "workspace" and v != getattr(defaults, k)
    }


def write_settings_file(settings: Settings, keys: tuple[str, ...]) -> None:
    """Persist the named settings into the workspace's ``birthright.toml``."""
    lines = []
    for key in keys:
        value = getattr(settings, key)
        if isinstance(value, bool):
            rendered = "true" if value else "false"
        elif isinstance(value, int):
            rendered = str(value)
        else:
            rendered = '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
        lines.append(f"{key} = {rendered}")
    settings.ws.settings_file.write_text("\n".join(lines) + "\n")

"""Settings, parsed once at the entry point and passed in as values.

Sources, strongest first: keyword arguments, ``BIRTHRIGHT_*`` environment variables, the
workspace's ``birthright.toml``, defaults. Nothing below the entry points reads these.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

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
    log_level: str = "INFO"
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
    try:
        probe = Settings(workspace=workspace) if workspace else Settings()
        file_values: dict[str, Any] = {}
        if probe.ws.settings_file.exists():
            with probe.ws.settings_file.open("rb") as f:
                file_values = tomllib.load(f)
        env_only = Settings(workspace=probe.workspace)
        merged = {**file_values, **_explicit_env(env_only), **overrides}
        merged["workspace"] = probe.workspace
        return Settings.model_validate(merged)
    except (ValidationError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"invalid settings: {e}") from e


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

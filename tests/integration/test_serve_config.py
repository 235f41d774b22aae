"""`birthright serve` refuses to start on bad configuration, with one clear line and a non-zero
exit; `birthright db upgrade` / `db current` manage the schema; `serve --workers 2` serves."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from alembic import command

from birthright.ca.authority import init_workspace_ca
from birthright.db.migrate import alembic_config
from birthright.settings import load_settings
from tests.conftest import free_port
from tests.integration.test_replicas import Replica


def birthright(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "birthright.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
        check=False,
    )


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    settings = load_settings(ws)
    settings.ws.create()
    init_workspace_ca(settings, now=datetime.now(UTC))
    return ws


def write_config(tmp_path: Path, workspace: Path, extra: str) -> Path:
    config = tmp_path / "service.toml"
    config.write_text(
        f'workspace = "{workspace}"\ntls = false\nstation_auth = false\n'
        f"report_schedule = false\nport = {free_port()}\n{extra}"
    )
    return config


@pytest.mark.parametrize(
    ("extra", "env", "expected"),
    [
        pytest.param("colour = 'blue'\n", {}, "colour: unknown setting", id="unknown-key"),
        pytest.param(
            "database_url = 'mysql://db.example/x'\n", {}, "unsupported database", id="bad-db-url"
        ),
        pytest.param("database_url = 'not a url'\n", {}, "not a database URL", id="garbage-url"),
        pytest.param("public_url = 'ftp://x'\n", {}, "public_url: Value error", id="bad-public"),
        pytest.param("metrics_allow = ['10.0.0.300/8']\n", {}, "metrics_allow", id="bad-cidr"),
        pytest.param("workers = 0\n", {}, "workers: Input should be greater", id="no-workers"),
        pytest.param("nonce_ttl_seconds = 'x'\n", {}, "nonce_ttl_seconds", id="bad-int"),
        pytest.param("tls = \n", {}, "is not valid TOML", id="bad-toml"),
        pytest.param("", {"BIRTHRIGHT_PORT": "99999"}, "the environment", id="bad-env"),
        pytest.param("", {"BIRTHRIGHT_LOG_LEVEL": "loud"}, "log_level", id="bad-env-level"),
    ],
)
def test_bad_settings_stop_the_start_with_a_clear_error(
    tmp_path: Path, workspace: Path, extra: str, env: dict[str, str], expected: str
) -> None:
    config = write_config(tmp_path, workspace, extra)
    done = birthright("serve", "--config", str(config), env=env)
    assert done.returncode == 2, done.stdout + done.stderr
    error = " ".join(done.stderr.split())
    assert "[config_error]" in error
    assert expected in error
    assert "Traceback" not in done.stderr


def test_missing_ca_files_stop_the_start(tmp_path: Path) -> None:
    empty = tmp_path / "empty-ws"
    empty.mkdir()
    config = write_config(tmp_path, empty, "")
    done = birthright("serve", "--config", str(config))
    assert done.returncode == 2
    error = " ".join(done.stderr.split())
    assert "[ca_missing]" in error
    assert "birthright ca init" in error
    assert "Traceback" not in done.stderr


def test_a_missing_config_file_is_named(tmp_path: Path) -> None:
    done = birthright("serve", "--config", str(tmp_path / "nowhere.toml"))
    assert done.returncode != 0
    assert "nowhere.toml" in " ".join(done.stderr.split())


def test_postgres_schema_must_be_upgraded_before_serving(
    postgres_url: str, tmp_path: Path, workspace: Path
) -> None:
    config = write_config(tmp_path, workspace, f'database_url = "{postgres_url}"\n')
    command.downgrade(alembic_config(postgres_url), "0012")
    current = birthright("db", "current", "--config", str(config))
    assert current.returncode == 1
    assert "database at 0012" in current.stdout
    refused = birthright("serve", "--config", str(config))
    assert refused.returncode == 2
    assert "[schema_not_at_head]" in refused.stderr
    assert "birthright db upgrade" in " ".join(refused.stderr.split())
    upgraded = birthright("db", "upgrade", "--config", str(config))
    assert upgraded.returncode == 0, upgraded.stderr
    again = birthright("db", "current", "--config", str(config))
    assert again.returncode == 0
    head = again.stdout.split("code at ")[1].strip()
    assert f"database at {head}" in again.stdout


def test_serve_with_two_workers_over_real_http(tmp_path: Path, workspace: Path) -> None:
    config = write_config(tmp_path, workspace, "metrics_cache_seconds = 0\n")
    replica = Replica(config, workspace, workers=2)
    try:
        replica.wait_ready()
        with httpx.Client(base_url=replica.url, timeout=30) as http:
            answered = [http.get("/v1/devices/NOPE/status") for _ in range(10)]
            metrics = http.get("/metrics").text
            ready = http.get("/readyz")
    finally:
        replica.stop()
    assert {a.status_code for a in answered} == {404}
    assert ready.json()["status"] == "ready"
    # Both workers' counts are summed in one exposition (at least 10 refusals: ours).
    line = next(m for m in metrics.splitlines() if 'code="device_unknown"' in m)
    assert line.startswith("birthright_refusals_total{")
    assert float(line.rsplit(" ", 1)[1]) == 10
    assert replica.proc.returncode is not None

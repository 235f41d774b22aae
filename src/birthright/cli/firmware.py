"""`birthright firmware` commands: sign releases, publish them to the allow-list, block them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from birthright.cli.common import DEFAULT_WORKSPACE, WorkspaceOpt, console, settings_for
from birthright.settings import Settings

if TYPE_CHECKING:
    from birthright.db.firmware import SqlFirmwareReleases

app = typer.Typer(help="Firmware releases and the per-product allow-list.", no_args_is_help=True)


@contextmanager
def _releases(settings: Settings) -> Iterator[SqlFirmwareReleases]:
    from birthright.db.engine import make_engine, make_sessionmaker
    from birthright.db.firmware import SqlFirmwareReleases

    engine = make_engine(settings.effective_database_url)
    try:
        yield SqlFirmwareReleases(make_sessionmaker(engine))
    finally:
        engine.dispose()


@app.command()
def sign(
    image: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Firmware image.")],
    product: Annotated[str, typer.Option("--product", help="Product the image is for.")],
    version: Annotated[str, typer.Option("--version", help="Release version.")],
    security_version: Annotated[
        int, typer.Option("--security-version", min=0, help="Anti-rollback counter.")
    ],
    workspace: WorkspaceOpt = DEFAULT_WORKSPACE,
    out: Annotated[Path | None, typer.Option("--out", help="Default: IMAGE.manifest.json.")] = None,
) -> None:
    """Sign a release manifest with the release key (created on first use in dev)."""
    from birthright.attest.firmware import FirmwareManifest, image_digest, sign_manifest
    from birthright.attest.keys import RELEASE_KEY, load_or_create_key, public_path
    from birthright.ca.keys import atomic_write

    settings = settings_for(workspace)
    manifest = FirmwareManifest(
        product=product,
        version=version,
        image_sha256=image_digest(image.read_bytes()),
        security_version=security_version,
    )
    signed = sign_manifest(manifest, load_or_create_key(settings.ws, RELEASE_KEY))
    target = out or image.with_name(f"{image.name}.manifest.json")
    atomic_write(target, signed.to_file(), mode=0o644)
    console.print(f"signed {product} {version} sha256:{manifest.image_sha256} → {target}")
    console.print(f"release public key: {public_path(settings.ws, RELEASE_KEY)}")


@app.command()
def publish(
    manifest: Annotated[Path, typer.Argument(exists=True, dir_okay=False)],
    workspace: WorkspaceOpt = DEFAULT_WORKSPACE,
) -> None:
    """Verify a manifest against the release public key and allow-list its release."""
    from birthright.attest.firmware import MAX_MANIFEST_FILE_BYTES, verify_manifest_file
    from birthright.attest.keys import RELEASE_KEY, load_public_key

    settings = settings_for(workspace)
    with manifest.open("rb") as f:
        data = f.read(MAX_MANIFEST_FILE_BYTES + 1)
    signed = verify_manifest_file(data, load_public_key(settings.ws, RELEASE_KEY))
    with _releases(settings) as releases:
        release, created = releases.publish(signed, datetime.now(UTC))
    verb = "published" if created else "already published"
    console.print(f"{verb}: {release.product} {release.version} ({release.status})")


@app.command()
def block(
    product: str,
    version: str,
    reason: Annotated[str, typer.Option("--reason", help="Why; recorded in the audit log.")],
    workspace: WorkspaceOpt = DEFAULT_WORKSPACE,
) -> None:
    """Block a published release: devices running it fail attestation (firmware.blocked)."""
    with _releases(settings_for(workspace)) as releases:
        release = releases.block(product, version, reason=reason, now=datetime.now(UTC))
    console.print(f"blocked: {release.product} {release.version}")


@app.command("list")
def list_(
    workspace: WorkspaceOpt = DEFAULT_WORKSPACE,
    product: Annotated[str | None, typer.Option("--product")] = None,
) -> None:
    """Show the allow-list."""
    with _releases(settings_for(workspace)) as releases:
        rows = releases.releases(product)
    table = Table("product", "version", "security", "status", "sha256", "published")
    for r in rows:
        colour = "green" if r.status == "allowed" else "red"
        table.add_row(
            r.product,
            r.version,
            str(r.security_version),
            f"[{colour}]{r.status}[/]",
            r.measurement.hex()[:16] + "…",
            r.published_at.isoformat(timespec="seconds"),
        )
    console.print(table)

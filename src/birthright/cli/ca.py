"""`birthright ca` commands: create the factory CA in a workspace, show what it holds."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Literal

import typer
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from rich.markup import escape

from birthright.audit.signing import load_or_create_audit_signer
from birthright.ca.authority import (
    ISSUING_KEY,
    ROOT_KEY,
    init_workspace_ca,
    read_ca_certificates,
)
from birthright.ca.keys import ISSUING_KEY_LABEL
from birthright.ca.se_vendors import load_se_vendor_roots, trust_se_vendor
from birthright.cli.common import DEFAULT_WORKSPACE, WorkspaceOpt, console, settings_for
from birthright.settings import Settings, write_settings_file

app = typer.Typer(help="Factory CA commands.", no_args_is_help=True)

KeyStorage = Literal["file", "pkcs11"]

#: Settings `ca init` records in the workspace file so later commands find the same CA.
PERSISTED = ("ca_key_storage", "organization")


@app.command()
def init(
    workspace: WorkspaceOpt = DEFAULT_WORKSPACE,
    key_storage: Annotated[
        KeyStorage | None,
        typer.Option(
            "--key-storage",
            help="Issuing CA key: encrypted PKCS#8 file (dev) or a PKCS#11 token.",
        ),
    ] = None,
    organization: Annotated[
        str | None, typer.Option(help="Manufacturer name (O=) in CA and device certificates.")
    ] = None,
    force: Annotated[
        bool, typer.Option(help="Replace an existing CA (its keys are lost).")
    ] = False,
) -> None:
    """Create an offline root and an issuing CA in the workspace."""
    overrides: dict[str, str] = {}
    if key_storage is not None:
        overrides["ca_key_storage"] = key_storage
    if organization is not None:
        overrides["organization"] = organization
    settings = settings_for(workspace, **overrides)
    ca = init_workspace_ca(settings, now=datetime.now(UTC), force=force)
    load_or_create_audit_signer(settings)  # the backend's audit key, made once at setup
    try:
        _persist(settings)
        console.print(f"factory CA created in [bold]{settings.ws.ca_dir}[/]")
        _render(settings, ca.root_cert, ca.issuing_cert)
    finally:
        ca.close()


def _persist(settings: Settings) -> None:
    """Write the chosen settings, keeping whatever the workspace file already held."""
    kept: tuple[str, ...] = ()
    path = settings.ws.settings_file
    if path.exists():
        with path.open("rb") as f:
            kept = tuple(k for k in tomllib.load(f) if k not in PERSISTED)
    write_settings_file(settings, (*kept, *PERSISTED))


@app.command()
def show(workspace: WorkspaceOpt = DEFAULT_WORKSPACE) -> None:
    """Show the workspace's CA certificates and where the issuing key lives (no secrets)."""
    settings = settings_for(workspace)
    root, issuing = read_ca_certificates(settings.ws)
    _render(settings, root, issuing)


def _render(settings: Settings, root: x509.Certificate, issuing: x509.Certificate) -> None:
    for title, cert in (("root CA (offline)", root), ("issuing CA", issuing)):
        console.print(f"[bold]{title}[/]")
        console.print(f"  subject   {escape(cert.subject.rfc4514_string())}", soft_wrap=True)
        console.print(f"  serial    {cert.serial_number:x}", soft_wrap=True)
        console.print(
            f"  validity  {cert.not_valid_before_utc:%Y-%m-%d %H:%M:%SZ} → "
            f"{cert.not_valid_after_utc:%Y-%m-%d %H:%M:%SZ}"
        )
        console.print(f"  sha256    {cert.fingerprint(hashes.SHA256()).hex()}", soft_wrap=True)
    if settings.ca_key_storage == "pkcs11":
        where = (
            f"PKCS#11 token {settings.ca_token_label!r}, key label {ISSUING_KEY_LABEL!r} "
            f"(module {settings.pkcs11_module})"
        )
    else:
        where = f"encrypted file {settings.ws.ca_dir / ISSUING_KEY}"
    console.print(
        f"issuing key  [bold]{settings.ca_key_storage}[/]: {escape(where)}", soft_wrap=True
    )
    console.print(
        f"root key     encrypted file {settings.ws.ca_dir / ROOT_KEY} (keep it offline)",
        soft_wrap=True,
    )


@app.command("trust-se-vendor")
def trust_se_vendor_root(
    file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="The vendor's root CA, PEM.")
    ],
    workspace: WorkspaceOpt = DEFAULT_WORKSPACE,
) -> None:
    """Trust a secure-element vendor's root CA for genuine-chip proofs (audited); restart
    the service to use it."""
    from birthright.db.engine import make_engine, make_sessionmaker
    from birthright.db.products import audit_operator_action

    settings = settings_for(workspace)
    cert, path, added = trust_se_vendor(settings.ws, file.read_bytes())
    fingerprint = cert.fingerprint(hashes.SHA256()).hex()
    if added:
        engine = make_engine(settings.effective_database_url)
        audit_operator_action(
            make_sessionmaker(engine),
            "se_vendor.trusted",
            {"subject": cert.subject.rfc4514_string(), "sha256": fingerprint},
            now=datetime.now(UTC),
        )
        engine.dispose()
    verb = "now trusted" if added else "already trusted"
    console.print(f"SE vendor root {escape(cert.subject.rfc4514_string())} {verb}", soft_wrap=True)
    console.print(f"  sha256 {fingerprint}\n  file   {path}", soft_wrap=True)


@app.command("se-vendors")
def se_vendors(workspace: WorkspaceOpt = DEFAULT_WORKSPACE) -> None:
    """The SE vendor roots trusted for genuine-chip proofs."""
    roots = load_se_vendor_roots(settings_for(workspace).ws)
    if not roots:
        console.print("no SE vendor root is trusted")
    for cert in roots:
        console.print(
            f"{escape(cert.subject.rfc4514_string())}  sha256 "
            f"{cert.fingerprint(hashes.SHA256()).hex()}",
            soft_wrap=True,
        )

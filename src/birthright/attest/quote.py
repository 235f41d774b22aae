"""The TPM quote check: which firmware a TPM device actually booted, not what it claims."""

from __future__ import annotations

from birthright.attest.verdict import Finding
from birthright.enrollment.model import DeviceRecord
from birthright.tpm.quote import check_quote
from birthright.tpm.wire import TpmStructureError, parse_public


def quote_findings(
    device: DeviceRecord | None,
    nonce: str,
    firmware: tuple[str, bytes] | None,
    quote: tuple[bytes, bytes] | None,
) -> list[Finding]:
    """A unit with a proven attestation key must back its firmware claim with a quote over
    the firmware PCR; a quote from a unit without one cannot be checked, so it fails."""
    if device is None or (quote is None and device.attestation_key is None):
        return []
    if device.attestation_key is None:
        return [Finding("quote", "fail", "quote.unverifiable", "no attestation key is on record")]
    if quote is None or firmware is None:
        return [
            Finding(
                "quote",
                "fail",
                "quote.missing",
                "this unit has a TPM attestation key: its evidence must carry a firmware quote",
            )
        ]
    try:
        ak = parse_public(device.attestation_key)
    except TpmStructureError:
        return [Finding("quote", "fail", "quote.unverifiable", "the AK on record does not parse")]
    attest, signature = quote
    verdict = check_quote(
        attest=attest, signature=signature, ak=ak, nonce=nonce, measurement=firmware[1]
    )
    if verdict.ok:
        return [Finding("quote", "pass", "quote.valid", verdict.message)]
    return [Finding("quote", "fail", f"quote.{verdict.outcome}", verdict.message)]

"""The issuing CA as the signer of CRLs and OCSP answers (adapts ``ca.crl`` / ``ca.ocsp``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from birthright.ca import crl, ocsp
from birthright.revocation.model import CertStatus, RevokedEntry


class IssuingCaSigner:
    def __init__(
        self,
        *,
        issuer_cert: x509.Certificate,
        issuer_key: ec.EllipticCurvePrivateKey,
        ocsp_validity: timedelta = timedelta(hours=1),
        ocsp_refresh: timedelta = timedelta(minutes=5),
    ) -> None:
        self._cert = issuer_cert
        self._key = issuer_key
        self._ocsp = ocsp.OcspResponder(
            issuer_cert=issuer_cert,
            issuer_key=issuer_key,
            validity=ocsp_validity,
            refresh=min(ocsp_refresh, ocsp_validity),
        )

    def sign_crl(
        self,
        revocations: Iterable[RevokedEntry],
        number: int,
        this_update: datetime,
        next_update: datetime,
    ) -> bytes:
        return crl.build_crl(
            issuer_cert=self._cert,
            issuer_key=self._key,
            entries=revocations,
            number=number,
            this_update=this_update,
            next_update=next_update,
        )

    def answer_ocsp(
        self, request_der: bytes, status_of: Callable[[int], CertStatus], now: datetime
    ) -> bytes:
        return self._ocsp.respond(request_der, status_of, now)

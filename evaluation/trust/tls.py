"""The HTTPS certificate `evalsign serve --tls` presents: issued by a center's issuing CA and
audited like every certificate it issues; the files themselves are signing.tls's."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from sqlalchemy.orm import Session

from evaluation.kernel import audit
from evaluation.kernel.actions import Action
from evaluation.trust import pki
from evaluation.trust.pki import PkiPolicy
from models.clock import Clock
from models.tables import Center
from signing import certificates as profiles
from signing import tls as server_tls
from signing.vault import Vault


@dataclass(frozen=True)
class ServingCertificate:
    server: server_tls.ServerCertificate
    # The root a phone must trust, and the center authority that serves it at
    # /pki/{id}/cert (None when the issuing CA is an imported external one).
    root: x509.Certificate
    root_authority_id: str | None


def serving_certificate(
    db: Session,
    caller: audit.Caller,
    clock: Clock,
    vault: Vault,
    policy: PkiPolicy,
    center: Center,
    data_dir: Path,
    names: Sequence[str],
) -> ServingCertificate:
    """The server certificate for `names` from the center's active issuing CA: the stored
    one while it still covers them and has more than 30 days left, else a new one.

    Files cannot join the transaction: a new pair is written, then audited, before the
    caller commits, so only a failed commit could leave a pair without its audit entry."""
    issuing = pki.active_issuing(db, center.id)
    chain = pki.chain_of(db, issuing)
    now = clock.now()
    server = server_tls.reusable_server_certificate(data_dir, names, chain, now)
    if server is None:
        endpoints = profiles.pki_endpoints(policy.public_url, issuing.id)
        server = server_tls.issue_server_certificate(
            data_dir,
            names,
            chain,
            pki.signer_of(db, vault, issuing),
            # The OCSP responder answers from issued_certificates, which holds vault-key
            # certificates only: this one would be "unknown" there, so it names no OCSP.
            profiles.Endpoints(endpoints.crl_url, endpoints.issuer_cert_url),
            now,
        )
        certificate = server.certificate
        audit.record(
            db,
            caller,
            clock,
            Action.PKI_TLS_CERTIFICATE_ISSUED,
            "tls_certificate",
            profiles.serial_hex(certificate),
            {
                "names": list(server.names),
                "subject": profiles.dn(certificate.subject),
                "issuer": issuing.id,
                "fingerprint": pki.fingerprint(certificate),
                "not_after": certificate.not_valid_after_utc.isoformat(),
                "key_file": str(server.key_path),
            },
        )
    root_id = None if issuing.external else pki.center_root(db, center.id).id
    return ServingCertificate(server, chain[-1], root_id)

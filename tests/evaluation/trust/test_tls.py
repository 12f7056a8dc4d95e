"""The HTTPS certificate from a center's issuing CA: issued once and audited, then kept."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.services import Services
from evaluation.trust import pki
from evaluation.trust.tls import ServingCertificate, serving_certificate
from models.clock import FrozenClock
from models.tables import AuditEntry, Center
from signing import certificates as profiles
from tests.factories import CenterWithStaff, establish_pki


def _issued_entries(db: Session, center_id: str) -> list[AuditEntry]:
    return list(
        db.execute(
            select(AuditEntry).where(
                AuditEntry.center_id == center_id,
                AuditEntry.action == "pki.tls_certificate_issued",
            )
        ).scalars()
    )


def test_the_center_ca_issues_it_once_and_the_audit_log_says_so(
    db: Session, center: CenterWithStaff, clock: FrozenClock, services: Services, tmp_path: Path
) -> None:
    established = establish_pki(db, clock, services, center)
    row = db.get(Center, center.id)
    assert row is not None

    def serve() -> ServingCertificate:
        return serving_certificate(
            db, center.caller, clock, services.vault, services.pki, row, tmp_path, ["localhost"]
        )

    first, served = serve(), serve()
    assert first.server.issued and not served.server.issued
    assert served.server.certificate == first.server.certificate
    assert served.root_authority_id == established.root.id
    assert served.root == pki.load_certificate(established.root.certificate_der)
    issuing = pki.load_certificate(established.issuing.certificate_der)
    assert profiles.is_issued_by(served.server.certificate, issuing)

    (entry,) = _issued_entries(db, center.id)
    assert entry.subject_id == profiles.serial_hex(first.server.certificate)
    assert entry.details["names"] == ["localhost"]
    assert entry.details["issuer"] == established.issuing.id

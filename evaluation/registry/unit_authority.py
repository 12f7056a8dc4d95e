"""Whether a person may sign for a unit now: an active authorization of the unit, valid at
this moment, whose scope covers the document. The one check behind every use of a unit's
seal (evaluation/trust/activation.py) and every contract signature
(evaluation/contracts/contracts.py); and whose authorization a contract link carries."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from evaluation.kernel.errors import SigningRefused
from models.tables import ContractLink, ScanSession, UnitAuthorization


class NotARepresentative(SigningRefused):
    status = 403
    code = "not-a-representative"
    title = "You are not an authorized representative of this unit"


class AuthorizationExpired(SigningRefused):
    status = 403
    code = "authorization-expired"
    title = "Your authorization to sign for this unit is not valid at this time"


class AuthorizationRevoked(SigningRefused):
    status = 403
    code = "authorization-revoked"
    title = "The unit revoked your authorization"


class AuthorizationOutOfScope(SigningRefused):
    status = 403
    code = "authorization-out-of-scope"
    title = "Your authorization does not cover this kind of document"


def covers(scope: str, purpose: str) -> bool:
    """Whether an authorization's scope covers signing a document of this purpose."""
    return scope == "all" or (scope == "contracts" and purpose == "contract")


def valid_authorization(
    db: Session, person_id: str, unit_id: str, purpose: str, now: datetime
) -> UnitAuthorization:
    """The person's authorization to sign a `purpose` document for the unit now, or the
    reason there is none: not a representative, revoked, expired, out of scope."""
    rows = list(
        db.execute(
            select(UnitAuthorization)
            .where(UnitAuthorization.person_id == person_id, UnitAuthorization.unit_id == unit_id)
            .order_by(UnitAuthorization.valid_until.desc())
        ).scalars()
    )
    if not rows:
        raise NotARepresentative("you are not an authorized representative of this unit")
    active = [r for r in rows if r.status == "active"]
    if not active:
        raise AuthorizationRevoked(
            "the unit revoked your authorization", authorization_id=rows[0].id
        )
    current = [r for r in active if r.valid_from <= now < r.valid_until]
    if not current:
        raise AuthorizationExpired(
            f"your authorization is valid {active[0].valid_from.isoformat()} to "
            f"{active[0].valid_until.isoformat()}",
            authorization_id=active[0].id,
            valid_until=active[0].valid_until.isoformat(),
        )
    for row in current:
        if covers(row.scope, purpose):
            return row
    raise AuthorizationOutOfScope(
        f"your authorization covers {current[0].scope}, not a {purpose} document",
        authorization_id=current[0].id,
        scope=current[0].scope,
    )


def link_authorization(db: Session, scan: ScanSession) -> UnitAuthorization:
    """The authorization a contract scan's link was issued for."""
    link = db.get(ContractLink, scan.contract_link_id)
    assert link is not None
    authorization = db.get(UnitAuthorization, link.authorization_id)
    assert authorization is not None
    return authorization


def link_person(db: Session, scan: ScanSession) -> str:
    """Whom a contract scan's face check is for: the link's representative."""
    return link_authorization(db, scan).person_id

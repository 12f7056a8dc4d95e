"""A representative binds their phone on the contract link itself.

Representatives seldom come to the desk, so their phone is bound remotely: on the phone
that opened their contract link (the only phone that link works on), after a face check
on it, and only once the center knows who they are (an enrollment done at the desk, or a
remote one an operator or the identity provider confirmed). The binding is otherwise the
desk's: a WebAuthn passkey with user verification, its face check and its origin kept,
audited; supervisors see it was bound through a link (`witnessed_by`).
"""

from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from evaluation.contracts.contracts import ContractLinkInvalid, get_contract
from evaluation.identity import phone_binding, remote_review
from evaluation.identity.passkeys import PasskeyPolicy, active_passkeys
from evaluation.kernel import audit
from models.clock import Clock
from models.tables import (
    ContractLink,
    FaceVerification,
    Passkey,
    PasskeyEnrollment,
    UnitAuthorization,
    VerifiedSession,
)


def _link_on_this_phone(
    db: Session, clock: Clock, contract_id: str, session: VerifiedSession
) -> ContractLink:
    """The person's live link to this contract, opened on the phone of this face check."""
    contract = get_contract(db, session.center_id, contract_id)
    now = clock.now()
    links = db.execute(
        select(ContractLink)
        .join(UnitAuthorization, UnitAuthorization.id == ContractLink.authorization_id)
        .where(
            ContractLink.contract_id == contract.id,
            UnitAuthorization.person_id == session.expert_id,
            ContractLink.device_id == session.device_id,
            ContractLink.revoked_at.is_(None),
            ContractLink.expires_at > now,
        )
    ).scalars()
    link = next(iter(links), None)
    if link is None:
        raise ContractLinkInvalid("bind your phone from your contract link, on the phone it opened")
    return link


def binding_options(
    db: Session,
    caller: audit.Caller,
    clock: Clock,
    policy: PasskeyPolicy,
    session: VerifiedSession,
    contract_id: str,
) -> tuple[PasskeyEnrollment, dict[str, Any]]:
    """A binding for the phone of this face check, and what its
    navigator.credentials.create() needs."""
    link = _link_on_this_phone(db, clock, contract_id, session)
    remote_review.require_confirmed(db, session.expert_id)
    if len(active_passkeys(db, session.expert_id)) >= policy.max_devices:
        raise phone_binding.PasskeyLimit(f"{policy.max_devices} phones are bound already")
    verification = db.get(FaceVerification, session.verification_id)
    assert verification is not None
    # No QR: the link and its face check stand in for it; the token is never shown.
    enrollment = phone_binding.new_enrollment(
        db,
        caller,
        clock,
        policy,
        expert_id=session.expert_id,
        token=secrets.token_urlsafe(32),
        started_by=f"contract-link:{link.id}",
        device_id=session.device_id,
        face_challenge_id=verification.challenge_id,
        details={"contract_id": contract_id, "link_id": link.id, "device_id": session.device_id},
    )
    options = phone_binding.registration_options(db, clock, policy, enrollment, session)
    return enrollment, options


def complete_binding(
    db: Session,
    clock: Clock,
    policy: PasskeyPolicy,
    session: VerifiedSession,
    contract_id: str,
    enrollment_id: str,
    response: dict[str, Any],
    *,
    label: str,
    request_id: str | None,
) -> Passkey:
    """Bind the new passkey, once: the binding must be this link's, for this person."""
    link = _link_on_this_phone(db, clock, contract_id, session)
    enrollment = db.get(PasskeyEnrollment, enrollment_id, with_for_update=True)
    if (
        enrollment is None
        or enrollment.started_by != f"contract-link:{link.id}"
        or enrollment.expert_id != session.expert_id
        or enrollment.completed_at is not None
        or clock.now() >= enrollment.expires_at
    ):
        raise phone_binding.EnrollmentInvalid("ask for a new binding from your contract link")
    return phone_binding.complete_enrollment(
        db, clock, policy, enrollment, session, response, label=label, request_id=request_id
    )

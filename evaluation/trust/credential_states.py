"""The status machine of an issued certificate (an expert's credential, a unit's seal):
valid, on hold while its expert is suspended, revoked for good."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from sqlalchemy.orm import Session

from evaluation.kernel import audit
from evaluation.kernel.actions import Action
from evaluation.kernel.transitions import next_status
from models.clock import Clock
from models.tables import IssuedCertificate


class CredentialStatus(StrEnum):
    VALID = "valid"
    SUSPENDED = "suspended"  # certificateHold on the CRL
    REVOKED = "revoked"


class CredentialAction(StrEnum):
    HOLD = "hold"  # its expert is suspended
    RELEASE = "release"  # its expert is active again
    REVOKE = "revoke"


# Every allowed status change, in one place: (from, action) -> to.
CREDENTIAL_TRANSITIONS: dict[tuple[CredentialStatus, CredentialAction], CredentialStatus] = {
    (CredentialStatus.VALID, CredentialAction.HOLD): CredentialStatus.SUSPENDED,
    (CredentialStatus.SUSPENDED, CredentialAction.RELEASE): CredentialStatus.VALID,
    (CredentialStatus.VALID, CredentialAction.REVOKE): CredentialStatus.REVOKED,
    (CredentialStatus.SUSPENDED, CredentialAction.REVOKE): CredentialStatus.REVOKED,
}
_ENTRIES = {
    CredentialAction.HOLD: Action.CREDENTIAL_SUSPENDED,
    CredentialAction.RELEASE: Action.CREDENTIAL_RESUMED,
    CredentialAction.REVOKE: Action.CREDENTIAL_REVOKED,
}


def change_status(
    db: Session,
    caller: audit.Caller,
    clock: Clock,
    row: IssuedCertificate,
    action: CredentialAction,
    details: dict[str, Any],
) -> CredentialStatus:
    """Move the certificate along CREDENTIAL_TRANSITIONS (InvalidTransition otherwise,
    nothing written) and audit the change. Reissuing the CRL is the caller's."""
    current = CredentialStatus(row.status)
    target = next_status(
        CREDENTIAL_TRANSITIONS,
        current,
        action,
        f"credential {row.id} is {current}; it cannot {action}",
    )
    row.status = target.value
    db.flush()
    audit.record(db, caller, clock, _ENTRIES[action], "certificate", row.id, details)
    return target

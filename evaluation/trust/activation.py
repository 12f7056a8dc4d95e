"""Signature activation with sole control (the CSC API v2 model).

An expert's key signs only with signature activation data (SAD) that `authorize_signing`
grants to the expert's own face-verified session, when its face check is fresh, for exactly
the listed hashes. `sign_hashes` consumes the SAD atomically (single use) and signs only
hashes it names. Staff tokens never reach either: they are not face sessions.

Every refusal is a `SigningRefused` subclass carrying a CSC error name; the API records it
in the audit log even though the request fails.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import Table, and_, bindparam, insert, select, update
from sqlalchemy.orm import Session

from evaluation.kernel import audit
from evaluation.kernel.actions import Action
from evaluation.kernel.errors import NotFound, SigningRefused
from evaluation.kernel.tokens import hash_token, new_secret
from evaluation.registry import unit_authority
from evaluation.trust import credentials
from models.base import new_id
from models.clock import Clock
from models.settings import Settings
from models.tables import (
    Expert,
    IssuedCertificate,
    SignatureActivation,
    VaultKey,
    VerifiedSession,
)
from signing.algorithms import HASHES_BY_OID, SIGN_ALGORITHMS, hash_for_oid
from signing.certificates import Profile
from signing.vault import KeyRef, Vault

SAD_PREFIX = "sad_"


class FaceCheckStale(SigningRefused):
    status = 401
    code = "face-check-stale"
    title = "The face check is too old to sign; take a new one"
    csc_error = "invalid_request"


class CredentialNotOwned(SigningRefused):
    status = 403
    code = "credential-not-owned"
    title = "This credential belongs to someone else"
    csc_error = "invalid_request"


class CredentialUnusable(SigningRefused):
    status = 409
    code = "credential-unusable"
    title = "The credential is revoked, suspended or expired, or its expert is suspended"
    csc_error = "invalid_request"


class HashesInvalid(SigningRefused):
    status = 422
    code = "hashes-invalid"
    title = "The hashes or algorithms are malformed or unsupported"
    csc_error = "invalid_request"


class SadInvalid(SigningRefused):
    status = 403
    code = "sad-invalid"
    title = "The SAD is unknown, or was issued to another session or credential"
    csc_error = "invalid_request"


class SadUsed(SigningRefused):
    status = 409
    code = "sad-used"
    title = "The SAD was already used; authorize again"
    csc_error = "invalid_request"


class SadExpired(SigningRefused):
    status = 410
    code = "sad-expired"
    title = "The SAD has expired; authorize again"
    csc_error = "invalid_request"


class HashesNotAuthorized(SigningRefused):
    status = 403
    code = "hashes-not-authorized"
    title = "The SAD does not authorize these hashes or this hash algorithm"
    csc_error = "invalid_request"


@dataclass(frozen=True)
class ActivationPolicy:
    freshness: timedelta
    sad_ttl: timedelta
    max_hashes: int

    @classmethod
    def from_settings(cls, settings: Settings) -> ActivationPolicy:
        return cls(
            freshness=timedelta(seconds=settings.signing_freshness_s),
            sad_ttl=timedelta(seconds=settings.signing_sad_ttl_s),
            max_hashes=settings.signing_max_hashes,
        )


@dataclass(frozen=True)
class Authorization:
    activation: SignatureActivation
    sad: str
    expires_in: int


# The signing hot path's statements, built once: building a statement and its cache key
# cost more than SQLite took to run it. The credential comes with its key and its expert's
# status in the same query.
_CREDENTIAL = (
    select(IssuedCertificate, VaultKey, Expert.status)
    .join(VaultKey, VaultKey.id == IssuedCertificate.key_id)
    .join(Expert, Expert.id == IssuedCertificate.expert_id)
    .where(
        IssuedCertificate.id == bindparam("credential_id"),
        IssuedCertificate.center_id == bindparam("center_id"),
        IssuedCertificate.purpose == credentials.EXPERT,
    )
)
# signHash: the SAD and the credential it was issued for, in one query (outer joins, so an
# unknown or foreign credential still reads as one, checked in the same order as above).
_SAD_WITH_CREDENTIAL = (
    select(SignatureActivation, IssuedCertificate, VaultKey, Expert.status)
    .outerjoin(
        IssuedCertificate,
        and_(
            IssuedCertificate.id == SignatureActivation.credential_id,
            IssuedCertificate.center_id == bindparam("center_id"),
            IssuedCertificate.purpose == credentials.EXPERT,
        ),
    )
    .outerjoin(VaultKey, VaultKey.id == IssuedCertificate.key_id)
    .outerjoin(Expert, Expert.id == IssuedCertificate.expert_id)
    .where(SignatureActivation.token_hash == bindparam("token_hash"))
)
_activations = cast(Table, SignatureActivation.__table__)
_INSERT_ACTIVATION = insert(_activations)
_CONSUME = (
    update(_activations)
    .where(_activations.c.id == bindparam("activation_id"), _activations.c.used_at.is_(None))
    .values(used_at=bindparam("now"))
)


def _owned_usable_credential(
    db: Session, session: VerifiedSession, credential_id: str, purpose: str, now: datetime
) -> tuple[IssuedCertificate, KeyRef]:
    """The credential, if it is the session's expert's (or a seal of a unit they may sign
    a `purpose` document for now) and usable now."""
    found = db.execute(
        _CREDENTIAL, {"credential_id": credential_id, "center_id": session.center_id}
    ).one_or_none()
    if found is None:
        return _usable_seal(db, session, credential_id, purpose, now)
    credential, key, expert_status = found
    return _usable(session, credential, key, expert_status, now)


def _usable_seal(
    db: Session, session: VerifiedSession, credential_id: str, purpose: str, now: datetime
) -> tuple[IssuedCertificate, KeyRef]:
    """A unit's seal credential, for a person the unit authorizes now for this purpose.
    Off the experts' hot path: seals sign contracts, a few times a day."""
    found = db.execute(
        select(IssuedCertificate, VaultKey, Expert.status)
        .join(VaultKey, VaultKey.id == IssuedCertificate.key_id)
        .join(Expert, Expert.id == session.expert_id)
        .where(
            IssuedCertificate.id == credential_id,
            IssuedCertificate.center_id == session.center_id,
            IssuedCertificate.purpose == Profile.ORGANIZATION_SEAL.value,
        )
    ).one_or_none()
    if found is None:
        raise NotFound(f"no credential {credential_id} in this center")
    credential, key, person_status = found
    assert credential.unit_id is not None
    if person_status != "active":
        raise CredentialUnusable("the representative is suspended", credential_status="suspended")
    unit_authority.valid_authorization(db, session.expert_id, credential.unit_id, purpose, now)
    current = credentials.state(credential, now)
    if not current.usable:
        raise CredentialUnusable(
            f"the unit's seal credential {credential.id} is {current.status}",
            credential_status=current.status,
        )
    return credential, KeyRef.of(key)


def _usable(
    session: VerifiedSession,
    credential: IssuedCertificate,
    key: VaultKey,
    expert_status: str,
    now: datetime,
) -> tuple[IssuedCertificate, KeyRef]:
    if credential.expert_id != session.expert_id:
        raise CredentialNotOwned(f"credential {credential.id} is not the session's expert's")
    if expert_status != "active":
        raise CredentialUnusable(
            "the expert is suspended", credential_status="suspended", expert_status=expert_status
        )
    current = credentials.state(credential, now)
    if not current.usable:
        raise CredentialUnusable(
            f"credential {credential.id} is {current.status}", credential_status=current.status
        )
    return credential, KeyRef.of(key)


def decode_hashes(values: Sequence[str], hash_oid: str, max_hashes: int) -> list[bytes]:
    """The base64 hashes of a request, checked against the algorithm's digest size."""
    if hash_oid not in HASHES_BY_OID:
        raise HashesInvalid(
            f"hashAlgorithmOID {hash_oid} is not supported",
            supported=sorted(HASHES_BY_OID),
        )
    size = hash_for_oid(hash_oid).digest_size
    if not values:
        raise HashesInvalid("hashes must list at least one hash")
    if len(values) > max_hashes:
        raise HashesInvalid(f"at most {max_hashes} hashes per request")
    decoded = []
    for index, value in enumerate(values):
        try:
            digest = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise HashesInvalid(f"hashes[{index}] is not base64") from None
        if len(digest) != size:
            raise HashesInvalid(f"hashes[{index}] is {len(digest)} bytes, not {size}")
        decoded.append(digest)
    if len(set(decoded)) != len(decoded):
        raise HashesInvalid("hashes lists the same hash twice")
    return decoded


def _canonical(digests: Sequence[bytes]) -> list[str]:
    return [base64.b64encode(d).decode() for d in digests]


def require_fresh(policy: ActivationPolicy, session: VerifiedSession, now: datetime) -> None:
    """Signing needs a recent face check: checked when a SAD is asked for, and before a
    signature is prepared, so the phone is not asked to approve what cannot be signed."""
    age = now - session.verified_at
    if age > policy.freshness:
        raise FaceCheckStale(
            f"the face check is {int(age.total_seconds())} s old; signing needs one at most "
            f"{int(policy.freshness.total_seconds())} s old",
            age_s=int(age.total_seconds()),
            freshness_s=int(policy.freshness.total_seconds()),
        )


def authorize_signing(
    db: Session,
    caller: audit.Caller,
    clock: Clock,
    *,
    policy: ActivationPolicy,
    session: VerifiedSession,
    credential_id: str,
    hashes: Sequence[str],
    hash_oid: str,
    num_signatures: int,
    purpose: str = "all",
    approve: Callable[[], str | None],
    one_time_code_id: str | None = None,
) -> Authorization:
    """Grant a SAD for exactly these hashes, to a fresh face check of the credential's owner.
    `purpose` is the kind of document signed, which a seal's authorization must cover.
    Once the request itself holds up, `approve` checks the passkey assertion that approved
    these hashes (sole control) and names it, to be kept with the SAD; the caller decides
    when one is required. `one_time_code_id` names the SMS code that stood in for the
    passkey, where the center allows one (verified by the caller)."""
    now = clock.now()
    credential, _ = _owned_usable_credential(db, session, credential_id, purpose, now)
    require_fresh(policy, session, now)
    digests = decode_hashes(hashes, hash_oid, policy.max_hashes)
    if num_signatures != len(digests):
        raise HashesInvalid(
            f"numSignatures is {num_signatures} but {len(digests)} hashes were given"
        )
    passkey_use_id = approve()
    sad = new_secret(SAD_PREFIX)
    activation = SignatureActivation(
        id=new_id(),
        center_id=session.center_id,
        token_hash=hash_token(sad),
        credential_id=credential.id,
        expert_id=session.expert_id,
        session_id=session.id,
        verification_id=session.verification_id,
        hash_algorithm_oid=hash_oid,
        hashes=_canonical(digests),
        created_at=now,
        expires_at=now + policy.sad_ttl,
        passkey_use_id=passkey_use_id,
        one_time_code_id=one_time_code_id,
    )
    # A Core insert: the hot path of every signature, and the row is never changed here.
    db.execute(_INSERT_ACTIVATION, _columns(activation))
    audit.record(
        db,
        caller,
        clock,
        Action.SIGNATURE_AUTHORIZED,
        "signature_activation",
        activation.id,
        {
            "credential_id": credential.id,
            "expert_id": session.expert_id,
            "session_id": session.id,
            "verification_id": session.verification_id,
            "verified_at": session.verified_at.isoformat(),
            "passkey_use_id": passkey_use_id,
            "one_time_code_id": one_time_code_id,
            "hash_algorithm": hash_oid,
            "hashes": activation.hashes,
            "expires_at": activation.expires_at.isoformat(),
        },
    )
    return Authorization(activation, sad, int(policy.sad_ttl.total_seconds()))


def _columns(row: SignatureActivation) -> dict[str, object]:
    return {column.key: getattr(row, column.key) for column in SignatureActivation.__table__.c}


def sign_hashes(
    db: Session,
    caller: audit.Caller,
    clock: Clock,
    *,
    # Keyword-only: credential_id, sad and the hashes are all strings, and a swap would
    # pass the type checker.
    vault: Vault,
    policy: ActivationPolicy,
    session: VerifiedSession,
    credential_id: str,
    sad: str,
    hashes: Sequence[str],
    hash_oid: str | None,
    sign_algo: str,
    purpose: str = "all",
    remote: Callable[[IssuedCertificate], Vault] | None = None,
) -> list[bytes]:
    """Sign the hashes with the credential's key, if the SAD authorizes exactly them; the
    SAD is consumed atomically, so two concurrent calls cannot both use it. A key a remote
    signing provider holds (backend `csc`) signs through the vault `remote` gives for the
    credential."""
    now = clock.now()
    found = db.execute(
        _SAD_WITH_CREDENTIAL, {"token_hash": hash_token(sad), "center_id": session.center_id}
    ).one_or_none()
    if found is None or found[0].session_id != session.id:
        raise SadInvalid("the SAD is unknown or was issued to another face session")
    activation, credential_row, key_row, expert_status = found
    if activation.credential_id != credential_id:
        raise SadInvalid("the SAD was issued for another credential")
    if activation.used_at is not None:
        raise SadUsed(f"SAD {activation.id} was used at {activation.used_at.isoformat()}")
    if now >= activation.expires_at:
        raise SadExpired(f"SAD {activation.id} expired at {activation.expires_at.isoformat()}")
    if credential_row is None or key_row is None or expert_status is None:
        # Not an expert's credential: a unit's seal, or none of this center's.
        credential, key = _usable_seal(db, session, credential_id, purpose, now)
    else:
        credential, key = _usable(session, credential_row, key_row, expert_status, now)
    if sign_algo not in SIGN_ALGORITHMS or SIGN_ALGORITHMS[sign_algo][0] is not key.algorithm:
        raise HashesInvalid(
            f"signAlgo {sign_algo} does not fit this {key.algorithm.value} key",
            supported=[o for o, (k, _) in SIGN_ALGORITHMS.items() if k is key.algorithm],
        )
    implied = SIGN_ALGORITHMS[sign_algo][1]
    hash_oid = hash_oid or implied
    if hash_oid is None:
        raise HashesInvalid("hashAlgorithmOID is required with this signAlgo")
    if implied is not None and implied != hash_oid:
        raise HashesInvalid(f"signAlgo {sign_algo} implies hash {implied}, not {hash_oid}")
    digests = decode_hashes(hashes, hash_oid, policy.max_hashes)
    authorized = set(activation.hashes)
    if hash_oid != activation.hash_algorithm_oid or not set(_canonical(digests)) <= authorized:
        raise HashesNotAuthorized("the SAD was not issued for these hashes")
    consumed = db.execute(_CONSUME, {"activation_id": activation.id, "now": now})
    if consumed.rowcount != 1:  # type: ignore[attr-defined]
        raise SadUsed(f"SAD {activation.id} was used by a concurrent request")
    algorithm = hash_for_oid(hash_oid)
    if key.backend == "csc" and remote is not None:
        vault = remote(credential)
    signatures = [vault.sign_digest(key, digest, algorithm) for digest in digests]
    events = [
        audit.AuditEvent(
            Action.SIGNATURE_CREATED,
            "certificate",
            credential.id,
            {
                "credential_id": credential.id,
                "serial": credential.serial,
                "expert_id": session.expert_id,
                "hash": encoded,
                "hash_algorithm": hash_oid,
                "sign_algorithm": sign_algo,
                "sad_id": activation.id,
                "verification_id": activation.verification_id,
                "session_id": session.id,
            },
        )
        for encoded in _canonical(digests)
    ]
    audit.record_many(db, caller, clock, events)
    return signatures

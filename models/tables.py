"""The tables: centers, staff tokens, experts, the audit log, faces, face checks, keys,
certificates and signature activation."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import ID, Base, new_id


class Center(Base):
    """A trading center: the tenant every other record belongs to."""

    __tablename__ = "centers"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime]


class StaffToken(Base):
    """A bearer token for a staff member; only its SHA-256 is stored."""

    __tablename__ = "staff_tokens"
    __table_args__ = (CheckConstraint("role IN ('admin', 'operator', 'supervisor')", name="role"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    center_id: Mapped[str] = mapped_column(ForeignKey("centers.id"), index=True)
    role: Mapped[str] = mapped_column(String(20))
    label: Mapped[str] = mapped_column(String(200))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class ConsoleSession(Base):
    """A login to the supervisors' console: the browser's cookie holds this session's own
    secret (stored only as SHA-256), never the staff token; it expires, and logout or the
    token's revocation ends it."""

    __tablename__ = "console_sessions"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    center_id: Mapped[str] = mapped_column(ForeignKey("centers.id"))
    staff_token_id: Mapped[str] = mapped_column(ForeignKey("staff_tokens.id"), index=True)
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    client_ip: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]


class Expert(Base):
    """A person the center identifies by face: an evaluation expert in its pool, or a unit's
    representative (kind), who enrolls and signs the same way but is never drawn. ID number
    and phone are stored encrypted."""

    __tablename__ = "experts"
    __table_args__ = (
        UniqueConstraint("center_id", "id_number_index"),
        CheckConstraint("status IN ('active', 'suspended')", name="status"),
        CheckConstraint("kind IN ('expert', 'representative')", name="kind"),
        Index("ix_experts_center_listing", "center_id", "created_at", "id"),
        Index("ix_experts_center_region", "center_id", "region_code"),
        Index("ix_experts_center_employer", "center_id", "employer_credit_code"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    center_id: Mapped[str] = mapped_column(ForeignKey("centers.id"))
    name: Mapped[str] = mapped_column(String(100))
    id_number_ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    # Keyed hash of the normalized ID number: finds duplicates without decrypting.
    id_number_index: Mapped[str] = mapped_column(String(64))
    phone_ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    employer_name: Mapped[str] = mapped_column(String(200))
    employer_credit_code: Mapped[str] = mapped_column(String(18))
    region_code: Mapped[str] = mapped_column(String(6))
    status: Mapped[str] = mapped_column(String(20), default="active")
    status_reason: Mapped[str | None] = mapped_column(Text)
    # An expert who also represents a unit stays "expert": the pool is what kind decides.
    kind: Mapped[str] = mapped_column(String(20), default="expert", server_default="expert")
    # Withdrew consent to face processing: templates deleted, the face path closed until
    # they consent again at a new enrollment.
    face_consent_withdrawn_at: Mapped[datetime | None]
    # The signing PIN of the non-face path (evaluation/committee/in_person.py): a slow scrypt hash,
    # set at the center after an operator checked the person's ID card.
    pin_hash: Mapped[str | None] = mapped_column(String(200))
    pin_set_at: Mapped[datetime | None]
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    specialties: Mapped[list[ExpertSpecialty]] = relationship(
        back_populates="expert",
        cascade="all, delete-orphan",
        lazy="raise",
        order_by="ExpertSpecialty.code",
    )

    # UPDATE ... WHERE version = :seen: a concurrent edit fails instead of being lost.
    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012


class ExpertSpecialty(Base):
    """One specialty code of an expert; a table of its own so filters use an index."""

    __tablename__ = "expert_specialties"
    __table_args__ = (Index("ix_expert_specialties_code_expert", "code", "expert_id"),)

    expert_id: Mapped[str] = mapped_column(
        ForeignKey("experts.id", ondelete="CASCADE"), primary_key=True
    )
    code: Mapped[str] = mapped_column(String(16), primary_key=True)

    expert: Mapped[Expert] = relationship(back_populates="specialties", lazy="raise")


class AuditHead(Base):
    """The tip of a center's audit chain; updating it first serializes appenders."""

    __tablename__ = "audit_heads"

    center_id: Mapped[str] = mapped_column(ForeignKey("centers.id"), primary_key=True)
    last_seq: Mapped[int] = mapped_column(Integer)
    last_hash: Mapped[str] = mapped_column(String(64))


class AuditCheckpoint(Base):
    """A signed, time-stamped statement of a chain's head (center, last sequence, head
    hash, time): outside copies of these reveal entries cut from the end of the chain or
    a chain rewritten from scratch, which the hash chain alone cannot."""

    __tablename__ = "audit_checkpoints"
    __table_args__ = (UniqueConstraint("center_id", "seq"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    center_id: Mapped[str] = mapped_column(ForeignKey("centers.id"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    head_hash: Mapped[str] = mapped_column(String(64))
    statement: Mapped[str] = mapped_column(Text)  # the canonical JSON that was signed
    signature_der: Mapped[bytes] = mapped_column(LargeBinary)  # detached CMS, time-stamped
    certificate_id: Mapped[str] = mapped_column(ForeignKey("issued_certificates.id"))
    reason: Mapped[str] = mapped_column(String(20))  # scheduled | on-demand
    created_at: Mapped[datetime]


class AuditEntry(Base):
    """One append-only, hash-chained record of a change."""

    __tablename__ = "audit_entries"
    __table_args__ = (UniqueConstraint("center_id", "seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    center_id: Mapped[str] = mapped_column(ForeignKey("centers.id"))
    seq: Mapped[int] = mapped_column(Integer)
    occurred_at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(100))
    subject_type: Mapped[str] = mapped_column(String(50))
    subject_id: Mapped[str | None] = mapped_column(String(64))
    request_id: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[dict[str, Any]] = mapped_column(JSON)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class KeyCheck(Base):
    """A check value of the instance key: a different or regenerated key is refused at start
    instead of leaving every encrypted field unreadable."""

    __tablename__ = "key_checks"

    purpose: Mapped[str] = mapped_column(String(50), primary_key=True)
    check_value: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]


class FaceTemplate(Base):
    """An expert's enrolled face: encrypted embeddings and their normalized mean, bound to
    the recognizer model that produced them."""

    __tablename__ = "face_templates"

    expert_id: Mapped[str] = mapped_column(
        ForeignKey("experts.id", ondelete="CASCADE"), primary_key=True
    )
    center_id: Mapped[str] = mapped_column(ForeignKey("centers.id"), index=True)
    model_id: Mapped[str] = mapped_column(String(100))
    template_ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    embeddings_ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    photo_count: Mapped[int] = mapped_column(Integer)
    quality: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    consent_recorded_at: Mapped[datetime]
    enrolled_at: Mapped[datetime]
    # in-person: photos an operator took at the center; id-card: a representative's own
    # photo of their ID card, matched at a lower threshold and a lower assurance.
    reference: Mapped[str] = mapped_column(
        String(20), default="in-person", server_default="in-person"
    )
    # The consent text the person agreed to (evaluation/identity/consent.py), when it was recorded.
    consent_version: Mapped[str | None] = mapped_column(String(40))
    # Who confirmed that the reference is the person's: the operator at enrollment in
    # person; for an ID card sent from a phone, an operator who compared it with the live
    # check (evaluation/identity/remote_review.py). Nothing is sealed before.
    confirmed_at: Mapped[datetime | None]
    confirmed_by: Mapped[str | None] = mapped_column(String(100))


class RemoteEnrollmentReview(Base):
    """A remote enrollment waiting for a decision (the identity provider's or an operator's):
    the ID card photo the phone sent and a frame of the live check that matched it,
    encrypted, kept only until the decision."""

    __tablename__ = "remote_enrollment_reviews"
    __table_args__ = (
        CheckConstraint("decision IN ('confirmed', 'rejected')", name="decision"),
        Index("ix_remote_enrollment_reviews_center_open", "center_id", "decided_at"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    center_id: Mapped[str] = mapped_column(ForeignKey("centers.id"))
    expert_id: Mapped[str] = mapped_column(ForeignKey("experts.id", ondelete="CASCADE"), index=True)
    card_ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary)
    frame_ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary)
    verification_id: Mapped[str | None] = mapped_column(ForeignKey("face_verifications.id"))
    similarity: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime]
    decided_at: Mapped[datetime | None]
    decided_by: Mapped[str | None] = mapped_column(String(100))
    decision: Mapped[str | None] = mapped_column(String(20))
    note: Mapped[str | None] = mapped_column(String(500))
    # The identity provider's answer, when the center has one: match or no-match decided the
    # review (decided_by "identity-provider"); unavailable left it to an operator.
    provider_outcome: Mapped[str | None] = mapped_column(String(20))
    provider_reference: Mapped[str | None] = mapped_column(String(200))
    provider_score: Mapped[float | None] = mapped_column(Float)


class FacePhoto(Base):
    """A retained enrollment photo, encrypted; only kept when the center's setting says so."""

    __tablename__ = "face_photos"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    expert_id: Mapped[str] = mapped_column(ForeignKey("experts.id", ondelete="CASCADE"), index=True)
    center_id: Mapped[str] = mapped_column(ForeignKey("centers.id"))
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime]


class FaceChallenge(Base):
    """A liveness challenge: the actions asked for, in order, and the nonce (stored hashed)
    that lets exactly one frame submission answer it before it expires."""

    __tablename__ = "face_challenges"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    center_id: Mapped[str] = mapped_column(ForeignKey("centers.id"), index=True)
    mode: Mapped[str] = mapped_column(String(8))  # "1:1" or "1:few"
    expert_ids: Mapped[list[str]] = mapped_column(JSON)
    actions: Mapped[list[str]] = mapped_column(JSON)
    nonce_hash: Mapped[str] = mapped_column(String(64))
    capture: Mapped[dict[str, Any]] = mapped_column(JSON)
    issued_by: Mapped[str] = mapped_column(String(100))
    issued_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    # Set when a phone that scanned a task QR asked for the challenge: sign-in accepts only
    # a face check of a challenge issued to that scan.
    scan_session_id: Mapped[str | None] = mapped_column(ForeignKey("scan_sessions.id"), index=True)
    # The light challenge: colour steps the phone films under, each revealed by the server
    # when the previous step's frames arrived; an action's prompt rides on one step.
    # [{"colour": "red", "ms": 400, "prompt": "turn_left" | null}, ...]
    steps: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)


class CaptureChunk(Base):
    """The frames a phone filmed under one step of a challenge, stamped on arrival and
    encrypted; kept only until the stream closes (or is refused), so any replica can take
    the next step."""

    __tablename__ = "capture_chunks"

    challenge_id: Mapped[str] = mapped_column(
        ForeignKey("face_challenges.id", ondelete="CASCADE"), primary_key=True
    )
    step: Mapped[int] = mapped_column(Integer, primary_key=True)
    center_id: Mapped[str] = mapped_column(ForeignKey("centers.id"))
    device_id: Mapped[str] = mapped_column(String(100))
    received_at: Mapped[datetime]
    timestamps_ms: Mapped[list[int]] = mapped_column(JSON)
    # The first frames, filmed while the previous step still showed (the phone films on
    # while that step uploads): judged under the previous step's colour.
    carried: Mapped[int] = mapped_column(Integer, default=0)
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)


class FaceVerification(Base):
    """The outcome of one frame submission, pass or fail, with every check's signals: what a
    supervisor reviews. Frames themselves are kept only under the retention setting."""

    __tablename__ = "face_verifications"
    # The supervisors' searches (evaluation/supervision/searches.py): newest first, within a center,
    # by device, by address, by decision.
    __table_args__ = (
        Index("ix_face_verifications_center_created", "center_id", "created_at"),
        Index("ix_face_verifications_center_device", "center_id", "device_id", "created_at"),
        Index("ix_face_verifications_center_ip", "center_id", "client_ip", "created_at"),
        Index("ix_face_verifications_center_passed", "center_id", "passed", "created_at"),
        CheckConstraint("method IN ('face', 'in-person-pin')", name="method"),
        CheckConstraint(
            "(method = 'face') = (challenge_id IS NOT NULL)", name="challenge_for_face"
        ),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    center_id: Mapped[str] = mapped_column(ForeignKey("centers.id"))
    # face: a liveness challenge answered; in-person-pin: the non-face path, a PIN entered
    # under an operator's in-person ID check (lower assurance, always flagged).
    method: Mapped[str] = mapped_column(String(20), default="face", server_default="face")
    challenge_id: Mapped[str | None] = mapped_column(ForeignKey("face_challenges.id"), unique=True)
    in_person_check_id: Mapped[str | None] = mapped_column(ForeignKey("in_person_checks.id"))
    # The scan a PIN check was made from (a face check's scan is its challenge's).
    scan_session_id: Mapped[str | None] = mapped_column(ForeignKey("scan_sessions.id"))
    mode: Mapped[str] = mapped_column(String(8))
    candidate_ids: Mapped[list[str]] = mapped_column(JSON)
    # The expert the attempt counts for: the claimed one (1:1) or the identified one (1:few).
    expert_id: Mapped[str | None] = mapped_column(ForeignKey("experts.id"), index=True)
    passed: Mapped[bool] = mapped_column(Boolean)
    reasons: Mapped[list[str]] = mapped_column(JSON)
    checks: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    similarity: Mapped[float | None] = mapped_column(Float)
    model_id: Mapped[str] = mapped_column(String(100))
    device_id: Mapped[str] = mapped_column(String(100))
    device: Mapped[dict[str, Any]] = mapped_column(JSON)
    client_ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(400))
    frame_count: Mapped[int] = mapped_column(Integer)
    frame_hashes: Mapped[list[str]] = mapped_column(JSON)
    frames: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    frames_retained: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime]


class InPersonCheck(Base):
    """An operator checked a person's ID card at the center for one project: the non-face
    path. While it is open, the person's signing PIN stands in for a face check on their
    phone; too many wrong PINs void it and the operator must check them again."""

    __tablename__ = "in_person_checks"
    __table_args__ = (Index("ix_in_person_checks_project_expert", "project_id", "expert_id"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    center_id: Mapped[str] = mapped_column(ForeignKey("centers.id"))
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"))
    expert_id: Mapped[str] = mapped_column(ForeignKey("experts.id"))
    checked_by: Mapped[str] = mapped_column(String(100))
    document: Mapped[str] = mapped_column(String(40))
    note: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    pin_failures: Mapped[int] = mapped_column(Integer, default=0)
    voided_at: Mapped[datetime | None]
    void_reason: Mapped[str | None] = mapped_column(String(200))


class VerificationFrame(Base):
    """A submitted frame kept as evidence, encrypted; only under the retention setting."""

    __tablename__ = "verification_frames"

    verification_id: Mapped[str] = mapped_column(
        ForeignKey("face_verifications.id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    center_id: Mapped[str] = mapped_column(ForeignKey("centers.id"))
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)


class FaceReplaySignature(Base):
    """What a face check's frames did (normalized landmark trajectory and frame embeddings,
    encrypted: they are biometric), kept for the replay window so any replica can tell a
    later capture that repeats it; looked up by the expert it was for, newest first."""

    __tablename__ = "face_replay_signatures"
    __table_args__ = (
        Index("ix_face_replay_signatures_expert_created", "expert_id", "created_at"),
        Index("ix_face_replay_signatures_created", "created_at"),
    )

    verification_id: Mapped[str] = mapped_column(
        ForeignKey("face_verifications.id", ondelete="CASCADE"), primary_key=True
    )
    center_id: Mapped[str] = mapped_column(ForeignKey("centers.id"))
    expert_id: Mapped[str] = mapped_column(ForeignKey("experts.id"))
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime]


class VerifiedSession(Base):
    """What a passed face check grants: a short-lived token (stored hashed) bound to the
    expert, the device and the time of the verification."""

    __tablename__ = "verified_sessions"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    center_id: Mapped[str] = mapped_column(ForeignKey("centers.id"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    expert_id: Mapped[str] = mapped_column(ForeignKey("experts.id"), index=True)
    verification_id: Mapped[str] = mapped_column(ForeignKey("face_verifications.id"))
    device_id: Mapped[str] = mapped_column(String(100))
    verified_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class PasskeyEnrollment(Base):
    """An operator's one-time QR that binds a phone to a person at the desk, after checking
    their ID card: the first phone that opens it must pass a face check against the
    enrolled template, then registers its passkey. Single use, valid a few minutes."""

    __tablename__ = "passkey_enrollments"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    center_id: Mapped[str] = mapped_column(ForeignKey("centers.id"))
    expert_id: Mapped[str] = mapped_column(ForeignKey("experts.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    started_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    # The phone that opened it first: no other phone may continue.
    device_id: Mapped[str | None] = mapped_column(String(100))
    opened_at: Mapped[datetime | None]
    face_challenge_id: Mapped[str | None] = mapped_column(ForeignKey("face_challenges.id"))
    # SHA-256 of the WebAuthn registration challenge issued after the face check.
    registration_challenge_hash: Mapped[str | None] = mapped_column(String(64))
    completed_at: Mapped[datetime | None]


class Passkey(Base):
    """A phone bound to a person: the WebAuthn credential its platform authenticator made
    (user verification required), with the face check and the operator that witnessed
    the binding. Revoked, never deleted: signatures it approved point to it."""

    __tablename__ = "passkeys"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    center_id: Mapped[str] = mapped_column(ForeignKey("centers.id"))
    expert_id: Mapped[str] = mapped_column(ForeignKey("experts.id"), index=True)
    # base64url; WebAuthn allows credential ids of up to 1023 bytes.
    credential_id: Mapped[str] = mapped_column(String(1400), unique=True)
    public_key: Mapped[bytes] = mapped_column(LargeBinary)  # COSE, as registered
    algorithm: Mapped[int] = mapped_column(Integer)
    sign_count: Mapped[int] = mapped_column(BigInteger, default=0)
    aaguid: Mapped[str] = mapped_column(String(36))
    transports: Mapped[list[str]] = mapped_column(JSON)
    backup_eligible: Mapped[bool] = mapped_column(Boolean)
    label: Mapped[str] = mapped_column(String(200))
    device_id: Mapped[str] = mapped_column(String(100))
    enrollment_id: Mapped[str] = mapped_column(ForeignKey("passkey_enrollments.id"), unique=True)
    verification_id: Mapped[str] = mapped_column(ForeignKey("face_verifications.id"))
    witnessed_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime]
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    revoked_by: Mapped[str | None] = mapped_column(String(100))
    revoke_reason: Mapped[str | None] = mapped_column(String(200))


class PasskeyChallenge(Base):
    """A WebAuthn challenge for an assertion, single use: to sign in from a scan (random),
    to approve signing exactly some hashes with a credential (SHA-256 over the JCS of
    {credentialID, hashes, nonce}), or to confirm an answer to a call-up (random). Found by
    the SHA-256 of its nonce."""

    __tablename__ = "passkey_challenges"
    __table_args__ = (
        CheckConstraint("purpose IN ('sign-in', 'signing', 'call-up')", name="purpose"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    center_id: Mapped[str] = mapped_column(ForeignKey("centers.id"))
    expert_id: Mapped[str] = mapped_column(ForeignKey("experts.id"))
    purpose: Mapped[str] = mapped_column(String(20))
    nonce_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scan_session_id: Mapped[str | None] = mapped_column(ForeignKey("scan_sessions.id"))
    verified_session_id: Mapped[str | None] = mapped_column(ForeignKey("verified_sessions.id"))
    # What a signing challenge commits to: {"credential_id", "hashes"}.
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]


class PasskeyUse(Base):
    """One verified assertion, kept as evidence: a third party can check offline that the
    person's own phone approved this sign-in or exactly these hashes."""

    __tablename__ = "passkey_uses"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    center_id: Mapped[str] = mapped_column(ForeignKey("centers.id"))
    passkey_id: Mapped[str] = mapped_column(ForeignKey("passkeys.id"), index=True)
    expert_id: Mapped[str] = mapped_column(ForeignKey("experts.id"))
    challenge_id: Mapped[str] = mapped_column(ForeignKey("passkey_challenges.id"), unique=True)
    purpose: Mapped[str] = mapped_column(String(20))
    rp_id: Mapped[str] = mapped_column(String(253))
    challenge: Mapped[str] = mapped_column(String(100))  # base64url, as asserted
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime]


class OneTimeCode(Base):
    """An SMS code sent where a center lets one stand in for the passkey: for signing in
    from one scan, or approving exactly some hashes from one face session. Kept as a hash
    keyed by its nonce; five tries; used once."""

    __tablename__ = "one_time_codes"
    __table_args__ = (CheckConstraint("purpose IN ('sign-in', 'signing')", name="purpose"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    center_id: Mapped[str] = mapped_column(ForeignKey("centers.id"))
    expert_id: Mapped[str] = mapped_column(ForeignKey("experts.id"), index=True)
    purpose: Mapped[str] = mapped_column(String(20))
    nonce_hash: Mapped[str] = mapped_column(String(64), unique=True)
    code_digest: Mapped[str] = mapped_column(String(64))
    scan_session_id: Mapped[str | None] = mapped_column(ForeignKey("scan_sessions.id"))
    verified_session_id: Mapped[str | None] = mapped_column(ForeignKey("verified_sessions.id"))
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    channel: Mapped[str] = mapped_column(String(40))
    message_id: Mapped[str] = mapped_column(String(100))
    sent_to: Mapped[str] = mapped_column(String(20))  # masked
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]


class AnonymousRefusal(Base):
    """Refused requests of nobody signed in (a forged or stale task code, a replayed
    challenge), counted per center, minute, source, action and reason instead of one audit
    entry each: anyone can send them, and the hash chain is not theirs to fill."""

    __tablename__ = "anonymous_refusals"

    center_id: Mapped[str] = mapped_column(ForeignKey("centers.id"), primary_key=True)
    minute: Mapped[datetime] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(String(120), primary_key=True)  # an address
    action: Mapped[str] = mapped_column(String(60), primary_key=True)
    reason: Mapped[str] = mapped_column(String(60), primary_key=True)
    count: Mapped[int] = mapped_column(Integer)
    first_at: Mapped[datetime]
    last_at: Mapped[datetime]
    # The latest refusal's details (its device, the project it named): an example to follow.
    last_details: Mapped[dict[str, Any]] = mapped_column(JSON)


class FaceLockout(Base):
    """Too many failed face checks: further attempts wait until an operator unlocks."""

    __tablename__ = "face_lockouts"
    # At most one open lock per expert, even when two failures land at once.
    __table_args__ = (
        Index(
            "uq_face_lockouts_open",
            "expert_id",
            unique=True,
            sqlite_where=text("unlocked_at IS NULL"),
            postgresql_where=text("unlocked_at IS NULL"),
        ),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    center_id: Mapped[str] = mapped_column(ForeignKey("centers.id"))
    expert_id: Mapped[str] = mapped_column(ForeignKey("experts.id"), index=True)
    failures: Mapped[int] = mapped_column(Integer)
    locked_at: Mapped[datetime]
    unlocked_at: Mapped[datetime | None]
    unlocked_by: Mapped[str | None] = mapped_column(String(100))
    unlock_reason: Mapped[str | None] = mapped_column(String(500))


class VaultKey(Base):
    """A private key in the vault. The local backend stores it wrapped (AES-256-GCM under
    the vault's key-encryption key); the PKCS#11 backend stores only the token's key id;
    the csc backend, a key a licensed CA's remote signing service holds, stores the
    provider's credentialID (`token_key_id`) and which provider (`provider_id`)."""

    __tablename__ = "vault_keys"
    __table_args__ = (
        CheckConstraint("backend IN ('local', 'pkcs11', 'csc')", name="backend"),
        CheckConstraint("algorithm IN ('ec-p256', 'rsa-3072')", name="algorithm"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    center_id: Mapped[str] = mapped_column(ForeignKey("centers.id"), index=True)
    purpose: Mapped[str] = mapped_column(String(40))
    backend: Mapped[str] = mapped_column(String(20))
    algorithm: Mapped[str] = mapped_column(String(20))
    public_key_der: Mapped[bytes] = mapped_column(LargeBinary)
    wrapped_key: Mapped[bytes | None] = mapped_column(LargeBinary)
    token_key_id: Mapped[str | None] = mapped_column(String(128))
    provider_id: Mapped[str | None] = mapped_column(ForeignKey("signing_providers.id"))
    created_at: Mapped[datetime]


class SigningProvider(Base):
    """A licensed CA's remote signing service (CSC API v2) a center signs through: where
    it is, the OAuth2 client EvalSign is to it (the secret encrypted with the field
    cipher), and the root its certificates must chain to."""

    __tablename__ = "signing_providers"
    __table_args__ = (UniqueConstraint("center_id", "name"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    center_id: Mapped[str] = mapped_column(ForeignKey("centers.id"), index=True)
    name: Mapped[str] = mapped_column(String(60))
    base_url: Mapped[str] = mapped_column(String(500))
    token_url: Mapped[str] = mapped_column(String(500))
    client_id: Mapped[str] = mapped_column(String(200))
    client_secret_ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    root_der: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Authority(Base):
    """A certification authority of a center: its own root and issuing CA, or an external
    issuing CA imported by an admin (key held in PKCS#11)."""

    __tablename__ = "authorities"
    __table_args__ = (
        CheckConstraint("kind IN ('root', 'issuing')", name="kind"),
        CheckConstraint("status IN ('active', 'retired')", name="status"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    center_id: Mapped[str] = mapped_column(ForeignKey("centers.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(200))
    external: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(20), default="active")
    certificate_der: Mapped[bytes] = mapped_column(LargeBinary)
    # The issuer's certificate (chain material), for an external CA whose root is not ours.
    chain_der: Mapped[list[str]] = mapped_column(JSON, default=list)
    key_id: Mapped[str] = mapped_column(ForeignKey("vault_keys.id"))
    crl_number: Mapped[int] = mapped_column(Integer, default=0)
    crl_der: Mapped[bytes | None] = mapped_column(LargeBinary)
    crl_next_update: Mapped[datetime | None]
    created_at: Mapped[datetime]


class IssuedCertificate(Base):
    """A certificate an authority of ours issued: an expert's signing credential or a
    service certificate (time-stamping, audit checkpoints). CRL and OCSP read this table.
    An expert's credential at a remote signing provider has no authority of ours: its
    certificate and chain (`chain_der`, hex DER up to the root) come from the provider."""

    __tablename__ = "issued_certificates"
    __table_args__ = (
        UniqueConstraint("authority_id", "serial"),
        CheckConstraint("purpose IN ('expert', 'tsa', 'audit-checkpoint', 'seal')", name="purpose"),
        CheckConstraint("status IN ('valid', 'suspended', 'revoked')", name="status"),
        Index("ix_issued_certificates_expert", "expert_id", "status"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    center_id: Mapped[str] = mapped_column(ForeignKey("centers.id"), index=True)
    authority_id: Mapped[str | None] = mapped_column(ForeignKey("authorities.id"))
    chain_der: Mapped[list[str] | None] = mapped_column(JSON)
    purpose: Mapped[str] = mapped_column(String(20))
    expert_id: Mapped[str | None] = mapped_column(ForeignKey("experts.id"))
    # A unit's organization seal (purpose "seal"): its authorized representatives use it.
    unit_id: Mapped[str | None] = mapped_column(ForeignKey("units.id"), index=True)
    key_id: Mapped[str] = mapped_column(ForeignKey("vault_keys.id"))
    serial: Mapped[str] = mapped_column(String(40))  # hex
    subject: Mapped[str] = mapped_column(String(500))  # RFC 4514
    certificate_der: Mapped[bytes] = mapped_column(LargeBinary)
    not_before: Mapped[datetime]
    not_after: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(20), default="valid")
    revoked_at: Mapped[datetime | None]
    revocation_reason: Mapped[str | None] = mapped_column(String(40))
    revocation_note: Mapped[str | None] = mapped_column(Text)
    suspended_at: Mapped[datetime | None]
    created_at: Mapped[datetime]


class TrustAnchor(Base):
    """A root certificate whose signatures the center accepts: its own root, and external
    roots an admin added ("CA mutual recognition")."""

    __tablename__ = "trust_anchors"
    __table_args__ = (UniqueConstraint("center_id", "fingerprint"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    center_id: Mapped[str] = mapped_column(ForeignKey("centers.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    fingerprint: Mapped[str] = mapped_column(String(64))  # SHA-256 of the DER
    certificate_der: Mapped[bytes] = mapped_column(LargeBinary)
    external: Mapped[bool] = mapped_column(Boolean, default=False)
    added_at: Mapped[datetime]
    removed_at: Mapped[datetime | None]


class SignatureActivation(Base):
    """Signature activation data (SAD): single use, short-lived, bound to one credential,
    one face-verified session and exactly the hashes it authorizes."""

    __tablename__ = "signature_activations"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    center_id: Mapped[str] = mapped_column(ForeignKey("centers.id"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    credential_id: Mapped[str] = mapped_column(ForeignKey("issued_certificates.id"), index=True)
    expert_id: Mapped[str] = mapped_column(ForeignKey("experts.id"))
    session_id: Mapped[str] = mapped_column(ForeignKey("verified_sessions.id"))
    verification_id: Mapped[str] = mapped_column(ForeignKey("face_verifications.id"))
    hash_algorithm_oid: Mapped[str] = mapped_column(String(64))
    hashes: Mapped[list[str]] = mapped_column(JSON)  # base64, in the order authorized
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    # The passkey assertion that approved exactly these hashes (sole control).
    passkey_use_id: Mapped[str | None] = mapped_column(ForeignKey("passkey_uses.id"))
    # Or, where the center allows it, the SMS code that did (a lower assurance).
    one_time_code_id: Mapped[str | None] = mapped_column(ForeignKey("one_time_codes.id"))


class Document(Base):
    """A PDF to be signed (an evaluation report, a contract): its signer slots and every
    revision. The bytes live in the document store (evaluation/documents/store.py): each
    revision's increment an immutable object, named by the revision's size and SHA-256
    recorded here and in `document_revisions`."""

    __tablename__ = "documents"
    __table_args__ = (
        CheckConstraint("purpose IN ('report', 'contract', 'other')", name="purpose"),
        CheckConstraint("status IN ('draft', 'signing', 'completed', 'cancelled')", name="status"),
        Index("ix_documents_center_created", "center_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    center_id: Mapped[str] = mapped_column(ForeignKey("centers.id"))
    title: Mapped[str] = mapped_column(String(300))
    purpose: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20), default="draft")
    file_name: Mapped[str] = mapped_column(String(300))
    page_count: Mapped[int] = mapped_column(Integer)
    revision: Mapped[int] = mapped_column(Integer, default=0)
    size: Mapped[int] = mapped_column(BigInteger)  # documents reach gigabytes
    sha256: Mapped[str] = mapped_column(String(64))
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    completed_at: Mapped[datetime | None]
    cancelled_reason: Mapped[str | None] = mapped_column(Text)


class DocumentRevision(Base):
    """One revision: the first `size` bytes of the document's file, addressed by SHA-256.
    An incremental update only appends, so history costs no copies."""

    __tablename__ = "document_revisions"
    __table_args__ = (UniqueConstraint("document_id", "number"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    document_id: Mapped[str] = mapped_column(ForeignKey("documents.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(20))  # upload | signature | timestamp
    size: Mapped[int] = mapped_column(BigInteger)  # documents reach gigabytes
    sha256: Mapped[str] = mapped_column(String(64))
    slot_id: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[datetime]


class SignerSlot(Base):
    """Who signs a document where: an expert or a party signer, with a role, an order group
    (equal groups sign in parallel, lower groups first) and the box of the visible stamp."""

    __tablename__ = "signer_slots"
    __table_args__ = (
        UniqueConstraint("document_id", "field_name"),
        CheckConstraint("signer_kind IN ('expert', 'party')", name="signer_kind"),
        CheckConstraint("status IN ('pending', 'signed', 'refused')", name="status"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    document_id: Mapped[str] = mapped_column(ForeignKey("documents.id"), index=True)
    field_name: Mapped[str] = mapped_column(String(100))
    signer_kind: Mapped[str] = mapped_column(String(20))
    expert_id: Mapped[str | None] = mapped_column(ForeignKey("experts.id"), index=True)
    party_name: Mapped[str | None] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(100))
    order_group: Mapped[int] = mapped_column(Integer)
    page: Mapped[int] = mapped_column(Integer)
    box: Mapped[list[float]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(20), default="pending")
    signed_at: Mapped[datetime | None]
    credential_id: Mapped[str | None] = mapped_column(ForeignKey("issued_certificates.id"))
    # A contract party's slot: the unit, and whether it takes the unit's seal or the
    # representative's own signature.
    unit_id: Mapped[str | None] = mapped_column(ForeignKey("units.id"))
    mark: Mapped[str] = mapped_column(String(20), default="signature", server_default="signature")
    signed_by: Mapped[str | None] = mapped_column(ForeignKey("experts.id"))
    sad_id: Mapped[str | None] = mapped_column(String(36))
    verification_id: Mapped[str | None] = mapped_column(String(36))
    revision: Mapped[int | None] = mapped_column(Integer)


class PreparedSignature(Base):
    """A signature prepared on one revision and waiting for the signer's approval: the
    incremental update up to its signature value and the CMS signed attributes, whose
    SHA-256 the signer's passkey approves. Kept here so any replica can finish it; refused
    at finish if the document has moved on. Found by the SHA-256 of its approval nonce."""

    __tablename__ = "prepared_signatures"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    center_id: Mapped[str] = mapped_column(ForeignKey("centers.id"))
    document_id: Mapped[str] = mapped_column(ForeignKey("documents.id"), index=True)
    slot_id: Mapped[str] = mapped_column(ForeignKey("signer_slots.id"))
    signer_id: Mapped[str] = mapped_column(ForeignKey("experts.id"))
    credential_id: Mapped[str] = mapped_column(ForeignKey("issued_certificates.id"))
    verified_session_id: Mapped[str] = mapped_column(ForeignKey("verified_sessions.id"))
    nonce_hash: Mapped[str] = mapped_column(String(64), unique=True)
    base_revision: Mapped[int] = mapped_column(Integer)
    base_size: Mapped[int] = mapped_column(BigInteger)
    base_sha256: Mapped[str] = mapped_column(String(64))
    field_name: Mapped[str] = mapped_column(String(100))
    # Dropped once finished or expired: by then the revision is in the document or useless.
    revision: Mapped[bytes | None] = mapped_column(LargeBinary)
    reserved_start: Mapped[int] = mapped_column(BigInteger)
    reserved_end: Mapped[int] = mapped_column(BigInteger)
    document_digest: Mapped[str] = mapped_column(String(64))
    signed_attributes: Mapped[bytes] = mapped_column(LargeBinary)
    approval_digest: Mapped[str] = mapped_column(String(64))
    signing_time: Mapped[datetime]
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]


class Project(Base):
    """A bid-evaluation project: tenderer, bidders, evaluation window, committee spec,
    scoring criteria and aggregation rule, under one legal regime."""

    __tablename__ = "projects"
    __table_args__ = (
        UniqueConstraint("center_id", "code"),
        CheckConstraint("regime IN ('tendering', 'procurement')", name="regime"),
        CheckConstraint("mode IN ('remote', 'onsite')", name="mode"),
        CheckConstraint(
            "status IN ('draft', 'drawn', 'evaluating', 'completed', 'cancelled')", name="status"
        ),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    center_id: Mapped[str] = mapped_column(ForeignKey("centers.id"), index=True)
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(300))
    regime: Mapped[str] = mapped_column(String(20))
    budget_yuan: Mapped[int | None] = mapped_column(BigInteger)
    tenderer_name: Mapped[str] = mapped_column(String(200))
    tenderer_credit_code: Mapped[str] = mapped_column(String(18), index=True)
    tenderer_unit_id: Mapped[str | None] = mapped_column(ForeignKey("units.id"))
    bidders: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    sections: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    evaluation_start: Mapped[datetime]
    evaluation_end: Mapped[datetime]
    mode: Mapped[str] = mapped_column(String(20))
    committee_spec: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    tenderer_representatives: Mapped[int] = mapped_column(Integer, default=0)
    criteria: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    aggregation: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20), default="draft")
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    # The chair, appointed by the operator or elected by the members (how: chair_chosen_by).
    chair_assignment_id: Mapped[str | None] = mapped_column(String(36))
    chair_chosen_by: Mapped[str | None] = mapped_column(String(20))
    # The aggregate and ranking the chair triggered, frozen once computed.
    results: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    aggregated_at: Mapped[datetime | None]
    report_document_id: Mapped[str | None] = mapped_column(String(36))
    completed_at: Mapped[datetime | None]


class Draw(Base):
    """A committee draw: the commitment is published first; the secret (stored encrypted)
    is revealed in the proof once the operator's public entropy has run the draw. A
    supplementary draw names the draw it follows (one each: the chain has no forks) and the
    seats it was committed to fill."""

    __tablename__ = "draws"
    __table_args__ = (CheckConstraint("status IN ('committed', 'completed')", name="status"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    center_id: Mapped[str] = mapped_column(ForeignKey("centers.id"))
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    commitment: Mapped[str] = mapped_column(String(64))
    secret_ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    status: Mapped[str] = mapped_column(String(20), default="committed")
    public_entropy: Mapped[str | None] = mapped_column(String(500))
    proof: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime]
    ran_at: Mapped[datetime | None]
    previous_draw_id: Mapped[str | None] = mapped_column(ForeignKey("draws.id"), unique=True)
    spec: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)  # supplementary only


class Assignment(Base):
    """An expert's place from a draw: a committee seat or an ordered backup, and what
    became of it (invited, accepted, declined, replaced)."""

    __tablename__ = "assignments"
    __table_args__ = (
        UniqueConstraint("draw_id", "expert_id"),
        CheckConstraint("role IN ('member', 'backup')", name="role"),
        CheckConstraint(
            "status IN ('invited', 'accepted', 'declined', 'replaced', 'standby')", name="status"
        ),
        Index("ix_assignments_expert_status", "expert_id", "status"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    center_id: Mapped[str] = mapped_column(ForeignKey("centers.id"))
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    draw_id: Mapped[str] = mapped_column(ForeignKey("draws.id"))
    expert_id: Mapped[str] = mapped_column(ForeignKey("experts.id"))
    specialty: Mapped[str] = mapped_column(String(16))
    role: Mapped[str] = mapped_column(String(20))
    rank: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    responded_at: Mapped[datetime | None]
    chair_vote: Mapped[str | None] = mapped_column(String(36))  # the assignment voted for
    # Refused to sign the report: with no written dissent that counts as agreement.
    refused_to_sign_at: Mapped[datetime | None]
    # Read the aggregated results and agreed, or recorded a dissent: the report waits for it.
    results_reviewed_at: Mapped[datetime | None]


class CallUp(Base):
    """An invited member's call-up: the message that tells them they were drawn (queued,
    retried, sent or failed) and its answer link, stored hashed. The answer deadline runs
    from the moment the provider took the message."""

    __tablename__ = "call_ups"
    __table_args__ = (Index("ix_call_ups_due", "status", "next_attempt_at"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    center_id: Mapped[str] = mapped_column(ForeignKey("centers.id"))
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    assignment_id: Mapped[str] = mapped_column(ForeignKey("assignments.id"), index=True)
    expert_id: Mapped[str] = mapped_column(ForeignKey("experts.id"))
    status: Mapped[str] = mapped_column(String(20))  # queued, sent, failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    channel: Mapped[str | None] = mapped_column(String(40))
    provider_message_id: Mapped[str | None] = mapped_column(String(200))
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    deadline_at: Mapped[datetime | None]
    # accepted, declined, expired, signed_in (or the seat's status when it moved on)
    answer: Mapped[str | None] = mapped_column(String(20))
    answered_at: Mapped[datetime | None]


class PlatformKey(Base):
    """A trading platform's key for the intake API: requests are HMAC-signed with its
    secret (evalsign-hmac-v1), which is stored encrypted since checking a MAC needs it.
    A platform may hold two live keys while it rotates."""

    __tablename__ = "platform_keys"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # the key id it sends
    center_id: Mapped[str] = mapped_column(ForeignKey("centers.id"), index=True)
    platform: Mapped[str] = mapped_column(String(64))  # the platform's name, stable across keys
    secret_ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime]
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class TaskToken(Base):
    """A personal task QR for one assignment: single use, stored hashed."""

    __tablename__ = "task_tokens"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    center_id: Mapped[str] = mapped_column(ForeignKey("centers.id"))
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    assignment_id: Mapped[str] = mapped_column(ForeignKey("assignments.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class ScanSession(Base):
    """What a phone gets for scanning a task QR: it knows the project (and, for a personal
    QR, the assignment) and may ask for a face check of the committee or the assignee."""

    __tablename__ = "scan_sessions"
    __table_args__ = (CheckConstraint("kind IN ('room', 'personal', 'contract')", name="kind"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    center_id: Mapped[str] = mapped_column(ForeignKey("centers.id"))
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    assignment_id: Mapped[str | None] = mapped_column(ForeignKey("assignments.id"))
    task_token_id: Mapped[str | None] = mapped_column(ForeignKey("task_tokens.id"))
    # A representative's contract link (kind "contract"): the face check is theirs alone.
    contract_link_id: Mapped[str | None] = mapped_column(ForeignKey("contract_links.id"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    device_id: Mapped[str] = mapped_column(String(100))
    client_ip: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    signed_in_at: Mapped[datetime | None]
    # The face recognition consent this phone agreed to (evaluation/identity/consent.py).
    consent_version: Mapped[str | None] = mapped_column(String(40))
    consented_at: Mapped[datetime | None]


class EvaluationSession(Base):
    """An expert signed in to one project on one device, after a face check of a scan.
    A second device is allowed only after its own face check, and flagged."""

    __tablename__ = "evaluation_sessions"
    __table_args__ = (Index("ix_evaluation_sessions_expert_project", "expert_id", "project_id"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    center_id: Mapped[str] = mapped_column(ForeignKey("centers.id"))
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"))
    assignment_id: Mapped[str] = mapped_column(ForeignKey("assignments.id"))
    expert_id: Mapped[str] = mapped_column(ForeignKey("experts.id"))
    scan_session_id: Mapped[str] = mapped_column(ForeignKey("scan_sessions.id"), unique=True)
    verification_id: Mapped[str] = mapped_column(ForeignKey("face_verifications.id"))
    # The bound phone's passkey assertion that joined the face check (none for a PIN).
    passkey_use_id: Mapped[str | None] = mapped_column(ForeignKey("passkey_uses.id"))
    # Or the SMS code that stood in for it, where the center allows one.
    one_time_code_id: Mapped[str | None] = mapped_column(ForeignKey("one_time_codes.id"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    device_id: Mapped[str] = mapped_column(String(100))
    flagged: Mapped[bool] = mapped_column(Boolean, default=False)
    flag_reason: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class RecusalDeclaration(Base):
    """An expert's declaration, before scoring, that they have (or have no) conflict of
    interest with the project's units: the statement, its hash, and the face check behind
    the session that made it."""

    __tablename__ = "recusal_declarations"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    center_id: Mapped[str] = mapped_column(ForeignKey("centers.id"))
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    assignment_id: Mapped[str] = mapped_column(ForeignKey("assignments.id"), unique=True)
    expert_id: Mapped[str] = mapped_column(ForeignKey("experts.id"))
    conflict: Mapped[bool] = mapped_column(Boolean)
    statement: Mapped[str] = mapped_column(Text)
    statement_sha256: Mapped[str] = mapped_column(String(64))
    related_units: Mapped[list[str]] = mapped_column(JSON)  # credit codes
    evaluation_session_id: Mapped[str] = mapped_column(ForeignKey("evaluation_sessions.id"))
    verification_id: Mapped[str] = mapped_column(ForeignKey("face_verifications.id"))
    device_id: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime]


class ScoreSheet(Base):
    """One member's scores: points[bidder credit code][criterion name]. A draft until
    submitted (then locked); void, and kept, when the member is replaced."""

    __tablename__ = "score_sheets"
    __table_args__ = (CheckConstraint("status IN ('draft', 'submitted', 'void')", name="status"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    center_id: Mapped[str] = mapped_column(ForeignKey("centers.id"))
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    assignment_id: Mapped[str] = mapped_column(ForeignKey("assignments.id"), unique=True)
    expert_id: Mapped[str] = mapped_column(ForeignKey("experts.id"))
    points: Mapped[dict[str, dict[str, float]]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(20), default="draft")
    version: Mapped[int] = mapped_column(Integer, default=1)
    void_reason: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime]
    submitted_at: Mapped[datetime | None]
    voided_at: Mapped[datetime | None]


class Dissent(Base):
    """A member's written disagreement with the result, with reasons; the report prints it."""

    __tablename__ = "dissents"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    center_id: Mapped[str] = mapped_column(ForeignKey("centers.id"))
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    assignment_id: Mapped[str] = mapped_column(ForeignKey("assignments.id"), unique=True)
    expert_id: Mapped[str] = mapped_column(ForeignKey("experts.id"))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]


class AnomalyFlag(Base):
    """A pattern supervisors should look at (a shared device, identical score sheets, ...):
    the rule, its evidence and an explanation. Acknowledged or resolved with a note, never
    deleted."""

    __tablename__ = "anomaly_flags"
    __table_args__ = (
        UniqueConstraint("center_id", "rule", "key"),
        CheckConstraint("severity IN ('low', 'medium', 'high')", name="severity"),
        CheckConstraint("status IN ('open', 'acknowledged', 'resolved')", name="status"),
        Index("ix_anomaly_flags_center_status", "center_id", "status", "created_at"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    center_id: Mapped[str] = mapped_column(ForeignKey("centers.id"))
    project_id: Mapped[str | None] = mapped_column(ForeignKey("projects.id"), index=True)
    rule: Mapped[str] = mapped_column(String(40))
    key: Mapped[str] = mapped_column(String(300))  # what makes two findings the same
    severity: Mapped[str] = mapped_column(String(10))
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON)
    explanation_zh: Mapped[str] = mapped_column(Text)
    explanation_en: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20), default="open")
    note: Mapped[str | None] = mapped_column(Text)
    handled_by: Mapped[str | None] = mapped_column(String(100))
    handled_at: Mapped[datetime | None]
    created_at: Mapped[datetime]


class IdempotentRequest(Base):
    """A state-changing request sent with an Idempotency-Key: a phone on a flaky network
    retries it, and the retry gets the stored answer instead of acting twice."""

    __tablename__ = "idempotent_requests"
    __table_args__ = (UniqueConstraint("scope", "key", name="uq_idempotent_scope_key"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    # Who may replay it: the credential (hashed) or the device that sent it.
    scope: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(100))
    fingerprint: Mapped[str] = mapped_column(String(64))  # method, path and body hash
    status_code: Mapped[int | None]
    # The stored answer (headers and body) encrypted with the field cipher: it may carry a
    # session token, which the database must never hold in the clear.
    response_ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(index=True)
    completed_at: Mapped[datetime | None]


class Unit(Base):
    """A legal entity in the center's register of market players (主体库): a tenderer or a
    bidder, known by its unified social credit code (GB 32100), and the seal it signs with."""

    __tablename__ = "units"
    __table_args__ = (UniqueConstraint("center_id", "credit_code"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    center_id: Mapped[str] = mapped_column(ForeignKey("centers.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    credit_code: Mapped[str] = mapped_column(String(18))
    legal_representative: Mapped[str | None] = mapped_column(String(100))
    # Contacts' names and roles; their phones, in the same order, encrypted below.
    contacts: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    contact_phones_ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary)
    # The seal's picture: uploaded (PNG with transparency) or generated (a round red seal).
    seal_png: Mapped[bytes | None] = mapped_column(LargeBinary)
    seal_source: Mapped[str | None] = mapped_column(String(20))
    seal_purpose: Mapped[str | None] = mapped_column(String(40))
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class UnitAuthorization(Base):
    """A unit's authorization of a person (its representative) to sign for it: the scope,
    the validity period and the authorization letter the unit issued (a document)."""

    __tablename__ = "unit_authorizations"
    __table_args__ = (
        CheckConstraint("scope IN ('contracts', 'all')", name="scope"),
        CheckConstraint("status IN ('active', 'revoked')", name="status"),
        Index("ix_unit_authorizations_person_unit", "person_id", "unit_id"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    center_id: Mapped[str] = mapped_column(ForeignKey("centers.id"))
    unit_id: Mapped[str] = mapped_column(ForeignKey("units.id"), index=True)
    person_id: Mapped[str] = mapped_column(ForeignKey("experts.id"))
    scope: Mapped[str] = mapped_column(String(20))
    valid_from: Mapped[datetime]
    valid_until: Mapped[datetime]
    letter_document_id: Mapped[str] = mapped_column(ForeignKey("documents.id"))
    status: Mapped[str] = mapped_column(String(20), default="active")
    revoked_at: Mapped[datetime | None]
    revoke_reason: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime]


class Contract(Base):
    """A transaction contract of an awarded project between its tenderer and the winning
    bidder: the document both sign, the amount, and how they sign (in order or in parallel,
    with or without a cross-page seal)."""

    __tablename__ = "contracts"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    center_id: Mapped[str] = mapped_column(ForeignKey("centers.id"))
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    document_id: Mapped[str] = mapped_column(ForeignKey("documents.id"), unique=True)
    tenderer_unit_id: Mapped[str] = mapped_column(ForeignKey("units.id"))
    winner_unit_id: Mapped[str] = mapped_column(ForeignKey("units.id"))
    amount_fen: Mapped[int] = mapped_column(BigInteger)  # 分: money is never a float
    ordered: Mapped[bool] = mapped_column(Boolean)
    cross_page_seal: Mapped[bool] = mapped_column(Boolean)
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime]


class ContractLink(Base):
    """A representative's personal link to review and sign a contract on a phone: the token
    is stored hashed and expires; the face check behind it is the representative's."""

    __tablename__ = "contract_links"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    center_id: Mapped[str] = mapped_column(ForeignKey("centers.id"))
    contract_id: Mapped[str] = mapped_column(ForeignKey("contracts.id"), index=True)
    authorization_id: Mapped[str] = mapped_column(ForeignKey("unit_authorizations.id"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    # The phone that opened it first: a copy of the link opened elsewhere is refused.
    device_id: Mapped[str | None] = mapped_column(String(100))
    opened_at: Mapped[datetime | None]


class SchemaUpgrade(Base):
    """One `evalsign migrate` run that changed the schema: the revision it reached and the
    one it started from. Code at `upgraded_from` may keep serving (one release behind)."""

    __tablename__ = "schema_upgrades"

    revision: Mapped[str] = mapped_column(String(32), primary_key=True)
    upgraded_from: Mapped[str | None] = mapped_column(String(32))
    applied_at: Mapped[datetime]


class JobLease(Base):
    """A periodic job's turn, shared by every process: whoever moves `expires_at` forward
    with one conditional UPDATE runs the job; the round is due again at `next_run_at`."""

    __tablename__ = "job_leases"

    name: Mapped[str] = mapped_column(String(60), primary_key=True)
    holder: Mapped[str | None] = mapped_column(String(200))
    expires_at: Mapped[datetime | None]
    next_run_at: Mapped[datetime]
    last_finished_at: Mapped[datetime | None]


class FaceCrossCheck(Base):
    """Whether a 1:1 check's face matches another enrolled person better than the one
    claimed: compared in the background against the whole center, so the check itself
    costs the same at any registry size. The probe (encrypted) is kept only until then."""

    __tablename__ = "face_cross_checks"
    __table_args__ = (Index("ix_face_cross_checks_pending", "swept_at", "created_at"),)

    verification_id: Mapped[str] = mapped_column(
        ForeignKey("face_verifications.id", ondelete="CASCADE"), primary_key=True
    )
    center_id: Mapped[str] = mapped_column(ForeignKey("centers.id"))
    model_id: Mapped[str] = mapped_column(String(100))
    probe_ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary)
    threshold: Mapped[float] = mapped_column(Float)
    claimed_similarity: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime]
    swept_at: Mapped[datetime | None]
    other_expert_id: Mapped[str | None] = mapped_column(String(36))
    other_similarity: Mapped[float | None] = mapped_column(Float)


class WebhookSubscription(Base):
    """A trading platform's endpoint for the center's milestone events: the URL, the event
    types it wants (none listed: all), and the HMAC secret, encrypted (it must be read back
    to sign each delivery); active until an admin disables it."""

    __tablename__ = "webhook_subscriptions"
    __table_args__ = (CheckConstraint("status IN ('active', 'disabled')", name="status"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    center_id: Mapped[str] = mapped_column(ForeignKey("centers.id"), index=True)
    url: Mapped[str] = mapped_column(String(2000))
    description: Mapped[str] = mapped_column(String(200))
    event_types: Mapped[list[str]] = mapped_column(JSON)
    secret_ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    status: Mapped[str] = mapped_column(String(20))
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime]
    secret_rotated_at: Mapped[datetime | None]
    disabled_at: Mapped[datetime | None]


class PlatformEvent(Base):
    """A milestone event (CloudEvents 1.0), written in the transaction of the milestone
    itself: the outbox. `id` is the CloudEvents id and the receivers' idempotency key;
    `seq` orders a project's events."""

    __tablename__ = "platform_events"
    __table_args__ = (UniqueConstraint("project_id", "seq"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    center_id: Mapped[str] = mapped_column(ForeignKey("centers.id"))
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    type: Mapped[str] = mapped_column(String(80))
    time: Mapped[datetime]
    data: Mapped[dict[str, Any]] = mapped_column(JSON)


class WebhookDelivery(Base):
    """One event to one subscription: pending until the receiver answers 2xx (delivered),
    or until the give-up time has passed (failed) or the subscription is disabled
    (cancelled). A project's deliveries to a subscription go in `seq` order."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("subscription_id", "event_id"),
        Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
        Index("ix_webhook_deliveries_line", "subscription_id", "project_id", "seq"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    center_id: Mapped[str] = mapped_column(ForeignKey("centers.id"))
    subscription_id: Mapped[str] = mapped_column(ForeignKey("webhook_subscriptions.id"))
    event_id: Mapped[str] = mapped_column(ForeignKey("platform_events.id"))
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20))  # pending, delivered, failed, cancelled
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]


class ArchivePush(Base):
    """A project's archive (report, contract, evidence package, draw proof) for the
    configured archive target: the evidence package is built once and kept here, so every
    retry pushes the same bytes; `files` says which file went where."""

    __tablename__ = "archive_pushes"
    __table_args__ = (Index("ix_archive_pushes_due", "status", "next_attempt_at"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    center_id: Mapped[str] = mapped_column(ForeignKey("centers.id"))
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    reason: Mapped[str] = mapped_column(String(40))  # report-signed, contract-signed
    contract_id: Mapped[str | None] = mapped_column(String(36))
    # building, pushing, pushed, built (no archive target configured), failed
    status: Mapped[str] = mapped_column(String(20))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    package: Mapped[bytes | None] = mapped_column(LargeBinary)
    package_sha256: Mapped[str | None] = mapped_column(String(64))
    files: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    created_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]


class OutgoingAttempt(Base):
    """The delivery log: every attempt at a webhook delivery or an archive file, with the
    answer (HTTP status) or the error, for the console and the operator."""

    __tablename__ = "outgoing_attempts"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    center_id: Mapped[str] = mapped_column(ForeignKey("centers.id"))
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20))  # webhook, archive
    delivery_id: Mapped[str | None] = mapped_column(String(36), index=True)
    archive_push_id: Mapped[str | None] = mapped_column(String(36), index=True)
    target: Mapped[str] = mapped_column(String(2000))
    at: Mapped[datetime]
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[int] = mapped_column(Integer)

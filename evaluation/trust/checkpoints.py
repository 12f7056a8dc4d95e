"""Signed checkpoints of the audit chain.

A hash chain shows an entry altered in the middle, but not entries cut from its end (with
the head moved back) nor a chain rewritten from scratch. A checkpoint is a statement
"center C's chain had N entries ending in hash H at time T", signed with the center's
audit-checkpoint certificate (a detached CMS signature, time-stamped by the center's TSA).
Outside parties keep copies (`GET /api/v1/audit/checkpoints`); `verify_against` checks the
chain in the database against each of them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from cryptography.hazmat.primitives import hashes
from sqlalchemy import select
from sqlalchemy.orm import Session

from evaluation.kernel.errors import NotFound
from evaluation.trust import pki
from models.clock import Clock
from models.tables import AuditCheckpoint, AuditEntry, AuditHead, Authority
from signing.certificates import AUDIT_CHECKPOINT_SIGNING, Profile
from signing.detached import DetachedSignatureInvalid, sign_detached, verify_detached
from signing.pades import InProcessTimeStamper, RevocationMaterial, SigningIdentity
from signing.vault import Vault

FORMAT = "evalsign-audit-checkpoint-v1"


@dataclass(frozen=True)
class CheckpointPolicy:
    """Write a checkpoint once this many entries, or this much time with any entry, have
    passed since the last one."""

    every_entries: int
    every: timedelta


def statement_of(center_id: str, seq: int, head_hash: str, at: datetime) -> str:
    """The canonical text that is signed (sorted keys, no spaces, UTC to the second)."""
    return json.dumps(
        {
            "format": FORMAT,
            "center_id": center_id,
            "seq": seq,
            "head_hash": head_hash,
            "time": at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
        sort_keys=True,
        separators=(",", ":"),
    )


def latest(db: Session, center_id: str) -> AuditCheckpoint | None:
    return db.execute(
        select(AuditCheckpoint)
        .where(AuditCheckpoint.center_id == center_id)
        .order_by(AuditCheckpoint.seq.desc())
        .limit(1)
    ).scalar_one_or_none()


def signing_identity(db: Session, vault: Vault, center_id: str) -> tuple[SigningIdentity, str]:
    row = pki.service_certificate(db, center_id, Profile.AUDIT_CHECKPOINT)
    issuing = db.get(Authority, row.authority_id)
    assert issuing is not None
    key = pki.key_of(db, row.key_id)

    def sign_digest(digest: bytes, hash_name: str) -> bytes:
        algorithms = {"sha256": hashes.SHA256(), "sha384": hashes.SHA384()}
        return vault.sign_digest(key, digest, algorithms[hash_name])

    identity = SigningIdentity(
        certificate=pki.load_certificate(row.certificate_der),
        chain=pki.chain_of(db, issuing),
        sign_digest=sign_digest,
    )
    return identity, row.id


def write_checkpoint(
    db: Session,
    clock: Clock,
    vault: Vault,
    policy: pki.PkiPolicy,
    center_id: str,
    reason: str,
) -> AuditCheckpoint:
    """Sign the chain's current head. Nothing new since the last checkpoint: that one."""
    head = db.execute(
        select(AuditHead).where(AuditHead.center_id == center_id).with_for_update()
    ).scalar_one_or_none()
    if head is None:
        raise NotFound(f"no audit chain for center {center_id}")
    previous = latest(db, center_id)
    if previous is not None and previous.seq == head.last_seq:
        return previous
    now = clock.now().replace(microsecond=0)
    statement = statement_of(center_id, head.last_seq, head.last_hash, now)
    identity, certificate_id = signing_identity(db, vault, center_id)
    timestamper = InProcessTimeStamper(
        pki.time_stamp_authority(db, vault, policy, center_id), clock.now
    )
    checkpoint = AuditCheckpoint(
        center_id=center_id,
        seq=head.last_seq,
        head_hash=head.last_hash,
        statement=statement,
        signature_der=sign_detached(statement.encode(), identity, timestamper),
        certificate_id=certificate_id,
        reason=reason,
        created_at=now,
    )
    db.add(checkpoint)
    db.flush()
    return checkpoint


def due(db: Session, center_id: str, policy: CheckpointPolicy, now: datetime) -> bool:
    """Whether the scheduled writer should sign this center's head now."""
    head = db.get(AuditHead, center_id)
    if head is None or head.last_seq == 0:
        return False
    previous = latest(db, center_id)
    if previous is None:
        return True
    behind = head.last_seq - previous.seq
    return behind >= policy.every_entries or (
        behind > 0 and now - previous.created_at >= policy.every
    )


def list_checkpoints(
    db: Session, center_id: str, after_seq: int = 0, limit: int = 100
) -> list[AuditCheckpoint]:
    return list(
        db.execute(
            select(AuditCheckpoint)
            .where(AuditCheckpoint.center_id == center_id, AuditCheckpoint.seq > after_seq)
            .order_by(AuditCheckpoint.seq)
            .limit(limit)
        ).scalars()
    )


@dataclass(frozen=True)
class CheckpointProblem:
    seq: int
    problem: str  # signature-invalid | statement-mismatch | entries-missing | entry-changed
    detail: str

    def as_json(self) -> dict[str, object]:
        return {"seq": self.seq, "problem": self.problem, "detail": self.detail}


@dataclass
class CheckpointReport:
    center_id: str
    checked: int = 0
    problems: list[CheckpointProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_against(
    db: Session, center_id: str, checkpoints: list[AuditCheckpoint] | None = None
) -> CheckpointReport:
    """Check the chain in the database against every checkpoint (the stored ones, or
    copies kept elsewhere): each must be validly signed, and the chain must still hold
    its entry with exactly that hash at its sequence."""
    report = CheckpointReport(center_id)
    roots = pki.trust_roots(db, center_id)
    # Integrity, not revocation, is the question here (and a read must not reissue CRLs):
    # the signer is checked against the trust roots without revocation data.
    revocation = RevocationMaterial(crls=[])
    rows = checkpoints if checkpoints is not None else list_checkpoints(db, center_id, limit=10**9)
    for checkpoint in rows:
        report.checked += 1
        try:
            verify_detached(
                checkpoint.statement.encode(),
                checkpoint.signature_der,
                roots,
                revocation,
                AUDIT_CHECKPOINT_SIGNING.dotted_string,
            )
        except DetachedSignatureInvalid as exc:
            report.problems.append(CheckpointProblem(checkpoint.seq, "signature-invalid", str(exc)))
            continue
        stated = json.loads(checkpoint.statement)
        if (stated.get("center_id"), stated.get("seq"), stated.get("head_hash")) != (
            center_id,
            checkpoint.seq,
            checkpoint.head_hash,
        ):
            report.problems.append(
                CheckpointProblem(
                    checkpoint.seq, "statement-mismatch", "the signed statement says otherwise"
                )
            )
            continue
        entry = db.execute(
            select(AuditEntry.hash).where(
                AuditEntry.center_id == center_id, AuditEntry.seq == checkpoint.seq
            )
        ).scalar_one_or_none()
        if entry is None:
            report.problems.append(
                CheckpointProblem(
                    checkpoint.seq,
                    "entries-missing",
                    f"the chain no longer reaches entry {checkpoint.seq}: entries were cut "
                    "from its end",
                )
            )
        elif entry != checkpoint.head_hash:
            report.problems.append(
                CheckpointProblem(
                    checkpoint.seq,
                    "entry-changed",
                    f"entry {checkpoint.seq} no longer has the signed hash: the chain was "
                    "changed or rewritten",
                )
            )
    return report

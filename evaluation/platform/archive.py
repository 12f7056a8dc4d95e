"""The project's archive for the center's records system: when the report is signed (and
again when each contract is), the evidence package is built once and kept, announced to
the platform (cn.evalsign.evidence.ready), and, when EVALSIGN_ARCHIVE_TARGET is set,
pushed with the report, the contract and the draw proof, file by file, retried like
webhooks, every attempt logged. A `manifest.json` with every file's SHA-256 goes last:
its arrival says the archive is complete.

Objects are named `<prefix or URL>/<project id>/<archive id>/<file>`.
"""

from __future__ import annotations

import hashlib
import random
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import boto3
from botocore.exceptions import BotoCoreError, ClientError
from sqlalchemy import select
from sqlalchemy.orm import Session

from evaluation.committee.draws import DrawStatus
from evaluation.documents import documents
from evaluation.documents.s3_store import parse_location
from evaluation.documents.store import DocumentStore
from evaluation.kernel import audit, outbox
from evaluation.kernel.actions import Action
from evaluation.platform.deliveries import Outcome, RetryPolicy
from evaluation.supervision import evidence
from evaluation.trust import pki
from models.clock import Clock
from models.tables import ArchivePush, Contract, Document, Draw, OutgoingAttempt, Project
from signing.vault import Vault

MANIFEST = "manifest.json"


class ArchiveTarget(Protocol):
    """Where archives go; `put` answers how the attempt went, never raises for the
    target's own trouble."""

    def describe(self, key: str) -> str: ...

    def put(self, key: str, data: bytes, content_type: str) -> Outcome: ...


class S3ArchiveTarget:
    """An object storage prefix, `s3://BUCKET/PREFIX`; credentials and endpoint from the
    standard AWS_* variables, as for the document store."""

    def __init__(self, location: str, client: Any = None) -> None:
        self.bucket, self.prefix = parse_location(location)
        self.client = client if client is not None else boto3.client("s3")

    def describe(self, key: str) -> str:
        return f"s3://{self.bucket}/{self.prefix}{key}"

    def put(self, key: str, data: bytes, content_type: str) -> Outcome:
        started = _clock_ms()
        try:
            self.client.put_object(
                Bucket=self.bucket,
                Key=f"{self.prefix}{key}",
                Body=data,
                ContentType=content_type,
                ChecksumAlgorithm="SHA256",
            )
        except (BotoCoreError, ClientError) as error:
            return Outcome(None, f"{type(error).__name__}: {error}", _clock_ms() - started)
        return Outcome(200, None, _clock_ms() - started)


def _clock_ms() -> int:
    return int(time.monotonic() * 1000)


@dataclass(frozen=True)
class ArchiveFile:
    name: str
    sha256: str
    size: int
    content_type: str
    source: str  # document:<id>:<revision>, package, draw-proof, manifest


def due(db: Session, now: datetime, limit: int = 20) -> list[str]:
    return list(
        db.scalars(
            select(ArchivePush.id)
            .where(
                ArchivePush.status.in_(("building", "pushing")),
                ArchivePush.next_attempt_at <= now,
            )
            .order_by(ArchivePush.next_attempt_at, ArchivePush.created_at)
            .limit(limit)
        )
    )


def _document_file(db: Session, name: str, document_id: str) -> dict[str, Any]:
    document = db.get(Document, document_id)
    assert document is not None
    return {
        "name": name,
        "sha256": document.sha256,
        "size": document.size,
        "content_type": "application/pdf",
        "source": f"document:{document.id}:{document.revision}",
        "pushed_at": None,
    }


def build(
    db: Session,
    clock: Clock,
    vault: Vault,
    policy: pki.PkiPolicy,
    store: DocumentStore,
    push_id: str,
    *,
    has_target: bool,
) -> ArchivePush | None:
    """Build the evidence package and the file list of a queued archive, announce it, and
    make it ready to push (or done, with no target). None: nothing to build."""
    push = db.get(ArchivePush, push_id, with_for_update=True)
    if push is None or push.status != "building":
        return None
    project = db.get(Project, push.project_id)
    assert project is not None
    name, package = evidence.build_package(
        db, clock, vault, policy, store, push.center_id, push.project_id, "admin"
    )
    push.package = package
    push.package_sha256 = hashlib.sha256(package).hexdigest()
    files: list[dict[str, Any]] = []
    if project.report_document_id is not None:
        files.append(_document_file(db, "report.pdf", project.report_document_id))
    if push.contract_id is not None:
        contract = db.get(Contract, push.contract_id)
        assert contract is not None
        files.append(_document_file(db, f"contract-{contract.id}.pdf", contract.document_id))
    files.append(
        {
            "name": "evidence.zip",
            "sha256": push.package_sha256,
            "size": len(package),
            "content_type": "application/zip",
            "source": "package",
            "pushed_at": None,
        }
    )
    proof = _draw_proof(db, project)
    files.append(
        {
            "name": "draw-proof.json",
            "sha256": hashlib.sha256(proof).hexdigest(),
            "size": len(proof),
            "content_type": "application/json",
            "source": "draw-proof",
            "pushed_at": None,
        }
    )
    manifest = _manifest(push, project, files)
    files.append(
        {
            "name": MANIFEST,
            "sha256": hashlib.sha256(manifest).hexdigest(),
            "size": len(manifest),
            "content_type": "application/json",
            "source": "manifest",
            "pushed_at": None,
        }
    )
    push.files = files
    now = clock.now()
    if has_target:
        push.status = "pushing"
        push.next_attempt_at = now
    else:
        push.status = "built"
        push.next_attempt_at = None
        push.finished_at = now
    db.flush()
    outbox.evidence_ready(db, now, project, push)
    if not has_target:
        push.package = None  # announced; nobody will push it, the API builds it anew
    audit.record(
        db,
        _system(push),
        clock,
        Action.ARCHIVE_BUILT,
        "archive_push",
        push.id,
        {
            "project_id": push.project_id,
            "reason": push.reason,
            "package": name,
            "sha256": push.package_sha256,
        },
    )
    return push


def _draw_proof(db: Session, project: Project) -> bytes:
    draw = db.scalar(
        select(Draw).where(Draw.project_id == project.id, Draw.status == DrawStatus.COMPLETED)
    )
    assert draw is not None and draw.proof is not None  # the package needs it too
    return outbox.canonical_json(draw.proof)


def _manifest(push: ArchivePush, project: Project, files: list[dict[str, Any]]) -> bytes:
    return outbox.canonical_json(
        {
            "archive_id": push.id,
            "source": outbox.source_of(push.center_id),
            "project_id": project.id,
            "project_code": project.code,
            "reason": push.reason,
            "contract_id": push.contract_id,
            "files": [
                {k: f[k] for k in ("name", "sha256", "size")}
                for f in files
                if f["name"] != MANIFEST
            ],
        }
    )


def key_of(push: ArchivePush, name: str) -> str:
    return f"{push.project_id}/{push.id}/{name}"


@dataclass(frozen=True)
class Pending:
    push_id: str
    name: str
    key: str
    content_type: str
    data: bytes


def next_file(db: Session, store: DocumentStore, push_id: str) -> Pending | None:
    """The archive's next file not pushed yet, with its bytes; None when none is left or
    the archive is no longer being pushed."""
    push = db.get(ArchivePush, push_id)
    if push is None or push.status != "pushing":
        return None
    waiting = [f for f in push.files if f["pushed_at"] is None]
    if not waiting:
        return None
    file = waiting[0]
    data = _bytes_of(db, store, push, file)
    return Pending(push.id, file["name"], key_of(push, file["name"]), file["content_type"], data)


def _bytes_of(db: Session, store: DocumentStore, push: ArchivePush, file: dict[str, Any]) -> bytes:
    source = str(file["source"])
    if source == "package":
        assert push.package is not None
        return push.package
    project = db.get(Project, push.project_id)
    assert project is not None
    if source == "draw-proof":
        return _draw_proof(db, project)
    if source == "manifest":
        return _manifest(push, project, push.files)
    _, document_id, revision = source.split(":")
    document = db.get(Document, document_id)
    assert document is not None
    stored = documents.stored_revision(db, document, int(revision))
    return b"".join(store.read(stored))


def settle(
    db: Session,
    clock: Clock,
    policy: RetryPolicy,
    rng: random.Random,
    pending: Pending,
    target: str,
    outcome: Outcome,
) -> ArchivePush:
    """Log the file's attempt; on success mark it (and the archive, after the last file);
    on failure try again later, or give up past the policy's time."""
    push = db.get(ArchivePush, pending.push_id, with_for_update=True)
    assert push is not None
    now = clock.now()
    db.add(
        OutgoingAttempt(
            center_id=push.center_id,
            project_id=push.project_id,
            kind="archive",
            archive_push_id=push.id,
            target=target[:2000],
            at=now,
            status_code=outcome.status_code,
            error=None if outcome.error is None else outcome.error[:1000],
            duration_ms=outcome.duration_ms,
        )
    )
    if push.status != "pushing":
        db.flush()
        return push
    if outcome.delivered:
        push.files = [
            {**f, "pushed_at": now.isoformat()} if f["name"] == pending.name else f
            for f in push.files
        ]
        push.last_error = None
        if all(f["pushed_at"] is not None for f in push.files):
            push.status = "pushed"
            push.next_attempt_at = None
            push.finished_at = now
            push.package = None  # in the archive now; the table keeps only its hash
            db.flush()
            audit.record(
                db,
                _system(push),
                clock,
                Action.ARCHIVE_PUSHED,
                "archive_push",
                push.id,
                {
                    "project_id": push.project_id,
                    "reason": push.reason,
                    "files": {f["name"]: f["sha256"] for f in push.files},
                },
            )
        db.flush()
        return push
    failed(db, clock, policy, rng, push, outcome.error or f"HTTP {outcome.status_code}")
    return push


def failed(
    db: Session,
    clock: Clock,
    policy: RetryPolicy,
    rng: random.Random,
    push: ArchivePush,
    error: str,
) -> None:
    """A build or a file did not make it: later, or given up (audited, for the operator)."""
    now = clock.now()
    push.attempts += 1
    push.last_error = error[:1000]
    if now < push.created_at + policy.give_up_after:
        push.next_attempt_at = now + policy.wait(push.attempts, rng)
        db.flush()
        return
    push.status = "failed"
    push.next_attempt_at = None
    push.finished_at = now
    db.flush()
    audit.record(
        db,
        _system(push),
        clock,
        Action.ARCHIVE_PUSH_FAILED,
        "archive_push",
        push.id,
        {
            "project_id": push.project_id,
            "reason": push.reason,
            "attempts": push.attempts,
            "error": push.last_error,
        },
    )


def pushes_of(db: Session, center_id: str, project_id: str) -> list[ArchivePush]:
    return list(
        db.scalars(
            select(ArchivePush)
            .where(ArchivePush.center_id == center_id, ArchivePush.project_id == project_id)
            .order_by(ArchivePush.created_at, ArchivePush.id)
        )
    )


def _system(push: ArchivePush) -> audit.Caller:
    return audit.Caller(push.center_id, "job:archive")

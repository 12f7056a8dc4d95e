"""The evidence package of a project: everything a court or an outside auditor needs to
check, years later and without EvalSign, what was drawn, who verified and signed, and that
the record was not edited.

A zip holding: the signed report, the chain of draw proofs, the segment of the audit chain
from the project's first entry to a signed checkpoint that covers its last (with the
project's own entries marked), the face verification records (signals and decisions, no images), the
certificates and CRLs, a manifest of SHA-256 hashes signed by the center (detached CMS,
time-stamped), and a README in Chinese and English on checking each part with open tools.
`verify_package` checks all of it; `evalsign evidence verify ZIP` runs it.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import io
import json
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from evaluation.committee import draw_proof as algorithm
from evaluation.committee import draws
from evaluation.committee.projects import get_project
from evaluation.documents import documents
from evaluation.documents.store import DocumentStore
from evaluation.identity import passkeys
from evaluation.kernel.audit import canonical_bytes
from evaluation.kernel.errors import DomainError
from evaluation.trust import checkpoints, pki
from models.clock import Clock
from models.tables import (
    Assignment,
    AuditCheckpoint,
    AuditEntry,
    Authority,
    Contract,
    Draw,
    EvaluationSession,
    FaceChallenge,
    FaceVerification,
    IssuedCertificate,
    Project,
    RecusalDeclaration,
    ScanSession,
    SignatureActivation,
    SignerSlot,
)
from signing.certificates import AUDIT_CHECKPOINT_SIGNING
from signing.detached import sign_detached, verify_detached
from signing.pades import InProcessTimeStamper, RevocationMaterial, approved_digests, validate
from signing.vault import Vault

MANIFEST = "manifest.json"
MANIFEST_SIGNATURE = "manifest.json.p7s"
FORMAT = "evalsign-evidence-v1"


class EvidenceNotReady(DomainError):
    status = 409
    code = "evidence-not-ready"
    title = "The project has no completed draw yet; there is nothing to prove"


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def _entry_json(entry: AuditEntry, own: bool) -> dict[str, Any]:
    return {
        "center_id": entry.center_id,
        "seq": entry.seq,
        "occurred_at": _iso(entry.occurred_at),
        "actor": entry.actor,
        "action": entry.action,
        "subject_type": entry.subject_type,
        "subject_id": entry.subject_id,
        "request_id": entry.request_id,
        "details": entry.details,
        "prev_hash": entry.prev_hash,
        "hash": entry.hash,
        "this_project": own,
    }


def _related_ids(db: Session, project: Project, verifications: set[str]) -> set[str]:
    """Every record id the project's audit entries may name as their subject."""
    ids = {project.id}
    if project.report_document_id:
        ids.add(project.report_document_id)
    for model in (Draw, Assignment, ScanSession, EvaluationSession, RecusalDeclaration, Contract):
        ids.update(db.execute(select(model.id).where(model.project_id == project.id)).scalars())
    ids.update(
        db.execute(select(Contract.document_id).where(Contract.project_id == project.id)).scalars()
    )
    ids.update(verifications)
    return ids


def verification_ids_of(db: Session, project: Project) -> set[str]:
    scans = select(ScanSession.id).where(ScanSession.project_id == project.id)
    found = set(
        db.execute(
            select(FaceVerification.id)
            .join(FaceChallenge, FaceChallenge.id == FaceVerification.challenge_id)
            .where(FaceChallenge.scan_session_id.in_(scans))
        ).scalars()
    )
    found.update(
        db.execute(
            select(FaceVerification.id).where(FaceVerification.scan_session_id.in_(scans))
        ).scalars()
    )
    found.update(
        db.execute(
            select(EvaluationSession.verification_id).where(
                EvaluationSession.project_id == project.id
            )
        ).scalars()
    )
    if project.report_document_id:
        found.update(
            v
            for v in db.execute(
                select(SignerSlot.verification_id).where(
                    SignerSlot.document_id == project.report_document_id
                )
            ).scalars()
            if v
        )
    return found


def _own_entries(db: Session, project: Project, related: set[str]) -> list[int]:
    rows = db.execute(
        select(AuditEntry.seq, AuditEntry.subject_id, AuditEntry.details)
        .where(AuditEntry.center_id == project.center_id)
        .where(or_(AuditEntry.subject_id.in_(related), AuditEntry.subject_type == "project"))
        .order_by(AuditEntry.seq)
    ).all()
    return [
        seq
        for seq, subject, details in rows
        if subject in related or (details or {}).get("project_id") == project.id
    ]


def project_entries(db: Session, center_id: str, project_id: str) -> list[AuditEntry]:
    """A project's own audit entries, in order: its draw, scans and sign-ins, declarations,
    scores, report and signatures (the supervisors' timeline; the evidence package's log)."""
    project = get_project(db, center_id, project_id)
    related = _related_ids(db, project, verification_ids_of(db, project))
    seqs = _own_entries(db, project, related)
    rows = db.execute(
        select(AuditEntry)
        .where(AuditEntry.center_id == center_id, AuditEntry.seq.in_(seqs))
        .order_by(AuditEntry.seq)
    )
    return list(rows.scalars())


def _covering_checkpoint(db: Session, center_id: str, seq: int) -> AuditCheckpoint | None:
    return db.execute(
        select(AuditCheckpoint)
        .where(AuditCheckpoint.center_id == center_id, AuditCheckpoint.seq >= seq)
        .order_by(AuditCheckpoint.seq)
        .limit(1)
    ).scalar_one_or_none()


def _pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(Encoding.PEM)


def _certificates(db: Session, project: Project, experts: Iterable[str]) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    authorities = db.execute(
        select(Authority).where(Authority.center_id == project.center_id)
    ).scalars()
    for authority in authorities:
        files[f"certificates/ca-{authority.kind}.pem"] = _pem(
            pki.load_certificate(authority.certificate_der)
        )
    services = db.execute(
        select(IssuedCertificate).where(
            IssuedCertificate.center_id == project.center_id,
            IssuedCertificate.purpose.in_(("tsa", "audit-checkpoint")),
        )
    ).scalars()
    for row in services:
        files[f"certificates/{row.purpose}-{row.serial[:16]}.pem"] = _pem(
            pki.load_certificate(row.certificate_der)
        )
    credentials = db.execute(
        select(IssuedCertificate).where(
            IssuedCertificate.expert_id.in_(list(experts)), IssuedCertificate.purpose == "expert"
        )
    ).scalars()
    for row in credentials:
        files[f"certificates/expert-{row.serial[:16]}.pem"] = _pem(
            pki.load_certificate(row.certificate_der)
        )
    return files


def _verifications(db: Session, ids: set[str]) -> list[dict[str, Any]]:
    rows = db.execute(
        select(FaceVerification)
        .where(FaceVerification.id.in_(ids))
        .order_by(FaceVerification.created_at)
    ).scalars()
    return [
        {
            "id": v.id,
            "method": v.method,
            "challenge_id": v.challenge_id,
            "in_person_check_id": v.in_person_check_id,
            "mode": v.mode,
            "candidate_ids": v.candidate_ids,
            "expert_id": v.expert_id,
            "passed": v.passed,
            "reasons": v.reasons,
            "checks": v.checks,
            "similarity": v.similarity,
            "model_id": v.model_id,
            "device_id": v.device_id,
            "client_ip": v.client_ip,
            "frame_count": v.frame_count,
            "frame_hashes": v.frame_hashes,
            "created_at": _iso(v.created_at),
        }
        for v in rows
    ]


def _passkey_assertions(db: Session, project: Project) -> list[dict[str, Any]]:
    """The bound phones' approvals of the project's sign-ins and report signatures."""
    links: dict[str | None, dict[str, str]] = {}
    for session_id, use_id in db.execute(
        select(EvaluationSession.id, EvaluationSession.passkey_use_id).where(
            EvaluationSession.project_id == project.id,
            EvaluationSession.passkey_use_id.is_not(None),
        )
    ):
        links[use_id] = {"evaluation_session_id": session_id}
    if project.report_document_id:
        for field_name, activation_id, use_id in db.execute(
            select(
                SignerSlot.field_name, SignatureActivation.id, SignatureActivation.passkey_use_id
            )
            .join(SignatureActivation, SignatureActivation.id == SignerSlot.sad_id)
            .where(
                SignerSlot.document_id == project.report_document_id,
                SignatureActivation.passkey_use_id.is_not(None),
            )
        ):
            links[use_id] = {"signature_activation_id": activation_id, "field": field_name}
    return [
        {**passkeys.use_record(use, passkey), "approves": links[use.id]}
        for use, passkey in passkeys.uses_at(db, [u for u in links if u is not None])
    ]


def _signers(db: Session, document_id: str) -> list[dict[str, Any]]:
    """Who signed which field of the report, with the face check behind each signature."""
    rows = db.execute(
        select(SignerSlot, SignatureActivation)
        .outerjoin(SignatureActivation, SignatureActivation.id == SignerSlot.sad_id)
        .where(SignerSlot.document_id == document_id, SignerSlot.status == "signed")
        .order_by(SignerSlot.revision)
    ).all()

    def second_factor(activation: SignatureActivation | None) -> str | None:
        if activation is None:
            return None
        if activation.passkey_use_id is not None:
            return "passkey"
        return "sms" if activation.one_time_code_id is not None else None

    return [
        {
            "field": slot.field_name,
            "role": slot.role,
            "expert_id": slot.signed_by,
            "verification_id": slot.verification_id,
            "signature_activation_id": slot.sad_id,
            "second_factor": second_factor(activation),
            "revision": slot.revision,
        }
        for slot, activation in rows
    ]


def _contracts(
    db: Session, store: DocumentStore, center_id: str, project: Project, clock: Clock
) -> dict[str, bytes]:
    """Each transaction contract of the project as it stands (sealed, or as far as it
    got), with what validating its signatures against the center's trust list said."""
    files: dict[str, bytes] = {}
    roots = pki.trust_roots(db, center_id)
    for contract in db.scalars(
        select(Contract).where(Contract.project_id == project.id).order_by(Contract.created_at)
    ):
        document = documents.get_document(db, center_id, contract.document_id)
        pdf = b"".join(store.read(documents.stored_revision(db, document)))
        verdict = validate(io.BytesIO(pdf), roots, now=clock.now())
        name = f"contracts/{contract.id}"
        files[f"{name}.pdf"] = pdf
        files[f"{name}-validation.json"] = json.dumps(
            {
                "contract_id": contract.id,
                "document_status": document.status,
                "verdict": verdict.verdict,
                "summary": verdict.summary,
                "signatures": [
                    {
                        "field": s.field_name,
                        "signer": s.signer_subject,
                        "signing_time": str(s.signing_time),
                        "valid": s.valid,
                        "intact": s.intact,
                    }
                    for s in verdict.signatures
                ],
            },
            ensure_ascii=False,
            indent=2,
        ).encode()
    return files


def _readme(project: Project) -> bytes:
    return f"""# 评标项目证据包 / Evidence package — {project.code}

{project.name}

本证据包由 EvalSign 生成，用于在不依赖 EvalSign 的情况下核验本项目的抽取、身份核验、签名和日志。
This package lets anyone check, without EvalSign, this project's expert draw, identity
checks, signatures and audit log.

## 核验步骤 / How to check

1. 清单签名 / The manifest's signature (the center's audit-checkpoint certificate):
   `openssl cms -verify -binary -inform DER -in {MANIFEST_SIGNATURE} -content {MANIFEST}
   -CAfile certificates/ca-root.pem -purpose any -out /dev/null`
   Obtain the center root certificate from the center itself, not only from this package.
2. 文件完整性 / Every file's SHA-256 against `{MANIFEST}` (`sha256sum`).
3. 评标报告签名 / The signed report: `pdfsig report/report.pdf` (each signature "Valid";
   trust the center root in your NSS database to see it trusted).
   合同 / Each transaction contract: `contracts/<id>.pdf` (`pdfsig`), with what validating
   it said when the package was made in `contracts/<id>-validation.json`.
4. 专家抽取 / The draw: `evalsign draw verify draw/draw-proof.json` replays the chain of
   proofs (described in draw/ALGORITHM.txt): the evalsign-draw-v1 draw, then each
   supplementary draw (evalsign-draw-supplementary-v1) and the previous proof's hash it names.
5. 审计日志 / The audit log: in `audit/chain.jsonl` each line's `hash` is the SHA-256 of
   the sorted-key compact UTF-8 JSON of its other fields except `hash` and `this_project`;
   each `prev_hash` is the previous line's `hash`; the last line's hash equals the
   `head_hash` of `audit/checkpoint.json`, whose signature `audit/checkpoint.p7s` verifies
   like the manifest's (`-content audit/checkpoint-statement.json`).
6. 人脸核验记录 / `verifications/verifications.json`: every face check of the project, its
   signals and decision (no face images).
7. 手机通行密钥 / `passkeys/assertions.json`: each member's bound phone approving their
   sign-in and their signature (WebAuthn assertions). Each verifies under its COSE public
   key over `authenticator_data || SHA-256(client_data_json)`; a signing approval's
   challenge is SHA-256 of the RFC 8785 JSON of `approved` ({{credentialID, hashes,
   nonce}}): its one hash is the SHA-256 of the CMS signed attributes of the signature in
   the report's field named by `approves` (the DER SET OF that the signature value covers;
   they name the report revision's digest), so the phone approved exactly that signature.
   Every signature of the report has such an approval, except one made on the in-person
   path (`report/signers.json` names each field's face check; its `method` in
   `verifications/verifications.json` is `in-person-pin`) or approved by an SMS code where
   the center allows one (`second_factor: sms`, a lower assurance no package can prove).

`evalsign evidence verify {project.code}-evidence.zip` performs all of these checks.
""".encode()


def build_package(
    db: Session,
    clock: Clock,
    vault: Vault,
    policy: pki.PkiPolicy,
    store: DocumentStore,
    center_id: str,
    project_id: str,
    role: str,
) -> tuple[str, bytes]:
    """The package's file name and bytes. Writes a checkpoint if none covers the project's
    last entry yet, and reissues stale CRLs, so it runs in a write transaction."""
    project = get_project(db, center_id, project_id)
    proofs = draws.proof_chain(db, project)
    if not proofs:
        raise EvidenceNotReady(f"project {project.code} has no completed draw")
    draws.refuse_if_sealed(project, role, clock)
    verifications = verification_ids_of(db, project)
    related = _related_ids(db, project, verifications)
    own = _own_entries(db, project, related)
    last = own[-1]
    checkpoint = _covering_checkpoint(db, center_id, last) or checkpoints.write_checkpoint(
        db, clock, vault, policy, center_id, "on-demand"
    )
    chain = db.execute(
        select(AuditEntry)
        .where(
            AuditEntry.center_id == center_id,
            AuditEntry.seq >= own[0],
            AuditEntry.seq <= checkpoint.seq,
        )
        .order_by(AuditEntry.seq)
    ).scalars()
    own_set = set(own)
    files: dict[str, bytes] = {
        "README.md": _readme(project),
        "project.json": json.dumps(
            {
                "id": project.id,
                "code": project.code,
                "name": project.name,
                "regime": project.regime,
                "tenderer": {
                    "name": project.tenderer_name,
                    "credit_code": project.tenderer_credit_code,
                },
                "bidders": project.bidders,
                "criteria": project.criteria,
                "aggregation": project.aggregation,
                "evaluation_start": _iso(project.evaluation_start),
                "evaluation_end": _iso(project.evaluation_end),
                "status": project.status,
                "results": project.results,
            },
            ensure_ascii=False,
            indent=2,
        ).encode(),
        "draw/draw-proof.json": json.dumps(proofs, ensure_ascii=False, indent=2).encode(),
        "draw/ALGORITHM.txt": (algorithm.__doc__ or "").encode(),
        "audit/chain.jsonl": b"".join(
            json.dumps(_entry_json(e, e.seq in own_set), ensure_ascii=False).encode() + b"\n"
            for e in chain
        ),
        "audit/checkpoint.json": json.dumps(
            {
                "seq": checkpoint.seq,
                "head_hash": checkpoint.head_hash,
                "created_at": _iso(checkpoint.created_at),
            }
        ).encode(),
        "audit/checkpoint-statement.json": checkpoint.statement.encode(),
        "audit/checkpoint.p7s": checkpoint.signature_der,
        "verifications/verifications.json": json.dumps(
            _verifications(db, verifications), ensure_ascii=False, indent=2
        ).encode(),
        "passkeys/assertions.json": json.dumps(
            _passkey_assertions(db, project), ensure_ascii=False, indent=2
        ).encode(),
    }
    if project.report_document_id:
        document = documents.get_document(db, center_id, project.report_document_id)
        stored = documents.stored_revision(db, document)
        files["report/report.pdf"] = b"".join(store.read(stored))
        files["report/signers.json"] = json.dumps(
            _signers(db, document.id), ensure_ascii=False, indent=2
        ).encode()
    files.update(_contracts(db, store, center_id, project, clock))
    members = db.execute(
        select(Assignment.expert_id).where(Assignment.project_id == project.id)
    ).scalars()
    files.update(_certificates(db, project, members))
    for authority in db.execute(
        select(Authority).where(Authority.center_id == center_id, Authority.external.is_(False))
    ).scalars():
        files[f"crls/{authority.kind}.crl"] = pki.current_crl(db, clock, vault, policy, authority)
    manifest = json.dumps(
        {
            "format": FORMAT,
            "center_id": center_id,
            "project_id": project.id,
            "created_at": _iso(clock.now()),
            "files": {
                name: hashlib.sha256(data).hexdigest() for name, data in sorted(files.items())
            },
        },
        sort_keys=True,
        indent=2,
    ).encode()
    identity, _ = checkpoints.signing_identity(db, vault, center_id)
    timestamper = InProcessTimeStamper(
        pki.time_stamp_authority(db, vault, policy, center_id), clock.now
    )
    files[MANIFEST] = manifest
    files[MANIFEST_SIGNATURE] = sign_detached(manifest, identity, timestamper)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in sorted(files.items()):
            info = zipfile.ZipInfo(name, date_time=(2000, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    return f"{project.code}-evidence.zip", buffer.getvalue()


# --- checking a package ----------------------------------------------------------------


@dataclass
class PackageReport:
    checks: dict[str, str] = field(default_factory=dict)  # part -> "ok" or what failed

    @property
    def ok(self) -> bool:
        return all(value == "ok" for value in self.checks.values())


def _check_chain(files: dict[str, bytes]) -> str:
    lines = [json.loads(line) for line in files["audit/chain.jsonl"].splitlines() if line]
    checkpoint = json.loads(files["audit/checkpoint.json"])
    statement = json.loads(files["audit/checkpoint-statement.json"])
    previous = None
    for line in lines:
        fields = {k: v for k, v in line.items() if k not in ("hash", "this_project")}
        fields["occurred_at"] = datetime.fromisoformat(fields["occurred_at"])
        digest = hashlib.sha256(canonical_bytes(**fields)).hexdigest()
        if digest != line["hash"]:
            return f"entry {line['seq']} does not hash to its recorded hash"
        if previous is not None and (
            line["prev_hash"] != previous["hash"] or line["seq"] != previous["seq"] + 1
        ):
            return f"entry {line['seq']} does not follow entry {previous['seq']}"
        previous = line
    if previous is None:
        return "the chain segment is empty"
    if (previous["seq"], previous["hash"]) != (checkpoint["seq"], checkpoint["head_hash"]):
        return "the chain segment does not end at the checkpoint"
    if (statement["seq"], statement["head_hash"]) != (checkpoint["seq"], checkpoint["head_hash"]):
        return "the checkpoint statement does not match the checkpoint"
    return "ok"


def _check(report: PackageReport, part: str, check: Callable[[], str]) -> None:
    # Whatever a tampered file makes a check raise (bad JSON, a CRL whose signature fails,
    # a truncated PDF) means that part does not check out; it must not stop the others.
    try:
        report.checks[part] = check()
    except Exception as exc:
        report.checks[part] = f"failed: {type(exc).__name__}: {exc}"


def verify_package(data: bytes, root: x509.Certificate | None = None) -> PackageReport:
    """Check a package: the manifest's signature and every file's hash, the report's
    signatures, the draw proof, and the audit segment against its signed checkpoint.
    `root` is the center root obtained independently (default: the package's own)."""
    report = PackageReport()
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            files = {name: archive.read(name) for name in archive.namelist()}
    except (zipfile.BadZipFile, OSError) as exc:
        report.checks["zip"] = f"not a readable zip: {exc}"
        return report
    crls = [value for name, value in files.items() if name.startswith("crls/")]
    revocation = RevocationMaterial(crls=crls)
    oid = AUDIT_CHECKPOINT_SIGNING.dotted_string
    try:
        anchor = root or x509.load_pem_x509_certificate(files["certificates/ca-root.pem"])
    except (KeyError, ValueError) as exc:
        report.checks["root"] = f"no readable center root, pass one: {exc}"
        return report
    # A package re-signed under a forger's own root would check out against itself: the
    # root must come from the center, not from the package.
    report.checks["root"] = (
        "ok"
        if root is not None
        else "taken from the package itself: pass the center's root certificate to trust it"
    )

    def manifest_signature() -> str:
        verify_detached(files[MANIFEST], files[MANIFEST_SIGNATURE], [anchor], revocation, oid)
        return "ok"

    def file_hashes() -> str:
        listed = json.loads(files[MANIFEST])["files"]
        present = set(files) - {MANIFEST, MANIFEST_SIGNATURE}
        wrong = sorted(
            n
            for n in present | set(listed)
            if hashlib.sha256(files.get(n, b"")).hexdigest() != listed.get(n)
        )
        return "ok" if not wrong else f"differ: {', '.join(wrong)}"

    def checkpoint_signature() -> str:
        statement = files["audit/checkpoint-statement.json"]
        verify_detached(statement, files["audit/checkpoint.p7s"], [anchor], revocation, oid)
        return "ok"

    def draw_proof() -> str:
        # A list of proofs; packages made before supplementary draws hold a single one.
        algorithm.verify_chain(json.loads(files["draw/draw-proof.json"]))
        return "ok"

    def passkey_approvals() -> str:
        records = json.loads(files["passkeys/assertions.json"])
        for record in records:
            passkeys.check_record(record)
        signings = [r for r in records if "signature_activation_id" in r["approves"]]
        if "report/report.pdf" not in files:
            return "ok"
        # Each approval names the digest of its signature's signed attributes, as the
        # report carries them: the phone approved exactly that signature.
        digests = approved_digests(io.BytesIO(files["report/report.pdf"]))
        strays = [
            r["use_id"]
            for r in signings
            if r["approves"]["field"] not in digests
            or r["evidence"]["approved"]["hashes"]
            != [base64.b64encode(digests[r["approves"]["field"]]).decode()]
        ]
        if strays:
            return f"failed: approvals of other signatures: {', '.join(strays)}"
        # And every signature has one, but those of the in-person path, whose PIN under
        # an operator's ID check stood in for the phone (flagged for supervisors).
        approved = {r["approves"]["field"] for r in signings}
        signers = {s["field"]: s for s in json.loads(files["report/signers.json"])}
        methods = {
            v["id"]: v["method"] for v in json.loads(files["verifications/verifications.json"])
        }
        # An SMS code (where the center allows one) cannot be checked offline: the
        # package names it, and the anomaly flags show it to supervisors.
        unapproved = sorted(
            field
            for field in digests
            if field not in approved
            and signers.get(field, {}).get("second_factor") != "sms"
            and methods.get(signers.get(field, {}).get("verification_id"))
            != passkeys.IN_PERSON_METHOD
        )
        if unapproved:
            return f"failed: signatures no phone approved: {', '.join(unapproved)}"
        return "ok"

    def contract_signatures(name: str) -> str:
        """A sealed contract's signatures validate; one still being signed is reported
        as the validation at packing time said, and its signatures so far must hold."""
        verdict = validate(io.BytesIO(files[name]), [anchor], revocation)
        packed = json.loads(files[name.removesuffix(".pdf") + "-validation.json"])
        if packed["document_status"] == "completed" and verdict.verdict != "valid":
            return verdict.summary
        broken = [s.field_name for s in verdict.signatures if not s.intact]
        return "ok" if not broken else f"failed: altered signatures: {', '.join(broken)}"

    def report_signatures() -> str:
        verdict = validate(io.BytesIO(files["report/report.pdf"]), [anchor], revocation)
        return "ok" if verdict.verdict == "valid" else verdict.summary

    _check(report, "manifest signature", manifest_signature)
    _check(report, "file hashes", file_hashes)
    _check(report, "checkpoint signature", checkpoint_signature)
    _check(report, "audit chain", lambda: _check_chain(files))
    _check(report, "draw proof", draw_proof)
    if "passkeys/assertions.json" in files:
        _check(report, "passkey approvals", passkey_approvals)
    if "report/report.pdf" in files:
        _check(report, "report signatures", report_signatures)
    for name in sorted(n for n in files if n.startswith("contracts/") and n.endswith(".pdf")):
        _check(report, name.removesuffix(".pdf"), functools.partial(contract_signatures, name))
    return report


def verify_file(path: Path, root_pem: Path | None = None) -> PackageReport:
    root = x509.load_pem_x509_certificate(root_pem.read_bytes()) if root_pem else None
    return verify_package(path.read_bytes(), root)

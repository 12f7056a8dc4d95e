"""Separate, explicit consent to face recognition before any face check of a scan.

Face data is sensitive personal information (PIPL art. 28-29; Measures for the Security
Management of Face Recognition Technology Applications, 2025): the person is told the
purpose, what is stored, for how long and how to withdraw, and may refuse and take the
in-person check at the center instead. The text is versioned; what was agreed to is
recorded with its version and the SHA-256 of the exact words shown.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from sqlalchemy.orm import Session

from evaluation.kernel import audit
from evaluation.kernel.actions import Action
from evaluation.kernel.errors import DomainError
from models.clock import Clock
from models.tables import ScanSession

FACE_CONSENT_VERSION = "face-2026-11"


@dataclass(frozen=True)
class ConsentText:
    version: str
    title: str
    paragraphs: tuple[str, ...]

    @property
    def sha256(self) -> str:
        words = "\n".join((self.title, *self.paragraphs))
        return hashlib.sha256(words.encode("utf-8")).hexdigest()


FACE_CONSENT = {
    "zh": ConsentText(
        FACE_CONSENT_VERSION,
        "人脸识别单独同意书",
        (
            "目的：核实您是本项目抽取的评标专家本人，并在签署评标报告前再次确认是您本人操作。",
            "处理的信息：检测时拍摄的若干帧照片、由此计算的人脸特征与活体检测信号、设备标识和"
            "网络地址。照片在核验后即删除，不作保存（交易中心另行规定留存证据的除外）；"
            "核验结果与特征比对分数随交易记录保存。",
            "保存期限：核验记录随项目档案保存，期限依交易档案管理规定；您登记的人脸特征"
            "在您撤回同意或不再担任专家时删除。",
            "撤回：您可随时向交易中心撤回同意；撤回后系统删除您的人脸特征，不再使用人脸核验。",
            "其他方式：您可以不同意人脸识别，改为到交易中心现场由工作人员核验身份证件并"
            "使用签名口令签署。拒绝人脸识别不影响您参加评标。",
        ),
    ),
    "en": ConsentText(
        FACE_CONSENT_VERSION,
        "Separate consent to face recognition",
        (
            "Purpose: to confirm that you are the expert drawn for this project, and again "
            "that it is you before you sign the evaluation report.",
            "What is processed: a few camera frames taken during the check, the face "
            "features and liveness signals computed from them, your device id and network "
            "address. The frames are deleted after the check (unless the center's rules "
            "keep them as evidence); the result and match scores stay with the record.",
            "How long: verification records are kept with the project file as the archive "
            "rules require; your enrolled face features are deleted when you withdraw "
            "consent or stop serving as an expert.",
            "Withdrawal: you may withdraw at any time with the trading center; your face "
            "features are then deleted and face checks are no longer used for you.",
            "Alternative: you may refuse and have your ID checked in person at the center "
            "and sign with a signing PIN instead. Refusing does not affect your taking part.",
        ),
    ),
}


class ConsentRequired(DomainError):
    status = 409
    code = "consent-required"
    title = "Agree to the face recognition consent first (or choose the in-person check)"


class ConsentVersionStale(DomainError):
    status = 409
    code = "consent-version-stale"
    title = "The consent text changed; read the current version and answer again"


def consent_text(language: str) -> ConsentText:
    return FACE_CONSENT.get(language, FACE_CONSENT["zh"])


def require_current(version: str) -> None:
    """Consent to an older text is not consent to the one in force."""
    if version != FACE_CONSENT_VERSION:
        raise ConsentVersionStale(
            f"the current consent text is {FACE_CONSENT_VERSION}, not {version!r}",
            current=FACE_CONSENT_VERSION,
        )


def answer_consent(
    db: Session,
    clock: Clock,
    scan: ScanSession,
    version: str,
    accepted: bool,
    language: str,
    request_id: str | None,
) -> ScanSession:
    """Record the phone's answer to the consent text of `version` in `language`."""
    require_current(version)
    text = consent_text(language)
    caller = audit.Caller(scan.center_id, f"scan:{scan.id}", None, request_id)
    details = {
        "version": version,
        "language": language if language in FACE_CONSENT else "zh",
        "text_sha256": text.sha256,
        "device_id": scan.device_id,
        "project_id": scan.project_id,
    }
    if accepted:
        scan.consent_version = version
        scan.consented_at = clock.now()
        audit.record(db, caller, clock, Action.FACE_CONSENT_GIVEN, "scan_session", scan.id, details)
    else:
        scan.consent_version = None
        scan.consented_at = None
        audit.record(
            db, caller, clock, Action.FACE_CONSENT_REFUSED, "scan_session", scan.id, details
        )
    db.flush()
    return scan


def require_consent(scan: ScanSession) -> None:
    if scan.consented_at is None or scan.consent_version != FACE_CONSENT_VERSION:
        raise ConsentRequired(
            "the phone must show the face recognition consent and the person agree "
            "(POST /api/v1/scan/consent) before a face check"
        )

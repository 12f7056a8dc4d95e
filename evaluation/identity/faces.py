"""Experts' faces: enrollment from reference photos, and 1:1 / 1:few matching against the
enrolled templates. Templates are encrypted at rest and bound to the model that made them."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from evaluation.identity import remote_review
from evaluation.identity.consent import FACE_CONSENT_VERSION, consent_text, require_current
from evaluation.kernel import audit
from evaluation.kernel.actions import Action
from evaluation.kernel.errors import DomainError
from evaluation.registry.experts import person_in_center
from face.analysis import PhotoAnalysis, analyze_bytes
from face.engine import FaceEngine, Vector
from face.intake import ImageRejected, IntakeLimits
from face.matching import (
    Identification,
    Verification,
    identify,
    mean_template,
    similarity,
    verify,
)
from face.metrics import pair_metrics
from face.quality import QualityThresholds
from models.base import new_id
from models.clock import Clock
from models.settings import Settings
from models.tables import FacePhoto, FaceTemplate
from signing.field_cipher import FieldCipher

EMBEDDING_DTYPE = np.dtype("<f4")


class ImageUnusable(DomainError):
    status = 422
    code = "image-unusable"
    title = "The image cannot be used"


class ImageTooLarge(ImageUnusable):
    status = 413
    code = "image-too-large"
    title = "The image is larger than allowed"


class ImageTypeUnsupported(ImageUnusable):
    status = 415
    code = "image-type-unsupported"
    title = "Only JPEG, PNG and WebP images are accepted"


class EnrollmentRejected(DomainError):
    status = 422
    code = "enrollment-rejected"
    title = "Some photos do not meet the quality requirements; nothing was stored"


class ConsentRequired(DomainError):
    status = 422
    code = "consent-required"
    title = "Face data needs the expert's separate, explicit consent"


class FaceNotEnrolled(DomainError):
    status = 409
    code = "face-not-enrolled"
    title = "The expert has no enrolled face"


class ReenrollmentRequired(DomainError):
    status = 409
    code = "reenrollment-required"
    title = "The enrolled face was made by another face model; enroll again"


class NoUsableFace(DomainError):
    status = 422
    code = "no-usable-face"
    title = "No usable face in the image"


@dataclass(frozen=True)
class FacePolicy:
    """The face settings a domain call needs, read once from Settings."""

    limits: IntakeLimits
    thresholds: QualityThresholds
    match_threshold: float
    identify_margin: float
    max_photos: int
    retain_photos: bool
    id_card_threshold: float = 0.30
    id_card_min_face_px: float = 48.0

    @classmethod
    def from_settings(cls, settings: Settings) -> FacePolicy:
        return cls(
            limits=IntakeLimits(settings.face_max_image_bytes, settings.face_max_image_pixels),
            thresholds=QualityThresholds(
                min_face_px=settings.face_min_face_px,
                min_detection_score=settings.face_min_detection_score,
                min_sharpness=settings.face_min_sharpness,
                min_brightness=settings.face_min_brightness,
                max_brightness=settings.face_max_brightness,
                max_yaw_degrees=settings.face_max_yaw_degrees,
                max_pitch_degrees=settings.face_max_pitch_degrees,
            ),
            match_threshold=settings.face_match_threshold,
            identify_margin=settings.face_identify_margin,
            max_photos=settings.face_max_enrollment_photos,
            retain_photos=settings.face_retain_photos,
            id_card_threshold=settings.face_id_card_threshold,
            id_card_min_face_px=settings.face_id_card_min_face_px,
        )


@dataclass(frozen=True)
class Enrollment:
    expert_id: str
    model_id: str
    photo_count: int
    enrolled_at: datetime
    consent_recorded_at: datetime
    photos: list[dict[str, Any]]
    replaced: bool = False
    consent_version: str | None = None


def consent_record(version: str) -> dict[str, str]:
    """What the audit keeps of a consent: the text's version and the SHA-256 of its words,
    so the exact text agreed to can be shown years later."""
    require_current(version)
    return {
        "consent_version": version,
        "consent_sha256_zh": consent_text("zh").sha256,
        "consent_sha256_en": consent_text("en").sha256,
    }


def image_error(error: ImageRejected, label: str) -> DomainError:
    """The API error for an image the intake refused."""
    kind: type[ImageUnusable] = {
        "too-large": ImageTooLarge,
        "unsupported-format": ImageTypeUnsupported,
    }.get(error.code, ImageUnusable)
    return kind(
        f"{label}: {error.message_en}",
        reason=error.code,
        message_zh=error.message_zh,
        image=label,
    )


def template_context(expert_id: str, part: str) -> str:
    return f"experts/{expert_id}/face/{part}"


def _pack(vectors: Sequence[Vector]) -> bytes:
    return np.stack(vectors).astype(EMBEDDING_DTYPE).tobytes()


def _unpack(data: bytes, rows: int) -> np.ndarray[Any, np.dtype[np.float32]]:
    # By rows, not a fixed width: a center's own recognizer may not be 512-dimensional.
    return np.frombuffer(data, dtype=EMBEDDING_DTYPE).reshape(rows, -1).astype(np.float32)


def _analyze_photo(
    engine: FaceEngine, policy: FacePolicy, label: str, data: bytes
) -> tuple[dict[str, Any], PhotoAnalysis | None]:
    try:
        analysis = analyze_bytes(engine, data, policy.limits, policy.thresholds, single_face=True)
    except ImageRejected as error:
        issue = {"code": error.code, "message_en": error.message_en, "message_zh": error.message_zh}
        return {"photo": label, "accepted": False, "issues": [issue]}, None
    report = {"photo": label, "accepted": analysis.usable, **analysis.report()}
    return report, analysis


def enroll_face(
    db: Session,
    caller: audit.Caller,
    clock: Clock,
    cipher: FieldCipher,
    engine: FaceEngine,
    policy: FacePolicy,
    expert_id: str,
    photos: Sequence[tuple[str, bytes]],
    *,
    consent: bool,
    consent_version: str | None = None,
) -> Enrollment:
    """Enroll (or re-enroll) from 1..max photos; every photo must pass, else nothing changes.
    The consent is to the text of `consent_version` (the current one when not given)."""
    expert = person_in_center(db, caller.center_id, expert_id)
    if not consent:
        raise ConsentRequired(
            "record that the expert gave separate consent to face processing (consent=true); "
            "without it, use the in-person check instead"
        )
    agreed = consent_record(consent_version or FACE_CONSENT_VERSION)
    if not 1 <= len(photos) <= policy.max_photos:
        raise EnrollmentRejected(
            f"send between 1 and {policy.max_photos} photos, not {len(photos)}", photos=[]
        )
    reports, analyses = [], []
    for label, data in photos:
        report, analysis = _analyze_photo(engine, policy, label, data)
        reports.append(report)
        analyses.append(analysis)
    if not all(report["accepted"] for report in reports):
        bad = sum(not report["accepted"] for report in reports)
        raise EnrollmentRejected(f"{bad} of {len(photos)} photos were refused", photos=reports)

    embeddings = [a.embedding for a in analyses if a is not None and a.embedding is not None]
    now = clock.now()
    renewed = expert.face_consent_withdrawn_at is not None
    expert.face_consent_withdrawn_at = None  # a new enrollment is a new, recorded consent
    existing = db.get(FaceTemplate, expert.id)
    if existing is not None:
        if existing.reference == "id-card":
            # Checks made against the card must not outlive it.
            remote_review.close_open(db, expert.id, now, "replaced by an enrollment in person")
        db.delete(existing)
        db.execute(delete(FacePhoto).where(FacePhoto.expert_id == expert.id))
        db.flush()
    template = FaceTemplate(
        expert_id=expert.id,
        center_id=expert.center_id,
        model_id=engine.model_id,
        template_ciphertext=cipher.encrypt_bytes(
            _pack([mean_template(embeddings)]), template_context(expert.id, "template")
        ),
        embeddings_ciphertext=cipher.encrypt_bytes(
            _pack(embeddings), template_context(expert.id, "embeddings")
        ),
        photo_count=len(embeddings),
        quality=[{k: r[k] for k in ("photo", "signals")} for r in reports],
        consent_recorded_at=now,
        consent_version=agreed["consent_version"],
        enrolled_at=now,
        confirmed_at=now,  # the operator saw the person
        confirmed_by=caller.actor,
    )
    db.add(template)
    if policy.retain_photos:
        for _label, data in photos:
            photo_id = new_id()
            db.add(
                FacePhoto(
                    id=photo_id,
                    expert_id=expert.id,
                    center_id=expert.center_id,
                    ciphertext=cipher.encrypt_bytes(data, template_context(expert.id, photo_id)),
                    created_at=now,
                )
            )
    db.flush()
    audit.record(
        db,
        caller,
        clock,
        Action.EXPERT_FACE_REENROLLED if existing else Action.EXPERT_FACE_ENROLLED,
        "expert",
        expert.id,
        {
            "model_id": engine.model_id,
            "photos": len(embeddings),
            "photos_retained": policy.retain_photos,
            "consent": True,
            **agreed,
            **({"consent_renewed_after_withdrawal": True} if renewed else {}),
        },
    )
    return Enrollment(
        expert.id,
        engine.model_id,
        len(embeddings),
        now,
        now,
        reports,
        existing is not None,
        agreed["consent_version"],
    )


class AlreadyEnrolled(DomainError):
    status = 409
    code = "already-enrolled"
    title = "The person already has a face reference; only the center can replace it"


def enroll_from_id_card(
    db: Session,
    caller: audit.Caller,
    clock: Clock,
    cipher: FieldCipher,
    engine: FaceEngine,
    policy: FacePolicy,
    person_id: str,
    data: bytes,
    consent_version: str,
) -> Enrollment:
    """Remote enrollment of a unit's representative: the portrait side of their ID card,
    photographed by themselves, becomes their reference at the lower "id-card" assurance;
    the liveness check that follows must match it (at its own threshold). An existing
    reference is never replaced this way, whether enrolled at the center or from an earlier
    card: whoever holds a copy of the link could otherwise make their own face the
    representative's. Only an operator can remove it (audited), for a new enrollment."""
    person = person_in_center(db, caller.center_id, person_id)
    db.refresh(person, with_for_update=True)
    existing = db.get(FaceTemplate, person.id)
    if existing is not None:
        where = "at the center" if existing.reference == "in-person" else "from an ID card"
        raise AlreadyEnrolled(f"{person.name} already has a face reference, enrolled {where}")
    # The card's portrait is small: the size gate is the card's, the rest are the usual.
    thresholds = replace(policy.thresholds, min_face_px=policy.id_card_min_face_px)
    report, analysis = _analyze_photo(
        engine, replace(policy, thresholds=thresholds), "id-card", data
    )
    if analysis is None or analysis.embedding is None or not report["accepted"]:
        raise EnrollmentRejected("the ID card photo cannot serve as a reference", photos=[report])
    now = clock.now()
    person.face_consent_withdrawn_at = None  # consented again on the phone, just now
    db.add(
        FaceTemplate(
            expert_id=person.id,
            center_id=person.center_id,
            model_id=engine.model_id,
            template_ciphertext=cipher.encrypt_bytes(
                _pack([analysis.embedding]), template_context(person.id, "template")
            ),
            embeddings_ciphertext=cipher.encrypt_bytes(
                _pack([analysis.embedding]), template_context(person.id, "embeddings")
            ),
            photo_count=1,
            quality=[{k: report[k] for k in ("photo", "signals")}],
            consent_recorded_at=now,
            consent_version=consent_version,
            enrolled_at=now,
            reference="id-card",
        )
    )
    db.flush()
    remote_review.open_review(db, cipher, clock, person, data)
    audit.record(
        db,
        caller,
        clock,
        Action.EXPERT_FACE_ENROLLED,
        "expert",
        person.id,
        {
            "model_id": engine.model_id,
            "photos": 1,
            "reference": "id-card",
            "photos_retained": False,
            "consent": True,
            **consent_record(consent_version),
        },
    )
    return Enrollment(person.id, engine.model_id, 1, now, now, [report], False, consent_version)


def center_templates(
    db: Session, cipher: FieldCipher, center_id: str, model_id: str
) -> tuple[list[str], np.ndarray[Any, np.dtype[np.float32]]]:
    """Every enrolled person of the center (for this recognizer) and their templates as
    the rows of one matrix: what a sweep compares many faces with at once. Reads the whole
    registry, so never on a request's path (the cross-match sweep runs it in the
    background)."""
    rows = list(
        db.execute(
            select(FaceTemplate.expert_id, FaceTemplate.template_ciphertext).where(
                FaceTemplate.center_id == center_id, FaceTemplate.model_id == model_id
            )
        )
    )
    if not rows:
        return [], np.zeros((0, 0), dtype=np.float32)
    templates = np.stack(
        [
            _unpack(cipher.decrypt_bytes(data, template_context(expert_id, "template")), 1)[0]
            for expert_id, data in rows
        ]
    )
    return [str(expert_id) for expert_id, _ in rows], templates


def references_of(db: Session, expert_ids: Sequence[str]) -> dict[str, str]:
    """What each person's template was made from: in-person or id-card."""
    rows = db.execute(
        select(FaceTemplate.expert_id, FaceTemplate.reference).where(
            FaceTemplate.expert_id.in_(expert_ids)
        )
    )
    return {expert_id: reference for expert_id, reference in rows}


def face_enrollment(db: Session, center_id: str, expert_id: str) -> FaceTemplate | None:
    person_in_center(db, center_id, expert_id)
    return db.get(FaceTemplate, expert_id)


def remove_face(db: Session, caller: audit.Caller, clock: Clock, expert_id: str) -> None:
    """Delete the template and any retained photos (withdrawal of consent, or re-take)."""
    expert = person_in_center(db, caller.center_id, expert_id)
    template = db.get(FaceTemplate, expert.id)
    if template is None:
        raise FaceNotEnrolled("the expert has no enrolled face to remove")
    photos = len(
        db.execute(
            delete(FacePhoto).where(FacePhoto.expert_id == expert.id).returning(FacePhoto.id)
        ).all()
    )
    db.delete(template)
    # No face session outlives the reference it was checked against.
    sessions = remote_review.close_open(db, expert.id, clock.now(), "the reference was removed")
    db.flush()
    audit.record(
        db,
        caller,
        clock,
        Action.EXPERT_FACE_REMOVED,
        "expert",
        expert.id,
        {"model_id": template.model_id, "photos_deleted": photos, "sessions_ended": sessions},
    )


def load_templates(
    db: Session,
    cipher: FieldCipher,
    engine: FaceEngine,
    center_id: str,
    expert_ids: Sequence[str],
) -> dict[str, Vector]:
    """Decrypted templates of these experts; refuses any made by another model."""
    found = {
        template.expert_id: template
        for template in db.execute(
            select(FaceTemplate).where(
                FaceTemplate.center_id == center_id, FaceTemplate.expert_id.in_(expert_ids)
            )
        ).scalars()
    }
    missing = [expert_id for expert_id in expert_ids if expert_id not in found]
    if missing:
        raise FaceNotEnrolled(f"no enrolled face for {', '.join(missing)}", experts=missing)
    stale = [t.expert_id for t in found.values() if t.model_id != engine.model_id]
    if stale:
        raise ReenrollmentRequired(
            f"enrolled with another face model ({found[stale[0]].model_id}); the running model "
            f"is {engine.model_id}: enroll these experts again",
            experts=stale,
        )
    return {
        expert_id: _unpack(
            cipher.decrypt_bytes(
                template.template_ciphertext, template_context(expert_id, "template")
            ),
            rows=1,
        )[0]
        for expert_id, template in found.items()
    }


def analyze_upload(
    engine: FaceEngine, policy: FacePolicy, data: bytes, label: str
) -> PhotoAnalysis:
    """Analyze an uploaded image's largest face; an unusable file becomes its API error."""
    try:
        return analyze_bytes(engine, data, policy.limits, policy.thresholds, single_face=False)
    except ImageRejected as error:
        raise image_error(error, label) from error


def probe_embedding(
    engine: FaceEngine, policy: FacePolicy, data: bytes, label: str = "image"
) -> tuple[Vector, PhotoAnalysis]:
    """The embedding of the largest face of an image, which must pass the quality gates."""
    analysis = analyze_upload(engine, policy, data, label)
    if analysis.embedding is None or not analysis.usable:
        raise NoUsableFace(
            "; ".join(issue.message_en for issue in analysis.issues) or "no face",
            analysis=analysis.report(),
        )
    return analysis.embedding, analysis


def verify_expert(
    db: Session,
    cipher: FieldCipher,
    engine: FaceEngine,
    policy: FacePolicy,
    center_id: str,
    expert_id: str,
    data: bytes,
) -> Verification:
    """1:1: is the face in the image the enrolled expert?"""
    templates = load_templates(db, cipher, engine, center_id, [expert_id])
    probe, _analysis = probe_embedding(engine, policy, data)
    return verify(templates[expert_id], probe, policy.match_threshold)


def identify_expert(
    db: Session,
    cipher: FieldCipher,
    engine: FaceEngine,
    policy: FacePolicy,
    center_id: str,
    expert_ids: Sequence[str],
    data: bytes,
) -> Identification:
    """1:few: which of these experts is in the image, if exactly one clearly is."""
    templates = load_templates(db, cipher, engine, center_id, expert_ids)
    probe, _analysis = probe_embedding(engine, policy, data)
    return identify(templates, probe, policy.match_threshold, policy.identify_margin)


def compare_images(
    engine: FaceEngine, policy: FacePolicy, image_a: bytes, image_b: bytes
) -> dict[str, Any]:
    """The similarity of the largest faces of two images, with each face's quality report.

    A diagnostic: quality issues are reported, not enforced; only a missing face refuses.
    """
    analyses = []
    for label, data in (("image_a", image_a), ("image_b", image_b)):
        analysis = analyze_upload(engine, policy, data, label)
        if analysis.embedding is None:
            raise NoUsableFace(f"{label}: no face was found", image=label)
        analyses.append(analysis)
    first, second = (a.embedding for a in analyses)
    assert first is not None and second is not None
    result = verify(first, second, policy.match_threshold)
    return {
        "similarity": round(result.similarity, 6),
        "threshold": result.threshold,
        "same": result.matched,
        "faces": [
            {"image": label, **analysis.report()}
            for label, analysis in zip(("image_a", "image_b"), analyses, strict=True)
        ],
    }


class PairsFileInvalid(DomainError):
    status = 422
    code = "pairs-file-invalid"
    title = "The pairs file is not a CSV with img_a,img_b,same"


def evaluate_pairs(
    engine: FaceEngine, policy: FacePolicy, pairs_csv: Path, threshold: float
) -> dict[str, Any]:
    """Score every labelled pair of a CSV (img_a,img_b,same) and summarize the accuracy."""
    with pairs_csv.open(newline="", encoding="utf-8-sig") as handle:
        rows = list(csv.DictReader(handle))
    if not rows or not {"img_a", "img_b", "same"} <= set(rows[0]):
        raise PairsFileInvalid(f"{pairs_csv} needs the columns img_a, img_b, same")
    embeddings: dict[str, Vector | None] = {}

    def embedding(name: str) -> Vector | None:
        if name not in embeddings:
            try:
                data = (pairs_csv.parent / name).read_bytes()
                embeddings[name] = analyze_bytes(
                    engine, data, policy.limits, policy.thresholds, single_face=False
                ).embedding
            except (OSError, ImageRejected):
                embeddings[name] = None
        return embeddings[name]

    scores: list[float] = []
    labels: list[bool] = []
    skipped: list[dict[str, str]] = []
    for row in rows:
        first, second = embedding(row["img_a"]), embedding(row["img_b"])
        if first is None or second is None:
            skipped.append({"img_a": row["img_a"], "img_b": row["img_b"]})
            continue
        scores.append(similarity(first, second))
        labels.append(row["same"].strip().lower() in {"1", "true", "yes", "same"})
    metrics = pair_metrics(scores, labels, threshold)
    return {
        "model_id": engine.model_id,
        **{
            key: round(value, 6) if isinstance(value, float) else value
            for key, value in vars(metrics).items()
        },
        "skipped_no_face": skipped,
    }

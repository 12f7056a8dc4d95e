"""Face enrollment and comparison over HTTP: multipart uploads, per-photo reports, and
every bad upload answered with problem+json and no change."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from evaluation.identity.consent import FACE_CONSENT_VERSION, consent_text
from evaluation.registry.staff import Role
from models.tables import AuditEntry, FaceTemplate
from tests.api.helpers import assert_problem, snapshot
from tests.face.corpus import IMAGES_DIR, PHONE_TRANSFORMS, encode, load, portraits
from tests.factories import CenterWithStaff, expert_payload


@pytest.fixture
def operator(center: CenterWithStaff) -> dict[str, str]:
    return center.headers(Role.OPERATOR)


@pytest.fixture
def expert_id(client: TestClient, operator: dict[str, str]) -> str:
    response = client.post("/api/v1/experts", json=expert_payload(), headers=operator)
    return str(response.json()["id"])


def _jpeg(name: str) -> tuple[str, bytes, str]:
    return (f"{name}.jpg", encode(portraits()[name]), "image/jpeg")


def _templates(db: Session) -> int:
    db.expire_all()
    return int(db.execute(select(func.count()).select_from(FaceTemplate)).scalar_one())


def _enroll(
    client: TestClient, expert_id: str, headers: dict[str, str], *files: Any, consent: str = "true"
) -> Any:
    return client.put(
        f"/api/v1/experts/{expert_id}/face",
        files=[("photos", file) for file in files],
        data={"consent": consent},
        headers=headers,
    )


def test_enroll_status_reenroll_and_remove(
    client: TestClient,
    operator: dict[str, str],
    expert_id: str,
    center: CenterWithStaff,
    db: Session,
) -> None:
    created = _enroll(
        client,
        expert_id,
        operator,
        _jpeg("yaoming-0"),
        ("side.png", PHONE_TRANSFORMS["png"](portraits()["yaoming-0"]), "image/png"),
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["photo_count"] == 2 and body["model_id"].startswith("insightface-buffalo-s/")
    assert all(photo["accepted"] and photo["issues"] == [] for photo in body["photos"])
    assert "embedding" not in created.text and "template" not in created.text

    status = client.get(
        f"/api/v1/experts/{expert_id}/face", headers=center.headers(Role.SUPERVISOR)
    )
    assert status.json()["photo_count"] == 2
    # The consent is recorded with the version of the text and the hash of its words.
    assert body["consent_version"] == status.json()["consent_version"] == FACE_CONSENT_VERSION
    assert status.json()["reference"] == "in-person"
    entry = db.execute(
        select(AuditEntry).where(AuditEntry.action == "expert.face_enrolled")
    ).scalar_one()
    assert entry.details["consent_version"] == FACE_CONSENT_VERSION
    assert entry.details["consent_sha256_zh"] == consent_text("zh").sha256

    again = _enroll(client, expert_id, operator, _jpeg("yaoming-0"))
    assert again.status_code == 200 and again.json()["photo_count"] == 1

    removed = client.delete(f"/api/v1/experts/{expert_id}/face", headers=operator)
    assert removed.status_code == 204
    assert_problem(
        client.get(f"/api/v1/experts/{expert_id}/face", headers=operator), 409, "face-not-enrolled"
    )


def test_refused_photos_are_explained_and_nothing_is_stored(
    client: TestClient, operator: dict[str, str], expert_id: str, db: Session
) -> None:
    before, templates = snapshot(db), _templates(db)
    dark = (portraits()["yaoming-0"] * 0.25).astype(np.uint8)
    response = _enroll(
        client,
        expert_id,
        operator,
        _jpeg("yaoming-0"),
        ("dark.jpg", encode(dark), "image/jpeg"),
        ("group.jpg", encode(load(IMAGES_DIR / "t1.jpg")), "image/jpeg"),
    )
    body = assert_problem(response, 422, "enrollment-rejected")
    codes = [[issue["code"] for issue in photo["issues"]] for photo in body["photos"]]
    assert codes[0] == [] and "too-dark" in codes[1] and "multiple-faces" in codes[2]
    assert "光线太暗" in response.text  # the Chinese message reaches the operator
    assert snapshot(db) == before and _templates(db) == templates


@pytest.mark.parametrize(
    ("upload", "status", "code"),
    [
        (
            ("x.gif", b"GIF89a\x01\x00\x01\x00\x00\x00\x00;", "image/gif"),
            422,
            "enrollment-rejected",
        ),
        (("x.txt", b"hello", "text/plain"), 422, "enrollment-rejected"),
    ],
)
def test_bad_photo_files_are_reported_per_photo(
    client: TestClient,
    operator: dict[str, str],
    expert_id: str,
    db: Session,
    upload: Any,
    status: int,
    code: str,
) -> None:
    before = snapshot(db)
    body = assert_problem(_enroll(client, expert_id, operator, upload), status, code)
    assert body["photos"][0]["accepted"] is False
    assert snapshot(db) == before


def test_enrollment_form_problems(
    client: TestClient, operator: dict[str, str], expert_id: str, db: Session
) -> None:
    before = snapshot(db)
    url = f"/api/v1/experts/{expert_id}/face"
    assert_problem(
        _enroll(client, expert_id, operator, _jpeg("t1-5"), consent="false"),
        422,
        "consent-required",
    )
    only_consent = {"consent": (None, "true")}  # multipart, but without photos
    assert_problem(client.put(url, files=only_consent, headers=operator), 422, "upload-missing")
    assert_problem(
        client.put(url, data={"consent": "true"}, headers=operator), 415, "unsupported-media-type"
    )
    assert_problem(
        client.put(url, json={"photos": []}, headers=operator), 415, "unsupported-media-type"
    )
    # Consent to an older text is not consent to the one in force.
    stale = client.put(
        url,
        files=[("photos", _jpeg("t1-5"))],
        data={"consent": "true", "consent_version": "face-2020-01"},
        headers=operator,
    )
    assert_problem(stale, 409, "consent-version-stale")
    six = [_jpeg("t1-5")] * 6
    assert_problem(_enroll(client, expert_id, operator, *six), 422, "enrollment-rejected")
    assert_problem(_enroll(client, "no-such-expert", operator, _jpeg("t1-5")), 404, "not-found")
    assert snapshot(db) == before


def test_oversized_upload_is_413(
    client: TestClient, operator: dict[str, str], expert_id: str, services: Any
) -> None:
    limit = services.settings.face_max_image_bytes * services.settings.face_max_enrollment_photos
    huge = ("huge.jpg", b"\xff\xd8" + b"\x00" * (limit + 100_000), "image/jpeg")
    assert_problem(_enroll(client, expert_id, operator, huge), 413, "request-too-large")


def test_compare_reports_similarity_and_each_face(
    client: TestClient, operator: dict[str, str]
) -> None:
    same = client.post(
        "/api/v1/face/compare",
        headers=operator,
        files={
            "image_a": _jpeg("t1-5"),
            "image_b": ("b.jpg", PHONE_TRANSFORMS["jpeg-q30"](portraits()["t1-5"]), "image/jpeg"),
        },
    ).json()
    assert same["same"] is True and same["similarity"] >= same["threshold"]
    assert [face["image"] for face in same["faces"]] == ["image_a", "image_b"]
    other = client.post(
        "/api/v1/face/compare",
        headers=operator,
        files={"image_a": _jpeg("t1-5"), "image_b": _jpeg("yaoming-0")},
    ).json()
    assert other["same"] is False and other["similarity"] < other["threshold"]


@pytest.mark.parametrize(
    ("image_b", "status", "code"),
    [
        (
            ("b.bmp", encode(portraits()["t1-5"], fmt="BMP"), "image/bmp"),
            415,
            "image-type-unsupported",
        ),
        (("b.jpg", b"\xff\xd8\xff\xe0 truncated", "image/jpeg"), 422, "image-unusable"),
        (
            ("b.jpg", encode(np.full((300, 300, 3), 127, np.uint8)), "image/jpeg"),
            422,
            "no-usable-face",
        ),
    ],
)
def test_compare_refuses_unusable_images(
    client: TestClient, operator: dict[str, str], image_b: Any, status: int, code: str
) -> None:
    response = client.post(
        "/api/v1/face/compare",
        headers=operator,
        files={"image_a": _jpeg("t1-5"), "image_b": image_b},
    )
    assert_problem(response, status, code)

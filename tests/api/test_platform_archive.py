"""A whole evaluation as the trading platform sees it (issue 27 item 5): every milestone
reaches the stand-in receiver in order (drawn, seated, scores frozen, report signed,
evidence ready) with hashes and never a member's name, and the archive (report, evidence
package, draw proof, manifest) is pushed to an archive endpoint, retried when it fails,
and to an S3 prefix (moto's server)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.deps import transaction
from api.jobs import deliver_webhooks, push_archives
from api.services import Services
from evaluation.kernel import outbox
from evaluation.registry.staff import Role
from evaluation.supervision.evidence import verify_package
from evaluation.trust import pki
from models.clock import FrozenClock
from models.tables import Expert, Project
from tests.api.committee import Committee, build_committee
from tests.api.test_documents_api import phone_of, sign
from tests.api.test_report_pages_api import _agreed
from tests.factories import CenterWithStaff
from tests.platform_standin import PlatformStandIn, running_platform
from tests.s3_server import S3Server

pytestmark = pytest.mark.slow

ARCHIVE_KEY = "evalsign-archive"
ARCHIVE_SECRET = "archive-secret-0123456789abcdef"


@pytest.fixture
def platform(clock: FrozenClock) -> Iterator[PlatformStandIn]:
    with running_platform(clock.now) as standin:
        yield standin


def _with(services: Services, **settings: Any) -> Services:
    return dataclasses.replace(services, settings=services.settings.model_copy(update=settings))


def _evaluate_and_sign(committee: Committee, db: Session, clock: FrozenClock) -> None:
    client = committee.client
    phones = _agreed(committee)
    report = client.post("/api/v1/evaluation/report", headers=phones[0])
    assert report.status_code == 201, report.text
    for member in committee.members:
        phone = phone_of(
            db, clock, committee.center, member["expert_id"], f"ar-{member['assignment_id'][:8]}"
        )
        signed = sign(client, report.json()["document_id"], phone)
        assert signed.status_code == 201, signed.text


def test_a_whole_evaluation_reaches_the_platform_in_order_and_its_archive_is_pushed(
    client: TestClient,
    center: CenterWithStaff,
    db: Session,
    clock: FrozenClock,
    services: Services,
    platform: PlatformStandIn,
    s3_server: S3Server,
) -> None:
    created = client.post(
        "/api/v1/webhooks/subscriptions",
        json={"url": f"{platform.url}/hooks"},
        headers=center.headers(Role.ADMIN),
    )
    assert created.status_code == 201, created.text
    platform.secrets[created.json()["id"]] = created.json()["secret"]
    platform.secrets[ARCHIVE_KEY] = ARCHIVE_SECRET
    committee = build_committee(client, center, db, clock, services)
    _evaluate_and_sign(committee, db, clock)
    rng = random.Random(3)

    # The archive endpoint fails first: the archive waits and is pushed on a later round.
    pushing = _with(
        services,
        archive_target=f"{platform.url}/archive",
        archive_key_id=ARCHIVE_KEY,
        archive_secret=SecretStr(ARCHIVE_SECRET),
    )
    platform.status = 500
    assert push_archives(pushing, rng) == 0
    log = client.get(
        f"/api/v1/projects/{committee.project_id}/platform-events",
        headers=center.headers(Role.SUPERVISOR),
    ).json()
    [queued] = log["archives"]
    assert queued["status"] == "pushing" and queued["attempts"] == 1
    assert "HTTP 500" in queued["last_error"]
    platform.status = 200
    clock.advance(timedelta(minutes=5))
    assert push_archives(pushing, rng) == 1
    assert platform.bad_signatures == []

    prefix = f"/archive/{committee.project_id}/{queued['id']}/"
    names = ["report.pdf", "evidence.zip", "draw-proof.json", "manifest.json"]
    assert sorted(platform.files) == sorted(prefix + name for name in names)
    manifest = json.loads(platform.files[prefix + "manifest.json"])
    for entry in manifest["files"]:
        data = platform.files[prefix + entry["name"]]
        assert hashlib.sha256(data).hexdigest() == entry["sha256"]
        assert len(data) == entry["size"]
    package = platform.files[prefix + "evidence.zip"]
    root = pki.load_certificate(pki.center_root(db, center.id).certificate_der)
    checked = verify_package(package, root)
    assert checked.ok, checked.checks

    assert deliver_webhooks(services, rng) == 5
    events = platform.events()
    assert [e["type"].removeprefix("cn.evalsign.") for e in events] == [
        "draw.completed",
        "committee.seated",
        "scores.frozen",
        "report.signed",
        "evidence.ready",
    ]
    assert {e["subject"] for e in events} == {committee.project_id}
    assert len({e["id"] for e in events}) == 5
    seated, frozen, report, ready = (e["data"] for e in events[1:])
    assert seated["seats"] == 5
    assert frozen["results_sha256"] and "standings" not in frozen
    assert report["sha256"] == manifest["files"][0]["sha256"]
    assert ready["package_sha256"] == hashlib.sha256(package).hexdigest()
    drawn = events[0]["data"]
    proof = platform.files[prefix + "draw-proof.json"]
    assert drawn["proof_sha256"] == hashlib.sha256(proof).hexdigest()
    bodies = "".join(r.body.decode() for r in platform.received if r.method == "POST")
    for expert_id, name in db.execute(select(Expert.id, Expert.name)).all():
        assert expert_id not in bodies and name not in bodies

    # The same archive to an object storage prefix instead.
    with transaction(services) as tx:
        project = tx.get(Project, committee.project_id)
        assert project is not None
        again = outbox.queue_archive(tx, clock.now(), project, "report-signed", None)
        again_id = again.id
    location = s3_server.new_location()
    assert push_archives(_with(services, archive_target=location), rng) == 1
    bucket, _, key_prefix = location.removeprefix("s3://").partition("/")
    listed = s3_server.client().list_objects_v2(Bucket=bucket, Prefix=key_prefix)
    keys = sorted(o["Key"] for o in listed["Contents"])
    assert keys == sorted(f"{key_prefix}/{committee.project_id}/{again_id}/{n}" for n in names)
    stored = (
        s3_server.client()
        .get_object(
            Bucket=bucket, Key=f"{key_prefix}/{committee.project_id}/{again_id}/evidence.zip"
        )["Body"]
        .read()
    )
    assert verify_package(stored, root).ok

"""Two API replicas with their own data directories, sharing only PostgreSQL (or the test
database) and the S3 bucket: each signature is prepared on one and finished on the other,
and every revision downloads from both."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from api.app import create_app
from api.services import Services, build_services
from models.clock import FrozenClock
from models.settings import Settings
from signing.keyring import Keyring

# `setup` is the documents tests' fixture: three experts with credentials.
from tests.api.test_documents_api import phone_of, setup, slots_for, upload  # noqa: F401
from tests.conftest import store_location
from tests.factories import CenterWithStaff

pytestmark = pytest.mark.slow


@pytest.fixture
def document_store(request: pytest.FixtureRequest) -> str | None:
    return store_location(request, "s3")


def test_two_replicas_sharing_only_the_database_and_the_bucket_sign_in_turn(
    client: TestClient,
    setup: dict[str, Any],  # noqa: F811 (the imported fixture)
    center: CenterWithStaff,
    db: Session,
    clock: FrozenClock,
    settings: Settings,
    services: Services,
    keyring: Keyring,
    tmp_path: Path,
) -> None:
    # The second replica: its own data directory, the same database and bucket.
    other_settings = settings.model_copy(update={"data_dir": tmp_path / "replica-b"})
    other = build_services(
        other_settings,
        engine=services.engine,
        session_factory=services.session_factory,
        clock=clock,
        keyring=keyring,
    )
    operator, experts = setup["operator"], setup["experts"]
    with TestClient(create_app(other)) as replica_b:
        document = upload(client, operator, slots_for(experts)).json()
        started = replica_b.post(f"/api/v1/documents/{document['id']}/start", headers=operator)
        assert started.json()["status"] == "signing"
        phones = [phone_of(db, clock, center, e, f"phone-{n}") for n, e in enumerate(experts)]
        # Each signature is prepared on one replica and finished on the other.
        for n, phone in enumerate(phones):
            first, second = (client, replica_b) if n % 2 else (replica_b, client)
            issued = first.post(
                f"/api/v1/documents/{document['id']}/approval", json={}, headers=phone
            )
            assert issued.status_code == 201, issued.text
            body = issued.json()
            approval = {"nonce": body["nonce"], "assertion": phone.passkey.get(body["publicKey"])}
            signed = second.post(
                f"/api/v1/documents/{document['id']}/signatures",
                json={"passkey": approval},
                headers=phone,
            )
            assert signed.status_code == 201, signed.text
        final = signed.json()["document"]
        assert final["status"] == "completed" and final["revision"] == 4
        for revision in final["revisions"]:
            for replica in (client, replica_b):
                response = replica.get(
                    f"/api/v1/documents/{document['id']}/content?revision={revision['number']}",
                    headers=operator,
                )
                assert hashlib.sha256(response.content).hexdigest() == revision["sha256"]
        report = replica_b.post(
            "/api/v1/validate",
            files={"file": ("signed.pdf", response.content, "application/pdf")},
            headers=operator,
        ).json()
        assert report["verdict"] == "valid" and len(report["signatures"]) == 3

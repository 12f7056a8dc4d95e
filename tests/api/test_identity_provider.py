"""Remote enrollment with the center's identity provider configured (the stand-in of
tests/identity_provider.py, over real HTTP): the provider's match confirms the person, its
no-match refuses them, and when it cannot decide an operator still does."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import select

from api.services import Services
from evaluation.registry.experts import id_number_context
from evaluation.registry.staff import Role
from models.settings import Settings
from models.tables import AuditEntry, Expert, FaceTemplate
from tests.api.contracting import DEVICE, Award, bind_on_link, seal_with
from tests.api.helpers import assert_problem
from tests.api.test_remote_enrollment import HOLDER, _card, _check, _scan
from tests.face.corpus import id_card_photo, portraits
from tests.identity_provider import StandInProvider, running_provider


@pytest.fixture
def provider() -> Iterator[StandInProvider]:
    with running_provider() as provider:
        yield provider


@pytest.fixture
def settings(settings: Settings, provider: StandInProvider) -> Settings:
    return settings.model_copy(
        update={
            "identity_verifier_url": provider.url,
            "identity_verifier_token": SecretStr(provider.token),
            "identity_verifier_timeout_s": 2.0,
        }
    )


def _registered(award: Award, services: Services, provider: StandInProvider) -> str:
    """The tenderer's representative is a citizen the provider knows; returns their id."""
    person_id = str(award.representatives["tenderer"]["person_id"])
    person = award.db.get(Expert, person_id)
    assert person is not None
    number = services.cipher.decrypt(person.id_number_ciphertext, id_number_context(person_id))
    provider.citizens[number] = person.name
    return person_id


def _enroll_remotely(award: Award) -> tuple[dict[str, Any], dict[str, str]]:
    """Card, then a passed live check against it; returns the contract and the face
    session's headers."""
    contract, headers = _scan(award)
    assert _card(award, headers, id_card_photo(portraits()[HOLDER])).status_code == 201
    result = _check(award, headers, HOLDER)
    assert result["passed"], result["reasons"]
    token = result["session"]["token"]
    return contract, {"Authorization": f"Bearer {token}", "X-Device-Id": DEVICE}


def _review(award: Award, person: str, role: Role = Role.OPERATOR) -> dict[str, Any]:
    award.db.expire_all()
    got = award.client.get(
        f"/api/v1/experts/{person}/face/remote-enrollment", headers=award.center.headers(role)
    )
    assert got.status_code == 200, got.text
    return dict(got.json())


def _entries(award: Award, action: str) -> list[AuditEntry]:
    award.db.expire_all()
    return list(award.db.execute(select(AuditEntry).where(AuditEntry.action == action)).scalars())


def test_the_providers_match_confirms_the_enrollment_and_the_seal_follows(
    award: Award, services: Services, provider: StandInProvider
) -> None:
    person = _registered(award, services, provider)
    contract, face = _enroll_remotely(award)
    asked = provider.asked[0]
    assert provider.citizens[asked["id_number"]] == asked["name"] == "tenderer代表"
    review = _review(award, person)
    assert review["decision"] == "confirmed" and review["decided_by"] == "identity-provider"
    assert (review["provider_outcome"], review["provider_reference"]) == ("match", "standin-0000")
    assert review["provider_score"] == 0.93
    assert review["frame_jpeg_base64"] is None  # erased with the decision, as an operator's
    template = award.db.get(FaceTemplate, person)
    assert template is not None and template.confirmed_by == "identity-provider"
    # Confirmed, the representative binds the phone on the link and seals with it.
    phone = bind_on_link(award.client, contract["id"], face)
    signed = seal_with(award.client, contract["id"], face, phone)
    assert signed.status_code == 201, signed.text
    (entry,) = _entries(award, "face.remote_enrollment_confirmed")
    assert entry.actor == "identity-provider"
    assert entry.details["provider_reference"] == "standin-0000"
    # Supervisors see who decided (not the faces).
    seen = _review(award, person, Role.SUPERVISOR)
    assert seen["decided_by"] == "identity-provider" and seen["card_jpeg_base64"] is None


def test_the_providers_no_match_refuses_the_enrollment(
    award: Award, provider: StandInProvider
) -> None:
    """Someone else opened the link first with their own card and face: the citizen registry
    does not know that face under the representative's name and ID number."""
    person = award.representatives["tenderer"]["person_id"]
    contract, face = _enroll_remotely(award)  # the provider knows no one: no-match
    review = _review(award, person)
    assert review["decision"] == "rejected" and review["decided_by"] == "identity-provider"
    assert review["provider_outcome"] == "no-match"
    assert review["provider_reference"] == "standin-0000"
    assert award.db.get(FaceTemplate, person) is None  # they start over
    refused = award.client.post(f"/api/v1/contracts/{contract['id']}/signatures", headers=face)
    assert_problem(refused, 401, "face-session-invalid")
    (entry,) = _entries(award, "face.remote_enrollment_rejected")
    assert entry.actor == "identity-provider" and entry.details["provider_outcome"] == "no-match"


def test_a_provider_that_hangs_leaves_the_decision_to_an_operator(
    award: Award, services: Services, provider: StandInProvider
) -> None:
    person = _registered(award, services, provider)
    provider.mode = "hang"
    contract, face = _enroll_remotely(award)
    review = _review(award, person)
    assert review["decision"] is None and review["provider_outcome"] == "unavailable"
    assert review["frame_jpeg_base64"]  # still there for the operator to compare
    early = award.client.post(f"/api/v1/contracts/{contract['id']}/approval", headers=face)
    assert_problem(early, 409, "remote-enrollment-unconfirmed")  # never confirmed by default
    (entry,) = _entries(award, "face.remote_enrollment_provider_unavailable")
    assert entry.details["reason"] == "timeout" and entry.actor == "identity-provider"
    decided = award.client.post(
        f"/api/v1/experts/{person}/face/remote-enrollment/decision",
        json={"decision": "confirm", "note": "核验服务超时，人工比对并电话核实"},
        headers=award.operator,
    )
    assert decided.status_code == 200, decided.text
    assert decided.json()["decided_by"].startswith("staff:")
    signed = seal_with(
        award.client, contract["id"], face, bind_on_link(award.client, contract["id"], face)
    )
    assert signed.status_code == 201, signed.text


def test_a_refused_token_is_no_decision_and_is_logged(
    award: Award, services: Services, provider: StandInProvider, caplog: pytest.LogCaptureFixture
) -> None:
    person = _registered(award, services, provider)
    provider.token = "rotated-at-the-provider"
    with caplog.at_level(logging.ERROR, logger="evalsign.identity"):
        _enroll_remotely(award)
    assert provider.refused_tokens == 1
    assert "refused our token" in caplog.text
    review = _review(award, person)
    assert review["decision"] is None and review["provider_outcome"] == "unavailable"
    (entry,) = _entries(award, "face.remote_enrollment_provider_unavailable")
    assert entry.details["reason"] == "provider-refused-token"


def test_a_garbled_answer_is_never_taken_for_a_match(
    award: Award, services: Services, provider: StandInProvider
) -> None:
    person = _registered(award, services, provider)
    provider.mode = "raw"
    provider.raw = b'{"result": "match", "reference": null, "score": 1.0}'
    contract, face = _enroll_remotely(award)
    review = _review(award, person)
    assert review["decision"] is None and review["provider_outcome"] == "unavailable"
    early = award.client.post(f"/api/v1/contracts/{contract['id']}/approval", headers=face)
    assert_problem(early, 409, "remote-enrollment-unconfirmed")

"""An awarded project whose units have seals and one authorized representative each: what
the contract tests build on (tests/api/test_contracts_api.py, test_contract_pages_api.py).
The award is set directly: the evaluation that leads to it is tested the real way in
tests/api/test_report_api.py and by the demo."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api.services import Services
from evaluation.kernel.tokens import hash_token
from evaluation.registry.staff import Role
from models.clock import FrozenClock
from models.tables import DocumentRevision, Project, VerifiedSession
from tests.api.test_projects_api import project_payload
from tests.api.test_units_api import authorize, representative_metadata
from tests.factories import (
    CenterWithStaff,
    bound_phone,
    credit_code,
    establish_pki,
    face_session,
)

DEVICE = "phone-contract-1"


def phone(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "X-Device-Id": DEVICE}


@dataclass
class Award:
    client: TestClient
    center: CenterWithStaff
    db: Session
    clock: FrozenClock
    project_id: str
    tenderer: dict[str, Any]  # unit
    winner: dict[str, Any]
    loser: dict[str, Any]
    representatives: dict[str, dict[str, Any]]  # tenderer / winner -> authorization
    phones: dict[str, Any] = field(default_factory=dict)  # person -> bound authenticator

    @property
    def operator(self) -> dict[str, str]:
        return self.center.headers(Role.OPERATOR)

    def contract(self, **body: Any) -> Any:
        return self.client.post(
            f"/api/v1/projects/{self.project_id}/contracts",
            json={"amount_yuan": "12345678.90", **body},
            headers=self.operator,
        )

    def face(self, party: str, **options: Any) -> str:
        token, _ = face_session(
            self.db,
            self.clock,
            self.center.id,
            self.representatives[party]["person_id"],
            device_id=DEVICE,
            **options,
        )
        return token

    def sign(self, contract_id: str, token: str) -> Any:
        """The representative signs for their party as the phone page does: each mark (the
        seal, then their own signature) approved by their bound phone's passkey, then
        signed. The first refusal is the answer; else the last signature's."""
        authenticator = self.bound(self._person_of(token))
        return seal_with(self.client, contract_id, phone(token), authenticator)

    def bound(self, person_id: str) -> Any:
        """The person's phone (DEVICE), bound to them once; its authenticator."""
        if person_id not in self.phones:
            self.phones[person_id] = bound_phone(
                self.db, self.clock, None, self.center.id, person_id, device_id=DEVICE
            )
        return self.phones[person_id]

    def _person_of(self, token: str) -> str:
        return str(
            self.db.execute(
                select(VerifiedSession.expert_id).where(
                    VerifiedSession.token_hash == hash_token(token)
                )
            ).scalar_one()
        )

    def revisions(self) -> int:
        self.db.expire_all()
        return int(self.db.execute(select(func.count()).select_from(DocumentRevision)).scalar_one())


def bind_on_link(client: TestClient, contract_id: str, face: dict[str, str]) -> Any:
    """The representative binds the phone of this face check on their contract link (as
    the phone page does once the center has confirmed them); its authenticator."""
    from signing.soft_authenticator import SoftwareAuthenticator
    from tests.factories import PHONE_ORIGIN

    url = f"/api/v1/contracts/{contract_id}/passkey-binding"
    options = client.post(url, headers=face)
    assert options.status_code == 201, options.text
    authenticator = SoftwareAuthenticator(PHONE_ORIGIN)
    credential = authenticator.create(options.json()["publicKey"])
    bound = client.post(
        f"{url}/complete",
        json={"enrollment_id": options.json()["enrollment_id"], "credential": credential},
        headers=face,
    )
    assert bound.status_code == 201, bound.text
    return authenticator


def seal_with(
    client: TestClient, contract_id: str, face: dict[str, str], authenticator: Any
) -> Any:
    """Each of the party's marks approved by the phone, then signed; the first refusal or
    the last signature's answer."""
    url = f"/api/v1/contracts/{contract_id}"
    while True:
        issued = client.post(f"{url}/approval", headers=face)
        if issued.status_code != 201:
            return issued
        body = issued.json()
        approval = {"nonce": body["nonce"], "assertion": authenticator.get(body["publicKey"])}
        signed = client.post(f"{url}/signatures", json={"passkey": approval}, headers=face)
        if signed.status_code != 201 or signed.json()["remaining"] == 0:
            return signed


def _seal(client: TestClient, headers: dict[str, str], unit_id: str) -> None:
    made = client.post(f"/api/v1/units/{unit_id}/seal/generate", json={}, headers=headers)
    assert made.status_code == 200, made.text
    issued = client.post(f"/api/v1/units/{unit_id}/seal/credentials", headers=headers)
    assert issued.status_code == 201, issued.text


def build_award(
    client: TestClient,
    center: CenterWithStaff,
    db: Session,
    clock: FrozenClock,
    services: Services,
) -> Award:
    """A project whose report is signed, both parties' seals ready, one representative
    each."""
    establish_pki(db, clock, services, center)
    operator = center.headers(Role.OPERATOR)
    codes = [credit_code(), credit_code(), credit_code()]
    payload = project_payload(
        tenderer={"name": "某市教育局", "credit_code": codes[0]},
        bidders=[
            {"name": "甲建设集团有限公司", "credit_code": codes[1]},
            {"name": "乙建筑工程有限公司", "credit_code": codes[2]},
        ],
    )
    created = client.post("/api/v1/projects", json=payload, headers=operator)
    assert created.status_code == 201, created.text
    project = db.get(Project, created.json()["id"])
    assert project is not None
    project.status = "completed"
    project.results = {"recommended": [codes[1], codes[2]]}
    db.commit()
    units = {u["credit_code"]: u for u in client.get("/api/v1/units", headers=operator).json()}
    tenderer, winner, loser = (units[c] for c in codes)
    for unit in (tenderer, winner):
        _seal(client, operator, unit["id"])
    reps = {}
    for party, unit in (("tenderer", tenderer), ("winner", winner)):
        row = authorize(client, center, unit["id"], representative_metadata(name=f"{party}代表"))
        assert row.status_code == 201, row.text
        reps[party] = row.json()
    return Award(client, center, db, clock, project.id, tenderer, winner, loser, reps)

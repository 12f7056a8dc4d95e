"""Report signing as prepare -> approve -> finish: the approval request prepares the
signature on the document as it stands and the phone's passkey approves the digest of its
signed attributes; the signing request finishes exactly that signature, or is refused when
another signature landed in between. Real PKI, real PDFs, a software passkey."""

from __future__ import annotations

import base64
import hashlib
import io
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models.clock import FrozenClock
from models.tables import DocumentRevision, PasskeyUse, PreparedSignature, SignatureActivation
from signing.pades import approved_digests
from tests.api.helpers import SignerPhone, assert_problem
from tests.api.test_documents_api import phone_of, setup, slots_for, upload  # noqa: F401
from tests.factories import CenterWithStaff

pytestmark = pytest.mark.slow


def approve(client: TestClient, document_id: str, phone: SignerPhone) -> dict[str, Any]:
    issued = client.post(f"/api/v1/documents/{document_id}/approval", json={}, headers=phone)
    assert issued.status_code == 201, issued.text
    body = issued.json()
    return {"nonce": body["nonce"], "assertion": phone.passkey.get(body["publicKey"])}


def finish(client: TestClient, document_id: str, phone: SignerPhone, approval: Any) -> Any:
    return client.post(
        f"/api/v1/documents/{document_id}/signatures", json={"passkey": approval}, headers=phone
    )


def revisions(db: Session, document_id: str) -> int:
    db.expire_all()
    return db.execute(
        select(func.count())
        .select_from(DocumentRevision)
        .where(DocumentRevision.document_id == document_id)
    ).scalar_one()


def test_the_passkey_approves_the_very_signature_that_is_made(
    client: TestClient,
    setup: dict[str, Any],  # noqa: F811
    center: CenterWithStaff,
    db: Session,
    clock: FrozenClock,
) -> None:
    operator, experts = setup["operator"], setup["experts"]
    document = upload(client, operator, slots_for(experts)).json()
    client.post(f"/api/v1/documents/{document['id']}/start", headers=operator)
    phone = phone_of(db, clock, center, experts[0], "phone-a")

    approval = approve(client, document["id"], phone)
    # Preparing writes nothing into the document: its revision is only kept aside.
    assert revisions(db, document["id"]) == 1
    kept = db.execute(select(PreparedSignature)).scalar_one()
    assert kept.base_revision == 0 and kept.revision and kept.finished_at is None

    signed = finish(client, document["id"], phone, approval)
    assert signed.status_code == 201, signed.text
    assert revisions(db, document["id"]) == 2
    db.expire_all()
    assert kept.finished_at is not None and kept.revision is None
    # The approved hash is the SHA-256 of the signed attributes the PDF carries, and the
    # SAD was granted for that same digest.
    content = client.get(f"/api/v1/documents/{document['id']}/content", headers=operator).content
    field = signed.json()["slot"]["field_name"]
    digest = approved_digests(io.BytesIO(content))[field]
    assert digest.hex() == kept.approval_digest
    use = db.execute(select(PasskeyUse).where(PasskeyUse.purpose == "signing")).scalar_one()
    assert use.evidence["approved"]["hashes"] == [base64.b64encode(digest).decode()]
    activation = db.execute(select(SignatureActivation)).scalar_one()
    assert activation.passkey_use_id == use.id
    assert hashlib.sha256(content).hexdigest() == signed.json()["revision"]["sha256"]

    # The same approval cannot finish a second signature.
    assert_problem(finish(client, document["id"], phone, approval), 403, "no-slot-for-signer")


def test_a_signature_prepared_before_another_landed_is_refused_then_approved_again(
    client: TestClient,
    setup: dict[str, Any],  # noqa: F811
    center: CenterWithStaff,
    db: Session,
    clock: FrozenClock,
) -> None:
    operator, experts = setup["operator"], setup["experts"]
    document = upload(client, operator, slots_for(experts)).json()
    client.post(f"/api/v1/documents/{document['id']}/start", headers=operator)
    first = phone_of(db, clock, center, experts[0], "phone-a")
    second = phone_of(db, clock, center, experts[1], "phone-b")

    early = approve(client, document["id"], second)
    landed = finish(client, document["id"], first, approve(client, document["id"], first))
    assert landed.status_code == 201, landed.text

    late = finish(client, document["id"], second, early)
    problem = assert_problem(late, 409, "document-moved-on")
    assert (problem["prepared_on"], problem["current_revision"]) == (0, 1)
    assert revisions(db, document["id"]) == 2
    assert db.execute(select(func.count()).select_from(SignatureActivation)).scalar_one() == 1

    # What the phone page does next: approve the document as it now stands.
    again = finish(client, document["id"], second, approve(client, document["id"], second))
    assert again.status_code == 201, again.text
    assert revisions(db, document["id"]) == 3


def test_an_approval_finishes_only_its_own_prepared_signature(
    client: TestClient,
    setup: dict[str, Any],  # noqa: F811
    center: CenterWithStaff,
    db: Session,
    clock: FrozenClock,
) -> None:
    operator, experts = setup["operator"], setup["experts"]
    one = upload(client, operator, slots_for(experts)).json()
    other = upload(client, operator, slots_for(experts)).json()
    for document in (one, other):
        client.post(f"/api/v1/documents/{document['id']}/start", headers=operator)
    phone = phone_of(db, clock, center, experts[0], "phone-a")
    approval = approve(client, one["id"], phone)

    # An approval of one document does not sign another.
    assert_problem(finish(client, other["id"], phone, approval), 409, "signature-not-prepared")
    # Nor does a nonce nobody issued, nor another member's approval.
    forged = {**approval, "nonce": "x" * 32}
    assert_problem(finish(client, one["id"], phone, forged), 409, "signature-not-prepared")
    colleague = phone_of(db, clock, center, experts[1], "phone-b")
    assert_problem(finish(client, one["id"], colleague, approval), 409, "signature-not-prepared")
    # An assertion over the challenge of another approval fails the passkey check.
    second = approve(client, one["id"], phone)
    crossed = {"nonce": second["nonce"], "assertion": approval["assertion"]}
    assert_problem(finish(client, one["id"], phone, crossed), 403, "passkey-challenge")
    assert revisions(db, one["id"]) == 1 and revisions(db, other["id"]) == 1

    # The approval still works where it belongs.
    assert finish(client, one["id"], phone, second).status_code == 201

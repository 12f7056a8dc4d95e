"""Small assertions shared by the API tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient
from httpx2 import Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from evaluation.documents.local_store import LocalDocumentStore
from evaluation.documents.s3_store import S3DocumentStore
from evaluation.documents.store import DocumentStore
from models.tables import AnonymousRefusal, AuditEntry, Expert, ExpertSpecialty, StaffToken


def assert_problem(response: Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["code"] == code
    assert body["type"] == f"/problems/{code}"
    assert body["title"] and body["detail"]
    assert body["request_id"] == response.headers["x-request-id"]
    return body


def anonymous_refusals(db: Session, action: str | None = None) -> list[AnonymousRefusal]:
    """The tallies of refused anonymous requests (per minute, source, action, reason)."""
    db.expire_all()
    query = select(AnonymousRefusal).order_by(AnonymousRefusal.first_at, AnonymousRefusal.reason)
    if action is not None:
        query = query.where(AnonymousRefusal.action == action)
    return list(db.execute(query).scalars())


def refused_reasons(db: Session, action: str | None = None) -> dict[str, int]:
    """How many anonymous requests were refused, by reason."""
    counts: dict[str, int] = {}
    for row in anonymous_refusals(db, action):
        counts[row.reason] = counts.get(row.reason, 0) + row.count
    return counts


def snapshot(db: Session) -> tuple[int, int, int, int]:
    """Row counts of everything a request could change: equal before and after = unchanged."""
    db.expire_all()
    return tuple(  # type: ignore[return-value]
        db.execute(select(func.count()).select_from(model)).scalar_one()
        for model in (Expert, ExpertSpecialty, AuditEntry, StaffToken)
    )


class SignerPhone(dict[str, str]):
    """A phone's headers (its face session and device id) that also holds the passkey
    bound to its person, as `passkey`."""

    passkey: Any


def sign_document(
    client: TestClient, document_id: str, phone: SignerPhone, slot_id: str | None = None
) -> Any:
    """Approve with the phone's passkey, then sign; a refused approval is the answer."""
    issued = client.post(
        f"/api/v1/documents/{document_id}/approval", json={"slot_id": slot_id}, headers=phone
    )
    if issued.status_code != 201:
        return issued
    body = issued.json()
    approval = {"nonce": body["nonce"], "assertion": phone.passkey.get(body["publicKey"])}
    return client.post(
        f"/api/v1/documents/{document_id}/signatures",
        json={"slot_id": slot_id, "passkey": approval},
        headers=phone,
    )


def passkey_for_hashes(
    client: TestClient,
    headers: dict[str, str],
    phone: Any,
    credential_id: str,
    hashes: list[str],
) -> dict[str, Any]:
    """The bound phone's approval of exactly these hashes, as a CSC client gets it."""
    issued = client.post(
        "/csc/v2/credentials/passkeyChallenge",
        json={"credentialID": credential_id, "hashes": hashes},
        headers=headers,
    )
    assert issued.status_code == 200, issued.text
    body = issued.json()
    return {"nonce": body["nonce"], "assertion": phone.get(body["publicKey"])}


def passkey_for_document(
    client: TestClient,
    headers: dict[str, str],
    phone: Any,
    document_id: str,
    slot_id: str | None = None,
) -> dict[str, Any]:
    """The bound phone's approval of signing the document as it stands."""
    issued = client.post(
        f"/api/v1/documents/{document_id}/approval", json={"slot_id": slot_id}, headers=headers
    )
    assert issued.status_code == 201, issued.text
    body = issued.json()
    return {"nonce": body["nonce"], "assertion": phone.get(body["publicKey"])}


def tamper_with_upload(
    store: DocumentStore, document_id: str, change: Callable[[bytearray], None]
) -> None:
    """Change the stored upload of a document behind the service's back, as someone with
    write access to its disk or bucket could (the local cache of a piece included)."""
    if isinstance(store, LocalDocumentStore):
        [path] = (store.root / document_id[:2] / document_id).glob("000000000000-*.pdf")
        data = bytearray(path.read_bytes())
        change(data)
        path.write_bytes(bytes(data))
        return
    assert isinstance(store, S3DocumentStore)
    listed = store.client.list_objects_v2(
        Bucket=store.bucket, Prefix=f"{store.prefix}{document_id}/000000000000-"
    )
    [key] = [entry["Key"] for entry in listed["Contents"]]
    data = bytearray(store.client.get_object(Bucket=store.bucket, Key=key)["Body"].read())
    change(data)
    store.client.put_object(Bucket=store.bucket, Key=key, Body=bytes(data))
    for cached in store.cache.glob("*.pdf"):
        cached.unlink()

"""Units over HTTP: registration by unified social credit code (GB 32100 check character),
duplicates, projects linked to units, representatives' authorizations with their letters,
and organization seals (picture and credential)."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api.services import Services
from evaluation.kernel.actions import Action
from evaluation.registry.staff import Role
from models.clock import FrozenClock
from models.tables import AuditEntry, Document, Expert, Unit, UnitAuthorization
from tests.api.helpers import assert_problem
from tests.api.test_projects_api import project_payload
from tests.factories import (
    CenterWithStaff,
    credit_code,
    establish_pki,
    id_number,
    make_pdf,
    phone,
)

# GB 32100-2015's own example, and one with its check character changed.
STANDARD_EXAMPLE = "91350100M000100Y43"


def _counts(db: Session) -> tuple[int, ...]:
    db.expire_all()
    return tuple(
        db.execute(select(func.count()).select_from(m)).scalar_one()
        for m in (Unit, UnitAuthorization, Expert, Document, AuditEntry)
    )


def register(client: TestClient, center: CenterWithStaff, **overrides: Any) -> Any:
    body = {
        "name": "某市建设集团有限公司",
        "credit_code": credit_code(),
        "legal_representative": "王建国",
        "contacts": [{"name": "李秘书", "phone": phone(), "role": "投标联系人"}],
        **overrides,
    }
    return client.post("/api/v1/units", json=body, headers=center.headers(Role.OPERATOR))


def test_register_list_get_and_update_a_unit(client: TestClient, center: CenterWithStaff) -> None:
    created = register(client, center, credit_code=STANDARD_EXAMPLE)
    assert created.status_code == 201, created.text
    unit = created.json()
    assert unit["credit_code"] == STANDARD_EXAMPLE and unit["seal_source"] is None
    listed = client.get("/api/v1/units?q=建设集团", headers=center.headers(Role.SUPERVISOR))
    assert [u["id"] for u in listed.json()] == [unit["id"]]
    by_code = client.get(
        f"/api/v1/units?q={STANDARD_EXAMPLE.lower()}", headers=center.headers(Role.SUPERVISOR)
    )
    assert [u["id"] for u in by_code.json()] == [unit["id"]]
    changed = client.patch(
        f"/api/v1/units/{unit['id']}",
        json={"legal_representative": "赵新"},
        headers=center.headers(Role.OPERATOR),
    )
    assert changed.status_code == 200 and changed.json()["legal_representative"] == "赵新"
    assert changed.json()["credit_code"] == STANDARD_EXAMPLE


@pytest.mark.parametrize(
    "code",
    [
        STANDARD_EXAMPLE[:-1] + ("X" if STANDARD_EXAMPLE[-1] != "X" else "Y"),  # check char
        "91350100M000100Y4",  # 17 characters
        "91350100M00010OY43",  # O is not in the charset
        "91350100I000100Y43",  # nor is I
        "",
    ],
)
def test_a_bad_credit_code_is_422_and_nothing_is_kept(
    client: TestClient, center: CenterWithStaff, db: Session, code: str
) -> None:
    before = _counts(db)
    assert_problem(register(client, center, credit_code=code), 422, "validation-failed")
    assert _counts(db) == before


def test_a_lower_case_credit_code_is_kept_upper_case(
    client: TestClient, center: CenterWithStaff
) -> None:
    code = credit_code()
    created = register(client, center, credit_code=code.lower())
    assert created.status_code == 201 and created.json()["credit_code"] == code


def test_a_duplicate_credit_code_is_409(
    client: TestClient, center: CenterWithStaff, db: Session
) -> None:
    code = credit_code()
    first = register(client, center, credit_code=code)
    before = _counts(db)
    body = assert_problem(register(client, center, credit_code=code), 409, "duplicate-unit")
    assert body["unit_id"] == first.json()["id"]
    assert _counts(db) == before


def test_the_same_credit_code_in_another_center_is_another_unit(
    client: TestClient, center: CenterWithStaff, other_center: CenterWithStaff
) -> None:
    code = credit_code()
    assert register(client, center, credit_code=code).status_code == 201
    assert register(client, other_center, credit_code=code).status_code == 201
    mine = client.get("/api/v1/units", headers=center.headers(Role.SUPERVISOR)).json()
    assert [u["credit_code"] for u in mine] == [code]


def test_supervisors_read_units_but_never_write(
    client: TestClient, center: CenterWithStaff
) -> None:
    refused = client.post(
        "/api/v1/units",
        json={"name": "某公司", "credit_code": credit_code()},
        headers=center.headers(Role.SUPERVISOR),
    )
    assert_problem(refused, 403, "role-forbidden")


def test_a_project_links_its_parties_to_units_registering_new_ones(
    client: TestClient, center: CenterWithStaff, db: Session
) -> None:
    tenderer, first, second = credit_code(), credit_code(), credit_code()
    known = register(client, center, name="甲建设集团有限公司", credit_code=first).json()
    payload = project_payload(
        tenderer={"name": "某市教育局", "credit_code": tenderer},
        bidders=[
            {"name": "甲建设集团有限公司", "credit_code": first},
            {"name": "乙建筑工程有限公司", "credit_code": second},
        ],
    )
    created = client.post("/api/v1/projects", json=payload, headers=center.headers(Role.OPERATOR))
    assert created.status_code == 201, created.text
    units = {
        u["credit_code"]: u
        for u in client.get("/api/v1/units", headers=center.headers(Role.SUPERVISOR)).json()
    }
    assert set(units) == {tenderer, first, second}
    project = created.json()
    assert project["tenderer_unit_id"] == units[tenderer]["id"]
    assert [b["unit_id"] for b in project["bidders"]] == [known["id"], units[second]["id"]]


def test_a_project_naming_a_registered_code_differently_is_refused(
    client: TestClient, center: CenterWithStaff, db: Session
) -> None:
    code = credit_code()
    register(client, center, name="甲建设集团有限公司", credit_code=code)
    payload = project_payload(
        bidders=[
            {"name": "甲建没集团有限公司", "credit_code": code},  # a typo in the name
            {"name": "乙建筑工程有限公司", "credit_code": credit_code()},
        ],
    )
    before = _counts(db)
    refused = client.post("/api/v1/projects", json=payload, headers=center.headers(Role.OPERATOR))
    body = assert_problem(refused, 409, "unit-name-mismatch")
    assert "甲建设集团有限公司" in body["detail"]
    assert _counts(db) == before


# --- representatives -----------------------------------------------------------------------


def representative_metadata(**overrides: Any) -> dict[str, Any]:
    start = datetime(2026, 11, 1, tzinfo=UTC)
    return {
        "name": "陈授权",
        "id_number": id_number(),
        "phone": phone(),
        "scope": "contracts",
        "valid_from": start.isoformat(),
        "valid_until": (start + timedelta(days=365)).isoformat(),
        **overrides,
    }


def authorize(
    client: TestClient,
    center: CenterWithStaff,
    unit_id: str,
    metadata: dict[str, Any],
    letter: bytes | None = None,
) -> Any:
    return client.post(
        f"/api/v1/units/{unit_id}/representatives",
        files={
            "letter": ("授权委托书.pdf", letter or make_pdf(1, "Authorization"), "application/pdf")
        },
        data={"metadata": json.dumps(metadata)},
        headers=center.headers(Role.OPERATOR),
    )


@pytest.fixture
def pki_center(
    center: CenterWithStaff, db: Session, clock: FrozenClock, services: Services
) -> CenterWithStaff:
    establish_pki(db, clock, services, center)
    return center


def test_authorizing_a_representative_keeps_the_letter_and_issues_a_credential(
    client: TestClient, pki_center: CenterWithStaff, db: Session
) -> None:
    unit = register(client, pki_center).json()
    letter = make_pdf(1, "Letter of authorization")
    created = authorize(client, pki_center, unit["id"], representative_metadata(), letter)
    assert created.status_code == 201, created.text
    row = created.json()
    assert row["scope"] == "contracts" and row["status"] == "active" and row["credential_id"]
    person = db.get(Expert, row["person_id"])
    assert person is not None and person.kind == "representative"
    assert person.employer_credit_code == unit["credit_code"]
    kept = client.get(
        f"/api/v1/documents/{row['letter_document_id']}/content",
        headers=pki_center.headers(Role.SUPERVISOR),
    )
    assert kept.content == letter
    # A representative is never drawn: the expert pool leaves them out.
    pool = client.get("/api/v1/experts", headers=pki_center.headers(Role.OPERATOR)).json()
    assert row["person_id"] not in [e["id"] for e in pool["items"]]
    listed = client.get(
        f"/api/v1/units/{unit['id']}/representatives", headers=pki_center.headers(Role.SUPERVISOR)
    ).json()
    assert [r["id"] for r in listed] == [row["id"]]


def test_an_overlapping_authorization_and_a_renamed_person_are_409(
    client: TestClient, pki_center: CenterWithStaff, db: Session
) -> None:
    unit = register(client, pki_center).json()
    metadata = representative_metadata()
    assert authorize(client, pki_center, unit["id"], metadata).status_code == 201
    before = _counts(db)
    again = authorize(client, pki_center, unit["id"], metadata)
    assert_problem(again, 409, "authorization-exists")
    renamed = authorize(client, pki_center, unit["id"], {**metadata, "name": "陈另名"})
    assert_problem(renamed, 409, "person-name-mismatch")
    assert _counts(db) == before


@pytest.mark.parametrize(
    ("change", "letter"),
    [
        ({"scope": "everything"}, None),
        ({"valid_until": "2026-10-01T00:00:00+00:00"}, None),  # ends before it starts
        ({"valid_from": "2026-11-01T00:00:00"}, None),  # no time zone
        ({"id_number": "110101199001011234"}, None),  # wrong check digit
        ({}, b"not a pdf at all"),
    ],
)
def test_a_bad_authorization_changes_nothing(
    client: TestClient,
    pki_center: CenterWithStaff,
    db: Session,
    change: dict[str, Any],
    letter: bytes | None,
) -> None:
    unit = register(client, pki_center).json()
    before = _counts(db)
    refused = authorize(client, pki_center, unit["id"], representative_metadata(**change), letter)
    assert refused.status_code == 422, refused.text
    assert _counts(db) == before


def test_revoking_an_authorization_is_audited(
    client: TestClient, pki_center: CenterWithStaff, db: Session
) -> None:
    unit = register(client, pki_center).json()
    row = authorize(client, pki_center, unit["id"], representative_metadata()).json()
    url = f"/api/v1/units/{unit['id']}/representatives/{row['id']}/revoke"
    revoked = client.post(url, json={"reason": "离职"}, headers=pki_center.headers(Role.OPERATOR))
    assert revoked.status_code == 200 and revoked.json()["status"] == "revoked"
    again = client.post(url, json={"reason": "离职"}, headers=pki_center.headers(Role.OPERATOR))
    assert_problem(again, 409, "invalid-transition")
    entry = db.execute(
        select(AuditEntry).where(AuditEntry.action == Action.UNIT_REPRESENTATIVE_REVOKED)
    ).scalar_one()
    assert entry.details["authorization_id"] == row["id"] and entry.details["reason"] == "离职"


# --- seals ---------------------------------------------------------------------------------


def test_a_generated_seal_and_its_organization_certificate(
    client: TestClient, pki_center: CenterWithStaff
) -> None:
    unit = register(client, pki_center, name="某市建设集团有限公司").json()
    operator = pki_center.headers(Role.OPERATOR)
    no_image = client.post(f"/api/v1/units/{unit['id']}/seal/credentials", headers=operator)
    assert_problem(no_image, 409, "no-seal-image")
    generated = client.post(
        f"/api/v1/units/{unit['id']}/seal/generate",
        json={"purpose": "合同专用章"},
        headers=operator,
    )
    assert generated.status_code == 200 and generated.json()["seal_source"] == "generated"
    png = client.get(f"/api/v1/units/{unit['id']}/seal/image", headers=operator).content
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGBA")).astype(int)
    r, g, b, a = (pixels[..., i] for i in range(4))
    red = (a > 128) & (r > 150) & (g < 80) & (b < 80)
    assert red.mean() > 0.05  # the ring, the name, the star
    assert a[2, 2] == 0  # transparent outside the ring

    issued = client.post(f"/api/v1/units/{unit['id']}/seal/credentials", headers=operator)
    assert issued.status_code == 201, issued.text
    body = issued.json()
    assert body["unit_id"] == unit["id"] and body["expert_id"] is None
    certificate = x509.load_pem_x509_certificate(body["certificate_pem"].encode())
    subject = certificate.subject
    assert subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == unit["name"]
    identifier = subject.get_attributes_for_oid(NameOID.ORGANIZATION_IDENTIFIER)[0].value
    assert identifier == f"NTRCN-{unit['credit_code']}"
    twice = client.post(f"/api/v1/units/{unit['id']}/seal/credentials", headers=operator)
    assert_problem(twice, 409, "credential-exists")


def _png(mode: str, size: tuple[int, int], colour: Any) -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, colour).save(out, format="PNG")
    return out.getvalue()


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (_png("RGB", (300, 300), (200, 0, 0)), "transparent"),
        (_png("RGBA", (300, 300), (0, 0, 0, 0)), "fully transparent"),
        (_png("RGBA", (60, 60), (200, 0, 0, 128)), "pixels"),
        (_png("RGBA", (900, 200), (200, 0, 0, 128)), "square"),
        (b"GIF89a not a png", "PNG"),
    ],
)
def test_an_unusable_seal_upload_is_422_and_nothing_changes(
    client: TestClient, pki_center: CenterWithStaff, db: Session, data: bytes, fragment: str
) -> None:
    unit = register(client, pki_center).json()
    before = _counts(db)
    refused = client.put(
        f"/api/v1/units/{unit['id']}/seal/image",
        files={"file": ("seal.png", data, "image/png")},
        headers=pki_center.headers(Role.OPERATOR),
    )
    body = assert_problem(refused, 422, "seal-image-rejected")
    assert fragment in body["detail"]
    assert _counts(db) == before


def test_an_uploaded_seal_with_transparency_is_kept(
    client: TestClient, pki_center: CenterWithStaff
) -> None:
    unit = register(client, pki_center).json()
    image = Image.new("RGBA", (240, 240), (0, 0, 0, 0))
    for x in range(40, 200):
        for y in range(110, 130):
            image.putpixel((x, y), (210, 20, 20, 255))
    out = io.BytesIO()
    image.save(out, format="PNG")
    stored = client.put(
        f"/api/v1/units/{unit['id']}/seal/image",
        files={"file": ("seal.png", out.getvalue(), "image/png")},
        data={"purpose": "公章"},
        headers=pki_center.headers(Role.OPERATOR),
    )
    assert stored.status_code == 200, stored.text
    assert stored.json()["seal_source"] == "uploaded" and stored.json()["seal_purpose"] == "公章"


def test_contact_phones_are_encrypted_and_masked_for_supervisors(
    client: TestClient, center: CenterWithStaff, db: Session, services: Services
) -> None:
    number = phone()
    created = register(client, center, contacts=[{"name": "李秘书", "phone": number}])
    assert created.status_code == 201, created.text
    assert created.json()["contacts"][0]["phone"] == number
    unit_id = created.json()["id"]
    seen = client.get(f"/api/v1/units/{unit_id}", headers=center.headers(Role.SUPERVISOR))
    assert seen.json()["contacts"] == [
        {"name": "李秘书", "phone": number[:3] + "****" + number[-4:], "role": None}
    ]
    db.expire_all()
    row = db.get(Unit, unit_id)
    assert row is not None and row.contact_phones_ciphertext is not None
    assert number not in json.dumps(row.contacts)
    assert number.encode() not in row.contact_phones_ciphertext


def test_contact_phones_kept_in_the_clear_before_0026_are_encrypted(
    client: TestClient, center: CenterWithStaff, db: Session, services: Services
) -> None:
    from evaluation.registry import units

    number = phone()
    unit_id = register(client, center, contacts=[]).json()["id"]
    row = db.get(Unit, unit_id)
    assert row is not None
    row.contacts = [{"name": "王会计", "phone": number, "role": "财务"}]
    db.flush()
    assert units.encrypt_plain_contact_phones(db, services.cipher) == 1
    assert row.contacts == [{"name": "王会计", "role": "财务"}]
    operator = client.get(f"/api/v1/units/{unit_id}", headers=center.headers(Role.OPERATOR))
    assert operator.json()["contacts"][0]["phone"] == number
    assert units.encrypt_plain_contact_phones(db, services.cipher) == 0

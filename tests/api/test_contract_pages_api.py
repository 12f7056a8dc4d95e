"""The contract as a representative's phone reads it, from the scan of their link: the
parties, the turn, page images and the file; nobody else's scan reads it."""

from __future__ import annotations

from typing import Any

from tests.api.contracting import DEVICE, Award
from tests.api.helpers import assert_problem, refused_reasons


def _scan(award: Award, contract: dict[str, Any], party: str) -> dict[str, str]:
    rep = award.representatives[party]
    link = award.client.post(
        f"/api/v1/contracts/{contract['id']}/links",
        json={"authorization_id": rep["id"]},
        headers=award.operator,
    ).json()
    scanned = award.client.post("/api/v1/scan", json={"token": link["token"], "device_id": DEVICE})
    assert scanned.status_code == 201, scanned.text
    return {"Authorization": f"Bearer {scanned.json()['scan_token']}", "X-Device-Id": DEVICE}


def test_each_representative_sees_the_contract_and_their_turn(award: Award) -> None:
    contract = award.contract().json()
    first = award.client.get("/api/v1/contract", headers=_scan(award, contract, "tenderer"))
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["contract_id"] == contract["id"] and body["can_sign"]
    assert [p["is_mine"] for p in body["parties"]] == [True, False]
    assert body["amount_words"] == contract["amount_words"]
    assert body["sign_url"] == f"/api/v1/contracts/{contract['id']}/signatures"

    second = _scan(award, contract, "winner")
    waiting = award.client.get("/api/v1/contract", headers=second).json()
    assert waiting["waiting_for_other_party"] and not waiting["can_sign"]

    page = award.client.get(waiting["page_urls"][0] + "&width=320", headers=second)
    assert page.status_code == 200 and page.content[:4] == b"\x89PNG"
    assert "immutable" in page.headers["cache-control"]
    file = award.client.get(waiting["file_url"], headers=second)
    assert file.content[:5] == b"%PDF-" and "attachment" in file.headers["content-disposition"]
    missing = award.client.get("/api/v1/contract/pages/9.png", headers=second)
    assert_problem(missing, 404, "no-such-page")

    assert award.sign(contract["id"], award.face("tenderer")).status_code == 201
    now_mine = award.client.get("/api/v1/contract", headers=second).json()
    assert now_mine["can_sign"] and now_mine["parties"][0]["signed"]
    assert now_mine["revision"] == waiting["revision"] + 2
    assert award.sign(contract["id"], award.face("winner")).status_code == 201

    # Completed: either party keeps the file and its validation report.
    report = award.client.get(now_mine["validation_url"] + "?format=json", headers=second)
    assert report.status_code == 200, report.text
    assert report.json()["verdict"] == "valid" and len(report.json()["signatures"]) == 4
    page = award.client.get(now_mine["validation_url"], headers=second)
    assert page.headers["content-type"].startswith("text/html") and "有效 VALID" in page.text


def test_without_a_contract_scan_nothing_is_shown(award: Award) -> None:
    award.contract()
    assert_problem(award.client.get("/api/v1/contract"), 401, "scan-session-invalid")
    assert_problem(
        award.client.get("/api/v1/contract/file", headers={"Authorization": "Bearer evs_x"}),
        401,
        "scan-session-invalid",
    )


def test_a_link_belongs_to_the_phone_that_opened_it_first(award: Award) -> None:
    from sqlalchemy import select

    from models.tables import AuditEntry

    contract = award.contract().json()
    link = award.client.post(
        f"/api/v1/contracts/{contract['id']}/links",
        json={"authorization_id": award.representatives["tenderer"]["id"]},
        headers=award.operator,
    ).json()

    def scan(device: str) -> Any:
        return award.client.post("/api/v1/scan", json={"token": link["token"], "device_id": device})

    assert scan(DEVICE).status_code == 201
    copied = scan("phone-forwarded-1")
    assert_problem(copied, 409, "contract-link-other-device")
    # The second phone is nobody signed in: its refusal is tallied per address and minute
    # (issue 25: anonymous refusals cannot flood the chain), not chained one by one.
    assert refused_reasons(award.db) == {"contract-link-other-device": 1}
    chained = award.db.execute(
        select(AuditEntry).where(AuditEntry.subject_type == "contract_link")
    ).scalars()
    assert list(chained) == []
    assert scan(DEVICE).status_code == 201  # the representative's own phone, again


def test_a_link_preview_does_not_use_up_the_link(award: Award) -> None:
    """A messaging app fetches the link to preview it: that GET must not claim the link;
    the person's tap (a POST from the page) does."""
    from sqlalchemy import select

    from models.tables import ContractLink, ScanSession

    contract = award.contract().json()
    link = award.client.post(
        f"/api/v1/contracts/{contract['id']}/links",
        json={"authorization_id": award.representatives["tenderer"]["id"]},
        headers=award.operator,
    ).json()
    url = f"/m/t/{link['token']}"
    preview = award.client.get(url, follow_redirects=False)
    assert preview.status_code == 200 and 'id="open-link"' in preview.text
    award.db.expire_all()
    row = award.db.execute(select(ContractLink).where(ContractLink.id == link["id"])).scalar_one()
    assert row.device_id is None
    assert award.db.execute(select(ScanSession)).first() is None
    opened = award.client.post(url, follow_redirects=False)
    assert opened.status_code == 303 and opened.headers["location"] == "/m/start"
    award.db.expire_all()
    assert award.db.get(ContractLink, link["id"]).device_id is not None  # type: ignore[union-attr]

"""A transaction contract signed from two phones: after the award, the tenderer's and the
winning bidder's representatives open their personal links in Chromium (a Pixel 7, an
iPhone 13), review the contract (the tenderer's, never at the center, first enrolls from
a photo of their ID card), pass a face check filmed by the fake camera, and apply
their unit's seal and their own signature, in order. The completed contract carries the
four signatures and each seal's cross-page strips (each a signature of the unit's seal),
all valid for our validator and for pdfsig, with both seals (and the cross-page seals)
visible where they belong on the rendered pages."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pypdfium2 as pdfium
import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import create_engine, update

from api.demo import BIDDERS, TENDERER, Client, Staged, authorize_representative
from face.engine import FaceEngine
from models.tables import Project
from tests.e2e.conftest import LaunchBrowser, PhonePage
from tests.e2e.pages import RequestLog, look
from tests.e2e.service import (
    Service,
    film_each_challenge,
    passkey_phone,
    running_service,
    scene_of,
    stage,
)
from tests.e2e.test_expert_journey import check_until
from tests.face.corpus import id_card_photo
from tests.factories import id_number

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    with running_service(tmp_path_factory.mktemp("evalsign")) as running:
        yield running


def _award(service: Service, staged: Staged) -> None:
    """The award, set directly: the evaluation that leads to it is the expert journey's
    (tests/e2e/test_expert_journey.py) and the demo's; here the contract is the subject."""
    engine = create_engine(service.settings.database_url)
    try:
        with engine.begin() as connection:
            connection.execute(
                update(Project)
                .where(Project.id == staged.project["id"])
                .values(status="completed", results={"recommended": [BIDDERS[0][1]]})
            )
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def contract(service: Service) -> dict[str, Any]:
    """An awarded project, both units' seals, a representative each (the winner's an expert
    the draw left on the bench, enrolled at the center; the tenderer's a newcomer), the
    contract and a link per party."""
    staged = stage(service)
    _award(service, staged)
    api, operator = staged.api, staged.operator
    units = {u["credit_code"]: u for u in api.call("GET", "/api/v1/units", 200, headers=operator)}
    listing = api.call(
        "GET", f"/api/v1/projects/{staged.project['id']}/committee", 200, headers=operator
    )
    bench = [
        staged.phones[m["expert_id"]]
        for m in listing
        if m["role"] == "backup" and m["expert_id"] not in staged.excluded
    ]
    # The tenderer's representative was never at the center: they enroll remotely, from a
    # photo of their ID card (the face is a shipped photo's, as every face here).
    newcomer = replace(bench[0], name="孟晓东", id_number=id_number(), mobile="13911112222")
    parties = []
    for code, who in ((TENDERER[1], newcomer), (BIDDERS[0][1], bench[1])):
        unit = units[code]
        api.call(
            "POST", f"/api/v1/units/{unit['id']}/seal/generate", 200, headers=operator, json={}
        )
        api.call("POST", f"/api/v1/units/{unit['id']}/seal/credentials", 201, headers=operator)
        parties.append((unit, who, authorize_representative(api, operator, unit, who, 30)))
    created = api.call(
        "POST",
        f"/api/v1/projects/{staged.project['id']}/contracts",
        201,
        headers=operator,
        json={"amount_yuan": "38650000.00", "cross_page_seal": True},
    )
    links = [
        api.call(
            "POST",
            f"/api/v1/contracts/{created['id']}/links",
            201,
            headers=operator,
            json={"authorization_id": authorization["id"]},
        )["token"]
        for _, _, authorization in parties
    ]
    return {"staged": staged, "contract": created, "parties": parties, "links": links}


def _open_link(page: Page, service: Service, token: str) -> None:
    page.goto(f"{service.base}/m/t/{token}")
    # Opening is a tap, not the fetch a messaging app's link preview makes.
    page.click("#open-link")
    expect(page).to_have_url(re.compile(r"/m/start$"))  # the link has left the address
    assert token not in page.url


def _red_share(image: Any, box: tuple[float, float, float, float], scale: float) -> float:
    pixels = np.asarray(image.convert("RGB")).astype(int)
    height = pixels.shape[0]
    x1, y1, x2, y2 = (round(v * scale) for v in box)
    region = pixels[height - y2 : height - y1, x1:x2]
    return float(((region[..., 0] > 150) & (region[..., 1] < 110) & (region[..., 2] < 110)).mean())


def test_both_representatives_seal_and_sign_from_their_phones(
    service: Service,
    contract: dict[str, Any],
    launch_browser: LaunchBrowser,
    phone: PhonePage,
    idle_camera: Path,
    face_engine: FaceEngine,
    screenshots: Path,
) -> None:
    staged: Staged = contract["staged"]
    (tenderer, tenderer_rep, newcomer), (winner, winner_rep, _) = contract["parties"]
    browser = launch_browser()

    # The winner's representative opens the link first: the tenderer signs first.
    early = phone(browser, "iPhone 13")
    passkey_phone(early)  # the phone's own passkey store, bound on the link when signing
    _open_link(early, service, contract["links"][1])
    early.click("#continue")
    expect(early.locator("#waiting")).to_be_visible()
    look(early, screenshots, "contract-iphone13-1-waiting")

    # The tenderer's representative: landing, review, consent, face check, seal and sign.
    page = phone(browser, "Pixel 7")
    passkey_phone(page)
    requests = RequestLog(page, service.base)
    film_each_challenge(
        page,
        "**/api/v1/scan/challenge",
        idle_camera,
        scene_of(face_engine, staged, tenderer_rep.expert_id),
    )
    _open_link(page, service, contract["links"][0])
    expect(page.locator("#unit-name")).to_have_text(tenderer["name"])
    look(page, screenshots, "contract-pixel7-1-landing")
    page.click("#continue")
    expect(page.locator("#amount")).to_contain_text("叁仟捌佰陆拾伍万元整")
    expect(page.locator("#pages img").first).to_be_visible()
    look(page, screenshots, "contract-pixel7-2-review")
    page.click("#sign")
    expect(page).to_have_url(re.compile(r"/m/consent$"))
    page.click("#agree")
    expect(page).to_have_url(re.compile(r"/m/contract/sign$"))
    # Not enrolled at the center: first the ID card's portrait side.
    expect(page.locator("#idcard")).to_be_visible()
    look(page, screenshots, "contract-pixel7-3-id-card")
    page.set_input_files(
        "#photo",
        files=[
            {
                "name": "id-card.jpg",
                "mimeType": "image/jpeg",
                "buffer": id_card_photo(tenderer_rep.portrait),
            }
        ],
    )
    page.click("#upload")
    expect(page.locator("#check")).to_be_visible(timeout=30_000)
    look(page, screenshots, "contract-pixel7-4-check")
    # Sent from a phone: nothing is sealed until the desk compares card and face.
    waiting = page.locator("#problem")
    check_until(page, lambda: waiting.count() > 0)
    expect(waiting).to_have_attribute("data-code", "remote-enrollment-unconfirmed", timeout=90_000)
    look(page, screenshots, "contract-pixel7-4b-waiting-for-the-center")
    review_url = f"/api/v1/experts/{newcomer['person_id']}/face/remote-enrollment"
    review = staged.api.call("GET", review_url, 200, headers=staged.operator)
    assert review["card_jpeg_base64"] and review["frame_jpeg_base64"]
    staged.api.call(
        "POST",
        f"{review_url}/decision",
        200,
        headers=staged.operator,
        json={"decision": "confirm", "note": "e2e: card and live face compared"},
    )
    page.click("#start")  # the face check stands: only the signing is tried again
    expect(page).to_have_url(re.compile(r"/m/contract$"), timeout=90_000)
    expect(page.locator("#signed")).to_be_visible()
    expect(page.locator("#download")).to_be_visible()
    look(page, screenshots, "contract-pixel7-5-signed")
    # The phone was bound on the link itself, once the center had confirmed the person.
    keys = staged.api.call(
        "GET", f"/api/v1/experts/{newcomer['person_id']}/passkeys", 200, headers=staged.operator
    )
    assert [k["witnessed_by"].split(":")[0] for k in keys] == ["contract-link"]
    assert requests.foreign() == []

    # Now the winner's representative, on the page already open.
    film_each_challenge(
        early,
        "**/api/v1/scan/challenge",
        idle_camera,
        scene_of(face_engine, staged, winner_rep.expert_id),
    )
    early.reload()
    early.click("#sign")
    early.click("#agree")
    expect(early).to_have_url(re.compile(r"/m/contract/sign$"))
    check_until(early, lambda: re.search(r"/m/contract$", early.url) is not None)
    expect(early).to_have_url(re.compile(r"/m/contract$"), timeout=90_000)
    expect(early.locator("#completed")).to_be_visible()
    look(early, screenshots, "contract-iphone13-2-completed")
    with early.expect_download() as download:
        early.click("#download")
    kept = Path(download.value.path()).read_bytes()
    early.click("#validation")
    expect(early.locator("body")).to_contain_text("有效 VALID")
    look(early, screenshots, "contract-iphone13-3-validation")

    api: Client = staged.api
    pdf: bytes = api.call(
        "GET",
        f"/api/v1/documents/{contract['contract']['document']['id']}/content",
        200,
        headers=staged.supervisor,
    )
    assert kept == pdf  # the phone's download is the completed contract
    verdict = api.call(
        "POST",
        "/api/v1/validate",
        200,
        headers=staged.supervisor,
        files={"file": ("contract.pdf", pdf, "application/pdf")},
    )
    assert verdict["verdict"] == "valid", verdict
    signatures = 4 + 2 * len(pdfium.PdfDocument(pdf))  # and a strip per page per seal
    assert len(verdict["signatures"]) == signatures
    assert len(verdict["document_timestamps"]) == 1
    out = screenshots / "contract"
    out.mkdir(parents=True, exist_ok=True)
    (out / "contract.pdf").write_bytes(pdf)
    if shutil.which("pdfsig"):
        checked = subprocess.run(
            ["pdfsig", "-nocert", str(out / "contract.pdf")], capture_output=True, text=True
        ).stdout
        assert checked.count("Signature is Valid.") == signatures, checked
        assert "not signed" not in checked

    document = pdfium.PdfDocument(pdf)
    document.init_forms()
    scale = 100 / 72
    slots = contract["contract"]["document"]["slots"]
    for index in range(len(document)):
        image = document[index].render(scale=scale, may_draw_forms=True).to_pil()
        image.save(out / f"page-{index + 1}.png")
        width, height = document[index].get_size()
        edge = (width - 12, height * 0.62 - 96, width, height * 0.62)
        assert _red_share(image, edge, scale) > 0.02, index  # the cross-page seal's strip
        for slot in slots:
            if slot["page"] == index and slot["mark"] == "seal":
                assert _red_share(image, tuple(slot["box"]), scale) > 0.04, slot["role"]
    assert {tenderer["id"], winner["id"]} == {s["unit_id"] for s in slots}

"""Documents over HTTP: upload with signer slots, the status machine, three experts signing
(two in parallel, one after) with their cloud credentials, a document timestamp on
completion, every revision downloadable, validation by us and by poppler's pdfsig; and
every bad request refused with nothing changed. Each runs on the local directory and on
S3-compatible storage (a moto server)."""

from __future__ import annotations

import hashlib
import itertools
import json
import shutil
import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api.services import Services
from evaluation.registry.staff import Role
from models.clock import FrozenClock
from models.tables import AuditEntry, Document, DocumentRevision, SignatureActivation
from tests.api.helpers import SignerPhone, assert_problem, sign_document, tamper_with_upload
from tests.conftest import store_location
from tests.factories import (
    CenterWithStaff,
    bound_phone,
    establish_pki,
    expert_payload,
    face_session,
    make_pdf,
)

pytestmark = pytest.mark.slow

BOX = [60.0, 60.0, 260.0, 140.0]


@pytest.fixture(params=["local", "s3"])
def document_store(request: pytest.FixtureRequest) -> str | None:
    return store_location(request, request.param)


@pytest.fixture
def setup(
    client: TestClient,
    center: CenterWithStaff,
    db: Session,
    clock: FrozenClock,
    services: Services,
) -> dict[str, Any]:
    establish_pki(db, clock, services, center)
    operator = center.headers(Role.OPERATOR)
    experts = []
    for name in ("王喆", "李娜", "张伟"):
        expert = client.post(
            "/api/v1/experts", json=expert_payload(name=name), headers=operator
        ).json()
        issued = client.post(f"/api/v1/experts/{expert['id']}/credential", headers=operator)
        assert issued.status_code == 201
        experts.append(expert["id"])
    return {"operator": operator, "experts": experts}


def upload(
    client: TestClient,
    operator: dict[str, str],
    slots: list[dict[str, Any]],
    pdf: bytes | None = None,
) -> Any:
    metadata = {"title": "评标报告 第1标段", "purpose": "report", "slots": slots}
    return client.post(
        "/api/v1/documents",
        files={"file": ("报告.pdf", pdf if pdf is not None else make_pdf(2), "application/pdf")},
        data={"metadata": json.dumps(metadata, ensure_ascii=False)},
        headers=operator,
    )


def slots_for(experts: list[str]) -> list[dict[str, Any]]:
    return [
        {
            "expert_id": experts[0],
            "role": "评标委员会成员",
            "order_group": 1,
            "page": 1,
            "box": BOX,
        },
        {
            "expert_id": experts[1],
            "role": "评标委员会成员",
            "order_group": 1,
            "page": 1,
            "box": [300.0, 60.0, 500.0, 140.0],
        },
        {
            "expert_id": experts[2],
            "role": "评标委员会主任",
            "order_group": 2,
            "page": 1,
            "box": [60.0, 160.0, 260.0, 240.0],
        },
    ]


def phone_of(
    db: Session, clock: FrozenClock, center: CenterWithStaff, expert_id: str, device: str
) -> SignerPhone:
    """The expert's phone, bound to them, with a face check just passed on it."""
    token, _ = face_session(db, clock, center.id, expert_id, device_id=device)
    phone = SignerPhone({"Authorization": f"Bearer {token}", "X-Device-Id": device})
    phone.passkey = bound_phone(db, clock, None, center.id, expert_id, device_id=device)
    return phone


def sign(client: TestClient, document_id: str, phone: SignerPhone) -> Any:
    return sign_document(client, document_id, phone)


def test_three_signers_then_a_document_timestamp(
    client: TestClient,
    setup: dict[str, Any],
    center: CenterWithStaff,
    db: Session,
    clock: FrozenClock,
    tmp_path: Path,
) -> None:
    operator, experts = setup["operator"], setup["experts"]
    created = upload(client, operator, slots_for(experts))
    assert created.status_code == 201, created.text
    document = created.json()
    assert document["status"] == "draft" and len(document["slots"]) == 3
    assert [r["kind"] for r in document["revisions"]] == ["upload"]
    phones = [phone_of(db, clock, center, e, f"phone-{n}") for n, e in enumerate(experts)]

    assert_problem(sign(client, document["id"], phones[0]), 409, "invalid-transition")  # draft
    started = client.post(f"/api/v1/documents/{document['id']}/start", headers=operator)
    assert started.json()["status"] == "signing"

    assert_problem(sign(client, document["id"], phones[2]), 409, "not-your-turn")
    first = sign(client, document["id"], phones[1])
    assert first.status_code == 201, first.text
    assert first.json()["revision"]["number"] == 1
    assert_problem(sign(client, document["id"], phones[1]), 403, "no-slot-for-signer")
    assert sign(client, document["id"], phones[0]).status_code == 201
    last = sign(client, document["id"], phones[2])
    assert last.status_code == 201, last.text
    final = last.json()["document"]
    assert final["status"] == "completed"
    assert_problem(sign(client, document["id"], phones[2]), 409, "invalid-transition")
    assert [r["kind"] for r in final["revisions"]] == [
        "upload",
        "signature",
        "signature",
        "signature",
        "timestamp",
    ]
    # Each signature spent exactly one SAD; the log names each one.
    assert db.execute(select(func.count()).select_from(SignatureActivation)).scalar_one() == 3
    actions = list(db.execute(select(AuditEntry.action)).scalars())
    assert actions.count("document.signed") == 3 and actions.count("document.completed") == 1

    # Every revision downloads, and is a prefix of the next.
    contents = []
    for revision in final["revisions"]:
        response = client.get(
            f"/api/v1/documents/{document['id']}/content?revision={revision['number']}",
            headers=center.headers(Role.SUPERVISOR),
        )
        assert response.status_code == 200
        assert hashlib.sha256(response.content).hexdigest() == revision["sha256"]
        contents.append(response.content)
    for earlier, later in itertools.pairwise(contents):
        assert later.startswith(earlier) and len(later) > len(earlier)

    report = client.post(
        "/api/v1/validate",
        files={"file": ("signed.pdf", contents[-1], "application/pdf")},
        headers=center.headers(Role.SUPERVISOR),
    )
    assert report.status_code == 200, report.text
    body = report.json()
    assert body["verdict"] == "valid", body
    assert len(body["signatures"]) == 3 and len(body["document_timestamps"]) == 1
    assert all(s["intact"] and s["valid"] and s["trusted"] for s in body["signatures"])

    signed = tmp_path / "signed.pdf"
    signed.write_bytes(contents[-1])
    if shutil.which("pdfsig"):
        output = subprocess.run(
            ["pdfsig", str(signed)], capture_output=True, text=True, check=False
        ).stdout
        # pdfsig checks the three CMS signatures; it lists the RFC 3161 document timestamp
        # (the last revision, covering the whole file) without verifying it. Certificate
        # trust is ours to judge: pdfsig has no NSS database with the center root.
        assert output.count("Signature is Valid.") == 3, output
        assert output.count("Total document signed") == 1, output
        broken = bytearray(contents[-1])
        middle = len(contents[0]) // 2  # inside every signature's signed range
        broken[middle] ^= 0x01
        tampered = tmp_path / "tampered.pdf"
        tampered.write_bytes(bytes(broken))
        output = subprocess.run(
            ["pdfsig", str(tampered)], capture_output=True, text=True, check=False
        ).stdout
        assert "Signature is Valid." not in output, output
    verdict = client.post(
        "/api/v1/validate",
        files={"file": ("tampered.pdf", bytes(broken_copy(contents[-1])), "application/pdf")},
        headers=center.headers(Role.SUPERVISOR),
    ).json()
    assert verdict["verdict"] == "invalid"


def broken_copy(content: bytes) -> bytearray:
    broken = bytearray(content)
    broken[200] ^= 0x01
    return broken


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*.pdf") if p.is_file()]


def test_bad_uploads_store_nothing(
    client: TestClient,
    setup: dict[str, Any],
    db: Session,
    services: Services,
    other_center: CenterWithStaff,
) -> None:
    operator, experts = setup["operator"], setup["experts"]
    stranger = client.post(
        "/api/v1/experts", json=expert_payload(), headers=other_center.headers(Role.OPERATOR)
    ).json()["id"]
    cases = [
        (
            upload(client, operator, slots_for(experts), pdf=b"not a pdf at all"),
            422,
            "pdf-rejected",
        ),
        (upload(client, operator, slots_for(experts), pdf=make_pdf(2)[:-120]), 422, "pdf-rejected"),
        (upload(client, operator, [{**slots_for(experts)[0], "page": 5}]), 422, "slots-invalid"),
        (
            upload(client, operator, [{**slots_for(experts)[0], "box": [0, 0, 900, 100]}]),
            422,
            "slots-invalid",
        ),
        (
            upload(client, operator, [{**slots_for(experts)[0], "expert_id": stranger}]),
            422,
            "slots-invalid",
        ),
        (
            upload(client, operator, [{**slots_for(experts)[0], "box": [0, 0, 10, 10]}]),
            422,
            "validation-failed",
        ),
    ]
    for response, status_code, code in cases:
        assert_problem(response, status_code, code)
    assert db.execute(select(func.count()).select_from(Document)).scalar_one() == 0
    assert db.execute(select(func.count()).select_from(DocumentRevision)).scalar_one() == 0
    assert _files(services.settings.documents_dir) == []


def test_refusals_while_signing_change_nothing(
    client: TestClient,
    setup: dict[str, Any],
    center: CenterWithStaff,
    db: Session,
    clock: FrozenClock,
) -> None:
    operator, experts = setup["operator"], setup["experts"]
    document = upload(client, operator, slots_for(experts)).json()
    client.post(f"/api/v1/documents/{document['id']}/start", headers=operator)
    stale = phone_of(db, clock, center, experts[0], "phone-a")
    clock.advance(timedelta(seconds=121))
    assert_problem(sign(client, document["id"], stale), 401, "face-check-stale")
    refused = db.execute(
        select(AuditEntry).where(AuditEntry.action == "signature.refused")
    ).scalar_one()
    # Refused before anything is prepared, when the phone asks to approve.
    assert refused.details["operation"] == "document.approve"
    assert refused.details["code"] == "face-check-stale"
    assert_problem(
        client.post(
            f"/api/v1/documents/{document['id']}/signatures",
            json={},
            headers={**operator, "X-Device-Id": "x"},
        ),
        401,
        "face-session-invalid",
    )
    outsider = client.post("/api/v1/experts", json=expert_payload(), headers=operator).json()
    assert_problem(
        sign(client, document["id"], phone_of(db, clock, center, outsider["id"], "phone-o")),
        403,
        "no-slot-for-signer",
    )
    cancelled = client.post(
        f"/api/v1/documents/{document['id']}/cancel",
        json={"reason": "招标文件有误"},
        headers=operator,
    )
    assert cancelled.json()["status"] == "cancelled"
    assert_problem(
        sign(client, document["id"], phone_of(db, clock, center, experts[0], "phone-b")),
        409,
        "invalid-transition",
    )
    stored = client.get(f"/api/v1/documents/{document['id']}", headers=operator).json()
    assert stored["revision"] == 0 and stored["size"] == document["size"]
    assert db.execute(select(func.count()).select_from(SignatureActivation)).scalar_one() == 0


def test_validation_report_as_html_and_from_the_command_line(
    client: TestClient,
    setup: dict[str, Any],
    center: CenterWithStaff,
    db: Session,
    clock: FrozenClock,
    tmp_path: Path,
    isolated_database_url: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EVALSIGN_DATABASE_URL", isolated_database_url)  # for the CLI below
    operator, experts = setup["operator"], setup["experts"]
    document = upload(client, operator, slots_for(experts)[:1]).json()
    client.post(f"/api/v1/documents/{document['id']}/start", headers=operator)
    signed = sign(client, document["id"], phone_of(db, clock, center, experts[0], "phone-h"))
    assert signed.json()["document"]["status"] == "completed"
    content = client.get(f"/api/v1/documents/{document['id']}/content", headers=operator).content
    html = client.post(
        "/api/v1/validate?format=html",
        files={"file": ("<b>报告</b>.pdf", content, "application/pdf")},
        headers=operator,
    )
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    assert "有效 VALID" in html.text and "王喆" in html.text
    assert "<b>报告" not in html.text  # the file name is escaped
    not_pdf = client.post(
        "/api/v1/validate",
        files={"file": ("x.pdf", b"%PDF-1.7 junk", "application/pdf")},
        headers=operator,
    )
    assert_problem(not_pdf, 422, "pdf-rejected")

    # The CLI checks against an instance's trust lists: another instance does not trust
    # this center's root, so the signature is intact but the verdict is not "valid".
    path = tmp_path / "signed.pdf"
    path.write_bytes(content)
    from api.cli import main
    from api.instance import initialize
    from models.settings import Settings

    other = tmp_path / "other"
    initialize(Settings(data_dir=other, database_url=isolated_database_url), clock)
    capsys.readouterr()
    code = main(["pdf", "validate", str(path), "--data-dir", str(other), "--json"])
    out = capsys.readouterr()
    printed = json.loads(out.out)
    assert code == 1 and printed["verdict"] != "valid"
    assert printed["signatures"][0]["intact"] and not printed["signatures"][0]["trusted"]
    assert "Traceback" not in out.err

    # An outside party with the center's root, and no database: a one-screen summary.
    from cryptography.hazmat.primitives.serialization import Encoding

    from evaluation.trust import pki

    root = tmp_path / "center-root.pem"
    root.write_bytes(
        pki.load_certificate(pki.center_root(db, center.id).certificate_der).public_bytes(
            Encoding.PEM
        )
    )
    code = main(["pdf", "validate", str(path), "--root", str(root)])
    out = capsys.readouterr()
    assert code == 0, out.out
    assert out.out.startswith("signed.pdf: VALID") and "王喆" in out.out
    assert len(out.out.splitlines()) < 20 and "Traceback" not in out.err
    # Against the other instance's root it says why, in a line, not a traceback.
    other_root = tmp_path / "other-root.pem"
    from sqlalchemy import create_engine
    from sqlalchemy.orm import Session as PlainSession

    from models.tables import Authority

    with PlainSession(create_engine(isolated_database_url)) as other_db:
        der = (
            other_db.execute(select(Authority.certificate_der).where(Authority.kind == "root"))
            .scalars()
            .first()
        )
    assert der is not None
    other_root.write_bytes(pki.load_certificate(der).public_bytes(Encoding.PEM))
    code = main(["pdf", "validate", str(path), "--root", str(other_root)])
    out = capsys.readouterr()
    assert code == 1 and "not trusted" in out.out and "Traceback" not in out.err
    assert len(out.err.splitlines()) < 5
    bad = tmp_path / "not-a-cert.pem"
    bad.write_text("hello")
    assert main(["pdf", "validate", str(path), "--root", str(bad)]) == 2
    assert "not a PEM certificate" in capsys.readouterr().err


def test_uploads_over_the_limit_are_refused(
    tmp_path: Path,
    database_url: str,
    center: CenterWithStaff,
    keyring: Any,
) -> None:
    from api.app import create_app
    from api.services import build_services
    from evaluation.documents.local_store import LocalDocumentStore
    from evaluation.documents.store import UploadTooLarge
    from models.settings import Settings

    small = Settings(
        data_dir=tmp_path,
        database_url=database_url,
        audit_checkpoint_every_s=0,
        jobs_in_serve=False,
        document_max_bytes=2048,
    )
    with TestClient(
        create_app(build_services(small, keyring=keyring)), raise_server_exceptions=False
    ) as app:
        response = app.post(
            "/api/v1/documents",
            files={"file": ("big.pdf", make_pdf(2) + b"%" * 200_000, "application/pdf")},
            data={"metadata": "{}"},
            headers=center.headers(Role.OPERATOR),
        )
    assert_problem(response, 413, "request-too-large")
    # Large bodies are streamed rather than buffered; the store enforces the limit itself.
    store = LocalDocumentStore(tmp_path / "store")
    import io

    with pytest.raises(UploadTooLarge):
        store.receive(io.BytesIO(b"x" * 5000), max_bytes=4096)
    assert not any((tmp_path / "store").rglob("*.pdf"))


def test_a_document_altered_in_the_store_is_never_signed(
    client: TestClient,
    setup: dict[str, Any],
    center: CenterWithStaff,
    db: Session,
    clock: FrozenClock,
    services: Services,
) -> None:
    operator, experts = setup["operator"], setup["experts"]
    document = upload(client, operator, slots_for(experts)).json()
    client.post(f"/api/v1/documents/{document['id']}/start", headers=operator)

    def change(data: bytearray) -> None:
        at = data.index(b"Evaluation report")  # the page's text: still a readable PDF
        data[at] = ord("F")

    tamper_with_upload(services.documents.store, document["id"], change)
    refused = sign(client, document["id"], phone_of(db, clock, center, experts[0], "phone-t"))
    assert_problem(refused, 409, "document-changed")
    stored = client.get(f"/api/v1/documents/{document['id']}", headers=operator).json()
    assert stored["revision"] == 0 and stored["sha256"] == document["sha256"]
    assert db.execute(select(func.count()).select_from(SignatureActivation)).scalar_one() == 0

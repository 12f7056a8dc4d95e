"""The evaluation report over HTTP: generated from the frozen results with one slot per
member, the dissent printed, signed by the members through the documents flow, a refusal
without dissent deemed agreement, and the project completed by the last answer."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.services import Services
from evaluation.identity import passkeys
from evaluation.registry.staff import Role
from models.clock import FrozenClock
from models.tables import AuditEntry
from signing.webauthn import PasskeyRejected
from tests.api.committee import Committee, build_committee
from tests.api.helpers import assert_problem
from tests.api.test_documents_api import phone_of, sign
from tests.factories import CenterWithStaff
from tests.nss import HAVE_NSS_TOOLS, pdfsig_blocks, trusting_database

pytestmark = pytest.mark.slow

DISSENT = "本人认为投标人乙的施工组织设计存在重大缺陷，评分偏高，故持不同意见。"


@pytest.fixture
def aggregated(
    client: TestClient,
    center: CenterWithStaff,
    db: Session,
    clock: FrozenClock,
    services: Services,
) -> Committee:
    committee = build_committee(client, center, db, clock, services)
    phones = []
    for member in committee.members:
        headers = committee.sign_in(member)
        committee.declare_no_conflict(headers)
        phones.append(headers)
    chair = committee.members[0]["assignment_id"]
    committee.client.post(
        f"/api/v1/projects/{committee.project_id}/chair",
        json={"assignment_id": chair},
        headers=committee.operator,
    )
    for index, headers in enumerate(phones):
        points = committee.full_sheet(index)
        assert (
            client.put(
                "/api/v1/evaluation/scores", json={"points": points}, headers=headers
            ).status_code
            == 200
        )
        assert client.post("/api/v1/evaluation/scores/submit", headers=headers).status_code == 200
    too_early = client.post("/api/v1/evaluation/report", headers=phones[0])
    assert_problem(too_early, 409, "results-missing")
    assert client.post("/api/v1/evaluation/aggregate", headers=phones[0]).status_code == 200
    dissent = client.post("/api/v1/evaluation/dissent", json={"text": DISSENT}, headers=phones[4])
    assert dissent.status_code == 201
    # Members 0-2 agree with the results; member 3 has not answered yet (see _answer_rest).
    for headers in phones[:3]:
        agreed = client.post("/api/v1/evaluation/results/agree", headers=headers)
        assert agreed.status_code == 200, agreed.text
    return committee


def _answer_rest(committee: Committee) -> None:
    headers = committee.phones[committee.members[3]["assignment_id"]]
    agreed = committee.client.post("/api/v1/evaluation/results/agree", headers=headers)
    assert agreed.status_code == 200, agreed.text


def _text(pdf: bytes, tmp_path: Path) -> str:
    path = tmp_path / "report.pdf"
    path.write_bytes(pdf)
    return subprocess.run(
        ["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, check=True
    ).stdout


@pytest.mark.parametrize("document_store", ["local", "s3"], indirect=True)
def test_the_report_is_generated_signed_and_completes_the_project(
    aggregated: Committee, db: Session, clock: FrozenClock, tmp_path: Path
) -> None:
    committee, client = aggregated, aggregated.client
    phones = [committee.phones[m["assignment_id"]] for m in committee.members]
    assert_problem(client.post("/api/v1/evaluation/report", headers=phones[1]), 403, "not-chair")
    # Member 3 has neither agreed nor dissented: the report waits, so nobody loses the
    # chance to dissent.
    waiting = assert_problem(
        client.post("/api/v1/evaluation/report", headers=phones[0]), 409, "results-under-review"
    )
    assert waiting["pending"] == [committee.members[3]["assignment_id"]]
    _answer_rest(committee)
    twice = client.post("/api/v1/evaluation/results/agree", headers=phones[3])
    assert_problem(twice, 409, "invalid-transition")
    generated = client.post("/api/v1/evaluation/report", headers=phones[0])
    assert generated.status_code == 201, generated.text
    report = generated.json()
    assert report["status"] == "signing" and report["page_count"] >= 2
    again = client.post(
        f"/api/v1/projects/{committee.project_id}/report", headers=committee.operator
    )
    assert_problem(again, 409, "report-exists")
    # Once the report exists, no more dissent.
    late = client.post("/api/v1/evaluation/dissent", json={"text": DISSENT}, headers=phones[3])
    assert_problem(late, 409, "invalid-transition")

    supervisor = committee.center.headers(Role.SUPERVISOR)
    document = client.get(f"/api/v1/documents/{report['document_id']}", headers=supervisor).json()
    slots = document["slots"]
    assert sorted(s["expert_id"] for s in slots) == sorted(
        m["expert_id"] for m in committee.members
    )
    assert {s["role"] for s in slots} == {"评标委员会主任", "评标委员会成员"}
    original = client.get(report["content_url"], headers=supervisor).content
    text = _text(original, tmp_path)
    assert "评标报告" in text and committee.project["name"] in text
    assert DISSENT[:12] in text
    for member in committee.members:
        assert member["name"] in text

    # Four members sign with fresh face checks; the fifth refuses without dissent.
    for member in committee.members[:4]:
        phone = phone_of(
            db,
            clock,
            committee.center,
            member["expert_id"],
            f"sig-{member['rank']}-{member['specialty']}",
        )
        signed = sign(client, report["document_id"], phone)
        assert signed.status_code == 201, signed.text
    project = client.get(f"/api/v1/projects/{committee.project_id}", headers=supervisor).json()
    assert project["status"] == "evaluating"
    refused = client.post("/api/v1/evaluation/report/refusal", headers=phones[4])
    # Member 4 wrote a dissent, so the refusal is not deemed agreement.
    assert refused.status_code == 200, refused.text
    assert refused.json() == {
        "slot_id": refused.json()["slot_id"],
        "status": "refused",
        "deemed": "dissent on record",
    }
    final = client.get(f"/api/v1/documents/{report['document_id']}", headers=supervisor).json()
    assert final["status"] == "completed"
    project = client.get(f"/api/v1/projects/{committee.project_id}", headers=supervisor).json()
    assert project["status"] == "completed"

    signed_pdf = client.get(report["content_url"], headers=supervisor).content
    verdict = client.post(
        "/api/v1/validate",
        files={"file": ("report.pdf", signed_pdf, "application/pdf")},
        headers=supervisor,
    ).json()
    assert verdict["verdict"] == "valid", verdict
    assert len(verdict["signatures"]) == 4 and len(verdict["document_timestamps"]) == 1
    if shutil.which("pdfsig"):
        path = tmp_path / "signed.pdf"
        path.write_bytes(signed_pdf)
        output = subprocess.run(["pdfsig", str(path)], capture_output=True, text=True).stdout
        assert output.count("Signature is Valid.") == 4, output
    if HAVE_NSS_TOOLS:
        # A recipient who trusts the center root in their reader sees every signer trusted.
        from evaluation.trust import pki

        root = pki.load_certificate(pki.center_root(db, committee.center.id).certificate_der)
        database = trusting_database(tmp_path / "nss", [root])
        blocks = pdfsig_blocks(database, path)
        assert len(blocks) == 5  # four signatures and the document time-stamp
        assert all("Certificate is Trusted." in block for block in blocks[:4]), blocks
    actions = list(db.execute(select(AuditEntry.action)).scalars())
    assert actions.count("evaluation.refused_to_sign") == 1
    assert actions.count("project.completed") == 1


def test_a_refusal_without_dissent_is_deemed_agreement(aggregated: Committee, db: Session) -> None:
    committee, client = aggregated, aggregated.client
    path = f"/api/v1/projects/{committee.project_id}/report"
    assert_problem(client.post(path, headers=committee.operator), 409, "results-under-review")
    # The operator may go ahead without member 3's answer, saying why (recorded).
    generated = client.post(
        path, json={"reason": "该委员离开评标室未回复，经监督人员同意"}, headers=committee.operator
    )
    assert generated.status_code == 201, generated.text
    made = db.execute(
        select(AuditEntry).where(AuditEntry.action == "evaluation.report_generated")
    ).scalar_one()
    assert made.details["without_review"] == [committee.members[3]["assignment_id"]]
    silent = committee.phones[committee.members[1]["assignment_id"]]
    refused = client.post("/api/v1/evaluation/report/refusal", headers=silent)
    assert refused.json()["deemed"] == "agreement"
    entry = db.execute(
        select(AuditEntry).where(AuditEntry.action == "evaluation.refused_to_sign")
    ).scalar_one()
    assert entry.details["deemed"] == "agreement"
    twice = client.post("/api/v1/evaluation/report/refusal", headers=silent)
    assert_problem(twice, 403, "no-slot-for-signer")
    # One refusal does not complete a report others have not signed.
    project: Any = client.get(
        f"/api/v1/projects/{committee.project_id}", headers=committee.operator
    ).json()
    assert project["status"] == "evaluating"


def _rezip(data: bytes, name: str, change: Any) -> bytes:
    import io
    import zipfile

    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        for item in source.namelist():
            content = source.read(item)
            target.writestr(item, change(content) if item == name else content)
    return out.getvalue()


def test_the_evidence_package_checks_out_and_catches_edits(
    aggregated: Committee, db: Session, clock: FrozenClock, tmp_path: Path
) -> None:
    import io
    import json
    import zipfile

    from evaluation.supervision.evidence import verify_package

    committee, client = aggregated, aggregated.client
    _answer_rest(committee)
    report = client.post(
        "/api/v1/evaluation/report", headers=committee.phones[committee.members[0]["assignment_id"]]
    ).json()
    for member in committee.members:
        phone = phone_of(
            db, clock, committee.center, member["expert_id"], f"ev-{member['assignment_id'][:8]}"
        )
        assert sign(client, report["document_id"], phone).status_code == 201
    supervisor = committee.center.headers(Role.SUPERVISOR)
    fetched = client.get(f"/api/v1/projects/{committee.project_id}/evidence", headers=supervisor)
    assert fetched.status_code == 200, fetched.text
    assert fetched.headers["content-type"] == "application/zip"
    package = fetched.content
    names = set(zipfile.ZipFile(io.BytesIO(package)).namelist())
    assert {
        "README.md",
        "manifest.json",
        "manifest.json.p7s",
        "report/report.pdf",
        "draw/draw-proof.json",
        "audit/chain.jsonl",
        "audit/checkpoint.p7s",
        "verifications/verifications.json",
        "passkeys/assertions.json",
        "certificates/ca-root.pem",
    } <= names
    from cryptography import x509

    from evaluation.trust import pki

    center_root = pki.load_certificate(pki.center_root(db, committee.center.id).certificate_der)
    checked = verify_package(package, center_root)
    assert checked.ok, checked.checks
    # Every member's phone approved their sign-in and their signature, each checked.
    assert checked.checks["passkey approvals"] == "ok"
    approvals = json.loads(zipfile.ZipFile(io.BytesIO(package)).read("passkeys/assertions.json"))
    assert len(approvals) == 2 * len(committee.members)
    assert {"evaluation_session_id", "signature_activation_id"} == {
        key for record in approvals for key in record["approves"] if key != "field"
    }
    signing = next(r for r in approvals if r["evidence"]["approved"] is not None)
    forged = [dict(signing, evidence=dict(signing["evidence"]))]
    forged[0]["evidence"]["approved"] = {**forged[0]["evidence"]["approved"], "hashes": ["AA=="]}
    with pytest.raises(PasskeyRejected):
        passkeys.check_record(forged[0])

    # Each approval is of its own signature: its one hash is the digest of the signed
    # attributes in its field. Pointing two approvals at each other's fields is caught.
    def swapped(content: bytes) -> bytes:
        records = json.loads(content)
        fields = [r["approves"]["field"] for r in records if "field" in r["approves"]]
        assert len(set(fields)) >= 2
        turned = iter(fields[1:] + fields[:1])
        for record in records:
            if "field" in record["approves"]:
                record["approves"]["field"] = next(turned)
        return json.dumps(records).encode()

    crossed = verify_package(_rezip(package, "passkeys/assertions.json", swapped), center_root)
    assert "approvals of other signatures" in crossed.checks["passkey approvals"]

    # Every signature needs its approval: one dropped from the package is named.
    def one_dropped(content: bytes) -> bytes:
        records = json.loads(content)
        first = next(i for i, r in enumerate(records) if "field" in r["approves"])
        return json.dumps(records[:first] + records[first + 1 :]).encode()

    dropped = verify_package(_rezip(package, "passkeys/assertions.json", one_dropped), center_root)
    assert "signatures no phone approved" in dropped.checks["passkey approvals"]
    assert "report/signers.json" in names
    # Without the center's own root the package proves nothing, however well it checks.
    alone = verify_package(package)
    assert not alone.ok and alone.checks["root"] != "ok"
    assert (
        x509.load_pem_x509_certificate(
            zipfile.ZipFile(io.BytesIO(package)).read("certificates/ca-root.pem")
        )
        == center_root
    )
    chain = zipfile.ZipFile(io.BytesIO(package)).read("audit/chain.jsonl").decode().splitlines()
    actions = [json.loads(line)["action"] for line in chain if json.loads(line)["this_project"]]
    assert "evaluation.aggregated" in actions and "project.completed" in actions

    # The command line agrees, given the root from the center.
    path = tmp_path / "evidence.zip"
    path.write_bytes(package)
    root = tmp_path / "root.pem"
    root.write_bytes(zipfile.ZipFile(io.BytesIO(package)).read("certificates/ca-root.pem"))
    import sys

    cli = subprocess.run(
        [sys.executable, "-m", "api.cli", "evidence", "verify", str(path), "--root", str(root)],
        capture_output=True,
        text=True,
    )
    assert cli.returncode == 0, cli.stdout + cli.stderr

    # Edits are caught: a changed file, and an audit line rewritten with its hash.
    swapped = _rezip(package, "report/report.pdf", lambda b: b.replace(b"%%EOF", b"%%EOF\n%x"))
    assert verify_package(swapped, center_root).checks["file hashes"].startswith("differ")

    def edit_line(content: bytes) -> bytes:
        lines = content.decode().splitlines()
        entry = json.loads(lines[1])
        entry["actor"] = "someone-else"
        lines[1] = json.dumps(entry, ensure_ascii=False)
        return ("\n".join(lines) + "\n").encode()

    edited = verify_package(_rezip(package, "audit/chain.jsonl", edit_line), center_root)
    assert edited.checks["audit chain"] != "ok"
    assert edited.checks["file hashes"] != "ok"
    # And any other file: one byte changed anywhere fails the package.
    for name in sorted(names):
        changed = _rezip(package, name, lambda b: b[:-1] + bytes([b[-1] ^ 1]))
        assert not verify_package(changed, center_root).ok, name


def test_a_report_everyone_refuses_still_completes(aggregated: Committee, db: Session) -> None:
    committee, client = aggregated, aggregated.client
    _answer_rest(committee)
    generated = client.post(
        f"/api/v1/projects/{committee.project_id}/report", headers=committee.operator
    )
    assert generated.status_code == 201, generated.text
    for member in committee.members:
        phone = committee.phones[member["assignment_id"]]
        assert client.post("/api/v1/evaluation/report/refusal", headers=phone).status_code == 200
    supervisor = committee.center.headers(Role.SUPERVISOR)
    document = client.get(
        f"/api/v1/documents/{generated.json()['document_id']}", headers=supervisor
    ).json()
    assert document["status"] == "completed"
    assert {s["status"] for s in document["slots"]} == {"refused"}
    project = client.get(f"/api/v1/projects/{committee.project_id}", headers=supervisor).json()
    assert project["status"] == "completed"
    signed = client.get(generated.json()["content_url"], headers=supervisor).content
    verdict = client.post(
        "/api/v1/validate",
        files={"file": ("report.pdf", signed, "application/pdf")},
        headers=supervisor,
    ).json()
    # No signature, one document time-stamp over the report as generated.
    assert verdict["signatures"] == [] and len(verdict["document_timestamps"]) == 1

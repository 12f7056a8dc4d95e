"""The whole job end to end, on real images, over real HTTP, on SQLite and PostgreSQL:
`evalsign demo` run against a fresh instance. Experts enroll from the photos the model
packages ship; every member signs in by scanning a code and passing a liveness check on
frames rendered from their photo (the real face models judge them); the members score,
the chair aggregates, the report is generated and signed by every member after a fresh
check, validated, and the draw proof replayed; a second project's vacant seat is filled by
a supplementary draw whose chain of proofs replays."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from cryptography import x509
from sqlalchemy import create_engine, func, select

from api.demo import BIDDERS, NAMES, run_demo
from evaluation.kernel import audit
from evaluation.supervision.evidence import verify_package
from models.settings import Settings
from models.tables import AnomalyFlag, AuditEntry, CallUp, Center, FaceVerification, Project

pytestmark = pytest.mark.slow


def test_the_whole_job(tmp_path: Path, isolated_database_url: str) -> None:
    out = tmp_path / "out"
    out.mkdir()
    said: list[str] = []
    settings = Settings(data_dir=tmp_path / "var", database_url=isolated_database_url)
    summary = run_demo(settings, out, said.append)

    assert summary["project"]["status"] == "completed"
    assert summary["report"] == {
        **summary["report"],
        "verdict": "valid",
        "signatures": 5,
        "document_timestamps": 1,
    }
    assert list(summary["draw"]["excluded"].values()) == ["employer-is-bidder"]
    assert len(summary["committee"]) == 5
    # Every member was called up through the outbox and answered from the link.
    assert summary["call_ups_answered"] == 5
    called = [
        json.loads(path.read_text(encoding="utf-8"))
        for path in (settings.data_dir / "outbox").glob("*.json")
    ]
    texts = [m["text"] for m in called if m["purpose"] == "call-up"]
    assert len(texts) >= 5 and all("/m/call/" in text for text in texts)
    assert not any(bidder in text for text in texts for bidder, _ in BIDDERS)
    assert sum(member["chair"] for member in summary["committee"]) == 1
    ranks = [s["rank"] for s in summary["results"]["standings"]]
    assert ranks == sorted(ranks) and ranks[0] == 1
    # summary.json names people: each member's totals under the name the committee lists.
    names = {member["name"] for member in summary["committee"]}
    assert set(summary["results"]["members"]) == names
    assert all(set(s["totals"]) == names for s in summary["results"]["standings"])
    assert any("排除" in line and "employer-is-bidder" in line for line in said)
    # Each member was called up when drawn and answered from the link, so no deadline can
    # decline a member who is already in the room (a member who never answers is closed by
    # signing in: tests/api/test_call_ups_api.py).
    with create_engine(isolated_database_url).connect() as connection:
        answers = sorted(
            a or ""
            for a in connection.scalars(
                select(CallUp.answer).where(CallUp.project_id == summary["project"]["id"])
            )
        )
    assert answers == ["accepted"] * 5, answers
    assert sum("█" in line for line in said) > 10  # the room QR, drawn in the terminal

    # The files a new user gets: the signed report, the proof anyone can replay.
    proof = out / "draw-proof.json"
    replay = subprocess.run(
        [sys.executable, "-m", "api.cli", "draw", "verify", str(proof)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert replay.returncode == 0, replay.stderr
    assert json.loads(replay.stdout)["ok"] is True
    altered = json.loads(proof.read_text(encoding="utf-8"))
    assert isinstance(altered, list) and len(altered) == 1  # a chain of one draw
    altered[0]["public_entropy"] += "0"
    (tmp_path / "altered.json").write_text(json.dumps(altered), encoding="utf-8")
    refused = subprocess.run(
        [sys.executable, "-m", "api.cli", "draw", "verify", str(tmp_path / "altered.json")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert refused.returncode == 1

    # The second project's seat, filled by a supplementary draw: the chain replays, and a
    # link altered is named.
    chained = out / "supplementary-draw-proof.json"
    replay = subprocess.run(
        [sys.executable, "-m", "api.cli", "draw", "verify", str(chained)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert replay.returncode == 0, replay.stderr
    assert [link["link"] for link in json.loads(replay.stdout)["links"]] == [0, 1]
    assert summary["supplementary_draw"]["drawn"] in NAMES
    assert any(line.startswith("16. 补充抽取") for line in said)
    altered = json.loads(chained.read_text(encoding="utf-8"))
    altered[0]["excluded"][0]["reason"] = "excluded-by-operator"
    (tmp_path / "altered.json").write_text(json.dumps(altered), encoding="utf-8")
    refused = subprocess.run(
        [sys.executable, "-m", "api.cli", "draw", "verify", str(tmp_path / "altered.json")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert refused.returncode == 1 and json.loads(refused.stdout)["link"] == 1

    report = out / "report.pdf"
    text = subprocess.run(
        ["pdftotext", str(report), "-"], capture_output=True, text=True, check=True
    ).stdout
    assert "评标报告" in text and "不同意见" in text
    for member in summary["committee"]:
        assert member["name"] in text and member["name"] in NAMES
    if shutil.which("pdfsig"):
        checked = subprocess.run(["pdfsig", str(report)], capture_output=True, text=True).stdout
        assert checked.count("Signature is Valid.") == 5, checked
    assert (
        json.loads((out / "summary.json").read_text(encoding="utf-8"))["project"]
        == summary["project"]
    )
    assert (out / "room-qr.png").read_bytes()[:4] == b"\x89PNG"

    # The contract: both units sealed and signed through their representatives' phones,
    # each seal with its cross-page strips, one signature of the unit's seal a page.
    pages = subprocess.run(
        ["pdfinfo", str(out / "contract.pdf")], capture_output=True, text=True, check=True
    ).stdout
    signatures = 4 + 2 * int(pages.split("Pages:")[1].split()[0])
    assert summary["contract"] == {
        **summary["contract"],
        "status": "completed",
        "verdict": "valid",
        "signatures": signatures,
        "document_timestamps": 1,
    }
    contract = subprocess.run(
        ["pdftotext", str(out / "contract.pdf"), "-"], capture_output=True, text=True, check=True
    ).stdout
    assert "合同书" in contract and "叁仟捌佰陆拾伍万元整" in contract
    if shutil.which("pdfsig"):
        checked = subprocess.run(
            ["pdfsig", str(out / "contract.pdf")], capture_output=True, text=True
        ).stdout
        assert checked.count("Signature is Valid.") == signatures, checked
        assert "not signed" not in checked
    assert set(summary["evidence"]["checks"].values()) == {"ok"}
    package = (out / "evidence.zip").read_bytes()
    root = x509.load_pem_x509_certificate((out / "center-root.pem").read_bytes())
    assert verify_package(package, root).ok
    assert not verify_package(package).ok  # its own root proves nothing
    # The package holds the sealed contract beside the report, checked like it.
    contract_checks = [k for k in summary["evidence"]["checks"] if k.startswith("contracts/")]
    assert len(contract_checks) == 1, summary["evidence"]["checks"]
    with zipfile.ZipFile(io.BytesIO(package)) as archive:
        packed = json.loads(archive.read(contract_checks[0] + "-validation.json"))
        assert archive.read(contract_checks[0] + ".pdf") == (out / "contract.pdf").read_bytes()
    assert packed["verdict"] == "valid" and len(packed["signatures"]) == signatures, packed

    # What supervisors review: every face check the phones made, and an intact log.
    engine = create_engine(isolated_database_url)
    try:
        with engine.connect() as connection:
            passed = connection.execute(
                select(func.count())
                .select_from(FaceVerification)
                .where(FaceVerification.passed.is_(True))
            ).scalar_one()
            assert passed >= 10  # a sign-in and a signing check per member
            # A clean run raises no anomaly flag but one: every phone was bound at the
            # desk minutes before the evaluation (a demo compresses weeks into minutes).
            flags = connection.execute(select(AnomalyFlag.rule)).scalars().all()
            assert set(flags) == {"passkey-bound-late"} and len(flags) == 5
            status = connection.execute(
                select(Project.status).where(Project.id == summary["project"]["id"])
            ).scalar_one()
            assert status == "completed"
            actions = set(connection.execute(select(AuditEntry.action)).scalars())
            assert {
                "task.scanned",
                "evaluation.signed_in",
                "evaluation.aggregated",
                "evaluation.report_generated",
                "document.completed",
                "project.completed",
                "draw.supplementary_committed",
                "draw.supplementary_completed",
            } <= actions
        from sqlalchemy.orm import Session

        with Session(engine) as db:
            center_id = db.execute(select(Center.id)).scalar_one()
            assert audit.verify_chain(db, center_id).ok
    finally:
        engine.dispose()

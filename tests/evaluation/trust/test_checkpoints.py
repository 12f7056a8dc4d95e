"""Signed audit checkpoints: what the hash chain alone misses (entries cut from the end, a
chain recomputed after an edit, a chain rebuilt from scratch) is caught against them; the
signature verifies with openssl against the center root; the scheduled writer signs when
due."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from fastapi.testclient import TestClient
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from api.jobs import CheckpointWriter
from api.services import Services
from evaluation.kernel import audit
from evaluation.registry.staff import Role
from evaluation.trust import checkpoints, pki
from models.clock import FrozenClock
from models.tables import AuditCheckpoint, AuditEntry, AuditHead
from tests.evaluation.kernel.test_audit import _allow_tampering, _append
from tests.factories import CenterWithStaff, establish_pki


@pytest.fixture
def signed(
    db: Session, center: CenterWithStaff, clock: FrozenClock, services: Services
) -> AuditCheckpoint:
    establish_pki(db, clock, services, center)
    _append(db, center, clock, 6)
    checkpoint = checkpoints.write_checkpoint(
        db, clock, services.vault, services.pki, center.id, "on-demand"
    )
    db.commit()
    return checkpoint


def _problems(db: Session, center: CenterWithStaff) -> list[str]:
    db.expire_all()
    return [p.problem for p in checkpoints.verify_against(db, center.id).problems]


def test_a_checkpoint_signs_the_head(
    db: Session, center: CenterWithStaff, signed: AuditCheckpoint, tmp_path: Path
) -> None:
    head = db.get(AuditHead, center.id)
    assert head is not None and signed.seq == head.last_seq and signed.head_hash == head.last_hash
    statement = json.loads(signed.statement)
    assert statement == {
        "format": "evalsign-audit-checkpoint-v1",
        "center_id": center.id,
        "seq": signed.seq,
        "head_hash": signed.head_hash,
        "time": statement["time"],
    }
    assert checkpoints.verify_against(db, center.id).ok
    if shutil.which("openssl"):
        # An outside party needs nothing of ours: the statement, the signature, the root.
        root = pki.load_certificate(pki.center_root(db, center.id).certificate_der)
        (tmp_path / "root.pem").write_bytes(root.public_bytes(Encoding.PEM))
        (tmp_path / "statement.json").write_text(signed.statement)
        (tmp_path / "sig.der").write_bytes(signed.signature_der)
        checked = subprocess.run(
            [
                "openssl", "cms", "-verify", "-binary", "-inform", "DER",
                "-in", str(tmp_path / "sig.der"),
                "-content", str(tmp_path / "statement.json"),
                "-CAfile", str(tmp_path / "root.pem"),
                "-purpose", "any", "-out", "/dev/null",
            ],
            capture_output=True,
            text=True,
        )  # fmt: skip
        assert checked.returncode == 0, checked.stderr
        assert "Verification successful" in checked.stderr


def test_nothing_new_means_no_new_checkpoint(
    db: Session,
    center: CenterWithStaff,
    clock: FrozenClock,
    services: Services,
    signed: AuditCheckpoint,
) -> None:
    again = checkpoints.write_checkpoint(
        db, clock, services.vault, services.pki, center.id, "on-demand"
    )
    assert again.id == signed.id


def test_entries_cut_from_the_end_are_caught(
    db: Session, center: CenterWithStaff, signed: AuditCheckpoint
) -> None:
    _allow_tampering(db.connection())
    last = db.execute(select(AuditEntry).where(AuditEntry.seq == signed.seq - 2)).scalar_one()
    db.execute(
        delete(AuditEntry).where(AuditEntry.center_id == center.id, AuditEntry.seq > last.seq)
    )
    db.execute(
        update(AuditHead)
        .where(AuditHead.center_id == center.id)
        .values(last_seq=last.seq, last_hash=last.hash)
    )
    db.commit()
    assert audit.verify_chain(db, center.id).ok  # the chain alone looks fine
    assert _problems(db, center) == ["entries-missing"]


def test_an_edit_with_the_chain_recomputed_is_caught(
    db: Session, center: CenterWithStaff, signed: AuditCheckpoint
) -> None:
    _allow_tampering(db.connection())
    entries = list(
        db.execute(
            select(AuditEntry).where(AuditEntry.center_id == center.id).order_by(AuditEntry.seq)
        ).scalars()
    )
    middle = entries[len(entries) // 2]
    middle.details = {**middle.details, "i": 999}
    previous = entries[len(entries) // 2 - 1].hash
    for entry in entries[len(entries) // 2 :]:
        entry.prev_hash = previous
        entry.hash = audit.entry_hash(entry)
        previous = entry.hash
    db.execute(update(AuditHead).where(AuditHead.center_id == center.id).values(last_hash=previous))
    db.commit()
    assert audit.verify_chain(db, center.id).ok
    assert _problems(db, center) == ["entry-changed"]


def test_a_chain_rebuilt_from_scratch_is_caught(
    db: Session, center: CenterWithStaff, clock: FrozenClock, signed: AuditCheckpoint
) -> None:
    _allow_tampering(db.connection())
    db.execute(delete(AuditEntry).where(AuditEntry.center_id == center.id))
    db.execute(delete(AuditHead).where(AuditHead.center_id == center.id))
    audit.start_chain(db, center.id)
    _append(db, center, clock, signed.seq)  # as many entries, none of them the real ones
    assert audit.verify_chain(db, center.id).ok
    assert _problems(db, center) == ["entry-changed"]


def test_a_forged_checkpoint_is_refused(
    db: Session, center: CenterWithStaff, signed: AuditCheckpoint
) -> None:
    forged = AuditCheckpoint(
        center_id=center.id,
        seq=signed.seq,
        head_hash="0" * 64,
        statement=signed.statement.replace(signed.head_hash, "0" * 64),
        signature_der=signed.signature_der,
        certificate_id=signed.certificate_id,
        reason="on-demand",
        created_at=signed.created_at,
    )
    report = checkpoints.verify_against(db, center.id, [forged])
    assert [p.problem for p in report.problems] == ["signature-invalid"]
    garbage = AuditCheckpoint(**{**_columns(forged), "signature_der": b"\x30\x03\x02\x01\x01"})
    report = checkpoints.verify_against(db, center.id, [garbage])
    assert [p.problem for p in report.problems] == ["signature-invalid"]


def _columns(row: AuditCheckpoint) -> dict[str, Any]:
    return {c.name: getattr(row, c.name) for c in AuditCheckpoint.__table__.columns}


def test_the_scheduled_writer_signs_when_due(
    db: Session, center: CenterWithStaff, clock: FrozenClock, services: Services
) -> None:
    establish_pki(db, clock, services, center)
    db.commit()
    writer = CheckpointWriter(services)
    writer.policy = checkpoints.CheckpointPolicy(every_entries=10, every=timedelta(hours=1))
    assert writer.run_once() == 1  # the first checkpoint of a chain
    assert writer.run_once() == 0  # nothing new
    _append(db, center, clock, 3)
    assert writer.run_once() == 0  # 3 entries, under an hour: not yet
    clock.advance(timedelta(hours=1))
    assert writer.run_once() == 1  # an hour with new entries
    _append(db, center, clock, 10)
    assert writer.run_once() == 1  # 10 entries
    db.expire_all()
    rows = checkpoints.list_checkpoints(db, center.id)
    assert [r.reason for r in rows] == ["scheduled"] * 3
    assert checkpoints.verify_against(db, center.id).ok


def test_checkpoints_over_http(
    client: TestClient, center: CenterWithStaff, db: Session, clock: FrozenClock, services: Services
) -> None:
    establish_pki(db, clock, services, center)
    db.commit()
    made = client.post("/api/v1/audit/checkpoints", headers=center.headers(Role.ADMIN))
    assert made.status_code == 201, made.text
    listed = client.get("/api/v1/audit/checkpoints", headers=center.headers(Role.SUPERVISOR))
    [row] = listed.json()
    assert row["seq"] == made.json()["seq"]
    assert base64.b64decode(row["signature"])[:1] == b"\x30"
    verified = client.get("/api/v1/audit/verify", headers=center.headers(Role.SUPERVISOR)).json()
    assert verified["ok"] is True and verified["checkpoints_checked"] == 1
    assert verified["checkpoint_problems"] == []


def test_a_checkpoint_still_verifies_after_its_certificate_expired(
    db: Session, services: Services
) -> None:
    from datetime import UTC, datetime

    from tests.factories import make_center

    # A center whose service certificates (5 years) were issued in 2015: long expired now.
    then = FrozenClock(datetime(2015, 3, 1, 9, 0, tzinfo=UTC))
    old = make_center(db, then, "二〇一五年的交易中心")
    establish_pki(db, then, services, old)
    _append(db, old, then, 3)
    checkpoints.write_checkpoint(db, then, services.vault, services.pki, old.id, "on-demand")
    db.commit()
    # Its time-stamp proves it was signed while the certificate was valid.
    report = checkpoints.verify_against(db, old.id)
    assert report.ok and report.checked == 1, report.problems

"""Sweeping the store: an object a crashed upload or signing left (stored, but its
transaction never committed) is deleted once past the grace period; every recorded
revision stays readable. On both stores, and through `evalsign documents sweep`."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from api.services import Services
from evaluation.documents import documents
from models.clock import FrozenClock
from tests.conftest import store_location
from tests.factories import CenterWithStaff, make_pdf


@pytest.fixture(params=["local", "s3"])
def document_store(request: pytest.FixtureRequest) -> str | None:
    return store_location(request, request.param)


def test_only_objects_no_revision_records_are_swept(
    db: Session, center: CenterWithStaff, clock: FrozenClock, services: Services
) -> None:
    store = services.documents.store
    pdf = make_pdf(1)
    kept = documents.archive_document(
        db,
        center.caller,
        clock,
        store,
        store.receive(io.BytesIO(pdf), len(pdf)),
        "letter.pdf",
        "授权委托书",
    )
    db.flush()
    # A signing that stored its increment and then crashed before its row was committed.
    recorded = documents.stored_revision(db, kept)
    with store.open(recorded) as file:
        file.seek(0, io.SEEK_END)
        file.write(b"\n% an increment whose revision was never recorded\n")
        orphan = store.keep(recorded, file)
    # And an upload whose document row never was.
    lost = store.adopt(store.receive(io.BytesIO(pdf + b"%"), len(pdf) + 1), "lost-document")

    # Object times are the store's (the real clock), not the test's frozen one.
    later = datetime.now(UTC) + timedelta(minutes=5)
    removed = documents.sweep_unrecorded(db, store, older_than=later)
    assert {r.piece for r in removed} == {orphan.pieces[-1], lost.pieces[0]}
    assert b"".join(store.read(recorded)) == pdf
    assert documents.sweep_unrecorded(db, store, older_than=later) == []


def test_the_command_sweeps_with_a_grace_period(
    isolated_database_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    document_store: str | None,
) -> None:
    from api.cli import main
    from evaluation.documents.store import open_store
    from models.settings import Settings

    data = tmp_path / "instance"
    monkeypatch.setenv("EVALSIGN_DATABASE_URL", isolated_database_url)
    if document_store is not None:
        monkeypatch.setenv("EVALSIGN_DOCUMENT_STORE", document_store)
    settings = Settings(data_dir=data)
    assert main(["init", "--data-dir", str(data)]) == 0
    store = open_store(settings.documents_dir, document_store, cache_bytes=1 << 30)
    store.adopt(store.receive(io.BytesIO(make_pdf(1)), 1 << 20), "crashed-upload")
    capsys.readouterr()
    assert main(["documents", "sweep", "--data-dir", str(data)]) == 0
    assert json.loads(capsys.readouterr().out)["removed"] == 0  # younger than a day
    assert main(["documents", "sweep", "--data-dir", str(data), "--older-than-hours", "-1"]) == 0
    swept = json.loads(capsys.readouterr().out)
    assert swept["removed"] == 1 and swept["objects"][0].startswith("crashed-upload/")
    assert list(store.objects()) == []


def test_the_periodic_job_sweeps_once_the_grace_period_has_passed(
    db: Session, clock: FrozenClock, services: Services
) -> None:
    from api.jobs import sweep_unrecorded_documents

    store = services.documents.store
    pdf = make_pdf(1)
    lost = store.adopt(store.receive(io.BytesIO(pdf), len(pdf)), "lost-document")
    # The object was stored just now (the store's own time); the job's clock is set to
    # an hour later, then past the 24 h grace period.
    clock.advance(datetime.now(UTC) + timedelta(hours=1) - clock.now())
    assert sweep_unrecorded_documents(services) == 0
    clock.advance(timedelta(hours=services.settings.document_sweep_grace_hours))
    assert sweep_unrecorded_documents(services) == 1
    assert documents.sweep_unrecorded(db, store, clock.now()) == []  # it is gone
    with pytest.raises(Exception):  # noqa: B017 (either store's own "no such object")
        b"".join(store.read(lost))

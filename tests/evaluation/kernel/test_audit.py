"""The audit chain: contiguous, tamper-evident, append-only, and never forked by
concurrent writers."""

from __future__ import annotations

import hashlib
import itertools
import json
import threading
from datetime import UTC, datetime, timedelta
from typing import cast

import pytest
from sqlalchemy import Connection, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from evaluation.kernel import audit
from evaluation.kernel.actions import Action
from evaluation.registry import centers
from models.clock import FrozenClock
from models.db import make_engine, make_session_factory
from models.migrate import upgrade_to_head
from models.tables import AuditEntry, AuditHead
from tests.conftest import on_postgres
from tests.factories import CenterWithStaff


def _append(db: Session, center: CenterWithStaff, clock: FrozenClock, n: int) -> None:
    for index in range(n):
        audit.record(db, center.caller, clock, "test.event", "thing", str(index), {"i": index})
    db.commit()


def _entries(db: Session, center_id: str) -> list[AuditEntry]:
    return list(
        db.execute(
            select(AuditEntry).where(AuditEntry.center_id == center_id).order_by(AuditEntry.seq)
        ).scalars()
    )


def _allow_tampering(connection: Connection) -> None:
    """What an attacker with database access must do first: switch the guard off."""
    if on_postgres():
        connection.execute(text("ALTER TABLE audit_entries DISABLE TRIGGER USER"))
    else:
        connection.execute(text("DROP TRIGGER audit_entries_no_update"))
        connection.execute(text("DROP TRIGGER audit_entries_no_delete"))


def test_entries_form_a_contiguous_chain_from_genesis(
    db: Session, center: CenterWithStaff, clock: FrozenClock
) -> None:
    _append(db, center, clock, 5)
    entries = _entries(db, center.id)
    assert [entry.seq for entry in entries] == list(range(1, len(entries) + 1))
    assert entries[0].prev_hash == audit.GENESIS_HASH
    for previous, entry in itertools.pairwise(entries):
        assert entry.prev_hash == previous.hash
    report = audit.verify_chain(db, center.id)
    assert report.ok and report.entries_checked == len(entries) == report.head_seq


def test_hash_is_sha256_of_the_canonical_encoding(
    db: Session, center: CenterWithStaff, clock: FrozenClock
) -> None:
    entry = audit.record(db, center.caller, clock, "test.event", "thing", "x", {"名": "张伟"})
    payload = audit.canonical_bytes(
        center_id=entry.center_id,
        seq=entry.seq,
        occurred_at=entry.occurred_at,
        actor=entry.actor,
        action=entry.action,
        subject_type=entry.subject_type,
        subject_id=entry.subject_id,
        request_id=entry.request_id,
        details=entry.details,
        prev_hash=entry.prev_hash,
    )
    assert entry.hash == hashlib.sha256(payload).hexdigest()
    assert "张伟".encode() in payload  # UTF-8, not \\u escapes
    assert b'"details":{"\xe5\x90\x8d"' in payload  # compact, sorted keys


def test_each_center_has_its_own_chain(
    db: Session, center: CenterWithStaff, other_center: CenterWithStaff, clock: FrozenClock
) -> None:
    _append(db, center, clock, 3)
    first_other = _entries(db, other_center.id)[0]
    assert first_other.seq == 1 and first_other.prev_hash == audit.GENESIS_HASH


def test_database_refuses_to_update_or_delete_entries(
    db: Session, center: CenterWithStaff, connection: Connection
) -> None:
    with pytest.raises(DBAPIError, match="append-only"), connection.begin_nested():
        connection.execute(text("UPDATE audit_entries SET action = 'x'"))
    with pytest.raises(DBAPIError, match="append-only"), connection.begin_nested():
        connection.execute(text("DELETE FROM audit_entries"))


def test_edited_entry_is_reported_by_its_sequence_number(
    db: Session, center: CenterWithStaff, clock: FrozenClock, connection: Connection
) -> None:
    _append(db, center, clock, 6)
    _allow_tampering(connection)
    connection.execute(
        text("UPDATE audit_entries SET actor = 'someone-else' WHERE center_id = :c AND seq = 7"),
        {"c": center.id},
    )
    db.expire_all()
    report = audit.verify_chain(db, center.id)
    assert (report.ok, report.first_bad_seq, report.reason) == (False, 7, "hash-mismatch")
    assert report.entries_checked == 6


def test_rehashed_edit_still_breaks_the_next_link(
    db: Session, center: CenterWithStaff, clock: FrozenClock, connection: Connection
) -> None:
    _append(db, center, clock, 4)
    _allow_tampering(connection)
    entry = _entries(db, center.id)[4]  # seq 5
    entry.details = {"i": 999}
    forged = audit.entry_hash(entry)
    connection.execute(
        text("UPDATE audit_entries SET details = :d, hash = :h WHERE center_id = :c AND seq = 5"),
        {"d": '{"i": 999}', "h": forged, "c": center.id},
    )
    db.expire_all()
    report = audit.verify_chain(db, center.id)
    assert (report.first_bad_seq, report.reason) == (6, "prev-hash-mismatch")


def test_deleted_entry_is_a_sequence_gap(
    db: Session, center: CenterWithStaff, clock: FrozenClock, connection: Connection
) -> None:
    _append(db, center, clock, 4)
    _allow_tampering(connection)
    connection.execute(
        text("DELETE FROM audit_entries WHERE center_id = :c AND seq = 3"), {"c": center.id}
    )
    db.expire_all()
    report = audit.verify_chain(db, center.id)
    assert (report.first_bad_seq, report.reason) == (3, "sequence-gap")


def test_entries_cut_from_the_end_disagree_with_the_head(
    db: Session, center: CenterWithStaff, clock: FrozenClock, connection: Connection
) -> None:
    _append(db, center, clock, 4)
    last = _entries(db, center.id)[-1].seq
    _allow_tampering(connection)
    connection.execute(
        text("DELETE FROM audit_entries WHERE center_id = :c AND seq = :s"),
        {"c": center.id, "s": last},
    )
    db.expire_all()
    report = audit.verify_chain(db, center.id)
    assert (report.first_bad_seq, report.reason) == (last, "head-mismatch")


def test_a_head_the_session_holds_follows_the_appends(
    db: Session, center: CenterWithStaff, clock: FrozenClock
) -> None:
    head = db.get(AuditHead, center.id)
    assert head is not None
    _append(db, center, clock, 3)
    last = _entries(db, center.id)[-1]
    assert (head.last_seq, head.last_hash) == (last.seq, last.hash)
    assert audit.verify_chain(db, center.id).ok


@pytest.mark.slow
def test_concurrent_writers_never_fork_or_skip_the_chain(isolated_database_url: str) -> None:
    engine = make_engine(isolated_database_url)
    upgrade_to_head(engine)
    factory = make_session_factory(engine)
    clock = FrozenClock(datetime.now(UTC))
    with factory() as db, db.begin():
        center_id = centers.create_center(db, "并发测试中心", clock).id
    writers, per_writer = 8, 25
    start = threading.Barrier(writers)
    failures: list[BaseException] = []

    def write(worker: int) -> None:
        try:
            start.wait()
            for index in range(per_writer):
                with factory() as db, db.begin():
                    audit.record(
                        db,
                        audit.Caller(center_id, f"worker-{worker}"),
                        clock,
                        "test.concurrent",
                        "thing",
                        f"{worker}-{index}",
                    )
        except BaseException as exc:  # surfaced below, with the thread's own error
            failures.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    with factory() as db:
        entries = _entries(db, center_id)
        assert [entry.seq for entry in entries] == list(range(1, writers * per_writer + 2))
        assert len({entry.subject_id for entry in entries[1:]}) == writers * per_writer
        report = audit.verify_chain(db, center_id)
    assert report.ok, report
    engine.dispose()


# The verifier reads `details` as stored text and rebuilds the hashed bytes itself (fast
# paths); these pin that it still agrees with canonical_bytes and still catches edits.


def _set_details(connection: Connection, center_id: str, seq: int, stored: str) -> None:
    connection.execute(
        text("UPDATE audit_entries SET details = :d WHERE center_id = :c AND seq = :s"),
        {"d": stored, "c": center_id, "s": seq},
    )


@pytest.mark.parametrize(
    "stored",
    [
        '{"i": 998}',  # as SQLAlchemy writes it
        '{"i":998}',  # canonical-looking text, hashed as stored first
        '{"i": 2, "j": 0}',
        '{"i": "2"}',
        '{"i": 2.0}',
        '[{"i": 2}]',
        "{}",
    ],
)
def test_changed_details_are_caught(
    db: Session, center: CenterWithStaff, clock: FrozenClock, connection: Connection, stored: str
) -> None:
    _append(db, center, clock, 4)
    target = next(entry for entry in _entries(db, center.id) if entry.details == {"i": 2})
    _allow_tampering(connection)
    _set_details(connection, center.id, target.seq, stored)
    db.expire_all()
    report = audit.verify_chain(db, center.id)
    assert (report.ok, report.first_bad_seq, report.reason) == (False, target.seq, "hash-mismatch")
    assert report.entries_checked == target.seq - 1


DETAILS = {"名": "张伟", "a": [1, {"z": None, "b": True}], "x": 1.5, "e": '😀"\\\n\x01'}


@pytest.mark.parametrize(
    "stored",
    [
        # The same value as other JSON text: other key order, spacing and escapes.
        '{"x": 1.5, "e": "\\ud83d\\ude00\\"\\\\\\n\\u0001", "a": [1, {"b": true, "z": null}],'
        ' "\\u540d": "\\u5f20\\u4f1f"}',
        ' { "a" : [ 1 , { "z" : null , "b" : true } ] , "e" : "😀\\"\\\\\\n\\u0001" ,'
        ' "x" : 1.5 , "名" : "张伟" } ',
        # Exactly the canonical text (the hashed-as-stored path).
        json.dumps(DETAILS, sort_keys=True, separators=(",", ":"), ensure_ascii=False),
    ],
)
def test_details_stored_as_other_json_text_still_verify(
    db: Session, center: CenterWithStaff, clock: FrozenClock, connection: Connection, stored: str
) -> None:
    entry = audit.record(db, center.caller, clock, "test.event", "thing", "x", DETAILS)
    _append(db, center, clock, 2)
    _allow_tampering(connection)
    _set_details(connection, center.id, entry.seq, stored)
    db.expire_all()
    report = audit.verify_chain(db, center.id)
    assert report.ok, report


def test_details_that_are_not_json_are_a_hash_mismatch(
    db: Session, center: CenterWithStaff, clock: FrozenClock, connection: Connection
) -> None:
    _append(db, center, clock, 3)
    last = _entries(db, center.id)[-1].seq
    _allow_tampering(connection)
    for stored in ('{"i": 2} trailing', "not json", '{"i": NaN}'):
        if on_postgres():
            # The json column itself refuses such text: nothing for the verifier to meet.
            with pytest.raises(DBAPIError), connection.begin_nested():
                _set_details(connection, center.id, last, stored)
            continue
        _set_details(connection, center.id, last, stored)
        db.expire_all()
        report = audit.verify_chain(db, center.id)
        assert (report.first_bad_seq, report.reason) == (last, "hash-mismatch")


def test_verifier_agrees_with_canonical_bytes_on_awkward_values(
    db: Session, center: CenterWithStaff, clock: FrozenClock
) -> None:
    awkward = ['quote " back\\slash', "tab\tnew\nline\x01\x7f", "张伟 😀 \u2028", "/"]
    for index, value in enumerate(awkward):
        clock.advance(timedelta(microseconds=123457 * (index + 1)))
        caller = audit.Caller(center.id, value[:100], request_id=value[:64])
        audit.record(db, caller, clock, value, value[:50], value[:64], {value: [value, 1e100]})
        audit.record(db, caller, clock, "x", "y", None, {"b": -0.0, "a": {"ä": 1, "Z": 2}})
    db.commit()
    entries = _entries(db, center.id)
    assert all(entry.hash == audit.entry_hash(entry) for entry in entries)
    report = audit.verify_chain(db, center.id)
    assert report.ok and report.entries_checked == len(entries), report


def test_a_chain_longer_than_a_batch_verifies_and_stops_at_a_bad_entry(
    db: Session,
    center: CenterWithStaff,
    clock: FrozenClock,
    connection: Connection,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(audit, "_VERIFY_BATCH", 2)
    _append(db, center, clock, 7)
    assert audit.verify_chain(db, center.id).ok
    _allow_tampering(connection)
    _set_details(connection, center.id, 4, '{"i": -1}')
    db.expire_all()
    for _ in range(2):  # stopping early left nothing open that the next run trips over
        report = audit.verify_chain(db, center.id)
        assert (report.first_bad_seq, report.reason) == (4, "hash-mismatch")


def test_every_action_has_one_spelling_context_dot_snake_case() -> None:
    for action in Action:
        context, _, verb = action.value.partition(".")
        assert context and verb and action.value == action.value.lower(), action
        assert "-" not in action.value and " " not in action.value, action
        assert action.name == action.value.upper().replace(".", "_"), action


def test_search_by_action_finds_entries_written_in_the_legacy_spelling(
    db: Session, center: CenterWithStaff, clock: FrozenClock
) -> None:
    # An entry from before the spellings were unified: its words are under the hash chain.
    legacy = audit.AuditEvent(cast(Action, "contract.link-issued"), "contract_link", "old", {})
    audit.record_many(db, center.caller, clock, [legacy])
    audit.record(db, center.caller, clock, Action.CONTRACT_LINK_ISSUED, "contract_link", "new")
    audit.record(db, center.caller, clock, Action.CONTRACT_SIGNED, "contract", "other")
    found = audit.list_entries(db, center.id, action=Action.CONTRACT_LINK_ISSUED)
    assert [entry.subject_id for entry in found] == ["old", "new"]
    assert audit.verify_chain(db, center.id).ok

"""The expert registry: registration with personal data encrypted, updates under version
checks, status changes along EXPERT_TRANSITIONS, filtered keyset listing, center isolation,
and the audit entry every write leaves."""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from evaluation.kernel.errors import (
    DuplicateIdNumber,
    InvalidCursor,
    InvalidTransition,
    NotFound,
    VersionMismatch,
)
from evaluation.registry.experts import (
    EXPERT_TRANSITIONS,
    ExpertChanges,
    ExpertFilters,
    ExpertRecord,
    ExpertStatus,
    NewExpert,
    StatusAction,
    change_expert_status,
    get_expert,
    id_number_context,
    list_experts,
    phone_context,
    register_expert,
    update_expert,
)
from models.clock import FrozenClock
from models.tables import AuditEntry, Expert
from signing.field_cipher import FieldCipher
from tests.factories import CenterWithStaff, credit_code, expert_payload, id_number, phone

STANDARD_ID_NUMBER = "11010519491231002X"


def register(
    db: Session, center: CenterWithStaff, clock: FrozenClock, cipher: FieldCipher, **fields: Any
) -> ExpertRecord:
    record = register_expert(
        db, center.caller, clock, cipher, NewExpert(**expert_payload(**fields))
    )
    db.commit()
    return record


def update(
    db: Session,
    center: CenterWithStaff,
    clock: FrozenClock,
    cipher: FieldCipher,
    expert_id: str,
    expected_version: int | None = None,
    **changes: Any,
) -> ExpertRecord:
    record = update_expert(
        db,
        center.caller,
        clock,
        cipher,
        expert_id,
        ExpertChanges(**changes),
        expected_version=expected_version,
    )
    db.commit()
    return record


def change_status(
    db: Session,
    center: CenterWithStaff,
    clock: FrozenClock,
    cipher: FieldCipher,
    expert_id: str,
    action: StatusAction,
    reason: str | None = "test",
    expected_version: int | None = None,
) -> ExpertRecord:
    record = change_expert_status(
        db,
        center.caller,
        clock,
        cipher,
        expert_id,
        action,
        reason,
        expected_version=expected_version,
    )
    db.commit()
    return record


def audit_entries(db: Session, center_id: str, subject_id: str | None = None) -> list[AuditEntry]:
    query = select(AuditEntry).where(AuditEntry.center_id == center_id)
    if subject_id is not None:
        query = query.where(AuditEntry.subject_id == subject_id)
    return list(db.execute(query.order_by(AuditEntry.seq)).scalars())


def experts_in(db: Session, center_id: str) -> int:
    return db.execute(
        select(func.count()).select_from(Expert).where(Expert.center_id == center_id)
    ).scalar_one()


def stored_row(db: Session, expert_id: str) -> Any:
    return db.execute(
        select(
            Expert.id_number_ciphertext,
            Expert.id_number_index,
            Expert.phone_ciphertext,
            Expert.version,
            Expert.status,
        ).where(Expert.id == expert_id)
    ).one()


def details_text(entries: list[AuditEntry]) -> str:
    return json.dumps([entry.details for entry in entries], ensure_ascii=False)


def list_all(
    db: Session, center: CenterWithStaff, cipher: FieldCipher, **filters: Any
) -> list[ExpertRecord]:
    return list_experts(db, center.id, cipher, ExpertFilters(**filters), limit=100).items


def ids(records: list[ExpertRecord]) -> set[str]:
    return {record.id for record in records}


# Registration


def test_registration_returns_the_normalized_record(
    db: Session, clock: FrozenClock, cipher: FieldCipher, center: CenterWithStaff
) -> None:
    code = credit_code()
    record = register(
        db,
        center,
        clock,
        cipher,
        name=" 张伟 ",
        id_number="11010519491231002x",
        phone="+86 138-0013-8000",
        specialties=["b02", "A0101", "B02"],
        employer_credit_code=code.lower(),
    )
    assert record.center_id == center.id
    assert record.name == "张伟"
    assert record.phone == "13800138000"
    assert record.specialties == ["A0101", "B02"]
    assert record.employer_credit_code == code
    assert record.status is ExpertStatus.ACTIVE
    assert record.status_reason is None
    assert record.version == 1
    assert record.created_at == record.updated_at == clock.now()


def test_registered_record_shows_only_the_masked_id_number(
    db: Session, clock: FrozenClock, cipher: FieldCipher, center: CenterWithStaff
) -> None:
    record = register(db, center, clock, cipher, id_number=STANDARD_ID_NUMBER)
    assert record.id_number_masked == "110***********002X"
    assert STANDARD_ID_NUMBER not in repr(record)


def test_id_number_and_phone_are_stored_encrypted(
    db: Session, clock: FrozenClock, cipher: FieldCipher, center: CenterWithStaff
) -> None:
    number, mobile = id_number(), phone()
    record = register(db, center, clock, cipher, id_number=number, phone=mobile)
    db.expire_all()
    row = stored_row(db, record.id)
    for plaintext in (number, mobile):
        assert plaintext.encode() not in row.id_number_ciphertext
        assert plaintext.encode() not in row.phone_ciphertext
        assert plaintext not in row.id_number_index
    # ...and each decrypts only under its own field's context.
    assert cipher.decrypt(row.id_number_ciphertext, id_number_context(record.id)) == number
    assert cipher.decrypt(row.phone_ciphertext, phone_context(record.id)) == mobile


def test_registered_expert_reads_back_through_get(
    db: Session, clock: FrozenClock, cipher: FieldCipher, center: CenterWithStaff
) -> None:
    record = register(db, center, clock, cipher, specialties=["C03", "A01"])
    db.expire_all()
    assert get_expert(db, center.id, cipher, record.id) == record


def test_duplicate_id_number_in_center_is_rejected(
    db: Session, clock: FrozenClock, cipher: FieldCipher, center: CenterWithStaff
) -> None:
    register(db, center, clock, cipher, id_number=STANDARD_ID_NUMBER)
    before = len(audit_entries(db, center.id))
    with pytest.raises(DuplicateIdNumber):
        register(db, center, clock, cipher, id_number="11010519491231002x")
    db.rollback()
    assert experts_in(db, center.id) == 1
    assert len(audit_entries(db, center.id)) == before


def test_same_id_number_in_another_center_is_allowed(
    db: Session,
    clock: FrozenClock,
    cipher: FieldCipher,
    center: CenterWithStaff,
    other_center: CenterWithStaff,
) -> None:
    mine = register(db, center, clock, cipher, id_number=STANDARD_ID_NUMBER)
    theirs = register(db, other_center, clock, cipher, id_number=STANDARD_ID_NUMBER)
    assert mine.id != theirs.id
    assert experts_in(db, center.id) == experts_in(db, other_center.id) == 1


def test_registration_is_audited_without_id_number_or_phone(
    db: Session, clock: FrozenClock, cipher: FieldCipher, center: CenterWithStaff
) -> None:
    number, mobile = id_number(), phone()
    record = register(db, center, clock, cipher, id_number=number, phone=mobile)
    entries = audit_entries(db, center.id, record.id)
    assert [entry.action for entry in entries] == ["expert.registered"]
    assert entries[0].subject_type == "expert"
    assert entries[0].details["specialties"] == record.specialties
    assert number not in details_text(entries)
    assert mobile not in details_text(entries)


# Updates


def test_update_changes_fields_and_bumps_version(
    db: Session, clock: FrozenClock, cipher: FieldCipher, center: CenterWithStaff
) -> None:
    record = register(db, center, clock, cipher, name="王芳", region_code="110101")
    clock.advance(timedelta(minutes=5))
    code = credit_code("310000")
    updated = update(
        db,
        center,
        clock,
        cipher,
        record.id,
        expected_version=1,
        name="王芳芳",
        employer_name="上海市政工程设计研究总院",
        employer_credit_code=code,
        region_code="310115",
        specialties=["A0101", "C03"],
    )
    assert updated.name == "王芳芳"
    assert updated.employer_name == "上海市政工程设计研究总院"
    assert updated.employer_credit_code == code
    assert updated.region_code == "310115"
    assert updated.specialties == ["A0101", "C03"]
    assert updated.version == 2
    assert updated.created_at == record.created_at
    assert updated.updated_at == clock.now()
    db.expire_all()
    assert get_expert(db, center.id, cipher, record.id) == updated


def test_update_is_audited_with_the_changed_fields(
    db: Session, clock: FrozenClock, cipher: FieldCipher, center: CenterWithStaff
) -> None:
    record = register(db, center, clock, cipher, name="李娜", specialties=["A01"])
    clock.advance(timedelta(minutes=1))
    update(db, center, clock, cipher, record.id, name="李娜娜", specialties=["A01", "B02"])
    entries = audit_entries(db, center.id, record.id)
    assert [entry.action for entry in entries] == ["expert.registered", "expert.updated"]
    details = entries[-1].details
    assert set(details) == {"name", "specialties"}
    assert details["name"] == {"from": "李娜", "to": "李娜娜"}
    assert details["specialties"] == {"from": ["A01"], "to": ["A01", "B02"]}


def test_changing_only_specialties_bumps_the_version(
    db: Session, clock: FrozenClock, cipher: FieldCipher, center: CenterWithStaff
) -> None:
    record = register(db, center, clock, cipher, specialties=["A01"])
    updated = update(db, center, clock, cipher, record.id, specialties=["B02"])
    assert updated.specialties == ["B02"]
    assert updated.version == 2
    db.expire_all()
    assert stored_row(db, record.id).version == 2


def test_changing_id_number_and_phone_is_audited_without_the_values(
    db: Session, clock: FrozenClock, cipher: FieldCipher, center: CenterWithStaff
) -> None:
    old_number, old_phone = id_number(), phone()
    new_number, new_phone = id_number(), phone()
    record = register(db, center, clock, cipher, id_number=old_number, phone=old_phone)
    clock.advance(timedelta(minutes=1))
    updated = update(db, center, clock, cipher, record.id, id_number=new_number, phone=new_phone)
    assert updated.version == 2
    assert updated.phone == new_phone
    assert updated.id_number_masked == new_number[:3] + "*" * 11 + new_number[-4:]
    entries = audit_entries(db, center.id, record.id)
    assert entries[-1].details == {"id_number": "changed", "phone": "changed"}
    for value in (old_number, old_phone, new_number, new_phone):
        assert value not in details_text(entries)
    db.expire_all()
    row = stored_row(db, record.id)
    assert cipher.decrypt(row.id_number_ciphertext, id_number_context(record.id)) == new_number
    assert new_phone.encode() not in row.phone_ciphertext


def test_old_id_number_is_free_after_it_is_changed(
    db: Session, clock: FrozenClock, cipher: FieldCipher, center: CenterWithStaff
) -> None:
    record = register(db, center, clock, cipher, id_number=STANDARD_ID_NUMBER)
    update(db, center, clock, cipher, record.id, id_number=id_number())
    other = register(db, center, clock, cipher, id_number=STANDARD_ID_NUMBER)
    assert other.id != record.id


def test_update_with_stale_version_is_rejected(
    db: Session, clock: FrozenClock, cipher: FieldCipher, center: CenterWithStaff
) -> None:
    record = register(db, center, clock, cipher, name="刘洋")
    clock.advance(timedelta(minutes=1))
    update(db, center, clock, cipher, record.id, expected_version=1, name="刘洋洋")
    with pytest.raises(VersionMismatch) as raised:
        update(db, center, clock, cipher, record.id, expected_version=1, name="刘阳")
    assert raised.value.extensions["current_version"] == 2
    db.rollback()
    db.expire_all()
    assert get_expert(db, center.id, cipher, record.id).name == "刘洋洋"


def test_update_to_another_experts_id_number_is_rejected(
    db: Session, clock: FrozenClock, cipher: FieldCipher, center: CenterWithStaff
) -> None:
    register(db, center, clock, cipher, id_number=STANDARD_ID_NUMBER)
    record = register(db, center, clock, cipher)
    before = len(audit_entries(db, center.id))
    with pytest.raises(DuplicateIdNumber):
        update(db, center, clock, cipher, record.id, id_number="11010519491231002x")
    db.rollback()
    db.expire_all()
    assert get_expert(db, center.id, cipher, record.id).id_number_masked == record.id_number_masked
    assert stored_row(db, record.id).version == 1
    assert len(audit_entries(db, center.id)) == before


def test_update_with_unchanged_values_does_not_bump_version_or_audit(
    db: Session, clock: FrozenClock, cipher: FieldCipher, center: CenterWithStaff
) -> None:
    payload = expert_payload(specialties=["A01", "B02"])
    record = register(db, center, clock, cipher, **payload)
    before = len(audit_entries(db, center.id))
    clock.advance(timedelta(minutes=1))
    same = update(
        db,
        center,
        clock,
        cipher,
        record.id,
        expected_version=1,
        name=payload["name"],
        id_number=payload["id_number"].lower(),
        phone="+86 " + payload["phone"],
        specialties=["b02", "a01"],
        employer_name=payload["employer_name"],
        employer_credit_code=payload["employer_credit_code"],
        region_code=payload["region_code"],
    )
    empty = update(db, center, clock, cipher, record.id)
    assert same == empty == record
    db.expire_all()
    assert stored_row(db, record.id).version == 1
    assert len(audit_entries(db, center.id)) == before


# Status changes


@pytest.mark.parametrize("status", list(ExpertStatus))
@pytest.mark.parametrize("action", list(StatusAction))
def test_status_changes_follow_the_transition_table(
    db: Session,
    clock: FrozenClock,
    cipher: FieldCipher,
    center: CenterWithStaff,
    status: ExpertStatus,
    action: StatusAction,
) -> None:
    record = register(db, center, clock, cipher)
    if status is ExpertStatus.SUSPENDED:
        record = change_status(db, center, clock, cipher, record.id, StatusAction.SUSPEND)
    assert record.status is status
    target = EXPERT_TRANSITIONS.get((status, action))
    if target is None:
        with pytest.raises(InvalidTransition):
            change_status(db, center, clock, cipher, record.id, action)
    else:
        changed = change_status(db, center, clock, cipher, record.id, action)
        assert changed.status is target


def test_transition_table_allows_exactly_suspend_and_reactivate() -> None:
    assert EXPERT_TRANSITIONS == {
        (ExpertStatus.ACTIVE, StatusAction.SUSPEND): ExpertStatus.SUSPENDED,
        (ExpertStatus.SUSPENDED, StatusAction.REACTIVATE): ExpertStatus.ACTIVE,
    }


def test_suspension_records_reason_version_and_audit(
    db: Session, clock: FrozenClock, cipher: FieldCipher, center: CenterWithStaff
) -> None:
    record = register(db, center, clock, cipher)
    clock.advance(timedelta(hours=1))
    suspended = change_status(
        db, center, clock, cipher, record.id, StatusAction.SUSPEND, "回避：与投标人有利害关系", 1
    )
    assert suspended.status is ExpertStatus.SUSPENDED
    assert suspended.status_reason == "回避：与投标人有利害关系"
    assert suspended.version == 2
    assert suspended.updated_at == clock.now()
    entry = audit_entries(db, center.id, record.id)[-1]
    assert entry.action == "expert.suspend"
    assert entry.details == {
        "from": "active",
        "to": "suspended",
        "reason": "回避：与投标人有利害关系",
    }


def test_reactivation_returns_expert_to_active(
    db: Session, clock: FrozenClock, cipher: FieldCipher, center: CenterWithStaff
) -> None:
    record = register(db, center, clock, cipher)
    change_status(db, center, clock, cipher, record.id, StatusAction.SUSPEND, "休假")
    clock.advance(timedelta(days=30))
    active = change_status(db, center, clock, cipher, record.id, StatusAction.REACTIVATE, "返岗")
    assert active.status is ExpertStatus.ACTIVE
    assert active.status_reason == "返岗"
    assert active.version == 3
    actions = [entry.action for entry in audit_entries(db, center.id, record.id)]
    assert actions == ["expert.registered", "expert.suspend", "expert.reactivate"]


def test_suspending_a_suspended_expert_changes_nothing(
    db: Session, clock: FrozenClock, cipher: FieldCipher, center: CenterWithStaff
) -> None:
    record = register(db, center, clock, cipher)
    suspended = change_status(db, center, clock, cipher, record.id, StatusAction.SUSPEND, "休假")
    before = len(audit_entries(db, center.id))
    clock.advance(timedelta(minutes=1))
    with pytest.raises(InvalidTransition):
        change_status(db, center, clock, cipher, record.id, StatusAction.SUSPEND, "again")
    db.rollback()
    db.expire_all()
    assert get_expert(db, center.id, cipher, record.id) == suspended
    assert len(audit_entries(db, center.id)) == before


def test_status_change_with_stale_version_is_rejected(
    db: Session, clock: FrozenClock, cipher: FieldCipher, center: CenterWithStaff
) -> None:
    record = register(db, center, clock, cipher)
    update(db, center, clock, cipher, record.id, name="新名字")
    with pytest.raises(VersionMismatch):
        change_status(
            db, center, clock, cipher, record.id, StatusAction.SUSPEND, expected_version=1
        )
    db.rollback()
    db.expire_all()
    assert stored_row(db, record.id).status == "active"


# Listing


def test_filters_select_matching_experts(
    db: Session, clock: FrozenClock, cipher: FieldCipher, center: CenterWithStaff
) -> None:
    acme_code = credit_code()
    beijing_bridge = register(
        db,
        center,
        clock,
        cipher,
        name="张伟",
        specialties=["A0101"],
        region_code="110105",
        employer_name="北京市政路桥股份有限公司",
    )
    beijing_design = register(
        db,
        center,
        clock,
        cipher,
        name="张伟强",
        specialties=["A01", "C03"],
        region_code="110101",
        employer_name="北京市建筑设计研究院有限公司",
    )
    shanghai = register(
        db,
        center,
        clock,
        cipher,
        name="王芳",
        specialties=["A02", "B0101"],
        region_code="310115",
        employer_name="ACME Engineering Ltd",
        employer_credit_code=acme_code,
    )
    change_status(db, center, clock, cipher, beijing_design.id, StatusAction.SUSPEND)

    assert ids(list_all(db, center, cipher)) == {beijing_bridge.id, beijing_design.id, shanghai.id}
    assert ids(list_all(db, center, cipher, specialty="A01")) == {
        beijing_bridge.id,
        beijing_design.id,
    }
    assert ids(list_all(db, center, cipher, specialty="a0101")) == {beijing_bridge.id}
    assert ids(list_all(db, center, cipher, specialty="B")) == {shanghai.id}
    assert ids(list_all(db, center, cipher, specialty="A0")) == ids(list_all(db, center, cipher))
    assert ids(list_all(db, center, cipher, region="11")) == {beijing_bridge.id, beijing_design.id}
    assert ids(list_all(db, center, cipher, region="110105")) == {beijing_bridge.id}
    assert ids(list_all(db, center, cipher, region="31")) == {shanghai.id}
    assert ids(list_all(db, center, cipher, employer="设计研究院")) == {beijing_design.id}
    assert ids(list_all(db, center, cipher, employer="北京市")) == {
        beijing_bridge.id,
        beijing_design.id,
    }
    assert ids(list_all(db, center, cipher, employer="acme engineering")) == {shanghai.id}
    assert ids(list_all(db, center, cipher, employer_credit_code=acme_code.lower())) == {
        shanghai.id
    }
    assert ids(list_all(db, center, cipher, status=ExpertStatus.SUSPENDED)) == {beijing_design.id}
    assert ids(list_all(db, center, cipher, status=ExpertStatus.ACTIVE)) == {
        beijing_bridge.id,
        shanghai.id,
    }
    assert ids(list_all(db, center, cipher, name="张伟")) == {beijing_bridge.id, beijing_design.id}
    assert ids(list_all(db, center, cipher, name="伟强")) == {beijing_design.id}
    assert list_all(db, center, cipher, name="赵") == []


def test_filters_combine_and_total_counts_matches(
    db: Session, clock: FrozenClock, cipher: FieldCipher, center: CenterWithStaff
) -> None:
    wanted = [
        register(db, center, clock, cipher, specialties=["A0101"], region_code="110101")
        for _ in range(3)
    ]
    register(db, center, clock, cipher, specialties=["A0101"], region_code="310115")
    register(db, center, clock, cipher, specialties=["B02"], region_code="110101")
    page = list_experts(db, center.id, cipher, ExpertFilters(specialty="A01", region="11"), limit=2)
    assert page.total == 3
    assert len(page.items) == 2
    assert ids(page.items) <= ids(wanted)


@pytest.mark.parametrize("text", ["%", "_", "\\", "设计%", "_北京"])
def test_filter_wildcards_are_taken_literally(
    db: Session, clock: FrozenClock, cipher: FieldCipher, center: CenterWithStaff, text: str
) -> None:
    register(db, center, clock, cipher, name="张伟", employer_name="北京市建筑设计研究院")
    assert list_all(db, center, cipher, employer=text) == []
    assert list_all(db, center, cipher, name=text) == []
    assert list_all(db, center, cipher, region=text) == []
    assert list_all(db, center, cipher, specialty=text) == []


def test_employer_filter_matches_a_literal_percent_sign(
    db: Session, clock: FrozenClock, cipher: FieldCipher, center: CenterWithStaff
) -> None:
    hundred = register(db, center, clock, cipher, employer_name="100%工程咨询有限公司")
    register(db, center, clock, cipher, employer_name="1000工程咨询有限公司")
    assert ids(list_all(db, center, cipher, employer="100%")) == {hundred.id}


def walk_pages(
    db: Session,
    center: CenterWithStaff,
    cipher: FieldCipher,
    limit: int,
    filters: ExpertFilters | None = None,
) -> list[list[ExpertRecord]]:
    pages: list[list[ExpertRecord]] = []
    cursor: str | None = None
    while True:
        page = list_experts(
            db, center.id, cipher, filters or ExpertFilters(), limit=limit, cursor=cursor
        )
        pages.append(page.items)
        cursor = page.next_cursor
        if cursor is None:
            return pages
        assert len(pages) < 100, "pagination does not end"


@pytest.mark.parametrize("limit", [1, 2, 3, 4, 7, 11, 50])
def test_pagination_walks_every_expert_once_in_registration_order(
    db: Session, clock: FrozenClock, cipher: FieldCipher, center: CenterWithStaff, limit: int
) -> None:
    registered: list[ExpertRecord] = []
    for batch in (4, 1, 5):
        # Experts of one batch share a timestamp, as a CSV import leaves them.
        registered += [register(db, center, clock, cipher) for _ in range(batch)]
        clock.advance(timedelta(seconds=1))
    pages = walk_pages(db, center, cipher, limit)
    walked = [record.id for page in pages for record in page]
    expected = [r.id for r in sorted(registered, key=lambda r: (r.created_at, r.id))]
    assert walked == expected
    assert all(len(page) == limit for page in pages[:-1])
    assert 1 <= len(pages[-1]) <= limit  # no empty trailing page
    assert len(pages) == -(-len(registered) // limit)


def test_pagination_with_a_filter_stays_within_the_filter(
    db: Session, clock: FrozenClock, cipher: FieldCipher, center: CenterWithStaff
) -> None:
    matching = set()
    for index in range(9):
        region = "110101" if index % 2 else "310115"
        record = register(db, center, clock, cipher, region_code=region)
        if region.startswith("11"):
            matching.add(record.id)
    pages = walk_pages(db, center, cipher, 2, ExpertFilters(region="11"))
    walked = [record.id for page in pages for record in page]
    assert len(walked) == len(set(walked))
    assert set(walked) == matching


def test_page_reports_total_across_pages(
    db: Session, clock: FrozenClock, cipher: FieldCipher, center: CenterWithStaff
) -> None:
    for _ in range(5):
        register(db, center, clock, cipher)
    first = list_experts(db, center.id, cipher, ExpertFilters(), limit=2)
    second = list_experts(db, center.id, cipher, ExpertFilters(), limit=2, cursor=first.next_cursor)
    assert first.total == second.total == 5
    assert not ids(first.items) & ids(second.items)


def test_experts_registered_after_a_page_appear_on_later_pages(
    db: Session, clock: FrozenClock, cipher: FieldCipher, center: CenterWithStaff
) -> None:
    early = [register(db, center, clock, cipher) for _ in range(3)]
    first = list_experts(db, center.id, cipher, ExpertFilters(), limit=3)
    assert first.next_cursor is None
    clock.advance(timedelta(seconds=1))
    late = register(db, center, clock, cipher)
    first = list_experts(db, center.id, cipher, ExpertFilters(), limit=3)
    assert ids(first.items) == ids(early)
    rest = list_experts(db, center.id, cipher, ExpertFilters(), limit=3, cursor=first.next_cursor)
    assert [record.id for record in rest.items] == [late.id]


def _cursor(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        "not a cursor",
        "!!!!",
        "游标",
        "eyJ",  # truncated base64 of '{"'
        _cursor(42),
        _cursor(None),
        _cursor({"created_at": "2026-11-23T09:00:00+00:00"}),
        _cursor(["2026-11-23T09:00:00+00:00"]),
        _cursor(["2026-11-23T09:00:00+00:00", "a", "b"]),
        _cursor(["2026-11-23T09:00:00", "a"]),  # no time zone
        _cursor(["yesterday", "a"]),
        _cursor([20261123, "a"]),
        _cursor(["2026-11-23T09:00:00+00:00", 7]),
    ],
)
def test_malformed_cursor_is_rejected(
    db: Session, clock: FrozenClock, cipher: FieldCipher, center: CenterWithStaff, cursor: str
) -> None:
    register(db, center, clock, cipher)
    with pytest.raises(InvalidCursor):
        list_experts(db, center.id, cipher, ExpertFilters(), limit=10, cursor=cursor)


# Center isolation


def test_list_never_shows_another_centers_experts(
    db: Session,
    clock: FrozenClock,
    cipher: FieldCipher,
    center: CenterWithStaff,
    other_center: CenterWithStaff,
) -> None:
    mine = register(db, center, clock, cipher, region_code="110101")
    theirs = register(db, other_center, clock, cipher, region_code="110101")
    page = list_experts(db, center.id, cipher, ExpertFilters(region="11"), limit=10)
    assert ids(page.items) == {mine.id}
    assert page.total == 1
    by_code = list_all(db, center, cipher, employer_credit_code=theirs.employer_credit_code)
    assert by_code == []


def test_cursor_from_another_center_shows_nothing_of_it(
    db: Session,
    clock: FrozenClock,
    cipher: FieldCipher,
    center: CenterWithStaff,
    other_center: CenterWithStaff,
) -> None:
    for _ in range(3):
        register(db, other_center, clock, cipher)
    mine = register(db, center, clock, cipher)
    theirs = list_experts(db, other_center.id, cipher, ExpertFilters(), limit=1)
    assert theirs.next_cursor is not None
    page = list_experts(db, center.id, cipher, ExpertFilters(), limit=10, cursor=theirs.next_cursor)
    assert ids(page.items) <= {mine.id}


def test_another_centers_expert_is_not_found(
    db: Session,
    clock: FrozenClock,
    cipher: FieldCipher,
    center: CenterWithStaff,
    other_center: CenterWithStaff,
) -> None:
    theirs = register(db, other_center, clock, cipher)
    with pytest.raises(NotFound):
        get_expert(db, center.id, cipher, theirs.id)
    with pytest.raises(NotFound):
        update(db, center, clock, cipher, theirs.id, name="篡改")
    with pytest.raises(NotFound):
        change_status(db, center, clock, cipher, theirs.id, StatusAction.SUSPEND)
    db.rollback()
    db.expire_all()
    assert get_expert(db, other_center.id, cipher, theirs.id) == theirs


def test_unknown_expert_is_not_found(
    db: Session, cipher: FieldCipher, center: CenterWithStaff
) -> None:
    with pytest.raises(NotFound):
        get_expert(db, center.id, cipher, "00000000-0000-0000-0000-000000000000")

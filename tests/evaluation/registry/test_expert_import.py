"""CSV import of experts: every row valid stores every row, one bad row stores nothing and
names the file line and field; the encodings and headings Chinese desktops produce."""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from evaluation.kernel.errors import ImportRejected, ImportTooLarge
from evaluation.registry.expert_import import COLUMNS, ImportResult, import_experts
from evaluation.registry.experts import (
    ExpertFilters,
    NewExpert,
    get_expert,
    list_experts,
    register_expert,
)
from models.clock import FrozenClock
from models.tables import AuditEntry, Expert
from signing.field_cipher import FieldCipher
from tests.factories import CenterWithStaff, expert_payload, id_number, phone

STANDARD_ID_NUMBER = "11010519491231002X"
CHINESE_HEADING = [
    "姓名",
    "身份证号码",
    "手机号码",
    "专业代码",
    "工作单位",
    "统一社会信用代码",
    "行政区划代码",
]


def cells(**overrides: Any) -> list[str]:
    """One data row in COLUMNS order, specialties joined the way operators type them."""
    payload = expert_payload(**overrides)
    if isinstance(payload["specialties"], list):
        payload["specialties"] = ";".join(payload["specialties"])
    return [payload[column] for column in COLUMNS]


def csv_bytes(
    rows: Sequence[Sequence[str]],
    heading: Sequence[str] = COLUMNS,
    encoding: str = "utf-8",
) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(heading)
    writer.writerows(rows)
    return out.getvalue().encode(encoding)


def run_import(
    db: Session,
    center: CenterWithStaff,
    clock: FrozenClock,
    cipher: FieldCipher,
    data: bytes,
    *,
    max_rows: int = 100,
    dry_run: bool = False,
) -> ImportResult:
    result = import_experts(
        db, center.caller, clock, cipher, data, max_rows=max_rows, dry_run=dry_run
    )
    db.commit()
    return result


def rejected(
    db: Session, center: CenterWithStaff, clock: FrozenClock, cipher: FieldCipher, data: bytes
) -> list[dict[str, Any]]:
    """The per-row errors of a rejected import, after checking that nothing was stored."""
    experts_before, audit_before = count_experts(db, center.id), count_audit(db, center.id)
    with pytest.raises(ImportRejected) as raised:
        run_import(db, center, clock, cipher, data)
    db.rollback()
    assert count_experts(db, center.id) == experts_before
    assert count_audit(db, center.id) == audit_before
    errors: list[dict[str, Any]] = raised.value.extensions["errors"]
    return errors


def count_experts(db: Session, center_id: str) -> int:
    return db.execute(
        select(func.count()).select_from(Expert).where(Expert.center_id == center_id)
    ).scalar_one()


def count_audit(db: Session, center_id: str) -> int:
    return db.execute(
        select(func.count()).select_from(AuditEntry).where(AuditEntry.center_id == center_id)
    ).scalar_one()


def errors_at(errors: list[dict[str, Any]]) -> set[tuple[int, str | None]]:
    return {(error["row"], error["field"]) for error in errors}


# A file that is all valid


def test_valid_file_stores_every_row(
    db: Session, clock: FrozenClock, cipher: FieldCipher, center: CenterWithStaff
) -> None:
    rows = [cells() for _ in range(5)]
    before = count_experts(db, center.id)
    result = run_import(db, center, clock, cipher, csv_bytes(rows))
    assert result.created == 5
    assert result.dry_run is False
    assert len(set(result.expert_ids)) == 5
    assert count_experts(db, center.id) == before + 5
    stored = {get_expert(db, center.id, cipher, expert_id).phone for expert_id in result.expert_ids}
    assert stored == {row[COLUMNS.index("phone")] for row in rows}


def test_imported_expert_matches_its_row(
    db: Session, clock: FrozenClock, cipher: FieldCipher, center: CenterWithStaff
) -> None:
    row = cells(
        name=" 陈静 ",
        id_number="11010519491231002x",
        phone="+86 139-1234-5678",
        specialties="b02;a0101",
        region_code="310115",
    )
    result = run_import(db, center, clock, cipher, csv_bytes([row]))
    db.expire_all()
    expert = get_expert(db, center.id, cipher, result.expert_ids[0])
    assert expert.name == "陈静"
    assert expert.id_number_masked == "110***********002X"
    assert expert.phone == "13912345678"
    assert expert.specialties == ["A0101", "B02"]
    assert expert.region_code == "310115"
    assert expert.employer_name == row[COLUMNS.index("employer_name")]
    assert expert.employer_credit_code == row[COLUMNS.index("employer_credit_code")]
    assert expert.status == "active"
    assert expert.version == 1
    assert expert.created_at == clock.now()


def test_import_is_audited_per_expert_and_once_for_the_file(
    db: Session, clock: FrozenClock, cipher: FieldCipher, center: CenterWithStaff
) -> None:
    rows = [cells() for _ in range(3)]
    before = count_audit(db, center.id)
    result = run_import(db, center, clock, cipher, csv_bytes(rows))
    entries = list(
        db.execute(
            select(AuditEntry)
            .where(AuditEntry.center_id == center.id)
            .order_by(AuditEntry.seq)
            .offset(before)
        ).scalars()
    )
    registered = [entry for entry in entries if entry.action == "expert.registered"]
    imported = [entry for entry in entries if entry.action == "expert.imported"]
    assert len(entries) == 4
    assert sorted(entry.subject_id for entry in registered) == sorted(result.expert_ids)
    assert sorted(entry.details["import_row"] for entry in registered) == [2, 3, 4]
    assert len(imported) == 1
    assert imported[0].details["created"] == 3
    logged = str([entry.details for entry in entries])
    for row in rows:
        assert row[COLUMNS.index("id_number")] not in logged
        assert row[COLUMNS.index("phone")] not in logged


def test_id_number_registered_in_another_center_imports(
    db: Session,
    clock: FrozenClock,
    cipher: FieldCipher,
    center: CenterWithStaff,
    other_center: CenterWithStaff,
) -> None:
    register_expert(
        db,
        other_center.caller,
        clock,
        cipher,
        NewExpert(**expert_payload(id_number=STANDARD_ID_NUMBER)),
    )
    db.commit()
    result = run_import(db, center, clock, cipher, csv_bytes([cells(id_number=STANDARD_ID_NUMBER)]))
    assert result.created == 1


def test_columns_may_come_in_any_order_and_heading_case(
    db: Session, clock: FrozenClock, cipher: FieldCipher, center: CenterWithStaff
) -> None:
    mobile = phone()
    heading = [f" {column.upper()} " for column in reversed(COLUMNS)]
    data = csv_bytes([list(reversed(cells(phone=mobile)))], heading=heading)
    result = run_import(db, center, clock, cipher, data)
    assert get_expert(db, center.id, cipher, result.expert_ids[0]).phone == mobile


def test_imported_experts_share_a_timestamp_and_still_page(
    db: Session, clock: FrozenClock, cipher: FieldCipher, center: CenterWithStaff
) -> None:
    result = run_import(db, center, clock, cipher, csv_bytes([cells() for _ in range(7)]))
    seen: list[str] = []
    cursor = None
    while True:
        page = list_experts(db, center.id, cipher, ExpertFilters(), limit=3, cursor=cursor)
        seen += [record.id for record in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert sorted(seen) == sorted(result.expert_ids)
    assert len(seen) == len(set(seen))


# Encodings


def test_gb18030_file_with_chinese_headings_imports(
    db: Session, clock: FrozenClock, cipher: FieldCipher, center: CenterWithStaff
) -> None:
    row = cells(name="欧阳娜娜", employer_name="广州市市政工程设计研究总院有限公司")
    data = csv_bytes([row], heading=CHINESE_HEADING, encoding="gb18030")
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")  # the test really exercises the GB18030 fallback
    result = run_import(db, center, clock, cipher, data)
    expert = get_expert(db, center.id, cipher, result.expert_ids[0])
    assert expert.name == "欧阳娜娜"
    assert expert.employer_name == "广州市市政工程设计研究总院有限公司"


def test_utf8_file_with_bom_imports(
    db: Session, clock: FrozenClock, cipher: FieldCipher, center: CenterWithStaff
) -> None:
    data = codecs.BOM_UTF8 + csv_bytes([cells(name="李娜")])
    result = run_import(db, center, clock, cipher, data)
    assert get_expert(db, center.id, cipher, result.expert_ids[0]).name == "李娜"


def test_utf8_file_with_bom_and_chinese_headings_imports(
    db: Session, clock: FrozenClock, cipher: FieldCipher, center: CenterWithStaff
) -> None:
    heading = ["姓名", "身份证号", "手机号", "专业", "工作单位", "统一社会信用代码", "地区代码"]
    data = codecs.BOM_UTF8 + csv_bytes([cells(), cells()], heading=heading)
    assert run_import(db, center, clock, cipher, data).created == 2


def test_file_that_is_neither_utf8_nor_gb18030_is_rejected(
    db: Session, clock: FrozenClock, cipher: FieldCipher, center: CenterWithStaff
) -> None:
    data = csv_bytes([cells()]) + b"\xff\xff\xff\n"
    errors = rejected(db, center, clock, cipher, data)
    assert [error["message"] for error in errors] == ["cannot decode file"]


@pytest.mark.parametrize(
    "specialties",
    ["A01;B02", "A01；B02", "A01，B02", "A01,B02", "A01|B02", "A01 B02", "A01、B02", " a01 ; b02 "],
)
def test_specialty_lists_accept_the_usual_separators(
    db: Session,
    clock: FrozenClock,
    cipher: FieldCipher,
    center: CenterWithStaff,
    specialties: str,
) -> None:
    result = run_import(db, center, clock, cipher, csv_bytes([cells(specialties=specialties)]))
    assert get_expert(db, center.id, cipher, result.expert_ids[0]).specialties == ["A01", "B02"]


# Rows with errors


def test_one_bad_row_stores_nothing_and_names_line_and_field(
    db: Session, clock: FrozenClock, cipher: FieldCipher, center: CenterWithStaff
) -> None:
    rows = [cells(), cells(), cells(phone="010-12345678"), cells()]
    errors = rejected(db, center, clock, cipher, csv_bytes(rows))
    assert errors_at(errors) == {(4, "phone")}


def test_every_bad_field_of_every_bad_row_is_reported(
    db: Session, clock: FrozenClock, cipher: FieldCipher, center: CenterWithStaff
) -> None:
    rows = [
        cells(id_number="110105194912310021"),
        cells(),
        cells(region_code="990000", employer_credit_code="91350100M000100Y44"),
        cells(specialties=""),
        cells(name="  "),
    ]
    errors = rejected(db, center, clock, cipher, csv_bytes(rows))
    assert errors_at(errors) == {
        (2, "id_number"),
        (4, "region_code"),
        (4, "employer_credit_code"),
        (5, "specialties"),
        (6, "name"),
    }
    assert [error["row"] for error in errors] == sorted(error["row"] for error in errors)
    assert all(error["message"] for error in errors)


def test_bad_row_after_blank_lines_is_named_by_its_file_line(
    db: Session, clock: FrozenClock, cipher: FieldCipher, center: CenterWithStaff
) -> None:
    heading = ",".join(COLUMNS)
    good = ",".join(cells())
    bad = ",".join(cells(region_code="11010"))
    data = f"{heading}\r\n\r\n{good}\r\n\r\n,,,,,,\r\n{bad}\r\n".encode()
    errors = rejected(db, center, clock, cipher, data)
    assert errors_at(errors) == {(6, "region_code")}


def test_duplicate_id_number_within_the_file_names_both_rows(
    db: Session, clock: FrozenClock, cipher: FieldCipher, center: CenterWithStaff
) -> None:
    rows = [
        cells(),
        cells(id_number=STANDARD_ID_NUMBER),
        cells(),
        cells(id_number="11010519491231002x"),  # the same person, typed in lower case
    ]
    errors = rejected(db, center, clock, cipher, csv_bytes(rows))
    assert errors_at(errors) == {(5, "id_number")}
    assert "3" in errors[0]["message"]


def test_id_number_already_registered_in_the_center_is_rejected(
    db: Session, clock: FrozenClock, cipher: FieldCipher, center: CenterWithStaff
) -> None:
    register_expert(
        db, center.caller, clock, cipher, NewExpert(**expert_payload(id_number=STANDARD_ID_NUMBER))
    )
    db.commit()
    rows = [cells(), cells(id_number=STANDARD_ID_NUMBER)]
    errors = rejected(db, center, clock, cipher, csv_bytes(rows))
    assert errors_at(errors) == {(3, "id_number")}
    assert "already registered" in errors[0]["message"]


def test_ragged_rows_are_rejected(
    db: Session, clock: FrozenClock, cipher: FieldCipher, center: CenterWithStaff
) -> None:
    short = cells()[:-1]
    long = [*cells(), "extra"]
    errors = rejected(db, center, clock, cipher, csv_bytes([cells(), short, long]))
    assert errors_at(errors) == {(3, None), (4, None)}
    assert "6" in errors[0]["message"]
    assert "8" in errors[1]["message"]


def test_import_of_a_file_with_errors_leaves_no_partial_rows(
    db: Session, clock: FrozenClock, cipher: FieldCipher, center: CenterWithStaff
) -> None:
    good = cells(id_number=id_number())
    rejected(db, center, clock, cipher, csv_bytes([good, cells(phone="123")]))
    # The good row of the rejected file imports cleanly later: it was never stored.
    assert run_import(db, center, clock, cipher, csv_bytes([good])).created == 1


# Headings and file shape


def test_misspelled_heading_is_rejected_naming_the_column(
    db: Session, clock: FrozenClock, cipher: FieldCipher, center: CenterWithStaff
) -> None:
    heading = [("mobile" if column == "phone" else column) for column in COLUMNS]
    with pytest.raises(ImportRejected) as raised:
        run_import(db, center, clock, cipher, csv_bytes([cells()], heading=heading))
    errors = raised.value.extensions["errors"]
    assert {(e["row"], e["field"], e["message"]) for e in errors} == {
        (1, "mobile", "unknown column"),
        (1, "phone", "missing column"),
    }
    assert raised.value.extensions["expected_columns"] == list(COLUMNS)


def test_missing_column_is_rejected(
    db: Session, clock: FrozenClock, cipher: FieldCipher, center: CenterWithStaff
) -> None:
    heading = [column for column in COLUMNS if column != "region_code"]
    rows = [cells()[: len(heading)]]
    errors = rejected(db, center, clock, cipher, csv_bytes(rows, heading=heading))
    assert errors_at(errors) == {(1, "region_code")}


def test_unknown_extra_column_is_rejected(
    db: Session, clock: FrozenClock, cipher: FieldCipher, center: CenterWithStaff
) -> None:
    heading = [*COLUMNS, "备注"]
    rows = [[*cells(), "返聘"]]
    errors = rejected(db, center, clock, cipher, csv_bytes(rows, heading=heading))
    assert errors_at(errors) == {(1, "备注")}


@pytest.mark.parametrize("twice", [["phone", "phone"], ["id_number", "身份证号"]])
def test_column_given_twice_is_rejected(
    db: Session,
    clock: FrozenClock,
    cipher: FieldCipher,
    center: CenterWithStaff,
    twice: list[str],
) -> None:
    heading = [*COLUMNS, twice[1]]
    row = cells()
    extra = row[COLUMNS.index(twice[0])]
    errors = rejected(db, center, clock, cipher, csv_bytes([[*row, extra]], heading=heading))
    assert errors_at(errors) == {(1, twice[0])}
    assert errors[0]["message"] == "column appears twice"


@pytest.mark.parametrize("data", [b"", codecs.BOM_UTF8, b"\r\n", b"\r\n\r\n"])
def test_empty_file_is_rejected(
    db: Session, clock: FrozenClock, cipher: FieldCipher, center: CenterWithStaff, data: bytes
) -> None:
    errors = rejected(db, center, clock, cipher, data)
    assert errors
    assert {error["row"] for error in errors} == {1}


@pytest.mark.parametrize("trailer", ["", "\r\n", "\r\n,,,,,,\r\n\r\n"])
def test_file_with_only_a_heading_is_rejected(
    db: Session, clock: FrozenClock, cipher: FieldCipher, center: CenterWithStaff, trailer: str
) -> None:
    data = (",".join(COLUMNS) + trailer).encode()
    errors = rejected(db, center, clock, cipher, data)
    assert errors == [{"row": 2, "field": None, "message": "no data rows"}]


def test_blank_lines_are_skipped(
    db: Session, clock: FrozenClock, cipher: FieldCipher, center: CenterWithStaff
) -> None:
    heading = ",".join(COLUMNS)
    rows = [",".join(cells()) for _ in range(3)]
    data = f"{heading}\n\n{rows[0]}\n  ,  ,,,,,\n{rows[1]}\n\n\n{rows[2]}\n\n".encode()
    assert run_import(db, center, clock, cipher, data).created == 3


# Dry runs and size limits


def test_dry_run_validates_and_stores_nothing(
    db: Session, clock: FrozenClock, cipher: FieldCipher, center: CenterWithStaff
) -> None:
    rows = [cells() for _ in range(4)]
    experts_before, audit_before = count_experts(db, center.id), count_audit(db, center.id)
    result = run_import(db, center, clock, cipher, csv_bytes(rows), dry_run=True)
    assert result == ImportResult(created=4, expert_ids=[], dry_run=True)
    assert count_experts(db, center.id) == experts_before
    assert count_audit(db, center.id) == audit_before
    # ...so the same file then imports for real.
    clock.advance(timedelta(minutes=1))
    assert run_import(db, center, clock, cipher, csv_bytes(rows)).created == 4


def test_dry_run_reports_the_same_errors(
    db: Session, clock: FrozenClock, cipher: FieldCipher, center: CenterWithStaff
) -> None:
    data = csv_bytes([cells(), cells(region_code="000000")])
    with pytest.raises(ImportRejected) as raised:
        run_import(db, center, clock, cipher, data, dry_run=True)
    assert errors_at(raised.value.extensions["errors"]) == {(3, "region_code")}


def test_more_rows_than_allowed_is_too_large(
    db: Session, clock: FrozenClock, cipher: FieldCipher, center: CenterWithStaff
) -> None:
    before = count_experts(db, center.id)
    with pytest.raises(ImportTooLarge) as raised:
        run_import(db, center, clock, cipher, csv_bytes([cells() for _ in range(4)]), max_rows=3)
    assert raised.value.extensions["max_rows"] == 3
    db.rollback()
    assert count_experts(db, center.id) == before


def test_exactly_the_allowed_rows_import(
    db: Session, clock: FrozenClock, cipher: FieldCipher, center: CenterWithStaff
) -> None:
    data = csv_bytes([cells() for _ in range(3)]) + b"\r\n\r\n"
    assert run_import(db, center, clock, cipher, data, max_rows=3).created == 3

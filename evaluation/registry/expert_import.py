"""Bulk registration from a CSV file: every row valid means every row stored; any row
invalid means nothing is stored and each bad row is named."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from evaluation.kernel import audit
from evaluation.kernel.actions import Action
from evaluation.kernel.errors import DuplicateIdNumber, ImportRejected, ImportTooLarge
from evaluation.kernel.identifiers import error_message
from evaluation.registry.experts import (
    NewExpert,
    expert_row,
    registered_indexes,
    registration_details,
)
from models.clock import Clock
from models.tables import Expert, ExpertSpecialty
from signing.field_cipher import FieldCipher

COLUMNS = (
    "name",
    "id_number",
    "phone",
    "specialties",
    "employer_name",
    "employer_credit_code",
    "region_code",
)
# The headings of the Excel templates operators already use.
CHINESE_HEADINGS = {
    "姓名": "name",
    "身份证号": "id_number",
    "身份证号码": "id_number",
    "手机号": "phone",
    "手机号码": "phone",
    "专业": "specialties",
    "专业代码": "specialties",
    "工作单位": "employer_name",
    "统一社会信用代码": "employer_credit_code",
    "地区代码": "region_code",
    "行政区划代码": "region_code",
}
_SPECIALTY_SEPARATORS = re.compile(r"[;；|,，、\s]+")
MAX_REPORTED_ERRORS = 1000
TEMPLATE = ",".join(COLUMNS) + "\n"


@dataclass(frozen=True)
class RowError:
    row: int  # line number in the file, the heading being line 1
    field: str | None
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"row": self.row, "field": self.field, "message": self.message}


@dataclass(frozen=True)
class ImportResult:
    created: int
    expert_ids: list[str]
    dry_run: bool


def decode_csv(data: bytes) -> str:
    """UTF-8 (with or without BOM), else GB18030: what Excel on a Chinese desktop saves."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("gb18030")
    except UnicodeDecodeError as exc:
        raise ImportRejected(
            "the file is neither UTF-8 nor GB18030 text",
            errors=[RowError(0, None, "cannot decode file").as_dict()],
        ) from exc


def _heading(cell: str) -> str:
    cell = cell.strip()
    return CHINESE_HEADINGS.get(cell, cell.lower())


def read_rows(data: bytes, max_rows: int) -> list[tuple[int, dict[str, str]]]:
    """(line number, raw fields) for every non-blank data row; checks the heading."""
    text = decode_csv(data)
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        heading = next(reader)
    except StopIteration:
        raise ImportRejected(
            "the file is empty", errors=[RowError(1, None, "no heading row").as_dict()]
        ) from None
    except csv.Error as exc:
        raise ImportRejected(str(exc), errors=[RowError(1, None, str(exc)).as_dict()]) from exc
    columns = [_heading(cell) for cell in heading]
    problems = [
        RowError(1, column, "unknown column") for column in columns if column not in COLUMNS
    ]
    problems += [
        RowError(1, column, "missing column") for column in COLUMNS if column not in columns
    ]
    problems += [
        RowError(1, column, "column appears twice")
        for index, column in enumerate(columns)
        if column in columns[:index]
    ]
    if problems:
        raise ImportRejected(
            "the heading row is not the expected one",
            errors=[problem.as_dict() for problem in problems],
            expected_columns=list(COLUMNS),
        )
    rows: list[tuple[int, dict[str, str]]] = []
    try:
        for cells in reader:
            if not any(cell.strip() for cell in cells):
                continue
            if len(rows) >= max_rows:
                raise ImportTooLarge(f"at most {max_rows} rows per import", max_rows=max_rows)
            rows.append((reader.line_num, dict(zip(columns, cells, strict=False))))
            if len(cells) != len(columns):
                rows[-1][1]["__width__"] = str(len(cells))
    except csv.Error as exc:
        raise ImportRejected(
            f"line {reader.line_num}: {exc}",
            errors=[RowError(reader.line_num, None, str(exc)).as_dict()],
        ) from exc
    if not rows:
        raise ImportRejected(
            "the file has no data rows", errors=[RowError(2, None, "no data rows").as_dict()]
        )
    return rows


def _validate(
    line: int, raw: dict[str, str], width: int
) -> tuple[NewExpert | None, list[RowError]]:
    if "__width__" in raw:
        return None, [RowError(line, None, f"expected {width} cells, found {raw['__width__']}")]
    payload: dict[str, Any] = dict(raw)
    payload["specialties"] = [
        code for code in _SPECIALTY_SEPARATORS.split(raw.get("specialties", "")) if code
    ]
    try:
        return NewExpert.model_validate(payload), []
    except ValidationError as exc:
        return None, [
            RowError(
                line, str(error["loc"][0]) if error["loc"] else None, error_message(error["msg"])
            )
            for error in exc.errors()
        ]


def import_experts(
    db: Session,
    caller: audit.Caller,
    clock: Clock,
    cipher: FieldCipher,
    data: bytes,
    *,
    max_rows: int,
    dry_run: bool = False,
) -> ImportResult:
    rows = read_rows(data, max_rows)
    errors: list[RowError] = []
    valid: list[tuple[int, NewExpert]] = []
    for line, raw in rows:
        fields, problems = _validate(line, raw, len(COLUMNS))
        errors.extend(problems)
        if fields is not None:
            valid.append((line, fields))

    now = clock.now()
    prepared = [
        (line, fields, expert_row(fields, caller.center_id, cipher, now)) for line, fields in valid
    ]
    first_line: dict[str, int] = {}
    for line, _fields, row in prepared:
        index = row["id_number_index"]
        if index in first_line:
            errors.append(RowError(line, "id_number", f"same ID number as row {first_line[index]}"))
        else:
            first_line[index] = line
    registered = registered_indexes(db, caller.center_id, first_line)
    errors.extend(
        RowError(line, "id_number", "an expert with this ID number is already registered")
        for line, _fields, row in prepared
        if row["id_number_index"] in registered
    )
    if errors:
        errors.sort(key=lambda error: error.row)
        raise ImportRejected(
            f"{len({error.row for error in errors})} of {len(rows)} rows have errors; "
            "nothing was stored",
            errors=[error.as_dict() for error in errors[:MAX_REPORTED_ERRORS]],
            errors_truncated=len(errors) > MAX_REPORTED_ERRORS,
            rows=len(rows),
        )
    if dry_run:
        return ImportResult(len(prepared), [], True)

    try:
        with db.begin_nested():
            db.execute(insert(Expert), [row for _line, _fields, row in prepared])
            db.execute(
                insert(ExpertSpecialty),
                [
                    {"expert_id": row["id"], "code": code}
                    for _line, fields, row in prepared
                    for code in fields.specialties
                ],
            )
    except IntegrityError as exc:
        raise DuplicateIdNumber(
            "an expert in the file was registered concurrently; nothing was stored, retry"
        ) from exc
    expert_ids = [row["id"] for _line, _fields, row in prepared]
    events = [
        audit.AuditEvent(
            Action.EXPERT_REGISTERED,
            "expert",
            row["id"],
            {**registration_details(fields), "import_row": line},
        )
        for line, fields, row in prepared
    ]
    events.append(
        audit.AuditEvent(
            Action.EXPERT_IMPORTED, "expert_import", None, {"created": len(expert_ids)}
        )
    )
    audit.record_many(db, caller, clock, events)
    return ImportResult(len(expert_ids), expert_ids, False)

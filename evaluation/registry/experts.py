"""The expert registry: who may be drawn to evaluate, kept per center, with the ID number
and phone encrypted at rest and duplicates found by a keyed hash."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import and_, exists, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload
from sqlalchemy.orm.attributes import flag_modified
from sqlalchemy.orm.exc import StaleDataError

from evaluation.kernel import audit
from evaluation.kernel.actions import Action
from evaluation.kernel.errors import (
    ConcurrentUpdate,
    DomainError,
    DuplicateIdNumber,
    InvalidCursor,
    InvalidTransition,
    NotFound,
    VersionMismatch,
)
from evaluation.kernel.identifiers import (
    CreditCode,
    IdNumber,
    Phone,
    RegionCode,
    SpecialtyCode,
    mask_id_number,
)
from evaluation.kernel.identifiers import (
    Name as PersonName,
)
from evaluation.kernel.tenancy import in_center
from models.base import new_id
from models.clock import Clock
from models.tables import Expert, ExpertSpecialty
from signing.field_cipher import FieldCipher

Name = Annotated[PersonName, Field(min_length=1, max_length=100)]
EmployerName = Annotated[PersonName, Field(min_length=1, max_length=200)]
Specialties = Annotated[list[SpecialtyCode], Field(min_length=1, max_length=20)]


class ExpertStatus(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"


class StatusAction(StrEnum):
    SUSPEND = "suspend"
    REACTIVATE = "reactivate"


# Every allowed status change, in one place: (from, action) -> to.
EXPERT_TRANSITIONS: dict[tuple[ExpertStatus, StatusAction], ExpertStatus] = {
    (ExpertStatus.ACTIVE, StatusAction.SUSPEND): ExpertStatus.SUSPENDED,
    (ExpertStatus.SUSPENDED, StatusAction.REACTIVATE): ExpertStatus.ACTIVE,
}
_STATUS_ACTIONS = {
    StatusAction.SUSPEND: Action.EXPERT_SUSPEND,
    StatusAction.REACTIVATE: Action.EXPERT_REACTIVATE,
}


def _unique_sorted(codes: list[str]) -> list[str]:
    return sorted(set(codes))


class NewExpert(BaseModel):
    """A complete, validated expert record as registered (API body or one CSV row)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Name
    id_number: IdNumber
    phone: Phone
    specialties: Specialties
    employer_name: EmployerName
    employer_credit_code: CreditCode
    region_code: RegionCode

    _dedupe = field_validator("specialties")(_unique_sorted)


class ExpertChanges(BaseModel):
    """The fields an update may change; absent fields stay as they are."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Name | None = None
    id_number: IdNumber | None = None
    phone: Phone | None = None
    specialties: Specialties | None = None
    employer_name: EmployerName | None = None
    employer_credit_code: CreditCode | None = None
    region_code: RegionCode | None = None

    @field_validator("specialties")
    @classmethod
    def _dedupe(cls, codes: list[str] | None) -> list[str] | None:
        return None if codes is None else _unique_sorted(codes)


@dataclass(frozen=True)
class ExpertRecord:
    """An expert as the rest of the service sees it: personal data decrypted, ID masked."""

    id: str
    center_id: str
    name: str
    id_number_masked: str
    phone: str
    specialties: list[str]
    employer_name: str
    employer_credit_code: str
    region_code: str
    status: ExpertStatus
    status_reason: str | None
    version: int
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class ExpertFilters:
    specialty: str | None = None  # code prefix: "A01" matches A01, A0101, ...
    region: str | None = None  # code prefix: "11" matches all of Beijing
    employer: str | None = None  # part of the employer's name
    employer_credit_code: str | None = None
    status: ExpertStatus | None = None
    name: str | None = None  # part of the name


@dataclass(frozen=True)
class ExpertPage:
    items: list[ExpertRecord]
    total: int
    next_cursor: str | None


def id_number_context(expert_id: str) -> str:
    return f"experts/{expert_id}/id_number"


def phone_context(expert_id: str) -> str:
    return f"experts/{expert_id}/phone"


def id_number_index(cipher: FieldCipher, center_id: str, id_number: str) -> str:
    return cipher.blind_index(id_number, f"expert-id-number/{center_id}")


def to_record(expert: Expert, cipher: FieldCipher) -> ExpertRecord:
    id_number = cipher.decrypt(expert.id_number_ciphertext, id_number_context(expert.id))
    return ExpertRecord(
        id=expert.id,
        center_id=expert.center_id,
        name=expert.name,
        id_number_masked=mask_id_number(id_number),
        phone=cipher.decrypt(expert.phone_ciphertext, phone_context(expert.id)),
        specialties=[specialty.code for specialty in expert.specialties],
        employer_name=expert.employer_name,
        employer_credit_code=expert.employer_credit_code,
        region_code=expert.region_code,
        status=ExpertStatus(expert.status),
        status_reason=expert.status_reason,
        version=expert.version,
        created_at=expert.created_at,
        updated_at=expert.updated_at,
    )


def expert_row(
    fields: NewExpert, center_id: str, cipher: FieldCipher, now: datetime
) -> dict[str, Any]:
    """Column values of a new expert, personal data encrypted (shared with the CSV import)."""
    expert_id = new_id()
    return {
        "id": expert_id,
        "center_id": center_id,
        "name": fields.name,
        "id_number_ciphertext": cipher.encrypt(fields.id_number, id_number_context(expert_id)),
        "id_number_index": id_number_index(cipher, center_id, fields.id_number),
        "phone_ciphertext": cipher.encrypt(fields.phone, phone_context(expert_id)),
        "employer_name": fields.employer_name,
        "employer_credit_code": fields.employer_credit_code,
        "region_code": fields.region_code,
        "status": ExpertStatus.ACTIVE.value,
        "status_reason": None,
        "version": 1,
        "created_at": now,
        "updated_at": now,
    }


def registration_details(fields: NewExpert) -> dict[str, Any]:
    """What the audit log keeps of a registration: no ID number, no phone."""
    return {
        "name": fields.name,
        "specialties": list(fields.specialties),
        "employer_credit_code": fields.employer_credit_code,
        "region_code": fields.region_code,
    }


def registered_indexes(db: Session, center_id: str, indexes: Iterable[str]) -> set[str]:
    """Which of these ID-number hashes are already registered in the center."""
    wanted = list(indexes)
    found: set[str] = set()
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        found.update(
            db.execute(
                select(Expert.id_number_index).where(
                    Expert.center_id == center_id, Expert.id_number_index.in_(chunk)
                )
            ).scalars()
        )
    return found


def register_expert(
    db: Session, caller: audit.Caller, clock: Clock, cipher: FieldCipher, fields: NewExpert
) -> ExpertRecord:
    row = expert_row(fields, caller.center_id, cipher, clock.now())
    if registered_indexes(db, caller.center_id, [row["id_number_index"]]):
        raise DuplicateIdNumber("an expert with this ID number is already registered")
    expert = Expert(**row)
    expert.specialties = [ExpertSpecialty(code=code) for code in fields.specialties]
    db.add(expert)
    try:
        with db.begin_nested():
            db.flush()
    except IntegrityError as exc:
        # Lost a race with a concurrent registration of the same person.
        raise DuplicateIdNumber("an expert with this ID number is already registered") from exc
    audit.record(
        db,
        caller,
        clock,
        Action.EXPERT_REGISTERED,
        "expert",
        expert.id,
        registration_details(fields),
    )
    return to_record(expert, cipher)


def _load(db: Session, center_id: str, expert_id: str) -> Expert:
    expert = db.execute(
        select(Expert)
        .where(Expert.id == expert_id, Expert.center_id == center_id)
        .options(selectinload(Expert.specialties))
    ).scalar_one_or_none()
    if expert is None:
        raise NotFound(f"no expert {expert_id} in this center")
    return expert


def person_in_center(db: Session, center_id: str, expert_id: str) -> Expert:
    """The expert or representative of this center, or NotFound (another center's too)."""
    return in_center(db, Expert, expert_id, center_id, "expert")


def get_expert(db: Session, center_id: str, cipher: FieldCipher, expert_id: str) -> ExpertRecord:
    return to_record(_load(db, center_id, expert_id), cipher)


def _check_version(expert: Expert, expected_version: int | None) -> None:
    if expected_version is not None and expected_version != expert.version:
        raise VersionMismatch(
            f"expert is at version {expert.version}, not {expected_version}",
            current_version=expert.version,
        )


def _save(db: Session) -> None:
    try:
        with db.begin_nested():
            db.flush()
    except StaleDataError as exc:
        raise ConcurrentUpdate("the expert was changed concurrently; reload and retry") from exc
    except IntegrityError as exc:
        raise DuplicateIdNumber("an expert with this ID number is already registered") from exc


def update_expert(
    db: Session,
    caller: audit.Caller,
    clock: Clock,
    cipher: FieldCipher,
    expert_id: str,
    changes: ExpertChanges,
    *,
    expected_version: int | None = None,
) -> ExpertRecord:
    expert = _load(db, caller.center_id, expert_id)
    _check_version(expert, expected_version)
    details: dict[str, Any] = {}
    for field_name in ("name", "employer_name", "employer_credit_code", "region_code"):
        new_value = getattr(changes, field_name)
        if new_value is not None and new_value != getattr(expert, field_name):
            details[field_name] = {"from": getattr(expert, field_name), "to": new_value}
            setattr(expert, field_name, new_value)
    current = [specialty.code for specialty in expert.specialties]
    if changes.specialties is not None and changes.specialties != current:
        details["specialties"] = {"from": current, "to": changes.specialties}
        expert.specialties = [ExpertSpecialty(code=code) for code in changes.specialties]
    if changes.id_number is not None:
        index = id_number_index(cipher, caller.center_id, changes.id_number)
        if index != expert.id_number_index:
            if registered_indexes(db, caller.center_id, [index]):
                raise DuplicateIdNumber("an expert with this ID number is already registered")
            expert.id_number_index = index
            expert.id_number_ciphertext = cipher.encrypt(
                changes.id_number, id_number_context(expert.id)
            )
            details["id_number"] = "changed"  # personal data: the log says that, not what
    current_phone = cipher.decrypt(expert.phone_ciphertext, phone_context(expert.id))
    if changes.phone is not None and changes.phone != current_phone:
        expert.phone_ciphertext = cipher.encrypt(changes.phone, phone_context(expert.id))
        details["phone"] = "changed"
    if not details:
        return to_record(expert, cipher)
    expert.updated_at = clock.now()
    # Specialties live in their own table: without this, a change to them alone (in the
    # same microsecond) would not touch the expert row, nor bump its version.
    flag_modified(expert, "updated_at")
    _save(db)
    audit.record(db, caller, clock, Action.EXPERT_UPDATED, "expert", expert.id, details)
    return to_record(expert, cipher)


def change_expert_status(
    db: Session,
    caller: audit.Caller,
    clock: Clock,
    cipher: FieldCipher,
    expert_id: str,
    action: StatusAction,
    reason: str | None,
    *,
    expected_version: int | None = None,
) -> ExpertRecord:
    """Suspend or reactivate, only along EXPERT_TRANSITIONS, with the reason audited."""
    expert = _load(db, caller.center_id, expert_id)
    _check_version(expert, expected_version)
    current = ExpertStatus(expert.status)
    target = EXPERT_TRANSITIONS.get((current, action))
    if target is None:
        raise InvalidTransition(
            f"cannot {action.value} an expert who is {current.value}", current_status=current.value
        )
    expert.status = target.value
    expert.status_reason = reason
    expert.updated_at = clock.now()
    _save(db)
    audit.record(
        db,
        caller,
        clock,
        _STATUS_ACTIONS[action],
        "expert",
        expert.id,
        {"from": current.value, "to": target.value, "reason": reason},
    )
    return to_record(expert, cipher)


def _encode_cursor(expert: Expert) -> str:
    raw = json.dumps([expert.created_at.isoformat(), expert.id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, expert_id = json.loads(raw)
        after = datetime.fromisoformat(created_at)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise InvalidCursor("the cursor is malformed") from exc
    if after.tzinfo is None or not isinstance(expert_id, str):
        raise InvalidCursor("the cursor is malformed")
    return after, expert_id


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def list_experts(
    db: Session,
    center_id: str,
    cipher: FieldCipher,
    filters: ExpertFilters,
    *,
    limit: int,
    cursor: str | None = None,
) -> ExpertPage:
    """A page of experts in registration order (keyset pagination), with the total count."""
    # The pool: representatives of units are people the center knows, never drawn.
    conditions: list[Any] = [Expert.center_id == center_id, Expert.kind == "expert"]
    if filters.specialty:
        conditions.append(
            exists().where(
                ExpertSpecialty.expert_id == Expert.id,
                ExpertSpecialty.code.startswith(filters.specialty.upper(), autoescape=True),
            )
        )
    if filters.region:
        conditions.append(Expert.region_code.startswith(filters.region, autoescape=True))
    if filters.employer:
        pattern = f"%{_escape_like(filters.employer.lower())}%"
        conditions.append(func.lower(Expert.employer_name).like(pattern, escape="\\"))
    if filters.employer_credit_code:
        conditions.append(Expert.employer_credit_code == filters.employer_credit_code.upper())
    if filters.status:
        conditions.append(Expert.status == filters.status.value)
    if filters.name:
        conditions.append(Expert.name.contains(filters.name, autoescape=True))

    total = db.execute(select(func.count()).select_from(Expert).where(*conditions)).scalar_one()
    query = select(Expert).where(*conditions)
    if cursor:
        after_created, after_id = _decode_cursor(cursor)
        query = query.where(
            or_(
                Expert.created_at > after_created,
                and_(Expert.created_at == after_created, Expert.id > after_id),
            )
        )
    experts: Sequence[Expert] = (
        db.execute(
            query.order_by(Expert.created_at, Expert.id)
            .limit(limit + 1)
            .options(selectinload(Expert.specialties))
        )
        .scalars()
        .all()
    )
    next_cursor = _encode_cursor(experts[limit - 1]) if len(experts) > limit else None
    return ExpertPage([to_record(expert, cipher) for expert in experts[:limit]], total, next_cursor)


class IdNumberMismatch(DomainError):
    status = 409
    code = "id-number-mismatch"
    title = "The ID number read from the document is not the one registered for this person"


def require_id_number(cipher: FieldCipher, expert: Expert, id_number: str) -> None:
    """The operator types the number from the card in their hand: proof the card was read,
    and that it is this person's."""
    if id_number_index(cipher, expert.center_id, id_number) != expert.id_number_index:
        raise IdNumberMismatch("the ID number does not match this person's registration")

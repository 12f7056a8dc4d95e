"""Units: the center's register of market players (主体库). A tenderer or a bidder is a
unit, known by its unified social credit code (GB 32100); projects link to units, and a
unit signs contracts with its organization seal through the people it authorized.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from evaluation.kernel import audit
from evaluation.kernel.actions import Action
from evaluation.kernel.errors import DomainError, NotFound
from evaluation.kernel.identifiers import Name, Phone, Text, normalize_credit_code
from models.base import new_id
from models.clock import Clock
from models.tables import Unit
from signing.field_cipher import FieldCipher

UnitName = Annotated[Name, Field(min_length=1, max_length=200)]


class DuplicateUnit(DomainError):
    status = 409
    code = "duplicate-unit"
    title = "A unit with this unified social credit code is already registered"


class UnitNameMismatch(DomainError):
    status = 409
    code = "unit-name-mismatch"
    title = "The credit code is registered under another name"


class Contact(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[Name, Field(min_length=1, max_length=100)]
    phone: Phone
    role: Annotated[Text, Field(max_length=100)] | None = None


def _credit_code(value: str) -> str:
    return normalize_credit_code(value)


class NewUnit(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: UnitName
    credit_code: str = Field(min_length=18, max_length=18)
    legal_representative: Annotated[Name, Field(min_length=1, max_length=100)] | None = None
    contacts: list[Contact] = Field(default_factory=list, max_length=20)

    _check = field_validator("credit_code")(_credit_code)


class UnitChanges(BaseModel):
    """What an update may change; the credit code identifies the unit and never changes."""

    model_config = ConfigDict(extra="forbid")

    name: UnitName | None = None
    legal_representative: Annotated[Name, Field(min_length=1, max_length=100)] | None = None
    contacts: list[Contact] | None = Field(default=None, max_length=20)


def _details(unit: Unit) -> dict[str, object]:
    """What the audit log keeps: contacts' phones stay out of it."""
    return {
        "name": unit.name,
        "credit_code": unit.credit_code,
        "legal_representative": unit.legal_representative,
        "contacts": len(unit.contacts),
    }


def contact_phones_context(unit_id: str) -> str:
    return f"units/{unit_id}/contact-phones"


def _keep_contacts(unit: Unit, contacts: list[Contact], cipher: FieldCipher | None) -> None:
    """Names and roles in the clear, the phones encrypted like experts' phones."""
    unit.contacts = [contact.model_dump(exclude={"phone"}) for contact in contacts]
    if not contacts:
        unit.contact_phones_ciphertext = None
        return
    if cipher is None:
        raise ValueError("contacts' phones are kept encrypted: pass the field cipher")
    phones = json.dumps([contact.phone for contact in contacts])
    unit.contact_phones_ciphertext = cipher.encrypt(phones, contact_phones_context(unit.id))


def contacts_of(unit: Unit, cipher: FieldCipher) -> list[Contact]:
    """The unit's contacts with their phones decrypted."""
    if unit.contact_phones_ciphertext is None:
        # Written before migration 0026 (the phone still in the JSON) or no contacts.
        phones = [str(contact.get("phone", "")) for contact in unit.contacts]
    else:
        context = contact_phones_context(unit.id)
        phones = json.loads(cipher.decrypt(unit.contact_phones_ciphertext, context))
    return [
        Contact.model_construct(name=contact["name"], phone=phone, role=contact.get("role"))
        for contact, phone in zip(unit.contacts, phones, strict=True)
    ]


def encrypt_plain_contact_phones(db: Session, cipher: FieldCipher) -> int:
    """Encrypt the contacts' phones units registered before migration 0026 still hold in
    the clear (the migration has no key); the number of units changed."""
    changed = 0
    for unit in db.execute(
        select(Unit).where(Unit.contact_phones_ciphertext.is_(None)).with_for_update()
    ).scalars():
        if any("phone" in contact for contact in unit.contacts):
            _keep_contacts(unit, contacts_of(unit, cipher), cipher)
            changed += 1
    db.flush()
    return changed


def register_unit(
    db: Session,
    caller: audit.Caller,
    clock: Clock,
    fields: NewUnit,
    *,
    cipher: FieldCipher | None = None,
) -> Unit:
    now = clock.now()
    unit = Unit(
        id=new_id(),
        center_id=caller.center_id,
        name=fields.name,
        credit_code=fields.credit_code,
        legal_representative=fields.legal_representative,
        created_by=caller.actor,
        created_at=now,
        updated_at=now,
    )
    _keep_contacts(unit, fields.contacts, cipher)
    existing = unit_by_credit_code(db, caller.center_id, fields.credit_code)
    if existing is not None:
        raise DuplicateUnit(
            f"credit code {fields.credit_code} is already registered as {existing.name!r}",
            unit_id=existing.id,
        )
    try:
        with db.begin_nested():  # flushes what is pending first: add inside
            db.add(unit)
            db.flush()
    except IntegrityError as exc:  # a concurrent registration of the same code won
        raise DuplicateUnit(f"credit code {fields.credit_code} is already registered") from exc
    audit.record(db, caller, clock, Action.UNIT_REGISTERED, "unit", unit.id, _details(unit))
    return unit


def get_unit(db: Session, center_id: str, unit_id: str, *, lock: bool = False) -> Unit:
    query = select(Unit).where(Unit.id == unit_id, Unit.center_id == center_id)
    if lock:
        query = query.with_for_update()
    unit = db.execute(query).scalar_one_or_none()
    if unit is None:
        raise NotFound(f"no unit {unit_id} in this center")
    return unit


def unit_by_credit_code(db: Session, center_id: str, credit_code: str) -> Unit | None:
    return db.execute(
        select(Unit).where(Unit.center_id == center_id, Unit.credit_code == credit_code)
    ).scalar_one_or_none()


def list_units(db: Session, center_id: str, query: str | None, limit: int) -> list[Unit]:
    conditions = [Unit.center_id == center_id]
    if query:
        escaped = query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        pattern = f"%{escaped}%"
        conditions.append(
            or_(Unit.name.like(pattern, escape="\\"), Unit.credit_code == query.upper())
        )
    return list(
        db.execute(select(Unit).where(*conditions).order_by(Unit.name, Unit.id).limit(limit))
        .scalars()
        .all()
    )


def update_unit(
    db: Session,
    caller: audit.Caller,
    clock: Clock,
    unit_id: str,
    changes: UnitChanges,
    *,
    cipher: FieldCipher,
) -> Unit:
    unit = get_unit(db, caller.center_id, unit_id, lock=True)
    before = _details(unit)
    if changes.name is not None:
        unit.name = changes.name
    if changes.legal_representative is not None:
        unit.legal_representative = changes.legal_representative
    if changes.contacts is not None:
        _keep_contacts(unit, changes.contacts, cipher)
    unit.updated_at = clock.now()
    db.flush()
    audit.record(
        db,
        caller,
        clock,
        Action.UNIT_UPDATED,
        "unit",
        unit.id,
        {"before": before, "after": _details(unit)},
    )
    return unit


@dataclass(frozen=True)
class Party:
    """A unit as a project names it."""

    name: str
    credit_code: str


def units_of_project(
    db: Session, caller: audit.Caller, clock: Clock, parties: list[Party]
) -> dict[str, Unit]:
    """The registered unit of every party, by credit code. A party new to the center is
    registered on the way (a project is how most units first reach it); one registered
    under another name is refused, since a typo in a credit code would otherwise tie the
    project to the wrong company."""
    found: dict[str, Unit] = {}
    problems = []
    for party in parties:
        unit = unit_by_credit_code(db, caller.center_id, party.credit_code)
        if unit is None:
            unit = register_unit(
                db, caller, clock, NewUnit(name=party.name, credit_code=party.credit_code)
            )
        elif unit.name != party.name:
            problems.append(
                f"{party.credit_code} is registered as {unit.name!r}, not {party.name!r}"
            )
        found[party.credit_code] = unit
    if problems:
        raise UnitNameMismatch("; ".join(problems), problems=problems)
    return found

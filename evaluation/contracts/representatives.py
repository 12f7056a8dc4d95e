"""Representatives: people a unit authorized to sign for it, and the authorization records
that say for what (scope), for how long, and with which letter (授权委托书).

A representative is a person the center identifies by face, so they are kept with the
experts (kind "representative": enrolled, face-checked and certified the same way, never
drawn). A person who already is an expert keeps that one record.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from evaluation.documents import documents
from evaluation.documents.store import DocumentStore, Received
from evaluation.kernel import audit
from evaluation.kernel.actions import Action
from evaluation.kernel.errors import DomainError, InvalidTransition, NotFound
from evaluation.kernel.identifiers import IdNumber, Name, Phone
from evaluation.registry import units
from evaluation.registry.experts import id_number_context, id_number_index, phone_context
from models.base import new_id
from models.clock import Clock
from models.tables import Expert, Unit, UnitAuthorization
from signing.field_cipher import FieldCipher

SCOPES = ("contracts", "all")


class PersonNameMismatch(DomainError):
    status = 409
    code = "person-name-mismatch"
    title = "This ID number is registered under another name"


class AuthorizationOverlaps(DomainError):
    status = 409
    code = "authorization-exists"
    title = "The person already holds an authorization of this unit for part of this period"


class NewRepresentative(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[Name, Field(min_length=1, max_length=100)]
    id_number: IdNumber
    phone: Phone
    scope: str = Field(pattern="^(contracts|all)$")
    valid_from: datetime
    valid_until: datetime

    @model_validator(mode="after")
    def _period(self) -> NewRepresentative:
        if self.valid_from.tzinfo is None or self.valid_until.tzinfo is None:
            raise ValueError("give the validity period with a time zone")
        if self.valid_until <= self.valid_from:
            raise ValueError("valid_until must be after valid_from")
        return self


def _region_of(credit_code: str) -> str:
    """Characters 3-8 of a credit code are the registering authority's region (GB/T 2260)."""
    region = credit_code[2:8]
    return region if region.isdigit() else "000000"


def _person(
    db: Session,
    caller: audit.Caller,
    clock: Clock,
    cipher: FieldCipher,
    unit: Unit,
    fields: NewRepresentative,
) -> Expert:
    index = id_number_index(cipher, caller.center_id, fields.id_number)
    person = db.execute(
        select(Expert).where(Expert.center_id == caller.center_id, Expert.id_number_index == index)
    ).scalar_one_or_none()
    if person is not None:
        if person.name != fields.name:
            raise PersonNameMismatch(
                f"this ID number is registered as {person.name!r}, not {fields.name!r}"
            )
        return person
    now = clock.now()
    person_id = new_id()
    person = Expert(
        id=person_id,
        center_id=caller.center_id,
        name=fields.name,
        id_number_ciphertext=cipher.encrypt(fields.id_number, id_number_context(person_id)),
        id_number_index=index,
        phone_ciphertext=cipher.encrypt(fields.phone, phone_context(person_id)),
        employer_name=unit.name,
        employer_credit_code=unit.credit_code,
        region_code=_region_of(unit.credit_code),
        status="active",
        kind="representative",
        version=1,
        created_at=now,
        updated_at=now,
    )
    db.add(person)
    db.flush()
    audit.record(
        db,
        caller,
        clock,
        Action.PERSON_REGISTERED,
        "expert",
        person.id,
        {"name": person.name, "kind": "representative", "unit_id": unit.id},
    )
    return person


def authorize_representative(
    db: Session,
    caller: audit.Caller,
    clock: Clock,
    cipher: FieldCipher,
    store: DocumentStore,
    unit_id: str,
    fields: NewRepresentative,
    letter: Received,
    letter_name: str,
) -> UnitAuthorization:
    """Record the unit's authorization of a person, with the letter kept as a document."""
    try:
        unit = units.get_unit(db, caller.center_id, unit_id, lock=True)
        person = _person(db, caller, clock, cipher, unit, fields)
        overlapping = db.execute(
            select(UnitAuthorization.id).where(
                UnitAuthorization.unit_id == unit.id,
                UnitAuthorization.person_id == person.id,
                UnitAuthorization.status == "active",
                UnitAuthorization.valid_from < fields.valid_until,
                UnitAuthorization.valid_until > fields.valid_from,
            )
        ).first()
        if overlapping is not None:
            raise AuthorizationOverlaps(
                f"authorization {overlapping[0]} already covers part of this period; revoke it "
                "first",
                authorization_id=overlapping[0],
            )
    except DomainError:
        store.discard(letter)
        raise
    document = documents.archive_document(
        db, caller, clock, store, letter, letter_name, f"授权委托书：{unit.name} / {person.name}"
    )
    row = UnitAuthorization(
        id=new_id(),
        center_id=caller.center_id,
        unit_id=unit.id,
        person_id=person.id,
        scope=fields.scope,
        valid_from=fields.valid_from,
        valid_until=fields.valid_until,
        letter_document_id=document.id,
        status="active",
        created_by=caller.actor,
        created_at=clock.now(),
    )
    db.add(row)
    db.flush()
    audit.record(
        db,
        caller,
        clock,
        Action.UNIT_REPRESENTATIVE_AUTHORIZED,
        "unit",
        unit.id,
        {
            "authorization_id": row.id,
            "person_id": person.id,
            "scope": row.scope,
            "valid_from": row.valid_from.isoformat(),
            "valid_until": row.valid_until.isoformat(),
            "letter_document_id": document.id,
            "letter_sha256": document.sha256,
        },
    )
    return row


def get_authorization(
    db: Session, center_id: str, unit_id: str, authorization_id: str
) -> UnitAuthorization:
    row = db.get(UnitAuthorization, authorization_id)
    if row is None or row.center_id != center_id or row.unit_id != unit_id:
        raise NotFound(f"no authorization {authorization_id} of unit {unit_id} in this center")
    return row


def list_authorizations(db: Session, center_id: str, unit_id: str) -> list[UnitAuthorization]:
    units.get_unit(db, center_id, unit_id)
    return list(
        db.execute(
            select(UnitAuthorization)
            .where(UnitAuthorization.unit_id == unit_id)
            .order_by(UnitAuthorization.created_at, UnitAuthorization.id)
        ).scalars()
    )


def revoke_authorization(
    db: Session,
    caller: audit.Caller,
    clock: Clock,
    unit_id: str,
    authorization_id: str,
    reason: str,
) -> UnitAuthorization:
    row = get_authorization(db, caller.center_id, unit_id, authorization_id)
    db.refresh(row, with_for_update=True)
    if row.status == "revoked":
        raise InvalidTransition(f"authorization {row.id} is already revoked")
    row.status = "revoked"
    row.revoked_at = clock.now()
    row.revoke_reason = reason
    db.flush()
    audit.record(
        db,
        caller,
        clock,
        Action.UNIT_REPRESENTATIVE_REVOKED,
        "unit",
        unit_id,
        {"authorization_id": row.id, "person_id": row.person_id, "reason": reason},
    )
    return row

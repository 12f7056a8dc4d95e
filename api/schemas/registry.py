"""Who takes part, at the edge (evaluation/registry/): the center and its staff tokens,
experts and units."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from evaluation.kernel.identifiers import Text, mask_phone
from evaluation.registry.experts import ExpertChanges, ExpertRecord, ExpertStatus, NewExpert
from evaluation.registry.staff import Role


class CenterOut(BaseModel):
    id: str
    name: str
    created_at: datetime


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role
    label: Annotated[Text, Field(max_length=200)]


class TokenOut(BaseModel):
    id: str
    role: Role
    label: str
    created_at: datetime
    revoked_at: datetime | None


class IssuedTokenOut(BaseModel):
    id: str
    role: Role
    label: str
    token: str = Field(description="Shown once; only its hash is stored.")


_EXAMPLE: dict[str, Any] = {
    "name": "张伟",
    "id_number": "110101198003072813",
    "phone": "13812345678",
    "specialties": ["A010101", "B0203"],
    "employer_name": "北京市建筑设计研究院有限公司",
    "employer_credit_code": "911100001011213764",
    "region_code": "110101",
}


class ExpertCreate(NewExpert):
    model_config = ConfigDict(json_schema_extra={"examples": [_EXAMPLE]})


class ExpertUpdate(ExpertChanges):
    model_config = ConfigDict(json_schema_extra={"examples": [{"phone": "13900001111"}]})


class SuspendRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Annotated[Text, Field(min_length=2, max_length=500)]


class ReactivateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Annotated[Text, Field(max_length=500)] | None = None


class ExpertOut(BaseModel):
    id: str
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

    @classmethod
    def of(cls, record: ExpertRecord, *, reveal_phone: bool) -> ExpertOut:
        phone = record.phone if reveal_phone else mask_phone(record.phone)
        return cls.model_validate({**vars(record), "phone": phone})


class ExpertPageOut(BaseModel):
    items: list[ExpertOut]
    total: int
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page.")


class ImportOut(BaseModel):
    created: int
    dry_run: bool
    expert_ids: list[str]


class ContactOut(BaseModel):
    name: str
    phone: str = Field(description="Masked (138****5678) for supervisors, as experts' phones")
    role: str | None


class UnitOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    credit_code: str
    legal_representative: str | None
    contacts: list[ContactOut]
    seal_source: str | None = Field(description="uploaded, generated, or null (no seal yet)")
    seal_purpose: str | None
    created_at: datetime
    updated_at: datetime

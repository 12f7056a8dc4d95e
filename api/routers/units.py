"""Units (the center's register of tenderers and bidders), their representatives'
authorizations, and their organization seals: picture and credential."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response, status
from starlette.datastructures import UploadFile

from api.deps import AnyStaff, Db, Operator, ServicesDep, Staff
from api.errors import RequestTooLarge, ValidationFailed
from api.routers.documents import discarded_unless_kept, read_pdf_form
from api.routers.faces import BINARY, UploadMissing, multipart_body, read_multipart
from api.routers.pki import credential_out
from api.schemas.contracts import AuthorizationOut, RevokeAuthorizationIn
from api.schemas.inputs import Token
from api.schemas.pki import CredentialOut, RevokeIn
from api.schemas.registry import ContactOut, UnitOut
from api.services import Services
from evaluation.contracts import representatives
from evaluation.contracts.representatives import NewRepresentative
from evaluation.documents.store import Received
from evaluation.kernel.identifiers import mask_phone
from evaluation.registry import units
from evaluation.registry.staff import Role
from evaluation.registry.units import NewUnit, UnitChanges
from evaluation.trust import credentials, seals
from evaluation.trust.seals import GeneratedSeal
from models.tables import Unit, UnitAuthorization

router = APIRouter(tags=["units"])

MAX_SEAL_UPLOAD = 2 * 1024 * 1024


def _unit_out(unit: Unit, staff: Staff, services: Services) -> UnitOut:
    # Supervisors review, they do not phone people: they see the numbers masked.
    reveal = staff.role is not Role.SUPERVISOR
    contacts = [
        ContactOut(
            name=contact.name,
            phone=contact.phone if reveal else mask_phone(contact.phone),
            role=contact.role,
        )
        for contact in units.contacts_of(unit, services.cipher)
    ]
    return UnitOut.model_validate({**_columns(unit), "contacts": contacts})


def _columns(unit: Unit) -> dict[str, object]:
    return {name: getattr(unit, name) for name in UnitOut.model_fields if name != "contacts"}


def _authorization_out(db: Db, row: UnitAuthorization) -> AuthorizationOut:
    out = AuthorizationOut.model_validate(row)
    credential = credentials.current_credential(db, row.person_id)
    out.credential_id = credential.id if credential else None
    return out


@router.post("/api/v1/units", response_model=UnitOut, status_code=status.HTTP_201_CREATED)
def register_unit(body: NewUnit, staff: Operator, db: Db, services: ServicesDep) -> UnitOut:
    """Register a unit by its unified social credit code (GB 32100, check character
    verified); a code already registered in this center is 409."""
    unit = units.register_unit(db, staff.caller, services.clock, body, cipher=services.cipher)
    return _unit_out(unit, staff, services)


@router.get("/api/v1/units", response_model=list[UnitOut])
def list_units(
    staff: AnyStaff,
    db: Db,
    services: ServicesDep,
    q: Annotated[
        Token | None, Query(max_length=200, description="Part of the name, or the code")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[UnitOut]:
    """The units (tenderers and bidders) registered with the center."""
    return [_unit_out(u, staff, services) for u in units.list_units(db, staff.center_id, q, limit)]


@router.get("/api/v1/units/{unit_id}", response_model=UnitOut)
def get_unit(unit_id: str, staff: AnyStaff, db: Db, services: ServicesDep) -> UnitOut:
    """One unit: name, credit code, legal representative and contact (the phones masked for
    supervisors)."""
    return _unit_out(units.get_unit(db, staff.center_id, unit_id), staff, services)


@router.patch("/api/v1/units/{unit_id}", response_model=UnitOut)
def update_unit(
    unit_id: str, body: UnitChanges, staff: Operator, db: Db, services: ServicesDep
) -> UnitOut:
    """Change a unit's registered details (audited)."""
    unit = units.update_unit(
        db, staff.caller, services.clock, unit_id, body, cipher=services.cipher
    )
    return _unit_out(unit, staff, services)


# --- the seal ------------------------------------------------------------------------------


@router.put(
    "/api/v1/units/{unit_id}/seal/image",
    response_model=UnitOut,
    openapi_extra=multipart_body({"file": BINARY, "purpose": {"type": "string"}}),
)
async def upload_seal_image(
    unit_id: str, request: Request, staff: Operator, db: Db, services: ServicesDep
) -> UnitOut:
    """The seal's picture: a PNG with a transparent background (at most 2 MB)."""
    form = await read_multipart(request, max_files=1)
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise UploadMissing("attach the seal PNG as `file`")
    data = await upload.read(MAX_SEAL_UPLOAD + 1)
    if len(data) > MAX_SEAL_UPLOAD:
        raise RequestTooLarge("the seal image is over 2 MB", limit_bytes=MAX_SEAL_UPLOAD)
    purpose = form.get("purpose")
    purpose = purpose.strip() if isinstance(purpose, str) and purpose.strip() else None
    if purpose is not None and len(purpose) > 20:
        raise ValidationFailed("purpose is at most 20 characters")
    unit = seals.upload_seal_image(
        db, staff.caller, services.clock, unit_id, data, purpose or seals.DEFAULT_PURPOSE
    )
    return _unit_out(unit, staff, services)


@router.post("/api/v1/units/{unit_id}/seal/generate", response_model=UnitOut)
def generate_seal_image(
    unit_id: str, body: GeneratedSeal, staff: Operator, db: Db, services: ServicesDep
) -> UnitOut:
    """Draw the unit's round red seal: its name along the rim, a star, the purpose."""
    unit = seals.generate_seal_image(db, staff.caller, services.clock, unit_id, body)
    return _unit_out(unit, staff, services)


@router.get(
    "/api/v1/units/{unit_id}/seal/image",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}},
)
def seal_image(unit_id: str, staff: AnyStaff, db: Db) -> Response:
    """The image of the unit's electronic seal (PNG)."""
    unit = units.get_unit(db, staff.center_id, unit_id)
    if unit.seal_png is None:
        raise seals.NoSealImage(f"unit {unit_id} has no seal image")
    return Response(unit.seal_png, media_type="image/png", headers={"Cache-Control": "no-store"})


@router.post(
    "/api/v1/units/{unit_id}/seal/credentials",
    response_model=CredentialOut,
    status_code=status.HTTP_201_CREATED,
)
def issue_seal_credential(
    unit_id: str, staff: Operator, db: Db, services: ServicesDep
) -> CredentialOut:
    """The unit's organization credential: a key in the vault and a certificate with the
    unit as subject (O = name, organizationIdentifier = NTRCN-credit code)."""
    row = seals.issue_seal_credential(
        db, staff.caller, services.clock, services.vault, services.pki, unit_id
    )
    return credential_out(db, services, row)


@router.get("/api/v1/units/{unit_id}/seal/credentials", response_model=list[CredentialOut])
def list_seal_credentials(
    unit_id: str, staff: AnyStaff, db: Db, services: ServicesDep
) -> list[CredentialOut]:
    """The unit's seal certificates, live and revoked."""
    return [
        credential_out(db, services, row)
        for row in seals.seal_credentials(db, staff.center_id, unit_id)
    ]


@router.post(
    "/api/v1/units/{unit_id}/seal/credentials/{credential_id}/revoke",
    response_model=CredentialOut,
)
def revoke_seal_credential(
    unit_id: str,
    credential_id: str,
    body: RevokeIn,
    staff: Operator,
    db: Db,
    services: ServicesDep,
) -> CredentialOut:
    """Revoke a seal certificate (audited); it is on the next CRL."""
    row = seals.revoke_seal_credential(
        db,
        staff.caller,
        services.clock,
        services.vault,
        services.pki,
        unit_id,
        credential_id,
        body.reason,
        body.note,
    )
    return credential_out(db, services, row)


# --- representatives -----------------------------------------------------------------------


async def read_authorization(
    request: Request, services: ServicesDep
) -> AsyncIterator[tuple[Received, str, NewRepresentative]]:
    """The authorization letter (PDF) and the person and authorization (metadata JSON)."""
    upload = await read_pdf_form(
        request, services, "letter", NewRepresentative, "the person and the authorization"
    )
    async with discarded_unless_kept(services, upload[0]):
        yield upload


@router.post(
    "/api/v1/units/{unit_id}/representatives",
    response_model=AuthorizationOut,
    status_code=status.HTTP_201_CREATED,
    openapi_extra=multipart_body(
        {
            "letter": BINARY,
            "metadata": {
                "type": "string",
                "description": 'JSON: {"name", "id_number", "phone", "scope": "contracts" | '
                '"all", "valid_from", "valid_until"}',
            },
        }
    ),
)
def authorize_representative(
    unit_id: str,
    upload: Annotated[
        tuple[Received, str, NewRepresentative], Depends(read_authorization, scope="function")
    ],
    staff: Operator,
    db: Db,
    services: ServicesDep,
) -> AuthorizationOut:
    """Record the unit's authorization of a person, with the letter it signed; the person
    gets their own signing credential if they have none. Their face is enrolled like an
    expert's (PUT /api/v1/experts/{person_id}/face)."""
    received, file_name, fields = upload
    row = representatives.authorize_representative(
        db,
        staff.caller,
        services.clock,
        services.cipher,
        services.documents.store,
        unit_id,
        fields,
        received,
        file_name,
    )
    if credentials.current_credential(db, row.person_id) is None:
        credentials.issue_credential(
            db, staff.caller, services.clock, services.vault, services.pki, row.person_id
        )
    return _authorization_out(db, row)


@router.get("/api/v1/units/{unit_id}/representatives", response_model=list[AuthorizationOut])
def list_representatives(unit_id: str, staff: AnyStaff, db: Db) -> list[AuthorizationOut]:
    """Who the unit has authorized to sign for it, for what and until when."""
    return [
        _authorization_out(db, row)
        for row in representatives.list_authorizations(db, staff.center_id, unit_id)
    ]


@router.post(
    "/api/v1/units/{unit_id}/representatives/{authorization_id}/revoke",
    response_model=AuthorizationOut,
)
def revoke_representative(
    unit_id: str,
    authorization_id: str,
    body: RevokeAuthorizationIn,
    staff: Operator,
    db: Db,
    services: ServicesDep,
) -> AuthorizationOut:
    """End a representative's authorization at once (audited)."""
    row = representatives.revoke_authorization(
        db, staff.caller, services.clock, unit_id, authorization_id, body.reason
    )
    return _authorization_out(db, row)

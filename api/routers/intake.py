"""The trading platform's intake API: projects created and revised by the platform's own
project code, each request HMAC-signed (evalsign-hmac-v1) with a key the center's admin
issued, every write carrying an Idempotency-Key. And the admin's routes for those keys."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from anyio import to_thread
from fastapi import APIRouter, Depends, Header, Request, status
from pydantic import BaseModel

from api.deps import Admin, Db, ServicesDep, transaction
from api.logs import request_id_var
from api.schemas.committee.projects import ProjectOut
from api.schemas.intake import IssuedPlatformKey, PlatformKeyOut
from evaluation.committee.projects import NewProject, ProjectChanges
from evaluation.intake import platform_keys
from evaluation.intake import projects as intake
from evaluation.intake.platform_keys import NewPlatformKey, PlatformSignatureRefused
from evaluation.kernel.audit import Caller
from evaluation.kernel.errors import DomainError
from models.tables import PlatformKey
from signing.request_signatures import RequestSignatureInvalid, read_headers

router = APIRouter(tags=["trading platform"])


class IdempotencyKeyRequired(DomainError):
    status = 428
    code = "idempotency-key-required"
    title = "A platform's write must carry an Idempotency-Key"


@dataclass(frozen=True)
class Platform:
    key_id: str
    center_id: str
    name: str

    @property
    def caller(self) -> Caller:
        return Caller(
            center_id=self.center_id,
            actor=intake.platform_actor(self.name),
            role=intake.PLATFORM_ROLE,
            request_id=request_id_var.get(),
        )


async def signed_by_platform(request: Request, services: ServicesDep) -> Platform:
    """The platform whose live key signed this exact request (method, path, body)."""
    try:
        signed = read_headers(dict(request.headers))
    except RequestSignatureInvalid as exc:
        raise PlatformSignatureRefused(str(exc)) from exc
    body = await request.body()
    query = request.url.query
    target = request.url.path + (f"?{query}" if query else "")

    def check() -> Platform:
        # Its own transaction: a GET's is read-only, and the key's last use is written.
        with transaction(services) as db:
            key = platform_keys.authenticate_request(
                db,
                services.clock,
                services.cipher,
                signed,
                method=request.method,
                target=target,
                body=body,
            )
            return Platform(key.id, key.center_id, key.platform)

    return await to_thread.run_sync(check)


SignedPlatform = Annotated[Platform, Depends(signed_by_platform)]


async def writing_platform(
    platform: SignedPlatform,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> Platform:
    """A signed write that carries an Idempotency-Key (checked after the signature, so a
    stranger learns nothing about our rules)."""
    # A signed request may be captured and sent again within the timestamp's tolerance;
    # with a key, the copy gets the stored answer instead of acting twice.
    if not idempotency_key:
        raise IdempotencyKeyRequired("send an Idempotency-Key header with every write")
    return platform


WritingPlatform = Annotated[Platform, Depends(writing_platform)]


# Kept here, not in api/schemas: a document's RevisionOut shares the name, so FastAPI names
# this component by its module (api__routers__intake__RevisionOut) and moving it would
# rename it in the OpenAPI document.
class RevisionOut(BaseModel):
    project: ProjectOut
    changed: list[str]


@router.post(
    "/api/v1/intake/projects",
    response_model=ProjectOut,
    status_code=status.HTTP_201_CREATED,
)
def create_project(
    body: NewProject, platform: WritingPlatform, db: Db, services: ServicesDep
) -> ProjectOut:
    """A project from the trading platform, under its own code. Refused with 422 when the
    committee breaks the regime's rules or a party's credit code is not registered."""
    project = intake.create_from_platform(
        db,
        platform.caller,
        services.clock,
        body,
        register_units=services.settings.intake_registers_units,
    )
    return ProjectOut.model_validate(project)


@router.get("/api/v1/intake/projects/{code}", response_model=ProjectOut)
def get_project(code: str, platform: SignedPlatform, db: Db) -> ProjectOut:
    """One of this platform's projects, with its status."""
    return ProjectOut.model_validate(intake.platform_project(db, platform.caller, code))


@router.patch("/api/v1/intake/projects/{code}", response_model=RevisionOut)
def revise_project(
    code: str, body: ProjectChanges, platform: WritingPlatform, db: Db, services: ServicesDep
) -> RevisionOut:
    """Change fields of one of this platform's projects. Before the draw anything may
    change (the committee rules are checked again); after it, only a later evaluation end
    (409 project-field-locked otherwise)."""
    project, changed = intake.revise_from_platform(
        db,
        platform.caller,
        services.clock,
        code,
        body,
        register_units=services.settings.intake_registers_units,
    )
    return RevisionOut(project=ProjectOut.model_validate(project), changed=changed)


def _key_out(key: PlatformKey) -> PlatformKeyOut:
    return PlatformKeyOut(
        id=key.id,
        platform=key.platform,
        created_at=key.created_at,
        last_used_at=key.last_used_at,
        revoked_at=key.revoked_at,
    )


@router.post(
    "/api/v1/platform-keys", response_model=IssuedPlatformKey, status_code=status.HTTP_201_CREATED
)
def issue_platform_key(
    body: NewPlatformKey, staff: Admin, db: Db, services: ServicesDep
) -> IssuedPlatformKey:
    """A key for a trading platform's intake calls; its secret is shown this once."""
    issued = platform_keys.issue_platform_key(
        db, staff.caller, services.clock, services.cipher, body
    )
    return IssuedPlatformKey(**_key_out(issued.key).model_dump(), secret=issued.secret)


@router.get("/api/v1/platform-keys", response_model=list[PlatformKeyOut])
def list_platform_keys(staff: Admin, db: Db) -> list[PlatformKeyOut]:
    """The center's platform keys, newest first, with when each was last used."""
    return [_key_out(key) for key in platform_keys.list_platform_keys(db, staff.center_id)]


@router.delete("/api/v1/platform-keys/{key_id}", response_model=PlatformKeyOut)
def revoke_platform_key(key_id: str, staff: Admin, db: Db, services: ServicesDep) -> PlatformKeyOut:
    """Refuse the key's requests from now on (a revoked key stays listed)."""
    return _key_out(platform_keys.revoke_platform_key(db, staff.caller, services.clock, key_id))

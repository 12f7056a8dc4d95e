"""One exception per failure a client can act on; the API turns each into problem+json."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from evaluation.kernel.audit import Refusal


class DomainError(Exception):
    status: ClassVar[int] = 400
    code: ClassVar[str] = "bad-request"
    title: ClassVar[str] = "Bad request"

    def __init__(self, detail: str, **extensions: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extensions = extensions
        # Set by audit.refused(): the log entry that outlives the request's rollback.
        self.refusal: Refusal | None = None


class InvalidCredentials(DomainError):
    status = 401
    code = "invalid-credentials"
    title = "Missing, unknown or revoked staff token"


class RoleForbidden(DomainError):
    status = 403
    code = "role-forbidden"
    title = "Your role may not do this"


class NotFound(DomainError):
    status = 404
    code = "not-found"
    title = "No such record in your center"


class InvalidCursor(DomainError):
    status = 400
    code = "invalid-cursor"
    title = "The page cursor is not one this service issued"


class DuplicateIdNumber(DomainError):
    status = 409
    code = "duplicate-id-number"
    title = "An expert with this ID number is already registered in this center"


class DuplicateCenter(DomainError):
    status = 409
    code = "duplicate-center"
    title = "A center with this name already exists"


class InvalidTransition(DomainError):
    status = 409
    code = "invalid-transition"
    title = "This status change is not allowed from the current status"


class ConcurrentUpdate(DomainError):
    status = 409
    code = "concurrent-update"
    title = "The record was changed by someone else; reload and retry"


class VersionMismatch(DomainError):
    status = 412
    code = "version-mismatch"
    title = "If-Match does not name the current version"


class ImportRejected(DomainError):
    status = 422
    code = "import-rejected"
    title = "The import file has errors; nothing was stored"


class ImportTooLarge(DomainError):
    status = 413
    code = "import-too-large"
    title = "The import file has more rows than allowed"


class SigningRefused(DomainError):
    """A signing request that is not allowed, and is logged as refused; `csc_error` is the
    CSC API error name."""

    csc_error: ClassVar[str] = "invalid_request"

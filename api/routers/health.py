"""Liveness, readiness, and the documentation behind problem types."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import text

from api.deps import ServicesDep
from api.errors import NotReady, all_problem_classes, problem_type
from api.web import i18n
from evaluation.kernel.errors import NotFound
from models.db import READ_ONLY
from models.migrate import SchemaFit, schema_fit

router = APIRouter(tags=["operations"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz")
def readyz(services: ServicesDep) -> dict[str, str]:
    """The database answers and its schema is this code's, or the next release's: during a
    rolling deploy the replicas of the release before keep serving (migrations are written
    expand-then-contract, README "Rolling out a release")."""
    try:
        with services.engine.connect() as connection:
            connection.execution_options(**READ_ONLY)
            connection.execute(text("SELECT 1"))
            fit = schema_fit(connection)
    except Exception as exc:
        raise NotReady("the database does not answer") from exc
    if fit is SchemaFit.UNSUITED:
        raise NotReady("the database schema is not migrated to this version")
    return {"status": "ready", "schema": fit.value}


@router.get("/problems/{code}")
def problem_doc(code: str) -> dict[str, str | int | dict[str, str]]:
    """What a problem type means, in English and Chinese."""
    for cls in all_problem_classes():
        if cls.code == code:
            return {
                "type": problem_type(code),
                "title": cls.title,
                "status": cls.status,
                "titles": {
                    language: i18n.problem_title(language, code, cls.title)
                    for language in i18n.LANGUAGES
                },
            }
    raise NotFound(f"no problem type {code}")

"""Request ids, structured logs, problem+json for routing errors and crashes, health."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import re
import shutil
import stat
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.app import create_app
from api.logs import JsonFormatter, request_id_var
from api.services import build_services, open_database
from models.db import make_engine
from models.migrate import MIGRATIONS_DIR, head_revision, upgrade_to_head
from models.settings import Settings
from signing.keyring import Keyring
from tests.api.helpers import assert_problem
from tests.factories import CenterWithStaff


def test_every_response_carries_a_request_id(client: TestClient) -> None:
    first = client.get("/healthz").headers["x-request-id"]
    second = client.get("/healthz").headers["x-request-id"]
    assert len(first) == 32 and first != second


def test_a_sane_incoming_request_id_is_kept(client: TestClient) -> None:
    response = client.get("/healthz", headers={"X-Request-ID": "lb-7f3a.42"})
    assert response.headers["x-request-id"] == "lb-7f3a.42"


def test_an_unsafe_incoming_request_id_is_replaced(client: TestClient) -> None:
    response = client.get("/healthz", headers={"X-Request-ID": 'x" onload=alert(1)'})
    assert response.headers["x-request-id"] != 'x" onload=alert(1)'


def test_unknown_route_and_wrong_method_are_problems(
    client: TestClient, center: CenterWithStaff
) -> None:
    assert_problem(client.get("/api/v1/nothing-here"), 404, "no-such-route")
    assert_problem(
        client.delete("/api/v1/experts", headers=center.headers("operator")),
        405,
        "method-not-allowed",
    )


def test_problem_types_are_documented(client: TestClient) -> None:
    doc = client.get("/problems/duplicate-id-number").json()
    assert doc["status"] == 409 and "ID number" in doc["title"]
    assert_problem(client.get("/problems/no-such-problem"), 404, "not-found")


def test_a_crash_is_a_500_problem_with_the_logged_request_id(
    app: FastAPI, caplog: pytest.LogCaptureFixture
) -> None:
    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("disk on fire")

    with TestClient(app, raise_server_exceptions=False) as client, caplog.at_level(logging.ERROR):
        response = client.get("/boom")
    body = assert_problem(response, 500, "internal-error")
    assert "disk on fire" not in response.text  # internals stay in the log
    crash = [record for record in caplog.records if record.exc_info]
    assert crash and "disk on fire" in str(crash[0].exc_info[1])
    assert body["request_id"] == response.headers["x-request-id"]


def test_log_lines_are_json_with_the_request_id() -> None:
    record = logging.LogRecord("evalsign.access", logging.INFO, __file__, 1, "request", None, None)
    record.status = 201
    token = request_id_var.set("abc123")
    try:
        line = json.loads(JsonFormatter().format(record))
    finally:
        request_id_var.reset(token)
    assert line["request_id"] == "abc123"
    assert line["status"] == 201 and line["message"] == "request" and line["level"] == "info"


def test_health_and_readiness(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready", "schema": "current"}


def test_not_ready_when_the_schema_is_not_migrated(
    isolated_database_url: str, tmp_path: object
) -> None:
    settings = Settings(data_dir=tmp_path, database_url=isolated_database_url)  # type: ignore[arg-type]
    engine = make_engine(isolated_database_url)
    app = create_app(build_services(settings, engine=engine, keyring=Keyring(b"k" * 32)))
    with TestClient(app) as client:
        assert_problem(client.get("/readyz"), 503, "not-ready")
    engine.dispose()


def _next_release(directory: Path, revision: str, parent: str) -> Path:
    """This code's migrations plus one more, as the next release would ship them."""
    if not (directory / "env.py").exists():
        shutil.copytree(MIGRATIONS_DIR, directory, ignore=shutil.ignore_patterns("__pycache__"))
    (directory / "versions" / f"{revision}_next.py").write_text(
        f"""import sqlalchemy as sa
from alembic import op

revision = {revision!r}
down_revision = {parent!r}
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('release_{revision}', sa.Column('id', sa.Integer(), primary_key=True))


def downgrade() -> None:
    op.drop_table('release_{revision}')
"""
    )
    return directory


def test_ready_on_the_next_releases_schema_but_not_on_the_one_after(
    isolated_database_url: str, tmp_path: Path
) -> None:
    """A rolling deploy: `evalsign migrate` of the next release runs first, and the replicas
    of this one keep serving; two releases on, they are taken out."""
    settings = Settings(data_dir=tmp_path, database_url=isolated_database_url)
    engine = make_engine(isolated_database_url)
    upgrade_to_head(engine)
    head = head_revision()
    assert head is not None
    app = create_app(build_services(settings, engine=engine, keyring=Keyring(b"k" * 32)))
    with TestClient(app) as client:
        assert client.get("/readyz").json()["schema"] == "current"
        scripts = _next_release(tmp_path / "migrations", "9001", head)
        assert upgrade_to_head(engine, scripts) == head
        assert client.get("/readyz").json() == {"status": "ready", "schema": "next-release"}
        _next_release(scripts, "9002", "9001")
        assert upgrade_to_head(engine, scripts) == "9001"
        assert_problem(client.get("/readyz"), 503, "not-ready")
    engine.dispose()


def test_openapi_documents_errors_as_problems(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    create = spec["paths"]["/api/v1/experts"]["post"]
    invalid = create["responses"]["422"]["content"]
    assert list(invalid) == ["application/problem+json"]
    assert invalid["application/problem+json"]["schema"] == {"$ref": "#/components/schemas/Problem"}
    assert {"type", "title", "status", "detail", "code"} <= set(
        spec["components"]["schemas"]["Problem"]["properties"]
    )
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"


def test_every_operation_says_what_it_does(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    operations = [
        (method.upper(), path, operation)
        for path, methods in spec["paths"].items()
        for method, operation in methods.items()
    ]
    assert len(operations) > 100
    silent = [f"{m} {p}" for m, p, op in operations if not op.get("description", "").strip()]
    assert not silent, silent


def test_docs_page_loads_only_local_assets(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert sources and all(source.startswith("/") for source in sources), sources
    assert "cdn" not in page.text.lower()
    for source in sources:
        assert client.get(source).status_code == 200, source


def test_docs_page_has_the_security_headers(client: TestClient) -> None:
    page = client.get("/docs")
    csp = page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "default-src 'none'" in csp
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["x-content-type-options"] == "nosniff"
    # Only the page's own inline script runs: admitted by its hash, not 'unsafe-inline'.
    [script] = re.findall(r"<script>(.*?)</script>", page.text, re.DOTALL)
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    script_src = next(d for d in csp.split("; ") if d.startswith("script-src"))
    assert script_src == f"script-src 'self' 'sha256-{digest}'"


def test_the_sqlite_database_is_created_private(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "var", database_url=None)
    previous = os.umask(0o022)  # the usual umask, which would give 0644
    try:
        engine = open_database(settings)
        with engine.begin() as connection:
            connection.exec_driver_sql("CREATE TABLE probe (x INTEGER)")
        engine.dispose()
    finally:
        os.umask(previous)
    database = tmp_path / "var" / "evalsign.db"
    assert stat.S_IMODE(database.stat().st_mode) == 0o600
    assert stat.S_IMODE(database.parent.stat().st_mode) == 0o700

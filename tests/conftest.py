"""Fixtures: one migrated database per run (SQLite, or PostgreSQL when
EVALSIGN_TEST_DATABASE_URL is set), each test inside a transaction that is rolled back."""

from __future__ import annotations

import os
import secrets
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from api.app import create_app
from api.services import Services, build_services, face_engine_for
from face.engine import FaceEngine
from models.clock import FrozenClock
from models.db import make_engine
from models.migrate import upgrade_to_head
from models.settings import Settings
from signing.field_cipher import FieldCipher
from signing.keyring import Keyring
from tests.factories import CenterWithStaff, make_center
from tests.s3_server import S3Server, running_s3_server
from tests.signing.softhsm import SoftHsmToken, configure_softhsm, init_token, softhsm_module

POSTGRES_URL = os.environ.get("EVALSIGN_TEST_DATABASE_URL")
# `s3` runs every test's app on S3-compatible storage (a moto server) instead of the
# local directory; the document tests run on both either way.
DOCUMENT_STORE = os.environ.get("EVALSIGN_TEST_DOCUMENT_STORE", "local")


def on_postgres() -> bool:
    return POSTGRES_URL is not None


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    if POSTGRES_URL:
        return _worker_database(POSTGRES_URL)
    return f"sqlite:///{tmp_path_factory.mktemp('db') / 'evalsign.db'}"


def _worker_database(url: str) -> str:
    """The given database, or under pytest-xdist one database per worker beside it
    (`<name>_gw0`, ...): each worker drops and migrates its own schema at the start."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not worker:
        return url
    base = make_url(url)
    name = f"{base.database}_{worker}"
    admin = create_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        exists = connection.execute(
            text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
        ).first()
        if not exists:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return base.set(database=name).render_as_string(hide_password=False)


def _reset_postgres(url: str) -> None:
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text("DROP SCHEMA public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))
    engine.dispose()


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    if on_postgres():
        _reset_postgres(database_url)
    engine = make_engine(database_url)
    upgrade_to_head(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def connection(engine: Engine) -> Iterator[Connection]:
    with engine.connect() as connection:
        transaction = connection.begin()
        yield connection
        transaction.rollback()


@pytest.fixture
def session_factory(connection: Connection) -> sessionmaker[Session]:
    # Every session, the app's included, works in a savepoint of the test's transaction.
    return sessionmaker(
        bind=connection,
        join_transaction_mode="create_savepoint",
        expire_on_commit=False,
        autoflush=False,
    )


@pytest.fixture
def db(session_factory: sessionmaker[Session]) -> Iterator[Session]:
    with session_factory() as session:
        yield session


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(datetime(2026, 11, 23, 9, 0, tzinfo=UTC))


@pytest.fixture(scope="session")
def keyring() -> Keyring:
    return Keyring(secrets.token_bytes(32))


@pytest.fixture
def cipher(keyring: Keyring) -> FieldCipher:
    return FieldCipher(keyring)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """moto's S3 server in its own process, the standard AWS_* variables pointing at it."""
    with running_s3_server() as server, pytest.MonkeyPatch.context() as patch:
        for name, value in server.environment.items():
            patch.setenv(name, value)
        yield server


def store_location(request: pytest.FixtureRequest, kind: str) -> str | None:
    """EVALSIGN_DOCUMENT_STORE for a kind of store: None for the local directory, a fresh
    prefix of the test bucket for S3."""
    if kind == "local":
        return None
    if kind == "s3":
        server: S3Server = request.getfixturevalue("s3_server")
        return server.new_location()
    raise ValueError(f"EVALSIGN_TEST_DOCUMENT_STORE={kind!r}: local or s3")


@pytest.fixture
def document_store(request: pytest.FixtureRequest) -> str | None:
    """Where the app under test keeps documents. A test that must cover both stores
    says `@pytest.mark.parametrize("document_store", ["local", "s3"], indirect=True)`; a
    module, by overriding this fixture with those params."""
    return store_location(request, getattr(request, "param", DOCUMENT_STORE))


@pytest.fixture
def settings(tmp_path: Path, database_url: str, document_store: str | None) -> Settings:
    # No job runner: the tests share one connection, a background job would race them
    # (tests/api/test_job_runner.py and test_checkpoints.py drive the jobs themselves).
    return Settings(
        data_dir=tmp_path,
        database_url=database_url,
        audit_checkpoint_every_s=0,
        face_retention_every_s=0,
        jobs_in_serve=False,
        document_store=document_store,
    )


@pytest.fixture
def services(
    settings: Settings,
    engine: Engine,
    session_factory: sessionmaker[Session],
    clock: FrozenClock,
    keyring: Keyring,
) -> Services:
    return build_services(
        settings, engine=engine, session_factory=session_factory, clock=clock, keyring=keyring
    )


@pytest.fixture
def app(services: Services) -> FastAPI:
    return create_app(services)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


@pytest.fixture(scope="session")
def face_engine() -> FaceEngine:
    """The per-process engine the app uses with default settings (models load once)."""
    return face_engine_for(Settings())


@pytest.fixture
def center(db: Session, clock: FrozenClock) -> CenterWithStaff:
    return make_center(db, clock)


@pytest.fixture
def other_center(db: Session, clock: FrozenClock) -> CenterWithStaff:
    return make_center(db, clock)


@pytest.fixture
def isolated_database_url(tmp_path: Path) -> Iterator[str]:
    """A database of its own, for tests that must really commit (concurrency, the CLI)."""
    with isolated_database(tmp_path) as url:
        yield url


@contextmanager
def isolated_database(directory: Path) -> Iterator[str]:
    """A fresh database: a SQLite file in `directory`, or a new PostgreSQL database when
    EVALSIGN_TEST_DATABASE_URL is set (dropped afterwards)."""
    if not POSTGRES_URL:
        yield f"sqlite:///{directory / 'isolated.db'}"
        return
    name = f"evalsign_iso_{uuid.uuid4().hex[:12]}"
    admin = create_engine(
        make_url(POSTGRES_URL).set(database="postgres"), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as connection:
        connection.execute(text(f"CREATE DATABASE {name}"))
    try:
        yield make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


# SoftHSM2 tokens for the PKCS#11 vault: one token directory per test process (see
# tests/signing/softhsm.py for why), with every token made before any test loads the
# module: `softhsm_token` for the tests' keys, and `softhsm_idle_token`, which only
# wrong-PIN tests log in to, so a wrong PIN reaches the token's own C_Login.


@pytest.fixture(scope="session")
def _softhsm_tokens(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, SoftHsmToken]]:
    softhsm_module()  # skips when softhsm2 is missing
    # Session scope cannot use the function-scoped `monkeypatch` fixture.
    with pytest.MonkeyPatch.context() as patch:
        configure_softhsm(tmp_path_factory.mktemp("softhsm"), patch)
        yield {
            "main": init_token("evalsign-test", "test-pin-2468"),
            "idle": init_token("evalsign-idle", "idle-pin-1357"),
        }


@pytest.fixture(scope="session")
def softhsm_token(_softhsm_tokens: dict[str, SoftHsmToken]) -> SoftHsmToken:
    """(module, label, pin) of a SoftHSM2 token shared by the whole test process."""
    return _softhsm_tokens["main"]


@pytest.fixture(scope="session")
def softhsm_idle_token(_softhsm_tokens: dict[str, SoftHsmToken]) -> SoftHsmToken:
    return _softhsm_tokens["idle"]


# The Debian packages behind the real parts the suite drives; .ci/run installs them.
REAL_PARTS_COMMAND = (
    "apt-get install -y softhsm2 poppler-utils libnss3-tools fonts-noto-cjk chromium"
)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Ends the run by naming what was skipped and why, and the one command that installs
    the missing parts: a green run with skips must not pass for a full one."""
    skipped = terminalreporter.stats.get("skipped", [])
    if not skipped:
        return
    reasons: dict[str, int] = {}
    for report in skipped:
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        reason = reason.removeprefix("Skipped: ")
        reasons[reason] = reasons.get(reason, 0) + 1
    terminalreporter.section("skipped: real parts missing, or another database's tests")
    for reason, count in sorted(reasons.items(), key=lambda item: -item[1]):
        terminalreporter.write_line(f"{count:5d} skipped: {reason}")
    terminalreporter.write_line(f"Real parts (as root): {REAL_PARTS_COMMAND}")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Test files with slow or browser tests run first. make test hands whole files to
    pytest-xdist's workers in this order, so the minutes-long journeys start at once instead
    of leaving one worker busy alone at the end; the order inside each file is kept."""
    heavy = {
        item.path
        for item in items
        if item.get_closest_marker("slow") or item.get_closest_marker("e2e")
    }
    items.sort(key=lambda item: item.path not in heavy)

"""What a running app holds: settings, database, clock and the field cipher, built once."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from models.clock import Clock, SystemClock
from models.db import make_engine, make_session_factory
from models.settings import Settings
from signing.field_cipher import FieldCipher
from signing.keyring import Keyring, load_keyring


@dataclass(frozen=True)
class Services:
    settings: Settings
    engine: Engine
    session_factory: sessionmaker[Session]
    clock: Clock
    cipher: FieldCipher


def build_services(
    settings: Settings,
    *,
    engine: Engine | None = None,
    session_factory: sessionmaker[Session] | None = None,
    clock: Clock | None = None,
    keyring: Keyring | None = None,
) -> Services:
    engine = engine or make_engine(
        settings.resolved_database_url, sqlite_busy_timeout_ms=settings.sqlite_busy_timeout_ms
    )
    keyring = keyring or load_keyring(settings.vault_dir, settings.master_key)
    return Services(
        settings=settings,
        engine=engine,
        session_factory=session_factory or make_session_factory(engine),
        clock=clock or SystemClock(),
        cipher=FieldCipher(keyring),
    )

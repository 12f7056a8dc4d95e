"""An EvalSign instance: data directory, vault key, schema, first center, and the
bootstrap staff tokens that `init` hands to whoever installed it. Safe to run on several
replicas at once: the schema is migrated under a lock, and the center and its tokens are
made once, under another."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from api.services import open_database
from evaluation.kernel import audit
from evaluation.registry import centers, units
from evaluation.registry import staff as staff_tokens
from evaluation.registry.staff import Role
from evaluation.trust import pki
from evaluation.trust.pki import CenterPki, PkiPolicy
from models.clock import Clock
from models.db import advisory_xact_lock, make_session_factory
from models.migrate import SchemaFit, SchemaMismatch, head_revision, schema_fit, upgrade_to_head
from models.settings import Settings
from signing.field_cipher import FieldCipher
from signing.key_checks import bind_or_verify_key, database_has_key
from signing.keyring import MASTER_KEY_FILE, KeyringError, create_master_key_file, load_keyring
from signing.vault import open_vaults

BOOTSTRAP_ROLES = (Role.ADMIN, Role.OPERATOR, Role.SUPERVISOR)


@dataclass(frozen=True)
class InitResult:
    center_id: str
    center_name: str
    center_created: bool
    tokens: dict[str, str]
    tokens_file: Path | None  # None: the tokens were issued by an earlier init elsewhere
    pki: dict[str, Any]

    def as_json(self, settings: Settings) -> dict[str, Any]:
        return {
            "center_id": self.center_id,
            "center_name": self.center_name,
            "center_created": self.center_created,
            "data_dir": str(settings.data_dir.resolve()),
            "database": make_url(settings.resolved_database_url).render_as_string(
                hide_password=True
            ),
            "tokens": self.tokens,
            "tokens_file": None if self.tokens_file is None else str(self.tokens_file),
            **(
                {}
                if self.tokens
                else {
                    "tokens_note": "the bootstrap tokens were issued by an earlier init "
                    "(its tokens file); `evalsign token create` issues more"
                }
            ),
            "pki": self.pki,
        }


def prepare(settings: Settings, clock: Clock, *, migrate: bool = True) -> Engine:
    """A schema this code runs on and the right vault key: what `init`, `serve` and
    `worker` need. Without `migrate` the schema is only checked: at this code's head, or
    one release ahead (a rolling deploy); anything else stops start-up."""
    engine = open_database(settings)
    if migrate:
        upgrade_to_head(engine)
    else:
        with engine.connect() as connection:
            fit = schema_fit(connection)
        if fit is SchemaFit.UNSUITED:
            engine.dispose()
            raise SchemaMismatch(
                f"the database schema does not suit this release (head {head_revision()}): "
                "run `evalsign migrate`"
            )
    with make_session_factory(engine)() as db, db.begin():
        advisory_xact_lock(db.connection(), "init")  # replicas binding the key together
        key_file = settings.vault_dir / MASTER_KEY_FILE
        if not settings.master_key and not key_file.exists():
            if database_has_key(db):
                raise KeyringError(
                    f"{key_file} is missing but this database was initialized with a key; "
                    "restore it (a new key could not decrypt the stored personal data)"
                )
            create_master_key_file(settings.vault_dir)
        # Fail now, not on the first request that decrypts something.
        keyring = load_keyring(settings.vault_dir, settings.master_key)
        bind_or_verify_key(db, keyring, clock.now())
        # Migration 0026 had no key: contacts' phones from before it are encrypted here.
        units.encrypt_plain_contact_phones(db, FieldCipher(keyring))
    return engine


def _tokens_path(settings: Settings, center_id: str) -> Path:
    return settings.data_dir / "bootstrap" / f"{center_id}.json"


def _write_private(path: Path, content: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    temporary = path.with_suffix(".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(content)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def initialize(settings: Settings, clock: Clock, center_name: str | None = None) -> InitResult:
    """Idempotent: creates what is missing and reports what is there.

    The bootstrap tokens are kept in a 0600 file so that `make run` can show them again.
    Fresh ones are issued only while the center has no live bootstrap token: an init on
    another replica (its own data directory) reports the center and shows no tokens.
    """
    engine = prepare(settings, clock)
    name = (center_name or settings.center_name).strip()
    try:
        with make_session_factory(engine)() as db, db.begin():
            # One init at a time past this point: the center, its PKI and its tokens are
            # made once however many replicas start together (SQLite's writers queue anyway).
            advisory_xact_lock(db.connection(), "init")
            center = centers.find_center_by_name(db, name)
            created = center is None
            if center is None:
                center = centers.create_center(db, name, clock, actor="cli:init")
            # The center's CA, TSA and audit-checkpoint certificates (idempotent).
            established = pki.establish_center_pki(
                db,
                clock,
                open_vaults(settings, load_keyring(settings.vault_dir, settings.master_key)),
                PkiPolicy.from_settings(settings),
                center,
                actor="cli:init",
            )
            path = _tokens_path(settings, center.id)
            tokens = _reusable_tokens(db, path)
            tokens_file: Path | None = path
            labels = [_bootstrap_label(role) for role in BOOTSTRAP_ROLES]
            if tokens is None and staff_tokens.live_labels(db, center.id, labels):
                # Issued by an init on another replica (or a lost file): never mint twice.
                tokens, tokens_file = {}, None
            if tokens is None:
                caller = audit.Caller(center.id, "cli:init")
                issued = [
                    staff_tokens.issue_staff_token(db, caller, clock, role, _bootstrap_label(role))
                    for role in BOOTSTRAP_ROLES
                ]
                tokens = {token.role.value: token.secret for token in issued}
                record = {
                    token.role.value: {"id": token.token_id, "token": token.secret}
                    for token in issued
                }
                # Written before commit: a crash leaves unknown tokens, never lost ones.
                _write_private(path, json.dumps(record, indent=2) + "\n")
            return InitResult(
                center.id, center.name, created, tokens, tokens_file, _pki_summary(established)
            )
    finally:
        engine.dispose()


def _bootstrap_label(role: Role) -> str:
    return f"bootstrap {role}"


def _reusable_tokens(db: Any, path: Path) -> dict[str, str] | None:
    try:
        record = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None
    try:
        if all(staff_tokens.is_live(db, record[role.value]["id"]) for role in BOOTSTRAP_ROLES):
            return {role.value: record[role.value]["token"] for role in BOOTSTRAP_ROLES}
    except (KeyError, TypeError):
        return None
    return None


def _pki_summary(established: CenterPki) -> dict[str, Any]:
    return {
        "created": established.created,
        "root_ca": {"id": established.root.id, "subject": established.root.name},
        "issuing_ca": {"id": established.issuing.id, "subject": established.issuing.name},
        "tsa_certificate": established.tsa.serial,
        "audit_checkpoint_certificate": established.audit_checkpoint.serial,
    }

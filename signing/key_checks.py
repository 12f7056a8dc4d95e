"""Binding a database to its master key, so that a lost or swapped key file is caught at
start-up instead of on the first decryption."""

from __future__ import annotations

import hmac
from datetime import datetime

from sqlalchemy.orm import Session

from models.tables import KeyCheck
from signing.keyring import Keyring, KeyringError, key_check_value

MASTER_KEY_PURPOSE = "master-key"


def database_has_key(db: Session) -> bool:
    return db.get(KeyCheck, MASTER_KEY_PURPOSE) is not None


def bind_or_verify_key(db: Session, keyring: Keyring, now: datetime) -> None:
    """Record the key's check value on first use; afterwards refuse any other key."""
    stored = db.get(KeyCheck, MASTER_KEY_PURPOSE)
    value = key_check_value(keyring)
    if stored is None:
        db.add(KeyCheck(purpose=MASTER_KEY_PURPOSE, check_value=value, created_at=now))
        db.flush()
    elif not hmac.compare_digest(stored.check_value, value):
        raise KeyringError(
            "the master key is not the one this database was initialized with; "
            "restore the original vault/master.key or EVALSIGN_MASTER_KEY"
        )

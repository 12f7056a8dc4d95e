"""No private key in the clear, anywhere: after `init`, a credential and signatures, every
database row and every file under the data directory is searched for every private key
the vault holds (its scalar or primes, its PKCS#8 DER and its PEM)."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi.testclient import TestClient
from sqlalchemy import MetaData, select

from api.app import create_app
from api.instance import initialize
from api.services import build_services
from evaluation.registry.staff import Role
from models.base import Base
from models.clock import FrozenClock
from models.db import make_session_factory
from models.settings import Settings
from models.tables import VaultKey
from signing.keyring import load_keyring
from signing.vault import KeyRef, LocalVault
from tests.api.helpers import passkey_for_hashes
from tests.factories import CenterWithStaff, bound_phone, expert_payload, face_session

pytestmark = pytest.mark.slow


def secrets_of(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> list[bytes]:
    """Byte strings that would betray the key if found anywhere."""
    der = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    found = [der, pem, base64.b64encode(der)]
    if isinstance(key, ec.EllipticCurvePrivateKey):
        scalar = key.private_numbers().private_value.to_bytes(32, "big")
        found += [scalar, scalar.hex().encode()]
    else:
        numbers = key.private_numbers()
        for value in (numbers.d, numbers.p, numbers.q):
            raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
            found += [raw, raw.hex().encode()]
    return found


def test_no_private_key_in_the_clear(
    tmp_path: Path, isolated_database_url: str, clock: FrozenClock
) -> None:
    settings = Settings(data_dir=tmp_path / "data", database_url=isolated_database_url)
    result = initialize(settings, clock)
    services = build_services(settings, clock=clock)
    center = CenterWithStaff(
        result.center_id,
        result.center_name,
        {Role(role): token for role, token in result.tokens.items()},
    )
    with TestClient(create_app(services)) as client:
        operator = center.headers(Role.OPERATOR)
        expert = client.post("/api/v1/experts", json=expert_payload(), headers=operator).json()
        credential = client.post(f"/api/v1/experts/{expert['id']}/credential", headers=operator)
        assert credential.status_code == 201
        with services.session_factory() as db:
            token, _ = face_session(db, clock, center.id, expert["id"])
            bound = bound_phone(db, clock, None, center.id, expert["id"])
        digest = base64.b64encode(hashlib.sha256(b"report").digest()).decode()
        headers = {"Authorization": f"Bearer {token}", "X-Device-Id": "phone-test-1"}
        approval = passkey_for_hashes(client, headers, bound, credential.json()["id"], [digest])
        sad = client.post(
            "/csc/v2/credentials/authorize",
            json={
                "credentialID": credential.json()["id"],
                "numSignatures": 1,
                "hashes": [digest],
                "hashAlgorithmOID": "2.16.840.1.101.3.4.2.1",
                "passkey": approval,
            },
            headers=headers,
        ).json()["SAD"]
        signed = client.post(
            "/csc/v2/signatures/signHash",
            json={
                "credentialID": credential.json()["id"],
                "SAD": sad,
                "hashes": [digest],
                "signAlgo": "1.2.840.10045.4.3.2",
            },
            headers=headers,
        )
        assert signed.status_code == 200

    vault = LocalVault(load_keyring(settings.vault_dir, settings.master_key))
    with make_session_factory(services.engine)() as db:
        keys = [KeyRef.of(row) for row in db.execute(select(VaultKey)).scalars()]
        # root, issuing, TSA, audit checkpoint and the expert's key
        assert len(keys) == 5
        needles = [n for ref in keys for n in secrets_of(vault._unwrap(ref))]  # type: ignore[arg-type]
        haystack = bytearray()
        metadata = MetaData()
        metadata.reflect(bind=db.connection())
        assert set(Base.metadata.tables) <= set(metadata.tables)
        for table in metadata.sorted_tables:
            for row in db.execute(table.select()):
                for value in row:
                    haystack += value if isinstance(value, bytes) else str(value).encode()
                    haystack += b"\x00"
    files = [p for p in settings.data_dir.rglob("*") if p.is_file()]
    assert any(p.name == "master.key" for p in files)
    for path in files:
        haystack += path.read_bytes()
    # The scan sees what is there: the wrapped keys (rows) and the key file's bytes.
    assert all(ref.wrapped_key and ref.wrapped_key in haystack for ref in keys)
    assert (settings.vault_dir / "master.key").read_bytes() in haystack
    for needle in needles:
        assert bytes(needle) not in haystack
    services.engine.dispose()

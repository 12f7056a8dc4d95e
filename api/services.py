"""What a running app holds: settings, database, clock, field cipher and vaults, built once."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from cryptography import x509
from sqlalchemy import Engine, make_url
from sqlalchemy.orm import Session, sessionmaker

from api.messaging import open_messenger
from api.rate_limits import RequestLimiter, build_limiter
from evaluation.committee import reports
from evaluation.documents.documents import SigningContext
from evaluation.documents.store import open_store
from evaluation.identity.face_checks import LivenessConfig
from evaluation.identity.faces import FacePolicy
from evaluation.identity.identity_verification import IdentityVerifier, verifier_from_settings
from evaluation.identity.one_time_codes import SmsPolicy
from evaluation.identity.passkeys import PasskeyPolicy
from evaluation.trust.activation import ActivationPolicy
from evaluation.trust.pki import PkiPolicy
from evaluation.trust.providers import ProviderPolicy
from face.antispoof import PassiveAntiSpoof
from face.engine import EngineOptions, FaceEngine
from face.model_pack import load_model_pack
from models.clock import Clock, SystemClock
from models.db import make_engine, make_session_factory
from models.settings import Settings
from signing.field_cipher import FieldCipher
from signing.keyring import Keyring, load_keyring
from signing.online_revocation import (
    OnlineRevocation,
    RevocationCache,
    RevocationFetcher,
    RevocationPolicy,
)
from signing.pades import StampError, preload_stamp_font
from signing.task_qr import RoomTokens
from signing.vault import Vaults, open_vaults

_face_engines: dict[tuple[str, int, int, int], FaceEngine] = {}
_face_engines_lock = threading.Lock()


def face_engine_for(settings: Settings) -> FaceEngine:
    """The process's one engine for these settings: models load once and are shared by all
    requests (onnxruntime sessions run concurrently; the engine keeps no per-call state)."""
    key = (
        str(settings.face_model_dir or ""),
        settings.face_intra_op_threads,
        settings.face_inter_op_threads,
        settings.face_detection_size,
    )
    with _face_engines_lock:
        if key not in _face_engines:
            _face_engines[key] = FaceEngine(
                load_model_pack(settings.face_model_dir),
                EngineOptions(
                    intra_op_threads=settings.face_intra_op_threads,
                    inter_op_threads=settings.face_inter_op_threads,
                    detection_size=settings.face_detection_size,
                ),
            )
        return _face_engines[key]


_anti_spoof: dict[str, PassiveAntiSpoof] = {}


def anti_spoof_for(settings: Settings) -> PassiveAntiSpoof | None:
    """The optional passive anti-spoof model, loaded once per process; None when unset."""
    if settings.liveness_model is None:
        return None
    key = str(settings.liveness_model)
    with _face_engines_lock:
        if key not in _anti_spoof:
            _anti_spoof[key] = PassiveAntiSpoof(settings.liveness_model)
        return _anti_spoof[key]


_revocation_fetchers: dict[tuple[float, float, int, float], RevocationFetcher] = {}


def revocation_check_for(
    settings: Settings, roots: Sequence[x509.Certificate] | None, policy: str | None = None
) -> OnlineRevocation:
    """How validation may go online: the policy (`EVALSIGN_REVOCATION_POLICY` unless
    given), and a fetcher whose cache lives as long as the process, so every request
    shares the answers already fetched. `roots`: the chains it may fetch for (None: any)."""
    key = (
        settings.revocation_connect_timeout_s,
        settings.revocation_read_timeout_s,
        settings.revocation_cache_entries,
        settings.revocation_cache_max_age_hours,
    )
    with _face_engines_lock:
        if key not in _revocation_fetchers:
            _revocation_fetchers[key] = RevocationFetcher(
                connect_timeout_s=settings.revocation_connect_timeout_s,
                read_timeout_s=settings.revocation_read_timeout_s,
                cache=RevocationCache(
                    settings.revocation_cache_entries,
                    timedelta(hours=settings.revocation_cache_max_age_hours),
                ),
            )
        fetcher = _revocation_fetchers[key]
    return OnlineRevocation(RevocationPolicy(policy or settings.revocation_policy), fetcher, roots)


@dataclass(frozen=True)
class Services:
    settings: Settings
    engine: Engine
    session_factory: sessionmaker[Session]
    clock: Clock
    cipher: FieldCipher
    face_policy: FacePolicy
    liveness: LivenessConfig
    passkeys: PasskeyPolicy
    vault: Vaults
    pki: PkiPolicy
    activation: ActivationPolicy
    documents: SigningContext
    room_tokens: RoomTokens
    csrf_key: bytes  # the phone pages' CSRF tokens (api/web/session.py)
    limiter: RequestLimiter  # the one rate limiter: Redis when configured, else memory
    # The citizen-identity check that confirms remote enrollments; None: operators do.
    identity_verifier: IdentityVerifier | None = None
    # Where the center lets an SMS code stand in for the passkey, and what sends it.
    sms: SmsPolicy | None = None

    def face_engine(self) -> FaceEngine:
        return face_engine_for(self.settings)

    def anti_spoof(self) -> PassiveAntiSpoof | None:
        return anti_spoof_for(self.settings)


def open_database(settings: Settings) -> Engine:
    """The instance's database engine (creating the data directory SQLite lives in)."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    url = make_url(settings.resolved_database_url)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        _private_file(Path(url.database))
    return make_engine(
        settings.resolved_database_url,
        sqlite_busy_timeout_ms=settings.sqlite_busy_timeout_ms,
        pool=settings.pool_options,
    )


def _private_file(path: Path) -> None:
    """The SQLite file 0600 in a 0700 directory, before SQLite creates it with the umask
    (0644 by default); its -wal and -shm files take the same mode from it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    os.chmod(path, 0o600)


def build_services(
    settings: Settings,
    *,
    engine: Engine | None = None,
    session_factory: sessionmaker[Session] | None = None,
    clock: Clock | None = None,
    keyring: Keyring | None = None,
    vault: Vaults | None = None,
) -> Services:
    engine = engine or open_database(settings)
    keyring = keyring or load_keyring(settings.vault_dir, settings.master_key)
    face_policy = FacePolicy.from_settings(settings)
    vault = vault or open_vaults(settings, keyring)
    pki_policy = PkiPolicy.from_settings(settings)
    activation_policy = ActivationPolicy.from_settings(settings)
    cipher = FieldCipher(keyring)
    clock = clock or SystemClock()
    sms = SmsPolicy.from_settings(settings, open_messenger(settings, clock))
    return Services(
        settings=settings,
        engine=engine,
        session_factory=session_factory or make_session_factory(engine),
        clock=clock,
        cipher=cipher,
        face_policy=face_policy,
        liveness=LivenessConfig.from_settings(settings, face_policy),
        passkeys=PasskeyPolicy.from_settings(settings),
        vault=vault,
        pki=pki_policy,
        activation=activation_policy,
        documents=SigningContext(
            vault=vault,
            pki=pki_policy,
            activation=activation_policy,
            store=open_store(
                settings.documents_dir,
                settings.document_store,
                cache_bytes=settings.document_cache_bytes,
            ),
            passkeys=PasskeyPolicy.from_settings(settings),
            seal_png=settings.seal_image.read_bytes() if settings.seal_image else None,
            sms=sms,
            cipher=cipher,
            provider_policy=ProviderPolicy.from_settings(settings),
            report_signed=reports.complete_project,
        ),
        room_tokens=RoomTokens(
            keyring,
            period=timedelta(seconds=settings.qr_rotation_s),
            validity=timedelta(seconds=settings.qr_validity_s),
        ),
        csrf_key=keyring.derive("web-csrf/v1"),
        identity_verifier=verifier_from_settings(settings),
        sms=sms,
        limiter=build_limiter(settings),
    )


def load_stamp_font() -> None:
    """Load the CJK font of visible stamps at start; without one the service still runs
    (invisible signatures work) and says how to get visible stamps."""
    try:
        preload_stamp_font()
    except StampError as exc:
        logging.getLogger("evalsign").warning(
            "visible signature stamps are unavailable: %s (apt-get install fonts-noto-cjk, "
            "or set EVALSIGN_STAMP_FONT)",
            exc,
        )

"""Real, valid domain objects for tests: ID numbers with correct check digits, credit codes,
centers with staff tokens."""

from __future__ import annotations

import random
import secrets
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy.orm import Session

from evaluation.kernel import audit
from evaluation.kernel.identifiers import credit_code_check_char, id_number_check_digit
from evaluation.registry import centers
from evaluation.registry import staff as staff_tokens
from evaluation.registry.staff import Role
from models.clock import Clock, FrozenClock

_rng = random.Random(secrets.randbits(64))
CREDIT_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"


def id_number(region: str = "110101", born: date | None = None) -> str:
    born = born or date(1960, 1, 1) + timedelta(days=_rng.randrange(0, 365 * 35))
    first17 = f"{region}{born:%Y%m%d}{_rng.randrange(0, 1000):03d}"
    return first17 + id_number_check_digit(first17)


def credit_code(region: str = "110000") -> str:
    body = "".join(_rng.choice(CREDIT_CHARS) for _ in range(9))
    first17 = f"91{region}{body}"
    return first17 + credit_code_check_char(first17)


def phone() -> str:
    return f"13{_rng.randrange(0, 10**9):09d}"


def expert_payload(**overrides: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "name": _rng.choice(["张伟", "王芳", "李娜", "刘洋", "陈静"]) + str(_rng.randrange(100)),
        "id_number": id_number(),
        "phone": phone(),
        "specialties": ["A0101", "B02"],
        "employer_name": "北京市建筑设计研究院有限公司",
        "employer_credit_code": credit_code(),
        "region_code": "110101",
    }
    payload.update(overrides)
    return payload


@dataclass(frozen=True)
class CenterWithStaff:
    """A center and one live token per role, as tests use them."""

    id: str
    name: str
    tokens: dict[Role, str]

    def headers(self, role: Role | str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[Role(role)]}"}

    @property
    def caller(self) -> audit.Caller:
        return audit.Caller(self.id, "test")


def make_center(db: Session, clock: Clock, name: str | None = None) -> CenterWithStaff:
    center = centers.create_center(db, name or f"测试交易中心 {secrets.token_hex(4)}", clock)
    caller = audit.Caller(center.id, "test")
    tokens = {
        role: staff_tokens.issue_staff_token(db, caller, clock, role, f"test {role}").secret
        for role in Role
    }
    db.commit()
    return CenterWithStaff(center.id, center.name, tokens)


def establish_pki(db: Session, clock: Clock, services: Any, center: CenterWithStaff) -> Any:
    """The center's CA, TSA and audit-checkpoint certificates, as `evalsign init` makes them."""
    from evaluation.trust import pki
    from models.tables import Center

    row = db.get(Center, center.id)
    assert row is not None
    established = pki.establish_center_pki(
        db, clock, services.vault, services.pki, row, actor="test"
    )
    db.commit()
    return established


_external_roots: list[Any] = []


def external_root() -> tuple[Any, Any]:
    """Another CA's self-signed root (certificate, key), e.g. a bank's, made once per run."""
    if not _external_roots:
        from datetime import UTC, datetime

        from cryptography.hazmat.primitives.asymmetric import ec

        from signing.certificates import ca_name, make_root_ca

        key = ec.generate_private_key(ec.SECP256R1())
        # Valid well before the tests' frozen clock and long after it.
        start = datetime(2026, 1, 1, tzinfo=UTC)
        _external_roots.append((make_root_ca(ca_name("某银行", "Root CA"), key, start, 3650), key))
    certificate, key = _external_roots[0]
    return certificate, key


def face_session(
    db: Session,
    clock: Clock,
    center_id: str,
    expert_id: str,
    *,
    device_id: str = "phone-test-1",
    verified_at: Any = None,
    scan_session_id: str | None = None,
) -> tuple[str, Any]:
    """The records a passed face check leaves (challenge, verification, session), for tests
    of what a session unlocks; tests/api/test_liveness_api.py makes them the real way."""
    from datetime import timedelta

    from evaluation.identity.face_checks import SESSION_PREFIX
    from evaluation.kernel.tokens import hash_token
    from models.tables import FaceChallenge, FaceVerification, VerifiedSession

    now = verified_at or clock.now()
    challenge = FaceChallenge(
        center_id=center_id,
        mode="1:1",
        expert_ids=[expert_id],
        actions=["blink", "turn_left"],
        nonce_hash=hash_token(secrets.token_hex(16)),
        capture={},
        issued_by="test",
        issued_at=now - timedelta(seconds=10),
        expires_at=now + timedelta(seconds=50),
        used_at=now,
        scan_session_id=scan_session_id,
    )
    db.add(challenge)
    db.flush()
    verification = FaceVerification(
        center_id=center_id,
        challenge_id=challenge.id,
        mode="1:1",
        candidate_ids=[expert_id],
        expert_id=expert_id,
        passed=True,
        reasons=[],
        checks=[],
        similarity=0.8,
        model_id="test",
        device_id=device_id,
        device={"id": device_id},
        client_ip="127.0.0.1",
        user_agent="test",
        frame_count=0,
        frame_hashes=[],
        frames=[],
        frames_retained=False,
        created_at=now,
    )
    db.add(verification)
    db.flush()
    token = SESSION_PREFIX + secrets.token_urlsafe(24)
    session = VerifiedSession(
        center_id=center_id,
        token_hash=hash_token(token),
        expert_id=expert_id,
        verification_id=verification.id,
        device_id=device_id,
        verified_at=now,
        expires_at=now + timedelta(minutes=10),
        revoked_at=None,
    )
    db.add(session)
    db.commit()
    return token, session


# The origin the tests' phones show: the default public URL's host as WebAuthn needs it.
PHONE_ORIGIN = "http://localhost:8000"


def bound_phone(
    db: Session,
    clock: Clock,
    policy: Any | None,
    center_id: str,
    expert_id: str,
    *,
    device_id: str = "phone-test-1",
    phone: Any = None,
    bound_at: Any = None,
) -> Any:
    """A phone bound to the person as the desk binds one (a binding, its face check's
    records, a passkey registered through the domain code); returns its authenticator.
    tests/api/test_passkeys_api.py binds the real way, through the API."""
    from evaluation.identity import passkeys, phone_binding
    from evaluation.kernel.tokens import hash_token
    from models.tables import FaceVerification, PasskeyEnrollment
    from signing.soft_authenticator import SoftwareAuthenticator
    from signing.webauthn import RelyingParty

    # The tests' service: the default public URL, an address, so the RP id is localhost.
    policy = policy or passkeys.PasskeyPolicy(
        rp=RelyingParty("localhost", frozenset({PHONE_ORIGIN})),
        max_devices=10,
        enrollment_ttl=timedelta(minutes=5),
        challenge_ttl=timedelta(minutes=2),
    )

    now = clock.now()
    enrollment = PasskeyEnrollment(
        center_id=center_id,
        expert_id=expert_id,
        token_hash=hash_token(secrets.token_urlsafe(16)),
        started_by="staff:test",
        created_at=now,
        expires_at=now + timedelta(minutes=5),
        device_id=device_id,
        opened_at=now,
    )
    db.add(enrollment)
    db.flush()
    # At the desk, well before any project: its face check is not one of the project's.
    earlier = clock.now() - timedelta(days=30)
    _, face = face_session(
        db, clock, center_id, expert_id, device_id=device_id, verified_at=earlier
    )
    verification = db.get(FaceVerification, face.verification_id)
    enrollment.face_challenge_id = verification.challenge_id
    phone = phone or SoftwareAuthenticator(PHONE_ORIGIN)
    options = phone_binding.registration_options(db, clock, policy, enrollment, face)
    desk = FrozenClock(bound_at or earlier)  # by default well before the project
    phone_binding.complete_enrollment(
        db, desk, policy, enrollment, face, phone.create(options), label="test", request_id=None
    )
    db.commit()
    return phone


def make_pdf(pages: int = 2, text: str = "Evaluation report") -> bytes:
    """A small valid PDF of A4 pages (595 x 842 pt) with a line of text on each."""
    objects: list[bytes] = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"",  # the page tree, filled in below
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    kids = []
    for number in range(pages):
        content = f"BT /F1 18 Tf 72 760 Td ({text} - page {number + 1}) Tj ET".encode()
        objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(content), content))
        content_ref = len(objects)
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
            b"/Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R >>" % content_ref
        )
        kids.append(f"{len(objects)} 0 R")
    objects[1] = f"<< /Type /Pages /Kids [{' '.join(kids)}] /Count {pages} >>".encode()
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for index, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (index, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def drawable_expert(
    db: Session,
    clock: Clock,
    services: Any,
    center: CenterWithStaff,
    specialties: list[str],
    employer_credit_code: str | None = None,
    *,
    enrolled: bool = True,
    credential: bool = True,
) -> str:
    """An expert the draw may pick: registered, a face enrolment on record, a credential.
    (The draw reads only that an enrolment exists; tests/api/test_faces_api.py makes real
    ones.)"""
    from evaluation.registry.experts import NewExpert, register_expert
    from evaluation.trust import credentials
    from models.tables import FaceTemplate

    caller = audit.Caller(center.id, "test")
    fields = expert_payload(specialties=specialties)
    if employer_credit_code:
        fields["employer_credit_code"] = employer_credit_code
    expert = register_expert(db, caller, clock, services.cipher, NewExpert.model_validate(fields))
    if enrolled:
        db.add(
            FaceTemplate(
                expert_id=expert.id,
                center_id=center.id,
                model_id="test",
                template_ciphertext=b"\x01",
                embeddings_ciphertext=b"\x01",
                photo_count=1,
                quality=[],
                consent_recorded_at=clock.now(),
                enrolled_at=clock.now(),
            )
        )
    if credential:
        credentials.issue_credential(db, caller, clock, services.vault, services.pki, expert.id)
    db.commit()
    return expert.id


def enrolled_template(
    db: Session,
    cipher: Any,
    *,
    center_id: str,
    expert_id: str,
    vector: Any,
    model_id: str,
    now: Any,
) -> None:
    """A face template stored as enrollment stores it (encrypted, under the same context),
    from a given unit vector instead of photos (replacing any): for registries too large
    to enroll by photo, and for faces placed at a chosen similarity."""
    import numpy as np

    from evaluation.identity.faces import EMBEDDING_DTYPE, template_context
    from models.tables import FaceTemplate

    packed = np.asarray(vector, dtype=EMBEDDING_DTYPE).reshape(1, -1).tobytes()
    db.merge(  # replaces a template enrolled from photos
        FaceTemplate(
            expert_id=expert_id,
            center_id=center_id,
            model_id=model_id,
            template_ciphertext=cipher.encrypt_bytes(
                packed, template_context(expert_id, "template")
            ),
            embeddings_ciphertext=cipher.encrypt_bytes(
                packed, template_context(expert_id, "embeddings")
            ),
            photo_count=1,
            quality=[],
            consent_recorded_at=now,
            enrolled_at=now,
            confirmed_at=now,
            confirmed_by="factory",
        )
    )

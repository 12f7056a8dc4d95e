"""Remote signing providers: a licensed CA's CSC API v2 service a center signs through.

An admin configures the provider (where it is, EvalSign's OAuth2 client at it, the root
its certificates chain to); an operator links an expert's credential at the provider, its
certificate taken from `credentials/info` only when it chains to that root. Signing stays
EvalSign's to authorize (face check, passkey, single-use SAD); the provider is then asked
for exactly the approved hash, and nothing it answers is used unchecked. Every way it
fails is one refusal (a `SigningRefused`, so the signing routes log it) that leaves the
document as it was and can be retried.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from sqlalchemy import select
from sqlalchemy.orm import Session

from evaluation.kernel import audit
from evaluation.kernel.actions import Action
from evaluation.kernel.errors import DomainError, SigningRefused
from evaluation.kernel.tenancy import in_center
from evaluation.trust import credentials, pki
from models.base import new_id
from models.clock import Clock
from models.settings import Settings
from models.tables import Expert, IssuedCertificate, SigningProvider, VaultKey
from signing import csc_client
from signing.algorithms import algorithm_of
from signing.csc_client import CscClient, CscEndpoint, CscError, CscVault, Timeouts
from signing.field_cipher import FieldCipher

RETRY_AFTER_S = 30


class ProviderUnavailable(SigningRefused):
    status = 503
    code = "signing-provider-unavailable"
    title = "The remote signing provider is down or too slow; nothing was signed, try again"
    csc_error = "temporarily_unavailable"

    def __init__(self, detail: str, **extensions: object) -> None:
        super().__init__(detail, retry_after_s=RETRY_AFTER_S, **extensions)
        self.retry_after_s = RETRY_AFTER_S


class ProviderRefused(SigningRefused):
    status = 502
    code = "signing-provider-refused"
    title = "The remote signing provider refused; nothing was signed"


class ProviderSignatureInvalid(SigningRefused):
    status = 502
    code = "signing-provider-signature-invalid"
    title = "The remote signing provider's signature does not verify over the approved hash"


class ProviderCertificateUntrusted(SigningRefused):
    status = 502
    code = "signing-provider-certificate-untrusted"
    title = "The remote signing provider's certificate does not chain to its configured root"


class ProviderCertificateRevoked(SigningRefused):
    status = 409
    code = "signing-provider-certificate-revoked"
    title = "The signer's certificate at the remote signing provider is revoked or invalid"


class ProviderCertificateChanged(SigningRefused):
    status = 409
    code = "signing-provider-certificate-changed"
    title = "The remote signing provider now presents another certificate; link it again"


class ProviderSecretMissing(DomainError):
    status = 422
    code = "signing-provider-secret-missing"
    title = "A new signing provider needs the client secret EvalSign signs in to it with"


class RemoteCredentialTaken(DomainError):
    status = 409
    code = "remote-credential-taken"
    title = "That credential at the provider is already linked to someone in this center"


class ProviderNotConfigured(DomainError):
    status = 409
    code = "signing-provider-not-configured"
    title = "The center has no remote signing provider by that name"


@dataclass(frozen=True)
class ProviderPolicy:
    timeouts: Timeouts

    @classmethod
    def from_settings(cls, settings: Settings) -> ProviderPolicy:
        return cls(Timeouts(settings.csc_connect_timeout_s, settings.csc_read_timeout_s))


@dataclass(frozen=True)
class ProviderAccess:
    """What talking to a center's provider needs from the running service."""

    cipher: FieldCipher
    policy: ProviderPolicy


@dataclass(frozen=True)
class ProviderFields:
    name: str
    base_url: str
    token_url: str
    client_id: str
    client_secret: str | None  # None: keep the one stored
    root: bytes  # PEM or DER


def _secret_context(center_id: str, name: str) -> str:
    return f"signing-provider/{center_id}/{name}"


def refusal(error: CscError, **extensions: object) -> SigningRefused:
    """The domain's refusal for a provider failure; `reason` is kept for the log."""
    extensions = {"reason": error.reason, **extensions}
    if isinstance(error, csc_client.CscUnavailable):
        return ProviderUnavailable(error.detail, **extensions)
    if isinstance(error, csc_client.CscSignatureInvalid):
        return ProviderSignatureInvalid(error.detail, **extensions)
    if isinstance(error, csc_client.CscCertificateRejected):
        if error.reason == "provider-certificate-untrusted":
            return ProviderCertificateUntrusted(error.detail, **extensions)
        return ProviderCertificateRevoked(error.detail, **extensions)
    if isinstance(error, csc_client.CscRefused):
        return ProviderRefused(
            error.detail,
            provider_error=error.error,
            provider_error_description=error.description,
            **extensions,
        )
    return ProviderUnavailable(error.detail, **extensions)


# --- configuration -------------------------------------------------------------------------


def configure_provider(
    db: Session, caller: audit.Caller, clock: Clock, cipher: FieldCipher, fields: ProviderFields
) -> SigningProvider:
    """Create or change the center's provider `fields.name`; its root joins the center's
    trust list, so what it signs validates as trusted."""
    root = _root(fields.root)
    now = clock.now()
    row = db.execute(
        select(SigningProvider)
        .where(SigningProvider.center_id == caller.center_id, SigningProvider.name == fields.name)
        .with_for_update()
    ).scalar_one_or_none()
    created = row is None
    if row is None:
        if fields.client_secret is None:
            raise ProviderSecretMissing(f"provider {fields.name!r} is new: give client_secret")
        row = SigningProvider(id=new_id(), center_id=caller.center_id, name=fields.name)
        row.created_at = now
        db.add(row)
    row.base_url, row.token_url, row.client_id = fields.base_url, fields.token_url, fields.client_id
    if fields.client_secret is not None:
        row.client_secret_ciphertext = cipher.encrypt(
            fields.client_secret, _secret_context(caller.center_id, fields.name)
        )
    row.root_der = pki.der(root)
    row.updated_at = now
    db.flush()
    trusted = {pki.fingerprint(r) for r in pki.trust_roots(db, caller.center_id)}
    if pki.fingerprint(root) not in trusted:
        pki.add_trust_anchor(db, caller, clock, row.root_der, f"{fields.name} (signing provider)")
    audit.record(
        db,
        caller,
        clock,
        Action.SIGNING_PROVIDER_CONFIGURED,
        "signing_provider",
        row.id,
        {
            "name": row.name,
            "created": created,
            "base_url": row.base_url,
            "token_url": row.token_url,
            "client_id": row.client_id,
            "client_secret_changed": fields.client_secret is not None,
            "root_fingerprint": pki.fingerprint(root),
            "root_subject": root.subject.rfc4514_string(),
        },
    )
    return row


def _root(data: bytes) -> x509.Certificate:
    root = pki.parse_certificate(data)
    try:
        constraints = root.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        constraints = None
    if root.issuer != root.subject or constraints is None or not constraints.ca:
        raise pki.CertificateRejected("the provider's root must be a self-signed CA certificate")
    return root


def list_providers(db: Session, center_id: str) -> list[SigningProvider]:
    return list(
        db.execute(
            select(SigningProvider)
            .where(SigningProvider.center_id == center_id)
            .order_by(SigningProvider.name)
        ).scalars()
    )


def get_provider(db: Session, center_id: str, name: str) -> SigningProvider:
    row = db.execute(
        select(SigningProvider).where(
            SigningProvider.center_id == center_id, SigningProvider.name == name
        )
    ).scalar_one_or_none()
    if row is None:
        raise ProviderNotConfigured(f"no signing provider {name!r} in this center")
    return row


def client_for(access: ProviderAccess, row: SigningProvider) -> CscClient:
    secret = access.cipher.decrypt(
        row.client_secret_ciphertext, _secret_context(row.center_id, row.name)
    )
    endpoint = CscEndpoint(row.base_url, row.token_url, row.client_id, secret)
    return CscClient(endpoint, access.policy.timeouts)


def root_of(row: SigningProvider) -> x509.Certificate:
    return pki.load_certificate(row.root_der)


# --- credentials ---------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckedCertificate:
    """The provider's certificate for a credential, checked now: its path up to the
    provider's root and the CRLs that show it unrevoked."""

    certificate: x509.Certificate
    chain: list[x509.Certificate]
    crls: list[bytes]


def checked_certificate(
    access: ProviderAccess, row: SigningProvider, credential_id: str, moment: datetime
) -> CheckedCertificate:
    """`credentials/info` of the credential, its chain checked against the provider's root
    and its CRLs fetched; CscError when any of it fails."""
    info = client_for(access, row).credential_info(credential_id)
    if info.key_status != "enabled":
        raise csc_client.CscCertificateRejected(
            f"the provider reports credential {credential_id}'s key as {info.key_status}",
            reason="provider-certificate-invalid",
        )
    crls = csc_client.fetch_crls([info.certificate, *info.chain], access.policy.timeouts)
    path = csc_client.check_certificate(info.certificate, info.chain, root_of(row), crls, moment)
    return CheckedCertificate(info.certificate, path, crls)


def link_credential(
    db: Session,
    caller: audit.Caller,
    clock: Clock,
    access: ProviderAccess,
    expert_id: str,
    *,
    provider_name: str,
    remote_credential_id: str,
) -> IssuedCertificate:
    """Make the expert's credential one their CA holds at the provider: its certificate
    and chain from `credentials/info`, accepted only when they chain to the provider's
    root and are not revoked. The key never comes here (vault backend `csc`)."""
    expert = in_center(db, Expert, expert_id, caller.center_id, "expert", lock=True)
    if expert.status != "active":
        raise credentials.ExpertInactive(f"expert {expert_id} is {expert.status}")
    now = clock.now()
    existing = credentials.current_credential(db, expert_id)
    if existing is not None and existing.not_after > now:
        raise credentials.CredentialExists(
            f"expert {expert_id} already has credential {existing.id}", credential_id=existing.id
        )
    provider = get_provider(db, caller.center_id, provider_name)
    # Links at one provider take turns, so two experts cannot both claim one remote
    # credential between the check below and their inserts.
    db.refresh(provider, with_for_update=True)
    taken = db.execute(
        select(IssuedCertificate.id, IssuedCertificate.expert_id)
        .join(VaultKey, VaultKey.id == IssuedCertificate.key_id)
        .where(
            VaultKey.provider_id == provider.id,
            VaultKey.token_key_id == remote_credential_id,
            IssuedCertificate.status != "revoked",
        )
    ).first()
    if taken is not None:
        raise RemoteCredentialTaken(
            f"{remote_credential_id} at {provider.name} is credential {taken.id} of expert "
            f"{taken.expert_id}",
            credential_id=taken.id,
        )
    try:
        checked = checked_certificate(access, provider, remote_credential_id, now)
    except CscError as exc:
        refused = refusal(exc, provider=provider.name)
        event = audit.AuditEvent(
            Action.CREDENTIAL_LINK_REFUSED,
            "expert",
            expert.id,
            {
                "provider": provider.name,
                "remote_credential_id": remote_credential_id,
                "code": refused.code,
                "reason": exc.reason,
                "detail": exc.detail,
            },
        )
        raise audit.refused(refused, caller, event) from exc
    certificate = checked.certificate
    public = certificate.public_key()
    key = VaultKey(
        id=new_id(),
        center_id=caller.center_id,
        purpose="expert-credential",
        backend="csc",
        algorithm=algorithm_of(public).value,
        public_key_der=public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        token_key_id=remote_credential_id,
        provider_id=provider.id,
        created_at=now,
    )
    db.add(key)
    db.flush()  # no relationship orders the inserts: the key's row goes first
    row = IssuedCertificate(
        id=new_id(),
        center_id=caller.center_id,
        authority_id=None,
        chain_der=[pki.der(c).hex() for c in checked.chain],
        purpose=credentials.EXPERT,
        expert_id=expert.id,
        key_id=key.id,
        serial=format(certificate.serial_number, "x"),
        subject=certificate.subject.rfc4514_string(),
        certificate_der=pki.der(certificate),
        not_before=certificate.not_valid_before_utc,
        not_after=certificate.not_valid_after_utc,
        status="valid",
        created_at=now,
    )
    db.add(row)
    db.flush()
    audit.record(
        db,
        caller,
        clock,
        Action.CREDENTIAL_LINKED,
        "certificate",
        row.id,
        {
            "expert_id": expert.id,
            "provider": provider.name,
            "provider_id": provider.id,
            "remote_credential_id": remote_credential_id,
            "serial": row.serial,
            "subject": row.subject,
            "issuer": certificate.issuer.rfc4514_string(),
            "fingerprint": certificate.fingerprint(hashes.SHA256()).hex(),
        },
    )
    return row


def provider_of(db: Session, credential: IssuedCertificate) -> tuple[SigningProvider, VaultKey]:
    key = db.get(VaultKey, credential.key_id)
    assert key is not None and key.backend == "csc" and key.provider_id is not None
    provider = db.get(SigningProvider, key.provider_id)
    assert provider is not None
    return provider, key


def is_remote(credential: IssuedCertificate) -> bool:
    return credential.authority_id is None


def signing_material(
    db: Session, access: ProviderAccess, credential: IssuedCertificate, moment: datetime
) -> tuple[list[x509.Certificate], list[bytes]]:
    """Before a remote credential signs: the provider's certificate checked again now (it
    must still be the one linked, chain to the root and be unrevoked), with the chain and
    CRLs that go into the PDF (B-LT)."""
    provider, key = provider_of(db, credential)
    assert key.token_key_id is not None
    try:
        checked = checked_certificate(access, provider, key.token_key_id, moment)
    except CscError as exc:
        raise refusal(exc, provider=provider.name, credential_id=credential.id) from exc
    if pki.der(checked.certificate) != credential.certificate_der:
        raise ProviderCertificateChanged(
            f"the provider presents certificate {checked.certificate.serial_number:x} for "
            f"credential {credential.id}, not the linked {credential.serial}",
            reason="provider-certificate-changed",
            provider=provider.name,
            credential_id=credential.id,
        )
    return checked.chain, checked.crls


def vault_for(db: Session, access: ProviderAccess, credential: IssuedCertificate) -> CscVault:
    """The provider behind the vault interface, for this remote credential's key."""
    provider, _ = provider_of(db, credential)
    return CscVault(client_for(access, provider))

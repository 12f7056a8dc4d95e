"""The CSC API v2 client against a stand-in provider over real HTTP: a signature that
verifies, the token reused until it expires, and every way a provider lets us down
(down, slow, 5xx, refusing, signing other hashes, a certificate from another CA, revoked)
turned into one error naming the reason."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives import hashes

from signing.algorithms import KeyAlgorithm, algorithm_of
from signing.csc_client import (
    CscCertificateRejected,
    CscClient,
    CscEndpoint,
    CscRefused,
    CscSignatureInvalid,
    CscUnavailable,
    CscVault,
    Timeouts,
    check_certificate,
    fetch_crls,
)
from signing.vault import KeyRef
from tests.csc_provider_standin import CscProviderStandIn, running_provider
from tests.signing.softhsm import SoftHsmToken

SHA256 = "2.16.840.1.101.3.4.2.1"
TIMEOUTS = Timeouts(connect_s=1.0, read_s=0.5)


@pytest.fixture
def provider(softhsm_token: SoftHsmToken) -> Iterator[CscProviderStandIn]:
    with running_provider(softhsm_token, lambda: datetime.now(UTC)) as standin:
        yield standin


def client_of(provider: CscProviderStandIn, secret: str | None = None) -> CscClient:
    endpoint = CscEndpoint(
        provider.url, provider.token_url, provider.client_id, secret or provider.client_secret
    )
    return CscClient(endpoint, TIMEOUTS)


def key_of(client: CscClient, credential_id: str) -> KeyRef:
    info = client.credential_info(credential_id)
    public = info.certificate.public_key()
    from cryptography.hazmat.primitives import serialization

    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return KeyRef("k1", algorithm_of(public), "csc", der, token_key_id=credential_id)


def test_a_hash_is_signed_by_the_provider_and_verifies(provider: CscProviderStandIn) -> None:
    credential_id = provider.add_credential("expert-1", "张三")
    client = client_of(provider)
    assert client.info()["authType"] == ["oauth2client"]
    assert credential_id in client.list_credentials()
    info = client.credential_info(credential_id)
    assert info.key_algorithm is KeyAlgorithm.EC_P256
    assert info.chain[-1] == provider.root
    digest = hashlib.sha256(b"report").digest()
    signature = CscVault(client).sign_digest(key_of(client, credential_id), digest, hashes.SHA256())
    provider.verify(credential_id, digest, signature)


def test_the_token_is_reused_until_it_expires(provider: CscProviderStandIn) -> None:
    provider.client_secret = f"reuse-{time.monotonic_ns()}"  # a token cache entry of its own
    credential_id = provider.add_credential("expert-1", "张三")
    client = client_of(provider)
    for _ in range(3):
        client.credential_info(credential_id)
    assert provider.tokens_issued == 1
    provider.expire_tokens()  # the provider forgot it: renewed once, transparently
    client.credential_info(credential_id)
    assert provider.tokens_issued == 2


def test_a_wrong_client_secret_is_refused(provider: CscProviderStandIn) -> None:
    with pytest.raises(CscRefused) as refused:
        client_of(provider, "wrong-secret").list_credentials()
    assert refused.value.error == "invalid_client"


def test_a_provider_that_is_down_is_unavailable(provider: CscProviderStandIn) -> None:
    client = client_of(provider)
    provider.stop()
    with pytest.raises(CscUnavailable, match="cannot be reached"):
        client.info()


def test_a_provider_answering_5xx_is_unavailable(provider: CscProviderStandIn) -> None:
    credential_id = provider.add_credential("expert-1", "张三")
    provider.status = 503
    with pytest.raises(CscUnavailable, match="HTTP 503"):
        client_of(provider).credential_info(credential_id)


def test_a_slow_provider_times_out(provider: CscProviderStandIn) -> None:
    credential_id = provider.add_credential("expert-1", "张三")
    provider.delay_s = 1.5
    started = time.monotonic()
    with pytest.raises(CscUnavailable, match=r"did not answer within 0\.5 s"):
        client_of(provider).credential_info(credential_id)
    assert time.monotonic() - started < 1.4


def test_a_refusal_carries_the_providers_reason(provider: CscProviderStandIn) -> None:
    credential_id = provider.add_credential("expert-1", "张三")
    client = client_of(provider)
    key = key_of(client, credential_id)
    provider.refuse = ("invalid_request", "credential suspended by the CA")
    with pytest.raises(CscRefused, match="credential suspended by the CA") as refused:
        CscVault(client).sign_digest(key, hashlib.sha256(b"x").digest(), hashes.SHA256())
    assert (refused.value.status, refused.value.error) == (400, "invalid_request")


def test_a_signature_over_other_hashes_is_refused(provider: CscProviderStandIn) -> None:
    credential_id = provider.add_credential("expert-1", "张三")
    client = client_of(provider)
    key = key_of(client, credential_id)
    provider.sign_other_hashes = True
    with pytest.raises(CscSignatureInvalid, match="does not verify over the hash"):
        CscVault(client).sign_digest(key, hashlib.sha256(b"x").digest(), hashes.SHA256())


def test_the_certificate_chains_to_the_configured_root(provider: CscProviderStandIn) -> None:
    credential_id = provider.add_credential("expert-1", "张三")
    info = client_of(provider).credential_info(credential_id)
    crls = fetch_crls([info.certificate, *info.chain], TIMEOUTS)
    assert len(crls) == 2  # the issuing CA's and the root's
    path = check_certificate(info.certificate, info.chain, provider.root, crls, datetime.now(UTC))
    assert path == [provider.issuing, provider.root]


def test_a_certificate_from_another_ca_is_untrusted(provider: CscProviderStandIn) -> None:
    credential_id = provider.add_credential("expert-1", "张三")
    provider.untrusted_certificate = True
    info = client_of(provider).credential_info(credential_id)
    crls = fetch_crls([info.certificate, *info.chain], TIMEOUTS)
    with pytest.raises(CscCertificateRejected) as rejected:
        check_certificate(info.certificate, info.chain, provider.root, crls, datetime.now(UTC))
    assert rejected.value.reason == "provider-certificate-untrusted"


def test_a_revoked_certificate_is_rejected(provider: CscProviderStandIn) -> None:
    credential_id = provider.add_credential("expert-1", "张三")
    provider.revoke(credential_id)
    info = client_of(provider).credential_info(credential_id)
    crls = fetch_crls([info.certificate, *info.chain], TIMEOUTS)
    with pytest.raises(CscCertificateRejected) as rejected:
        check_certificate(info.certificate, info.chain, provider.root, crls, datetime.now(UTC))
    assert rejected.value.reason == "provider-certificate-revoked"


def test_an_unreachable_crl_makes_the_provider_unavailable(provider: CscProviderStandIn) -> None:
    credential_id = provider.add_credential("expert-1", "张三")
    info = client_of(provider).credential_info(credential_id)
    provider.stop()
    with pytest.raises(CscUnavailable, match="CRL"):
        fetch_crls([info.certificate, *info.chain], TIMEOUTS)

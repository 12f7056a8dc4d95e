"""Detached CMS signatures over small records (audit checkpoints, evidence manifests):
signed through a `SigningIdentity` (the key stays in the vault), with a signature
time-stamp from our TSA, and verified against the center's trust roots with `openssl cms
-verify` or pyHanko alike."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from asn1crypto import cms
from cryptography import x509
from pyhanko.sign.validation import async_validate_detached_cms
from pyhanko.sign.validation.settings import KeyUsageConstraints
from pyhanko_certvalidator import ValidationContext

from signing.pades import IdentitySigner, InProcessTimeStamper, RevocationMaterial, SigningIdentity
from signing.pades.files import DIGEST_ALGORITHM
from signing.pades.material import load_crls, to_asn1


class DetachedSignatureInvalid(Exception):
    """The signature does not verify, or its signer or time-stamp is not trusted."""


def sign_detached(
    data: bytes, identity: SigningIdentity, timestamper: InProcessTimeStamper
) -> bytes:
    """A DER CMS SignedData over `data` (not included), with a signature time-stamp."""
    signer = IdentitySigner(identity)
    signed = asyncio.run(
        signer.async_sign_general_data(
            data, DIGEST_ALGORITHM, detached=True, timestamper=timestamper
        )
    )
    return bytes(signed.dump())


@dataclass(frozen=True)
class DetachedVerdict:
    signer_subject: str
    signer_serial: str
    signed_at: datetime | None  # the time-stamp's time


def _stamped_at(signed_data: cms.SignedData) -> datetime | None:
    """The time in the first signer's signature time-stamp token, if any (not yet trusted:
    the validation below checks the token itself)."""
    try:
        for attribute in signed_data["signer_infos"][0]["unsigned_attrs"]:
            if attribute["type"].native == "signature_time_stamp_token":
                token = attribute["values"][0]
                info = token["content"]["encap_content_info"]["content"].parsed
                stamped: datetime = info["gen_time"].native
                return stamped
    except (KeyError, IndexError, TypeError, ValueError):
        return None
    return None


def verify_detached(
    data: bytes,
    signature: bytes,
    trust_roots: Sequence[x509.Certificate],
    revocation: RevocationMaterial,
    extended_key_usage: str | None = None,
    moment: datetime | None = None,
) -> DetachedVerdict:
    """Check a detached signature: intact, the signer chains to a trust root (and holds
    the extended key usage, if named), and the signature time-stamp is valid."""
    try:
        content = cms.ContentInfo.load(signature)
        signed_data = content["content"]
        if content["content_type"].native != "signed_data":
            raise ValueError("not a CMS SignedData")
    except ValueError as exc:
        raise DetachedSignatureInvalid(f"not a CMS signature: {exc}") from exc
    # Checked as of the signature time-stamp: a checkpoint or a manifest must still verify
    # years later, after the signing certificate has expired (its time-stamp proves the
    # signature existed while the certificate was valid).
    at = moment or _stamped_at(signed_data) or None
    context = ValidationContext(
        trust_roots=[to_asn1(c) for c in trust_roots],
        crls=load_crls(revocation.crls),
        allow_fetching=False,
        revocation_mode="soft-fail",
        moment=at,
    )
    usage = KeyUsageConstraints(
        extd_key_usage=frozenset({extended_key_usage}) if extended_key_usage else None
    )
    status = asyncio.run(
        async_validate_detached_cms(
            data,
            signed_data,
            signer_validation_context=context,
            ts_validation_context=context,
            key_usage_settings=usage,
        )
    )
    if not status.intact:
        raise DetachedSignatureInvalid("the signature does not match the data")
    if not status.valid or not status.trusted:
        raise DetachedSignatureInvalid(
            f"the signer is not trusted or not allowed to sign this ({status.trust_problem_indic})"
        )
    stamp = status.timestamp_validity
    if stamp is None or not stamp.intact or not stamp.valid or not stamp.trusted:
        raise DetachedSignatureInvalid("the signature time-stamp is missing or not valid")
    certificate = status.signing_cert
    return DetachedVerdict(
        signer_subject=certificate.subject.human_friendly,
        signer_serial=format(certificate.serial_number, "x"),
        signed_at=stamp.timestamp,
    )

"""An RFC 3161 time-stamp authority: a DER TimeStampReq in, a DER TimeStampResp out.

A pure library: no HTTP, no database, no clock. The service gives it the time and a unique
serial number and carries the bytes. Tokens are CMS SignedData over a TSTInfo, signed with
ECDSA (P-256) or RSA PKCS#1 v1.5, with the ESS signingCertificateV2 attribute of RFC 5816.
The private key may be a vault adapter (`signing.vault.private_key`): only its `sign()` and
`public_key()` are used.

Decisions a client may notice:

- Accepted imprints: SHA-256, SHA-384 and SHA-512. MD5, SHA-1 and anything else get
  `badAlg`; an imprint whose length does not match its algorithm gets `badDataFormat`
  (the data is malformed, the request as such would be acceptable).
- A request naming a policy other than ours gets `unacceptedPolicy`; any request
  extension gets `unacceptedExtension`, since we support none (RFC 3161 §2.4.2).
- genTime has whole-second precision (truncated), with an accuracy of one second.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar, cast

from asn1crypto import algos, cms, core, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from signing.algorithms import HASHES_BY_OID

__all__ = [
    "POLICY_OID_DEFAULT",
    "TimeStampAuthority",
    "TimeStampRejected",
    "build_request",
    "parse_request",
    "token_of",
    "token_time",
]

log = logging.getLogger(__name__)

# Generated once (uuid4) and fixed: an OID under 2.25 needs no registration (ITU-T X.667).
POLICY_OID_DEFAULT = "2.25.322647021839639687578897646439564362138"

# RFC 3161 §2.4.2: clients must handle serial numbers of up to 160 bits; we never exceed it.
MAX_SERIAL_BITS = 160

_SIGNATURE_ALGORITHMS = {
    # (key type, hash name) → signature algorithm name in asn1crypto
    ("ec", "sha256"): "sha256_ecdsa",
    ("ec", "sha384"): "sha384_ecdsa",
    ("ec", "sha512"): "sha512_ecdsa",
    ("rsa", "sha256"): "sha256_rsa",
    ("rsa", "sha384"): "sha384_rsa",
    ("rsa", "sha512"): "sha512_rsa",
}


class TimeStampRejected(Exception):
    """A request the TSA will not stamp, or a response that carries no token.

    `failure_info` is the PKIFailureInfo bit name as asn1crypto spells it, e.g. "bad_alg",
    "bad_request", "bad_data_format", "unaccepted_policy", "unaccepted_extensions".
    """

    def __init__(self, failure_info: str, message: str) -> None:
        super().__init__(message)
        self.failure_info = failure_info
        self.message = message


class _TimeStampResp(core.Sequence):  # type: ignore[misc]
    """TimeStampResp with the token OPTIONAL, as RFC 3161 has it; asn1crypto's own class
    makes it mandatory and so cannot encode, or fully parse, a rejection."""

    _fields: ClassVar[list[tuple[Any, ...]]] = [
        ("status", tsp.PKIStatusInfo),
        ("time_stamp_token", cms.ContentInfo, {"optional": True}),
    ]


@dataclass(frozen=True)
class TimeStampAuthority:
    """One TSA identity: its certificate (EKU timeStamping, critical), the issuing CA and
    root to embed on request, its signing key and the policy it stamps under."""

    certificate: x509.Certificate
    chain: Sequence[x509.Certificate]
    private_key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
    policy_oid: str = POLICY_OID_DEFAULT

    def __post_init__(self) -> None:
        # Misconfiguration shows up at start-up, not as tokens every verifier rejects.
        # Only the public key's type is asked: a vault or HSM handle need not subclass the
        # `cryptography` key classes to sign here.
        public = self.private_key.public_key()
        if not isinstance(public, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
            raise ValueError("the TSA key must be an EC or RSA key")
        if public != self.certificate.public_key():
            raise ValueError("the TSA private key does not belong to the TSA certificate")
        _check_tsa_certificate(self.certificate)
        core.ObjectIdentifier(self.policy_oid)  # raises ValueError on a malformed OID

    def respond(self, request_der: bytes, now: datetime, serial_number: int) -> bytes:
        """A DER TimeStampResp for a DER TimeStampReq: "granted" with a token, or
        "rejection" with a PKIFailureInfo and a statusString, or, if signing itself
        fails (vault down, bad signature), "rejection" with systemFailure (logged).

        `now` must be timezone-aware and `serial_number` a positive integer of at most
        160 bits, unique for this TSA: violating that is a bug in the caller and raises
        ValueError rather than becoming a response.
        """
        gen_time = _gen_time(now)
        if not 0 < serial_number < 1 << MAX_SERIAL_BITS:
            raise ValueError("the serial number must be positive and at most 160 bits")
        try:
            request = parse_request(request_der)
            policy = request["req_policy"]
            if policy.native is not None and policy.dotted != self.policy_oid:
                raise TimeStampRejected(
                    "unaccepted_policy", f"policy {policy.dotted} is not offered by this TSA"
                )
        except TimeStampRejected as exc:
            return _rejection(exc.failure_info, exc.message)
        try:
            token = self._token(request, gen_time, serial_number)
        except Exception:
            # RFC 3161 has a status for this; the client gets it, the operator the trace.
            log.exception("time-stamp token serial %d could not be signed", serial_number)
            return _rejection("system_failure", "the time-stamp token could not be signed")
        return bytes(
            _TimeStampResp(
                {"status": tsp.PKIStatusInfo({"status": "granted"}), "time_stamp_token": token}
            ).dump()
        )

    def _token(
        self, request: tsp.TimeStampReq, gen_time: datetime, serial_number: int
    ) -> cms.ContentInfo:
        certificate = _asn1_certificate(self.certificate)
        imprint = request["message_imprint"]
        hash_oid = imprint["hash_algorithm"]["algorithm"].dotted
        hash_algorithm = HASHES_BY_OID[hash_oid]()
        tst_info: dict[str, Any] = {
            "version": "v1",
            "policy": self.policy_oid,
            # The request's value exactly (absent or NULL parameters alike, RFC 3161 §2.4.2),
            # re-encoded so the token is DER even if the request was BER.
            "message_imprint": tsp.MessageImprint.load(imprint.dump(force=True)),
            "serial_number": serial_number,
            "gen_time": gen_time,
            "accuracy": {"seconds": 1},
            "ordering": False,
            "tsa": asn1_x509.GeneralName(name="directory_name", value=certificate.subject),
        }
        if request["nonce"].native is not None:
            tst_info["nonce"] = request["nonce"].native
        tst_info_der = bytes(tsp.TSTInfo(tst_info).dump())

        signed_attrs = cms.CMSAttributes(
            [
                _attribute("content_type", "tst_info"),
                _attribute("message_digest", _hash(hash_algorithm, tst_info_der)),
                _attribute("signing_time", _cms_time(gen_time)),
                _attribute("signing_certificate_v2", _signing_certificate_v2(certificate)),
            ]
        )
        # RFC 5652 §5.4: the signature covers the attributes encoded as a SET OF (tag 0x31),
        # not as the [0] IMPLICIT field they travel in. asn1crypto sorts SET OF for DER.
        signature, signature_algorithm = self._sign(bytes(signed_attrs.dump()), hash_algorithm)

        # asn1crypto gives SHA-2 identifiers NULL parameters; RFC 5754 §2 has verifiers
        # accept both forms, and OpenSSL, pyHanko and BouncyCastle do.
        digest_algorithm = algos.DigestAlgorithm({"algorithm": hash_oid})
        signer_info = cms.SignerInfo(
            {
                "version": "v1",
                "sid": cms.SignerIdentifier(
                    name="issuer_and_serial_number",
                    value={
                        "issuer": certificate.issuer,
                        "serial_number": certificate.serial_number,
                    },
                ),
                "digest_algorithm": digest_algorithm,
                "signed_attrs": signed_attrs,
                "signature_algorithm": signature_algorithm,
                "signature": signature,
            }
        )
        signed_data: dict[str, Any] = {
            # v3 because the encapsulated content is not id-data (RFC 5652 §5.1).
            "version": "v3",
            "digest_algorithms": [digest_algorithm],
            "encap_content_info": {
                "content_type": "tst_info",
                "content": core.ParsableOctetString(tst_info_der),
            },
            "signer_infos": [signer_info],
        }
        if request["cert_req"].native:
            signed_data["certificates"] = [certificate] + [
                _asn1_certificate(cert) for cert in self.chain
            ]
        return cms.ContentInfo({"content_type": "signed_data", "content": signed_data})

    def _sign(
        self, data: bytes, hash_algorithm: hashes.HashAlgorithm
    ) -> tuple[bytes, algos.SignedDigestAlgorithm]:
        public = self.private_key.public_key()
        if isinstance(public, ec.EllipticCurvePublicKey):
            ec_key = cast(ec.EllipticCurvePrivateKey, self.private_key)
            signature = ec_key.sign(data, ec.ECDSA(hash_algorithm))
            # RFC 5758 §3.2: ecdsa-with-SHA* take no parameters at all.
            algorithm = algos.SignedDigestAlgorithm(
                {"algorithm": _SIGNATURE_ALGORITHMS["ec", hash_algorithm.name]}
            )
            public.verify(signature, data, ec.ECDSA(hash_algorithm))
        else:
            rsa_key = cast(rsa.RSAPrivateKey, self.private_key)
            signature = rsa_key.sign(data, padding.PKCS1v15(), hash_algorithm)
            # RFC 4055 §5: sha*WithRSAEncryption parameters are NULL.
            algorithm = algos.SignedDigestAlgorithm(
                {
                    "algorithm": _SIGNATURE_ALGORITHMS["rsa", hash_algorithm.name],
                    "parameters": core.Null(),
                }
            )
            public.verify(signature, data, padding.PKCS1v15(), hash_algorithm)
        # The verify calls above are cheap and catch a faulty vault or HSM signature (an RSA
        # fault can even leak the key) before it is handed out as a token.
        return signature, algorithm


def parse_request(request_der: bytes) -> tsp.TimeStampReq:
    """The parsed request, or TimeStampRejected saying why we will not stamp it.

    Checks everything but the policy, which depends on the TSA."""
    try:
        request = tsp.TimeStampReq.load(request_der, strict=True)
        # asn1crypto parses lazily; walking the whole value makes a malformed request fail
        # here rather than halfway through building a token.
        request.native  # noqa: B018
    except Exception as exc:
        # The parser's errors (ValueError, TypeError, ...) are not one family; any of them
        # means the same thing for bytes off the network.
        raise TimeStampRejected("bad_data_format", "the request is not a DER TimeStampReq") from exc
    if request["version"].native != "v1":
        raise TimeStampRejected("bad_data_format", "only version 1 requests are supported")
    if request["extensions"].native is not None:
        raise TimeStampRejected("unaccepted_extensions", "no request extensions are supported")
    imprint = request["message_imprint"]
    algorithm = imprint["hash_algorithm"]
    oid = algorithm["algorithm"].dotted
    if oid not in HASHES_BY_OID:
        name = algorithm["algorithm"].native
        raise TimeStampRejected(
            "bad_alg", f"hash algorithm {name} is not accepted; use SHA-256, SHA-384 or SHA-512"
        )
    if algorithm["parameters"].native is not None:
        raise TimeStampRejected("bad_data_format", "the hash algorithm takes no parameters")
    expected = HASHES_BY_OID[oid]().digest_size
    if len(imprint["hashed_message"].native) != expected:
        raise TimeStampRejected(
            "bad_data_format", f"a {algorithm['algorithm'].native} imprint is {expected} bytes"
        )
    return request


def build_request(
    digest: bytes, hash_oid_name: str = "sha256", nonce: int | None = None, cert_req: bool = True
) -> bytes:
    """A DER TimeStampReq for `digest`. `hash_oid_name` is an asn1crypto digest name
    ("sha256", "sha384", "sha1", ...) or a dotted OID. Nothing else is checked, so tests
    can build requests a TSA must refuse."""
    request: dict[str, Any] = {
        "version": "v1",
        "message_imprint": {
            "hash_algorithm": {"algorithm": hash_oid_name},
            "hashed_message": digest,
        },
        "cert_req": cert_req,
    }
    if nonce is not None:
        request["nonce"] = nonce
    return bytes(tsp.TimeStampReq(request).dump())


def token_of(response_der: bytes) -> cms.ContentInfo:
    """The token of a granted response; TimeStampRejected with the response's failure
    info and status string otherwise. Does not verify the token."""
    try:
        response = _TimeStampResp.load(response_der, strict=True)
        status = response["status"]
        status_name = status["status"].native
        token = response["time_stamp_token"]
    except Exception as exc:
        raise TimeStampRejected("bad_data_format", "not a DER TimeStampResp") from exc
    if status_name not in ("granted", "granted_with_mods") or isinstance(token, core.Void):
        failures = status["fail_info"].native or set()
        texts = status["status_string"].native or []
        raise TimeStampRejected(
            ",".join(sorted(failures)) or "unknown",
            "; ".join(texts) or f"the TSA answered {status_name}",
        )
    assert isinstance(token, cms.ContentInfo)
    return token


def token_time(response_der: bytes) -> datetime:
    """genTime of a granted response, timezone-aware UTC. Does not verify the token."""
    tst_info = token_of(response_der)["content"]["encap_content_info"]["content"].parsed
    gen_time = tst_info["gen_time"].native
    assert isinstance(gen_time, datetime)
    return gen_time.astimezone(UTC)


def _check_tsa_certificate(certificate: x509.Certificate) -> None:
    # RFC 3161 §2.3: exactly the timeStamping purpose, in a critical extension.
    try:
        eku = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    except x509.ExtensionNotFound:
        raise ValueError("the TSA certificate has no extended key usage") from None
    if not eku.critical or list(eku.value) != [ExtendedKeyUsageOID.TIME_STAMPING]:
        raise ValueError("the TSA certificate's EKU must be timeStamping only, and critical")


def _gen_time(now: datetime) -> datetime:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("the time must be timezone-aware")
    # Whole seconds: within the declared accuracy of one second, and no fraction to encode.
    return now.astimezone(UTC).replace(microsecond=0)


def _cms_time(moment: datetime) -> cms.Time:
    # RFC 5652 §11.3: UTCTime for 1950-2049, GeneralizedTime otherwise.
    if 1950 <= moment.year < 2050:
        return cms.Time(name="utc_time", value=moment)
    return cms.Time(name="generalized_time", value=moment)


def _attribute(kind: str, value: object) -> cms.CMSAttribute:
    return cms.CMSAttribute({"type": kind, "values": [value]})


def _signing_certificate_v2(certificate: asn1_x509.Certificate) -> tsp.SigningCertificateV2:
    # RFC 5035 ESSCertIDv2: hashAlgorithm defaults to SHA-256 and so is left out (DER).
    return tsp.SigningCertificateV2(
        {
            "certs": [
                {
                    "cert_hash": hashlib.sha256(certificate.dump()).digest(),
                    "issuer_serial": {
                        "issuer": [
                            asn1_x509.GeneralName(name="directory_name", value=certificate.issuer)
                        ],
                        "serial_number": certificate.serial_number,
                    },
                }
            ]
        }
    )


def _asn1_certificate(certificate: x509.Certificate) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(certificate.public_bytes(serialization.Encoding.DER))


def _hash(algorithm: hashes.HashAlgorithm, data: bytes) -> bytes:
    hasher = hashes.Hash(algorithm)
    hasher.update(data)
    return hasher.finalize()


def _rejection(failure_info: str, message: str) -> bytes:
    status = tsp.PKIStatusInfo(
        {"status": "rejection", "status_string": [message], "fail_info": {failure_info}}
    )
    return bytes(_TimeStampResp({"status": status}).dump())

"""Revocation status of other CAs' certificates, fetched over HTTP: OCSP from the AIA
extension first (small, fresh), the CRL distribution points when OCSP gives no answer.

Used by validation (`signing.pades.validate(..., online=...)`) only after the document's
own validation data (DSS) and the material handed in have left a certificate's status
open, and only for certificates on a path that already chains to a trusted root: the URLs
come from certificates a trusted CA signed, never from arbitrary uploaded bytes.

Every request has a connect and a read timeout and a size limit; answers are cached
(bounded, least recently used out) until their nextUpdate, at most `max_age`. The bytes
are handed to pyHanko, which checks signatures, responder authorization and freshness:
nothing here decides that a certificate is good.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from urllib.parse import urlsplit
from weakref import WeakValueDictionary

import requests
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import (
    AuthorityInformationAccessOID,
    ExtendedKeyUsageOID,
    SignatureAlgorithmOID,
)

__all__ = [
    "Fetched",
    "OnlineRevocation",
    "RevocationCache",
    "RevocationFetcher",
    "RevocationPolicy",
]


class RevocationPolicy(StrEnum):
    """What validation does when no validation data settles a certificate's status.

    - `require` (the default): fetch it; a signature whose status stays unknown (no
      answer, responder down or too slow) is INDETERMINATE, as ETSI EN 319 102-1 has it
      (TRY_LATER), never valid.
    - `soft-fail`: fetch it; if nothing answers, the signature can still be valid and the
      report says revocation was not checked (what browsers do; an attacker who blocks the
      responder wins, so only for checks where availability matters more).
    - `off`: no network at all; only the document's own data and what is handed in count,
      and missing data is reported but does not decide the verdict.
    """

    REQUIRE = "require"
    SOFT_FAIL = "soft-fail"
    OFF = "off"


@dataclass(frozen=True)
class Fetched:
    """DER CRLs and OCSP responses obtained, and one line per source that failed."""

    crls: list[bytes] = field(default_factory=list)
    ocsps: list[bytes] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def __add__(self, other: Fetched) -> Fetched:
        return Fetched(
            self.crls + [c for c in other.crls if c not in self.crls],
            self.ocsps + [o for o in other.ocsps if o not in self.ocsps],
            # The signer and its TSA often share URLs: each failure said once.
            list(dict.fromkeys(self.failures + other.failures)),
        )


class FetchFailed(Exception):
    """One URL gave no usable answer; the message says why, in one line."""


class _Unreachable(Exception):
    """The host did not connect or answer in time (as opposed to a bad answer)."""


class RevocationCache:
    """Bounded LRU of fetched answers, each kept until its own expiry. Thread-safe: one
    instance serves every request of a process."""

    def __init__(
        self,
        max_entries: int = 512,
        max_age: timedelta = timedelta(hours=24),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.max_entries = max_entries
        self.max_age = max_age
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple[str, ...], tuple[datetime, bytes]] = OrderedDict()

    def get(self, key: tuple[str, ...]) -> bytes | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            expires, data = entry
            if self._clock() >= expires:
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return data

    def put(self, key: tuple[str, ...], data: bytes, next_update: datetime | None) -> None:
        """Keep `data` until `next_update` (capped at `max_age` from now); an answer
        without nextUpdate, or one already stale, is not kept."""
        now = self._clock()
        if next_update is None or next_update <= now:
            return
        expires = min(next_update, now + self.max_age)
        with self._lock:
            self._entries[key] = (expires, data)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)


class RevocationFetcher:
    """CRLs and OCSP answers over HTTP(S), with timeouts, a size limit and a cache.

    `connect_timeout_s` bounds each TCP/TLS connect; `read_timeout_s` bounds both the wait
    for any byte and the whole download of one answer (a responder trickling bytes is cut
    off too)."""

    def __init__(
        self,
        *,
        connect_timeout_s: float = 3.0,
        read_timeout_s: float = 5.0,
        max_bytes: int = 16 * 1024 * 1024,
        cache: RevocationCache | None = None,
        user_agent: str = "EvalSign revocation check",
    ) -> None:
        self.connect_timeout_s = connect_timeout_s
        self.read_timeout_s = read_timeout_s
        self.max_bytes = max_bytes
        self.cache = cache if cache is not None else RevocationCache()
        self.user_agent = user_agent
        self.requests_made = 0  # network requests, not cache hits: for tests and logs
        self._locks: WeakValueDictionary[tuple[str, ...], threading.Lock] = WeakValueDictionary()
        self._locks_guard = threading.Lock()

    # --- one certificate -------------------------------------------------------------------

    def fetch_for(self, certificate: x509.Certificate, issuer: x509.Certificate) -> Fetched:
        """OCSP for `certificate` from each responder in its AIA until one answers good or
        revoked; the CRLs of its distribution points if none does. Never raises for
        network or format trouble: those become `failures`."""
        return self._fetch_for(certificate, issuer, set())

    def _fetch_for(
        self, certificate: x509.Certificate, issuer: x509.Certificate, silent: set[str]
    ) -> Fetched:
        # `silent`: hosts that did not connect or answer in this round; their other URLs
        # would only cost the same timeout again.
        failures: list[str] = []
        ocsp_urls = _ocsp_urls(certificate)
        for url in ocsp_urls:
            try:
                return Fetched(ocsps=[self._ocsp(url, certificate, issuer, silent)])
            except FetchFailed as exc:
                failures.append(f"OCSP {url}: {exc}")
        crls: list[bytes] = []
        crl_points = crl_urls(certificate)[:MAX_URLS]
        for url in crl_points:
            try:
                crls.append(self._crl(url, issuer, silent))
            except FetchFailed as exc:
                failures.append(f"CRL {url}: {exc}")
        if not ocsp_urls and not crl_points:
            failures.append(
                f"{_subject(certificate)} names no OCSP responder and no CRL distribution point"
            )
        return Fetched(crls=crls, failures=[] if crls else failures)

    def fetch_for_path(self, pairs: Sequence[tuple[x509.Certificate, x509.Certificate]]) -> Fetched:
        """`fetch_for` each (certificate, issuer) pair, all at once: a chain costs one
        timeout, not one per certificate."""
        if not pairs:
            return Fetched()
        silent: set[str] = set()
        with ThreadPoolExecutor(max_workers=min(4, len(pairs))) as pool:
            results = list(pool.map(lambda pair: self._fetch_for(pair[0], pair[1], silent), pairs))
        total = Fetched()
        for result in results:
            total = total + result
        return total

    # --- the two protocols -----------------------------------------------------------------

    def _ocsp(
        self,
        url: str,
        certificate: x509.Certificate,
        issuer: x509.Certificate,
        silent: set[str],
    ) -> bytes:
        # SHA-1 CertID and no nonce: RFC 5019's profile, which every responder answers and
        # whose answers may be cached (pyHanko checks the response's signature and times).
        request = (
            ocsp.OCSPRequestBuilder().add_certificate(certificate, issuer, hashes.SHA1()).build()
        )
        key = ("ocsp", url, _cert_id(request))
        with self._single_flight(key):
            cached = self.cache.get(key)
            if cached is not None:
                return cached
            return self._fetch_ocsp(key, url, request, certificate, issuer, silent)

    def _fetch_ocsp(
        self,
        key: tuple[str, ...],
        url: str,
        request: ocsp.OCSPRequest,
        certificate: x509.Certificate,
        issuer: x509.Certificate,
        silent: set[str],
    ) -> bytes:
        body = self._http(
            "POST",
            url,
            silent,
            data=request.public_bytes(serialization.Encoding.DER),
            headers={"Content-Type": "application/ocsp-request"},
        )
        try:
            response = ocsp.load_der_ocsp_response(body)
        except ValueError:
            raise FetchFailed("the answer is not an OCSP response") from None
        if response.response_status is not ocsp.OCSPResponseStatus.SUCCESSFUL:
            raise FetchFailed(f"the responder answered {response.response_status.name}")
        single = next(
            (
                r
                for r in response.responses
                if r.serial_number == certificate.serial_number
                and r.issuer_key_hash == request.issuer_key_hash
            ),
            None,
        )
        if single is None:
            raise FetchFailed("the answer is not about this certificate")
        if single.certificate_status is ocsp.OCSPCertStatus.UNKNOWN:
            raise FetchFailed("the responder does not know this certificate")
        verified = _ocsp_signed_for(response, issuer)
        if verified is False:
            # Not cached: a forged or broken answer must not stand in for the real one.
            raise FetchFailed("the answer is not signed by the issuer or a responder it named")
        if verified:
            self.cache.put(key, body, single.next_update_utc)
        return body

    def _crl(self, url: str, issuer: x509.Certificate, silent: set[str]) -> bytes:
        key = ("crl", url)
        with self._single_flight(key):
            cached = self.cache.get(key)
            if cached is not None:
                return cached
            return self._fetch_crl(key, url, issuer, silent)

    def _fetch_crl(
        self, key: tuple[str, ...], url: str, issuer: x509.Certificate, silent: set[str]
    ) -> bytes:
        body = self._http("GET", url, silent)
        try:
            crl = x509.load_der_x509_crl(body)
        except ValueError:
            try:
                crl = x509.load_pem_x509_crl(body)
                body = crl.public_bytes(serialization.Encoding.DER)
            except ValueError:
                raise FetchFailed("the answer is not a CRL") from None
        issuer_key = issuer.public_key()
        # An indirect CRL (another issuer's) goes to pyHanko uncached; it decides.
        if (
            isinstance(issuer_key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey)
            and crl.issuer == issuer.subject
            and crl.is_signature_valid(issuer_key)
        ):
            self.cache.put(key, body, crl.next_update_utc)
        return body

    @contextmanager
    def _single_flight(self, key: tuple[str, ...]) -> Iterator[None]:
        # The signer and its TSA often share a CRL: one download, the other waits for it.
        with self._locks_guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            yield

    def _http(self, method: str, url: str, silent: set[str], **kwargs: object) -> bytes:
        host = urlsplit(url).netloc
        if host in silent:
            raise FetchFailed("not asked: the host did not answer another request just now")
        try:
            return self._request(method, url, **kwargs)
        except _Unreachable as exc:
            silent.add(host)
            raise FetchFailed(str(exc)) from None

    def _request(self, method: str, url: str, **kwargs: object) -> bytes:
        deadline = time.monotonic() + self.read_timeout_s
        headers = {"User-Agent": self.user_agent, **kwargs.pop("headers", {})}  # type: ignore[dict-item]
        self.requests_made += 1
        try:
            with requests.request(
                method,
                url,
                timeout=(self.connect_timeout_s, self.read_timeout_s),
                stream=True,
                allow_redirects=True,
                headers=headers,
                **kwargs,  # type: ignore[arg-type]
            ) as response:
                if response.status_code != 200:
                    raise FetchFailed(f"HTTP {response.status_code}")
                body = bytearray()
                for chunk in response.iter_content(64 * 1024):
                    body += chunk
                    if len(body) > self.max_bytes:
                        raise FetchFailed(f"the answer is larger than {self.max_bytes} bytes")
                    if time.monotonic() > deadline:
                        raise _Unreachable(f"no complete answer within {self.read_timeout_s:g} s")
                return bytes(body)
        except requests.exceptions.ConnectTimeout:
            raise _Unreachable(f"no connection within {self.connect_timeout_s:g} s") from None
        except requests.exceptions.ReadTimeout:
            raise _Unreachable(f"no answer within {self.read_timeout_s:g} s") from None
        except requests.exceptions.ConnectionError as exc:
            raise _Unreachable(f"cannot connect ({_reason(exc)})") from None
        except requests.exceptions.RequestException as exc:
            raise FetchFailed(f"the request failed ({type(exc).__name__})") from None


@dataclass(frozen=True)
class OnlineRevocation:
    """What validation may do online: the policy, the fetcher, and the roots whose chains it
    may fetch for (None: any trusted root; the service passes the external CAs' roots, as
    its own certificates' status is in its database and in every document it signs)."""

    policy: RevocationPolicy = RevocationPolicy.REQUIRE
    fetcher: RevocationFetcher | None = None
    roots: Sequence[x509.Certificate] | None = None

    @property
    def fetches(self) -> bool:
        return self.policy is not RevocationPolicy.OFF and self.fetcher is not None

    def may_fetch_for(self, root: x509.Certificate) -> bool:
        if not self.fetches:
            return False
        return self.roots is None or any(
            root.fingerprint(hashes.SHA256()) == r.fingerprint(hashes.SHA256()) for r in self.roots
        )


def pairs_of(chain: Iterable[x509.Certificate]) -> list[tuple[x509.Certificate, x509.Certificate]]:
    """(certificate, issuer) for each certificate of a root-first chain but the root."""
    certificates = list(chain)
    return list(zip(certificates[1:], certificates[:-1], strict=True))


# At most this many URLs of one kind are asked per certificate in a round.
MAX_URLS = 4


def _ocsp_urls(certificate: x509.Certificate) -> list[str]:
    try:
        aia = certificate.extensions.get_extension_for_class(x509.AuthorityInformationAccess)
    except x509.ExtensionNotFound:
        return []
    return _http_urls(
        d.access_location
        for d in aia.value
        if d.access_method == AuthorityInformationAccessOID.OCSP
    )[:MAX_URLS]


def crl_urls(certificate: x509.Certificate) -> list[str]:
    """The HTTP(S) CRL distribution points a certificate names, each once, in order."""
    try:
        points = certificate.extensions.get_extension_for_class(x509.CRLDistributionPoints)
    except x509.ExtensionNotFound:
        return []
    return _http_urls(name for point in points.value for name in point.full_name or ())


def _http_urls(names: Iterable[x509.GeneralName]) -> list[str]:
    # LDAP and file URLs are skipped: a validator has no business opening those.
    urls = [
        n.value
        for n in names
        if isinstance(n, x509.UniformResourceIdentifier)
        and n.value.lower().startswith(("http://", "https://"))
    ]
    return list(dict.fromkeys(urls))


def _ocsp_signed_for(response: ocsp.OCSPResponse, issuer: x509.Certificate) -> bool | None:
    """Whether the issuer, or a responder certificate in the answer that the issuer signed
    for OCSP signing (RFC 6960 4.2.2.2), signed the answer; None for a signature algorithm
    not checked here (pyHanko still checks it, the answer is just not cached)."""
    signers: list[x509.Certificate] = [issuer]
    for candidate in response.certificates:
        try:
            eku = candidate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
            candidate.verify_directly_issued_by(issuer)
        except (x509.ExtensionNotFound, ValueError, TypeError, InvalidSignature):
            continue
        if ExtendedKeyUsageOID.OCSP_SIGNING in eku:
            signers.append(candidate)
    algorithm = response.signature_hash_algorithm
    if algorithm is None:
        return None
    for signer in signers:
        key = signer.public_key()
        try:
            if isinstance(key, ec.EllipticCurvePublicKey):
                key.verify(response.signature, response.tbs_response_bytes, ec.ECDSA(algorithm))
            elif isinstance(key, rsa.RSAPublicKey):
                if response.signature_algorithm_oid == SignatureAlgorithmOID.RSASSA_PSS:
                    return None
                key.verify(
                    response.signature, response.tbs_response_bytes, padding.PKCS1v15(), algorithm
                )
            else:
                return None
        except InvalidSignature:
            continue
        return True
    return False


def _cert_id(request: ocsp.OCSPRequest) -> str:
    hashes_ = f"{request.issuer_name_hash.hex()}:{request.issuer_key_hash.hex()}"
    return f"{hashes_}:{request.serial_number:x}"


def _subject(certificate: x509.Certificate) -> str:
    return certificate.subject.rfc4514_string()


def _reason(exc: requests.exceptions.ConnectionError) -> str:
    text = str(exc)
    for known in ("Connection refused", "Name or service not known", "No route to host"):
        if known in text:
            return known.lower()
    if "Read timed out" in text:
        return "read timed out"
    return "connection error"

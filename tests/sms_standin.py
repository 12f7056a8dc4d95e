"""Stand-ins for Alibaba Cloud's and Tencent Cloud's SMS APIs: real HTTP servers on 127.0.0.1,
so the tests drive the real adapters (api/sms_providers.py) over a socket.

Each checks a request's signature with the secret it was given, recomputed here from the
raw request (written apart from the adapters, so a bug they share is less likely), and
refuses a wrong one with its provider's own error; it keeps the messages it sent. It can
be told to refuse with a provider error code, answer HTTP 500, or hang past the client's
timeout.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import parse_qsl, quote, urlsplit

Dialect = Literal["aliyun", "tencent"]
# refuse: an error code for the message (Alibaba's Code, Tencent's SendStatus); error:
# Tencent's Response.Error for the whole request; fail: HTTP 500; hang: no answer.
Mode = Literal["send", "refuse", "error", "fail", "hang"]


@dataclass
class StandInSms:
    dialect: Dialect
    key_id: str
    secret: str
    url: str = ""
    mode: Mode = "send"
    code: str = ""  # the error code answered in "refuse" and "error" modes
    sent: list[dict[str, Any]] = field(default_factory=list)  # to, sign name, template, params
    requests: int = 0
    bad_signatures: int = 0
    timestamps: list[str] = field(default_factory=list)
    nonces: set[str] = field(default_factory=set)
    release: threading.Event = field(default_factory=threading.Event)


class _Handler(BaseHTTPRequestHandler):
    provider: StandInSms

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet test output

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json;charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _hang(self) -> None:
        self.provider.release.wait(timeout=30)  # until the test ends


class _Aliyun(_Handler):
    """dysmsapi: a GET whose query is signed with HMAC-SHA1 (signature V1)."""

    def _error(self, status: int, code: str, message: str) -> None:
        body = {"RequestId": "A1B2C3", "HostId": "dysmsapi.aliyuncs.com"}
        self._answer(status, {**body, "Code": code, "Message": message})

    def do_GET(self) -> None:
        provider = self.provider
        provider.requests += 1
        params = dict(parse_qsl(urlsplit(self.path).query, keep_blank_values=True))
        signature = params.pop("Signature", "")
        if params.get("AccessKeyId") != provider.key_id:
            self._error(404, "InvalidAccessKeyId.NotFound", "Specified access key is not found.")
            return

        def encode(text: str) -> str:
            return quote(text.encode("utf-8"), safe="")  # leaves only A-Za-z0-9-_.~

        canonical = "&".join(f"{encode(k)}={encode(params[k])}" for k in sorted(params))
        string_to_sign = "GET&%2F&" + encode(canonical)
        mac = hmac.new(f"{provider.secret}&".encode(), string_to_sign.encode(), hashlib.sha1)
        if not hmac.compare_digest(base64.b64encode(mac.digest()).decode(), signature):
            provider.bad_signatures += 1
            # The real service quotes its string to sign, the message's number and code too.
            self._error(
                400,
                "SignatureDoesNotMatch",
                "Specified signature is not matched with our calculation. "
                f"server string to sign is:{string_to_sign}",
            )
            return
        expected = {
            "Action": "SendSms",
            "Version": "2017-05-25",
            "Format": "JSON",
            "SignatureMethod": "HMAC-SHA1",
            "SignatureVersion": "1.0",
        }
        if any(params.get(name) != value for name, value in expected.items()):
            self._error(400, "MissingParameter", f"expected {expected}")
            return
        if params.get("SignatureNonce", "") in provider.nonces:
            self._error(400, "SignatureNonceUsed", "Specified signature nonce was used already.")
            return
        provider.nonces.add(params["SignatureNonce"])
        provider.timestamps.append(params["Timestamp"])
        if provider.mode == "hang":
            self._hang()
            return
        if provider.mode == "fail":
            self._error(500, "InternalError", "The request processing has failed.")
            return
        if provider.mode == "refuse":
            self._answer(200, {"RequestId": "A1B2C3", "Code": provider.code, "Message": "触发流控"})
            return
        provider.sent.append(
            {
                "to": params["PhoneNumbers"],
                "sign_name": params["SignName"],
                "template": params["TemplateCode"],
                "params": json.loads(params["TemplateParam"]),
            }
        )
        biz_id = f"9006197469364984{len(provider.sent):02d}^0"
        self._answer(200, {"RequestId": "A1B2C3", "Code": "OK", "Message": "OK", "BizId": biz_id})


class _Tencent(_Handler):
    """API 3.0: a JSON POST signed with TC3-HMAC-SHA256 in the Authorization header."""

    def _error(self, code: str, message: str) -> None:
        # API 3.0 answers its errors with HTTP 200 and Response.Error.
        self._answer(
            200, {"Response": {"Error": {"Code": code, "Message": message}, "RequestId": "r-1"}}
        )

    def _signed(self, body: bytes) -> bool:
        provider = self.provider
        authorization = self.headers.get("Authorization", "")
        algorithm, _, rest = authorization.partition(" ")
        fields = dict(part.strip().split("=", 1) for part in rest.split(",") if "=" in part)
        credential = fields.get("Credential", "").split("/")
        timestamp = self.headers.get("X-TC-Timestamp", "")
        if algorithm != "TC3-HMAC-SHA256" or len(credential) != 4 or not timestamp.isdigit():
            self._error("AuthFailure.InvalidAuthorization", "Authorization is malformed.")
            return False
        secret_id, date, service, terminator = credential
        if secret_id != provider.key_id:
            self._error("AuthFailure.SecretIdNotFound", "The SecretId is not found.")
            return False
        utc_date = datetime.fromtimestamp(int(timestamp), UTC).date().isoformat()
        if (date, service, terminator) != (utc_date, "sms", "tc3_request"):
            self._error("AuthFailure.SignatureFailure", "The credential scope is wrong.")
            return False
        signed = fields.get("SignedHeaders", "").split(";")
        if not {"content-type", "host"} <= set(signed):
            self._error("AuthFailure.SignatureFailure", "content-type and host must be signed.")
            return False
        headers = "".join(f"{h}:{(self.headers.get(h) or '').strip().lower()}\n" for h in signed)
        canonical = "POST\n/\n\n" + headers + "\n" + ";".join(signed) + "\n"
        canonical += hashlib.sha256(body).hexdigest()
        string_to_sign = "\n".join(
            [
                "TC3-HMAC-SHA256",
                timestamp,
                f"{date}/{service}/tc3_request",
                hashlib.sha256(canonical.encode()).hexdigest(),
            ]
        )
        key = ("TC3" + provider.secret).encode()
        for part in (date, service, "tc3_request"):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        expected = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, fields.get("Signature", "")):
            provider.bad_signatures += 1
            self._error(
                "AuthFailure.SignatureFailure",
                "The provided credentials could not be validated. "
                "Please check your signature is correct.",
            )
            return False
        provider.timestamps.append(timestamp)
        return True

    def do_POST(self) -> None:
        provider = self.provider
        provider.requests += 1
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if not self._signed(body):
            return
        if (self.headers.get("X-TC-Action"), self.headers.get("X-TC-Version")) != (
            "SendSms",
            "2021-01-11",
        ) or not self.headers.get("X-TC-Region"):
            self._error("InvalidAction", "SendSms 2021-01-11 with a region is what is served.")
            return
        request = json.loads(body)
        [number] = request["PhoneNumberSet"]
        if provider.mode == "hang":
            self._hang()
            return
        if provider.mode == "fail":
            self._answer(500, {"message": "internal error"})
            return
        if provider.mode == "error":
            self._error(provider.code, "模板未审批或内容不匹配")
            return
        status = {"PhoneNumber": number, "Fee": 0, "SessionContext": "", "IsoCode": "CN"}
        if provider.mode == "refuse" or not number.startswith("+86"):
            code = provider.code or "InvalidParameterValue.IncorrectPhoneNumber"
            status.update(SerialNo="", Code=code, Message="单个手机号日下发短信条数超过设定的上限")
        else:
            provider.sent.append(
                {
                    "to": number,
                    "app_id": request["SmsSdkAppId"],
                    "sign_name": request["SignName"],
                    "template": request["TemplateId"],
                    "params": request["TemplateParamSet"],
                }
            )
            serial = f"5000:10457106691570536578494996{len(provider.sent):02d}"
            status.update(SerialNo=serial, Fee=1, Code="Ok", Message="send success")
        self._answer(200, {"Response": {"SendStatusSet": [status], "RequestId": "r-1"}})


@contextmanager
def running_sms(dialect: Dialect, *, key_id: str, secret: str) -> Iterator[StandInSms]:
    """Serve on an ephemeral port for the block; hanging requests are released at its end."""
    provider = StandInSms(dialect, key_id, secret)
    base = _Aliyun if dialect == "aliyun" else _Tencent
    handler = type(f"{base.__name__}StandIn", (base,), {"provider": provider})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    provider.url = f"http://127.0.0.1:{server.server_address[1]}/"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield provider
    finally:
        provider.release.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

"""Real SMS through Alibaba Cloud and Tencent Cloud (api/sms_providers.py), driven over HTTP
against the stand-ins of tests/sms_standin.py, which check every signature as the real
services do: a message goes out as the purpose's template with its parameters, and every
way it cannot (a wrong key, a provider's error code, HTTP 500, no answer, no template) is
MessagingFailed naming the cause and no secret. The signing itself is also checked against
the worked examples the providers publish, which no stand-in of ours could share a bug with.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr, ValidationError
from sqlalchemy.orm import Session

from api.messaging import LocalOutbox, open_messenger
from api.services import Services
from api.sms_providers import (
    AliyunSms,
    TencentSms,
    aliyun_signature,
    aliyun_string_to_sign,
    tencent_authorization,
    tencent_canonical_request,
    tencent_signature,
    tencent_string_to_sign,
)
from evaluation.kernel.messaging import Message, MessagingFailed, Messenger
from evaluation.registry.staff import Role
from models.clock import FrozenClock
from models.settings import Settings
from tests.api.helpers import SignerPhone, assert_problem
from tests.api.test_documents_api import slots_for, upload
from tests.factories import CenterWithStaff, establish_pki, expert_payload, face_session
from tests.sms_standin import StandInSms, running_sms

KEY_ID = "LTAI5tStandInKeyId"
SECRET = "standin-secret-3f9a1c"
NUMBER = "13800138000"
CODE = "482913"
SIGN_NAME = "某市公共资源交易中心"
TEMPLATES = {
    "aliyun": {"sign-in-code": "SMS_123", "signing-code": "SMS_456", "call-up": "SMS_789"},
    "tencent": {"sign-in-code": "1100001", "signing-code": "1100002", "call-up": "1100003"},
}
TEMPLATE_PARAMS = {
    "sign-in-code": ["code"],
    "signing-code": ["code", "digest"],
    "call-up": ["project", "time", "place"],
}
PROVIDERS = ["aliyun", "tencent"]


def sms_settings(
    provider: StandInSms, tmp_path: Path, *, secret: str = SECRET, **more: Any
) -> Settings:
    fields: dict[str, Any] = {"data_dir": tmp_path, "sms_timeout_s": 2.0, **more}
    return Settings(
        messaging=provider.dialect,
        sms_endpoint=provider.url,
        sms_access_key_id=KEY_ID,
        sms_access_key_secret=SecretStr(secret),
        sms_sign_name=SIGN_NAME,
        sms_templates=TEMPLATES[provider.dialect],
        sms_template_params=TEMPLATE_PARAMS,
        sms_app_id="1400006666",
        **fields,
    )


def messenger_for(provider: StandInSms, tmp_path: Path, **more: Any) -> Messenger:
    clock = FrozenClock(datetime.now(UTC).replace(microsecond=0))
    messenger = open_messenger(sms_settings(provider, tmp_path, **more), clock)
    assert messenger is not None
    return messenger


def code_message(purpose: str = "sign-in-code", **params: str) -> Message:
    return Message(
        to=NUMBER,
        text=f"【EvalSign】评标登录验证码 {CODE}",
        purpose=purpose,
        params={"code": CODE, **params},
    )


@pytest.fixture(params=PROVIDERS)
def provider(request: pytest.FixtureRequest) -> Iterator[StandInSms]:
    with running_sms(request.param, key_id=KEY_ID, secret=SECRET) as provider:
        yield provider


@pytest.fixture
def aliyun() -> Iterator[StandInSms]:
    with running_sms("aliyun", key_id=KEY_ID, secret=SECRET) as provider:
        yield provider


@pytest.fixture
def tencent() -> Iterator[StandInSms]:
    with running_sms("tencent", key_id=KEY_ID, secret=SECRET) as provider:
        yield provider


def assert_keeps_secrets(failure: pytest.ExceptionInfo[MessagingFailed]) -> None:
    text = str(failure.value)
    assert SECRET not in text and CODE not in text and NUMBER not in text, text


# --- Delivered ----------------------------------------------------------------------------


def test_alibaba_sends_the_purposes_template_filled_with_its_params(
    aliyun: StandInSms, tmp_path: Path
) -> None:
    clock = FrozenClock(datetime(2026, 11, 23, 1, 30, 5, tzinfo=UTC))
    messenger = open_messenger(sms_settings(aliyun, tmp_path), clock)
    assert isinstance(messenger, AliyunSms) and messenger.name == "aliyun"

    biz_id = messenger.send(code_message("signing-code", digest="AB12-CD34", extra="unused"))

    assert biz_id == "900619746936498401^0"
    # Only the parameters the template names are sent.
    assert aliyun.sent == [
        {
            "to": NUMBER,
            "sign_name": SIGN_NAME,
            "template": "SMS_456",
            "params": {"code": CODE, "digest": "AB12-CD34"},
        }
    ]
    assert aliyun.timestamps == ["2026-11-23T01:30:05Z"]  # the clock's, in UTC
    messenger.send(code_message())
    assert aliyun.sent[1]["template"] == "SMS_123" and len(aliyun.nonces) == 2


def test_tencent_sends_to_the_e164_number_with_the_params_in_the_templates_order(
    tencent: StandInSms, tmp_path: Path
) -> None:
    # 00:44 in Beijing is still the day before in UTC: the credential scope must say so.
    clock = FrozenClock(datetime(2026, 11, 22, 16, 44, 25, tzinfo=UTC))
    messenger = open_messenger(sms_settings(tencent, tmp_path), clock)
    assert isinstance(messenger, TencentSms) and messenger.name == "tencent"

    call_up = {"place": "第3评标室", "project": "市一中教学楼", "time": "11月24日 09:00"}
    serial = messenger.send(Message(to=NUMBER, text="…", purpose="call-up", params=call_up))

    assert serial == "5000:1045710669157053657849499601"
    assert tencent.sent == [
        {
            "to": "+86" + NUMBER,
            "app_id": "1400006666",
            "sign_name": SIGN_NAME,
            "template": "1100003",
            "params": ["市一中教学楼", "11月24日 09:00", "第3评标室"],
        }
    ]
    assert tencent.timestamps == [str(int(clock.now().timestamp()))]


def test_the_outbox_keeps_the_text_and_the_templates_params(tmp_path: Path) -> None:
    clock = FrozenClock(datetime.now(UTC))
    outbox = open_messenger(Settings(data_dir=tmp_path), clock)
    assert isinstance(outbox, LocalOutbox)
    outbox.send(code_message())
    [kept] = outbox.messages(to=NUMBER)
    assert kept["text"].endswith(CODE) and kept["params"] == {"code": CODE}
    assert open_messenger(Settings(data_dir=tmp_path, messaging="none"), clock) is None


# --- Not delivered ------------------------------------------------------------------------


def test_a_wrong_secret_is_refused_by_the_signature_check(
    provider: StandInSms, tmp_path: Path
) -> None:
    messenger = messenger_for(provider, tmp_path, secret="not-the-" + SECRET)
    with pytest.raises(MessagingFailed) as failure:
        messenger.send(code_message())
    code = (
        "SignatureDoesNotMatch" if provider.dialect == "aliyun" else "AuthFailure.SignatureFailure"
    )
    assert code in str(failure.value)
    assert "check EVALSIGN_SMS_ACCESS_KEY_ID and EVALSIGN_SMS_ACCESS_KEY_SECRET" in str(
        failure.value
    )
    # Alibaba's refusal quotes the request it signed, number and code with it: not passed on.
    assert_keeps_secrets(failure)
    assert provider.bad_signatures == 1 and provider.sent == []


def test_an_unknown_key_id_is_refused(provider: StandInSms, tmp_path: Path) -> None:
    provider.key_id = "someone-elses"
    with pytest.raises(
        MessagingFailed, match=r"InvalidAccessKeyId\.NotFound|AuthFailure\.SecretIdNotFound"
    ):
        messenger_for(provider, tmp_path).send(code_message())


@pytest.mark.parametrize(
    ("dialect", "mode", "code"),
    [
        ("aliyun", "refuse", "isv.BUSINESS_LIMIT_CONTROL"),
        ("tencent", "refuse", "LimitExceeded.PhoneNumberDailyLimit"),
        ("tencent", "error", "FailedOperation.TemplateIncorrectOrUnapproved"),
    ],
)
def test_a_providers_error_code_is_a_failure_naming_it(
    dialect: str, mode: Any, code: str, tmp_path: Path
) -> None:
    with running_sms(dialect, key_id=KEY_ID, secret=SECRET) as provider:  # type: ignore[arg-type]
        provider.mode, provider.code = mode, code
        with pytest.raises(MessagingFailed) as failure:
            messenger_for(provider, tmp_path).send(code_message())
    title = "Alibaba Cloud SMS" if dialect == "aliyun" else "Tencent Cloud SMS"
    assert str(failure.value).startswith(f"{title}: ")
    assert code in str(failure.value) and "EVALSIGN_SMS_ACCESS_KEY" not in str(failure.value)
    assert_keeps_secrets(failure)
    assert provider.sent == []


def test_http_500_is_a_failure(provider: StandInSms, tmp_path: Path) -> None:
    provider.mode = "fail"
    with pytest.raises(MessagingFailed, match="answered HTTP 500") as failure:
        messenger_for(provider, tmp_path).send(code_message())
    assert_keeps_secrets(failure)


def test_no_answer_within_the_timeout_is_a_failure(provider: StandInSms, tmp_path: Path) -> None:
    provider.mode = "hang"
    messenger = messenger_for(provider, tmp_path, sms_timeout_s=0.3)
    started = time.monotonic()
    with pytest.raises(MessagingFailed, match=r"no answer .* within 0.3 s; .* may still arrive"):
        messenger.send(code_message())
    assert time.monotonic() - started < 5
    assert provider.requests == 1  # not retried here


def test_an_endpoint_that_cannot_be_reached_is_a_failure(tmp_path: Path) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    with running_sms("tencent", key_id=KEY_ID, secret=SECRET) as provider:
        provider.url = f"http://127.0.0.1:{port}/"
        with pytest.raises(MessagingFailed, match="cannot be reached") as failure:
            messenger_for(provider, tmp_path).send(code_message())
    assert_keeps_secrets(failure)


def test_a_purpose_without_a_template_is_a_configuration_error(
    provider: StandInSms, tmp_path: Path
) -> None:
    messenger = messenger_for(provider, tmp_path)
    with pytest.raises(MessagingFailed, match=r"no template for 'expert-recall'.*SMS_TEMPLATES"):
        messenger.send(code_message("expert-recall"))
    # A template whose parameter the message lacks is caught before sending, too.
    with pytest.raises(MessagingFailed, match=r"takes \['time'\].*SMS_TEMPLATE_PARAMS"):
        messenger.send(
            Message(to=NUMBER, text="…", purpose="call-up", params={"project": "p", "place": "q"})
        )
    assert provider.requests == 0


# --- Settings -----------------------------------------------------------------------------


def test_a_cloud_provider_without_its_account_fails_at_start() -> None:
    with pytest.raises(ValidationError) as failure:
        Settings(messaging="aliyun")
    assert (
        "EVALSIGN_MESSAGING=aliyun needs EVALSIGN_SMS_ACCESS_KEY_ID, "
        "EVALSIGN_SMS_ACCESS_KEY_SECRET, EVALSIGN_SMS_SIGN_NAME, EVALSIGN_SMS_TEMPLATES"
    ) in str(failure.value)
    account: dict[str, Any] = {
        "sms_access_key_id": KEY_ID,
        "sms_access_key_secret": SecretStr(SECRET),
        "sms_sign_name": SIGN_NAME,
        "sms_templates": {"sign-in-code": "1100001"},
    }
    with pytest.raises(ValidationError, match="tencent needs EVALSIGN_SMS_APP_ID"):
        Settings(messaging="tencent", **account)
    with pytest.raises(ValidationError, match=r"in order for \['sign-in-code'\]"):
        Settings(messaging="tencent", sms_app_id="1400006666", **account)
    with pytest.raises(ValidationError, match=r"purposes without a template: \['call-up'\]"):
        Settings(messaging="aliyun", sms_template_params={"call-up": ["project"]}, **account)
    with pytest.raises(ValidationError, match="EVALSIGN_SMS_ENDPOINT must be https"):
        Settings(messaging="aliyun", sms_endpoint="http://sms.example.cn/", **account)
    aliyun = Settings(messaging="aliyun", **account)
    assert SECRET not in repr(aliyun) and SECRET not in str(aliyun.model_dump())


def test_a_center_configures_its_provider_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    environment = {
        "EVALSIGN_MESSAGING": "tencent",
        "EVALSIGN_SMS_ACCESS_KEY_ID": "AKIDstandin",
        "EVALSIGN_SMS_ACCESS_KEY_SECRET": SECRET,
        "EVALSIGN_SMS_SIGN_NAME": SIGN_NAME,
        "EVALSIGN_SMS_APP_ID": "1400006666",
        "EVALSIGN_SMS_TEMPLATES": json.dumps(TEMPLATES["tencent"]),
        "EVALSIGN_SMS_TEMPLATE_PARAMS": json.dumps(TEMPLATE_PARAMS),
    }
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert settings.sms_templates["call-up"] == "1100003"
    assert settings.sms_template_params["signing-code"] == ["code", "digest"]
    messenger = open_messenger(settings, FrozenClock(datetime.now(UTC)))
    assert isinstance(messenger, TencentSms)
    assert messenger.account.endpoint == "https://sms.tencentcloudapi.com/"
    assert messenger.account.region == "ap-guangzhou"
    assert SECRET not in repr(messenger.account)


# --- The providers' published worked examples ---------------------------------------------


def test_alibaba_signing_matches_the_published_sendsms_example() -> None:
    # Alibaba Cloud's SMS signing documentation (testId / testSecret).
    params = {
        "AccessKeyId": "testId",
        "Action": "SendSms",
        "Format": "XML",
        "OutId": "123",
        "PhoneNumbers": "15300000001",
        "RegionId": "cn-hangzhou",
        "SignName": "阿里云短信测试专用",
        "SignatureMethod": "HMAC-SHA1",
        "SignatureNonce": "45e25e9b-0a6f-4070-8c85-2956eda1b466",
        "SignatureVersion": "1.0",
        "TemplateCode": "SMS_71390007",
        "TemplateParam": '{"customer":"test"}',
        "Timestamp": "2017-07-12T02:42:19Z",
        "Version": "2017-05-25",
    }
    string_to_sign = aliyun_string_to_sign("GET", params)
    assert string_to_sign == (
        "GET&%2F&AccessKeyId%3DtestId%26Action%3DSendSms%26Format%3DXML%26OutId%3D123"
        "%26PhoneNumbers%3D15300000001%26RegionId%3Dcn-hangzhou%26SignName%3D%25E9%2598%25BF"
        "%25E9%2587%258C%25E4%25BA%2591%25E7%259F%25AD%25E4%25BF%25A1%25E6%25B5%258B%25E8"
        "%25AF%2595%25E4%25B8%2593%25E7%2594%25A8%26SignatureMethod%3DHMAC-SHA1"
        "%26SignatureNonce%3D45e25e9b-0a6f-4070-8c85-2956eda1b466%26SignatureVersion%3D1.0"
        "%26TemplateCode%3DSMS_71390007%26TemplateParam%3D%257B%2522customer%2522%253A"
        "%2522test%2522%257D%26Timestamp%3D2017-07-12T02%253A42%253A19Z"
        "%26Version%3D2017-05-25"
    )
    assert aliyun_signature(string_to_sign, "testSecret") == "zJDF+Lrzhj/ThnlvIToysFRq6t4="


def test_alibaba_encoding_matches_the_published_example_with_asterisks() -> None:
    # The SendMessageToGlobe example: * is %2A and ':' is encoded twice in the string to sign.
    params = {
        "AccessKeyId": "testid",
        "Action": "SendMessageToGlobe",
        "Format": "XML",
        "From": "Alicloud",
        "Message": "Hello",
        "RegionId": "ap-southeast-1",
        "SignatureMethod": "HMAC-SHA1",
        "SignatureNonce": "57acef20-c1d8-11eb-8c08-db81fda24dcc",
        "SignatureVersion": "1.0",
        "Timestamp": "2021-05-31T06:20:49Z",
        "To": "861245567****",
        "Version": "2018-05-01",
    }
    assert aliyun_string_to_sign("GET", params) == (
        "GET&%2F&AccessKeyId%3Dtestid%26Action%3DSendMessageToGlobe%26Format%3DXML"
        "%26From%3DAlicloud%26Message%3DHello%26RegionId%3Dap-southeast-1"
        "%26SignatureMethod%3DHMAC-SHA1%26SignatureNonce%3D57acef20-c1d8-11eb-8c08-db81fda24dcc"
        "%26SignatureVersion%3D1.0%26Timestamp%3D2021-05-31T06%253A20%253A49Z"
        "%26To%3D861245567%252A%252A%252A%252A%26Version%3D2018-05-01"
    )


def test_tencent_signing_matches_the_published_tc3_example() -> None:
    # Tencent Cloud's "Signature v3" page: CVM DescribeInstances at 1551113065.
    payload = (
        b'{"Limit": 1, "Filters": [{"Values": ["\\u672a\\u547d\\u540d"], "Name": "instance-name"}]}'
    )
    canonical = tencent_canonical_request(host="cvm.tencentcloudapi.com", payload=payload)
    assert canonical == (
        "POST\n/\n\ncontent-type:application/json; charset=utf-8\nhost:cvm.tencentcloudapi.com\n"
        "\ncontent-type;host\n35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064"
    )
    string_to_sign = tencent_string_to_sign(
        timestamp=1551113065, service="cvm", canonical_request=canonical
    )
    assert string_to_sign == (
        "TC3-HMAC-SHA256\n1551113065\n2019-02-25/cvm/tc3_request\n"
        "5ffe6a04c0664d6b969fab9a13bdab201d63ee709638e2749d62a09ca18d7031"
    )
    assert tencent_authorization(
        secret_id="AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE",
        secret_key="Gu5t9xGARNpq86cd98joQYCN3EXAMPLE",
        service="cvm",
        host="cvm.tencentcloudapi.com",
        timestamp=1551113065,
        payload=payload,
    ) == (
        "TC3-HMAC-SHA256 Credential=AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE/2019-02-25/cvm/"
        "tc3_request, SignedHeaders=content-type;host, "
        "Signature=72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168"
    )
    # The page's later edition masks its key and shows this signature for it.
    masked = tencent_signature(
        secret_key="Gu5t9xGARNpq86cd98joQYCN3*******",
        timestamp=1551113065,
        service="cvm",
        string_to_sign=string_to_sign,
    )
    assert masked == "2230eefd229f582d8b1b891af7107b91597240707d778ab3738f756258d7652c"


# --- Through the service ------------------------------------------------------------------


@pytest.fixture
def settings(tmp_path: Path, database_url: str, tencent: StandInSms) -> Settings:
    return sms_settings(
        tencent,
        tmp_path,
        database_url=database_url,
        audit_checkpoint_every_s=0,
        face_retention_every_s=0,
        jobs_in_serve=False,
        sms_fallback=True,
    )


@pytest.mark.slow
def test_a_signing_code_reaches_tencent_as_its_template_and_a_refusal_is_a_503(
    client: TestClient,
    center: CenterWithStaff,
    db: Session,
    clock: FrozenClock,
    services: Services,
    tencent: StandInSms,
) -> None:
    establish_pki(db, clock, services, center)
    operator = center.headers(Role.OPERATOR)
    experts = []
    for index in range(3):  # the report's three signers
        payload = expert_payload(phone=f"1390013{index:04d}")
        expert = client.post("/api/v1/experts", json=payload, headers=operator).json()
        assert client.post(f"/api/v1/experts/{expert['id']}/credential", headers=operator)
        experts.append(expert["id"])
    document = upload(client, operator, slots_for(experts)).json()
    client.post(f"/api/v1/documents/{document['id']}/start", headers=operator)
    token, _ = face_session(db, clock, center.id, experts[0], device_id="phone-a")
    phone = SignerPhone({"Authorization": f"Bearer {token}", "X-Device-Id": "phone-a"})
    url = f"/api/v1/documents/{document['id']}"

    sent = client.post(f"{url}/approval/sms", json={}, headers=phone)
    assert sent.status_code == 201, sent.text
    [message] = tencent.sent
    assert message["to"] == "+8613900130000" and message["template"] == "1100002"
    code, digest = message["params"]
    assert len(code) == 6 and code.isdigit() and len(digest) == 9 and digest[4] == "-"
    signed = client.post(
        f"{url}/signatures",
        json={"sms": {"nonce": sent.json()["nonce"], "code": code}},
        headers=phone,
    )
    assert signed.status_code == 201, signed.text

    tencent.mode, tencent.code = "refuse", "LimitExceeded.PhoneNumberDailyLimit"
    other, _ = face_session(db, clock, center.id, experts[1], device_id="phone-b")
    second = SignerPhone({"Authorization": f"Bearer {other}", "X-Device-Id": "phone-b"})
    refused = client.post(f"{url}/approval/sms", json={}, headers=second)
    body = assert_problem(refused, 503, "sms-code-unavailable")
    assert "Tencent Cloud SMS" in body["detail"]
    assert "LimitExceeded.PhoneNumberDailyLimit" in body["detail"]

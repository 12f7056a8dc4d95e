"""`evalsign demo`: the whole job on a fresh embedded instance, through the HTTP API as a
trading center and its experts' phones would drive it.

It starts the service on a free local port, then: enrolls experts from the photos the face
model packages ship (one per person), creates a project with a conflicted expert, runs
the draw (the conflicted expert excluded with its reason), shows the room QR, signs every
member in from their phone with a liveness check on generated frames, scores, aggregates,
generates the report, has every member sign it after a fresh face check, validates the
signed PDF and replays the draw proof. A second project shows the supplementary draw: a
member drops out with no backup left, and a draw chained to the first fills the seat.

The phone's frames are rendered from the member's still photo by face/synthetic.py (head
turns and nods on a depth model, blinks, mouth opening), the same generator the tests use:
this machine has no camera and no face videos.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
import uvicorn
from cryptography import x509

from api.app import create_app
from api.instance import initialize, prepare
from api.services import build_services, load_stamp_font
from evaluation.committee import draw_proof
from evaluation.kernel.identifiers import credit_code_check_char, id_number_check_digit
from evaluation.supervision.evidence import verify_package
from face import synthetic
from face.samples import BGR, encode, sample_portraits
from models.clock import SystemClock
from models.settings import Settings
from signing.soft_authenticator import SoftwareAuthenticator
from signing.task_qr import qr_text


def _credit_code(seed: str) -> str:
    first17 = seed[:17]
    return first17 + credit_code_check_char(first17)


CENTER = "演示市公共资源交易中心"
SPECIALTY_A = "A0101"  # 房屋建筑工程
SPECIALTY_B = "B0203"  # 工程造价
NAMES = ["王建国", "李秀英", "张志强", "刘海燕", "陈立新", "杨文静", "赵德明", "黄丽华", "周国平"]
# Which shipped photo each expert enrolls with, and their specialty. The seven frontal
# faces can be drawn: face/synthetic.py animates them reliably (bench/liveness_bench.py).
# The two faces turned aside are the conflicted expert, whom the draw excludes, and an
# expert of another specialty, whom this project does not draw.
POOL = [
    ("yaoming-0", SPECIALTY_A),
    ("gdp-2", SPECIALTY_A),
    ("players-0", SPECIALTY_A),
    ("players-4", SPECIALTY_A),
    ("players-5", SPECIALTY_B),
    ("players-6", SPECIALTY_B),
    ("players-8", SPECIALTY_B),
    ("t1-5", SPECIALTY_B),
    ("players-15", "C0301"),
]
TENDERER = ("演示市第一中学", _credit_code("12110000A00000011"))
SECOND_TENDERER = ("演示市第二中学", _credit_code("12110000A00000022"))
BIDDERS = [
    ("华信建设集团有限公司", _credit_code("91110000000000001")),
    ("中科远景工程股份有限公司", _credit_code("91110000000000002")),
    ("南粤建筑工程有限公司", _credit_code("91110000000000003")),
]
CRITERIA: list[dict[str, Any]] = [
    {"name": "投标报价", "max_points": 60, "group": "price"},
    {"name": "施工组织设计", "max_points": 25, "group": "technical"},
    {"name": "项目管理机构", "max_points": 10, "group": "technical"},
    {"name": "企业信誉", "max_points": 5, "group": "business"},
]


class DemoFailed(Exception):
    """A step did not give the answer the flow needs."""


def _id_number(index: int) -> str:
    first17 = f"110101{1965 + index:04d}{index % 12 + 1:02d}{index + 10:02d}{index + 101:03d}"
    return first17 + id_number_check_digit(first17)


class Client:
    """The API as a phone or the operator's browser calls it; any unexpected status stops
    the demo with the problem the service returned."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.http = requests.Session()

    def call(
        self,
        method: str,
        path: str,
        expect: int,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> Any:
        response = self.http.request(
            method, self.base + path, headers=headers, timeout=120, **kwargs
        )
        if response.status_code != expect:
            raise DemoFailed(
                f"{method} {path}: expected {expect}, got {response.status_code}: "
                f"{response.text[:500]}"
            )
        if response.headers.get("content-type", "").startswith("application/json"):
            return response.json()
        return response.content


@dataclass
class Phone:
    """One member's phone: its device id, the member's photo, and the sessions it holds."""

    name: str
    expert_id: str
    portrait: BGR
    device_id: str = field(default_factory=lambda: "demo-" + secrets.token_hex(6))
    evaluation: dict[str, str] = field(default_factory=dict)
    assignment_id: str = ""
    checks: int = 0
    id_number: str = ""
    mobile: str = ""
    # The passkey this phone made when it was bound at the desk: simulated in software
    # here, where a real phone keeps it in its secure hardware.
    authenticator: SoftwareAuthenticator | None = None

    @property
    def device(self) -> dict[str, str]:
        return {"id": self.device_id, "model": "Demo Phone", "os": "Android 14"}


ATTEMPTS = 3  # a person retries a failed check too; five failures lock the expert out


def _face_check(
    api: Client, phone: Phone, ask: Callable[[], dict[str, Any]], say: Callable[[str], None]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Ask for a challenge and answer it, retrying a failed check as a person would;
    returns the passed submission and its challenge."""
    for attempt in range(1, ATTEMPTS + 1):
        challenge = ask()
        result = _film_and_submit(api, phone, challenge)
        if result["passed"]:
            return result, challenge
        say(
            f"   {phone.name} 第 {attempt} 次检测未通过（{'、'.join(result['messages_zh'])}），重试"
        )
    raise DemoFailed(f"{phone.name} failed {ATTEMPTS} face checks")


def _film_and_submit(api: Client, phone: Phone, challenge: dict[str, Any]) -> dict[str, Any]:
    """Film the challenge as it is revealed, step by step, rendering the member's face from
    their photo live: each action starts when its prompt shows and the screen's colour
    lights the face. Each step goes up once its time has passed (the server refuses frames
    faster than real time); the last step's answer is the judgement."""
    scene = synthetic.make_scene(_engine(), phone.portrait)
    phone.checks += 1
    renderer = synthetic.LiveRenderer(scene, seed=phone.checks * 7919)
    step = challenge["step"]
    while True:
        shown = time.monotonic()
        shot = renderer.film(synthetic.hex_colour(step["colour"]), step["ms"], step["prompt"])
        time.sleep(max(0.0, step["ms"] / 1000 + 0.02 - (time.monotonic() - shown)))
        last = step["index"] == step["of"] - 1
        data = {
            "nonce": challenge["nonce"],
            "step": str(step["index"]),
            "timestamps_ms": json.dumps([t for _, t in shot]),
            "device": json.dumps(phone.device),
        }
        files = [("frames", (f"{i}.jpg", frame, "image/jpeg")) for i, (frame, _) in enumerate(shot)]
        answer: dict[str, Any] = api.call(
            "POST", challenge["submit_url"], 201 if last else 202, data=data, files=files
        )
        if last:
            return answer
        step = answer["next_step"]


_ENGINE: list[Any] = []


def _engine() -> Any:
    if not _ENGINE:
        from api.services import face_engine_for

        _ENGINE.append(face_engine_for(Settings()))
    return _ENGINE[0]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def on_local_port(settings: Settings) -> Settings:
    """The settings of an instance served on a free local port, named `localhost`: a page
    on an IP address cannot use passkeys (WebAuthn wants a host name as its RP id)."""
    return settings.model_copy(update={"public_url": f"http://localhost:{_free_port()}"})


class Server:
    """The service on its public URL's local port, in a thread of this process."""

    def __init__(self, settings: Settings, port: int | None = None) -> None:
        clock = SystemClock()
        engine = prepare(settings, clock)
        self.app = create_app(build_services(settings, engine=engine, clock=clock))
        # A second replica listens on a port of its own behind the same public URL.
        self.port = port or urlsplit(settings.public_url).port or _free_port()
        self.base = f"http://localhost:{self.port}"
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=self.port, log_config=None, access_log=False
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self._engine = engine

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise DemoFailed("the service did not start")
            time.sleep(0.05)
        return self.base

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)
        self._engine.dispose()


Say = Callable[[str], None]


def run_demo(settings: Settings, out: Path | None = None, say: Say = print) -> dict[str, Any]:
    """Run the whole job; returns the summary (also written to OUT/summary.json)."""
    started = time.perf_counter()
    say(f"1. 创建交易中心与 CA（数据目录 {settings.data_dir}）")
    settings = on_local_port(settings)
    init = initialize(settings, SystemClock(), CENTER)
    load_stamp_font()
    with Server(settings) as base:
        api = Client(base)
        summary = run_journey(api, init.tokens, say, out, outbox=settings.data_dir / "outbox")
    summary["seconds"] = round(time.perf_counter() - started, 1)
    say(f"完成，用时 {summary['seconds']} 秒。")
    if out is not None:
        (out / "summary.json").write_text(
            json.dumps(summary, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
        )
    return summary


@dataclass
class Staged:
    """A drawn project waiting for its committee: what the phones and the staff need next."""

    api: Client
    operator: dict[str, str]
    admin: dict[str, str]
    supervisor: dict[str, str]
    phones: dict[str, Phone]
    project: dict[str, Any]
    committed: dict[str, Any]
    entropy: str
    proof: dict[str, Any]
    excluded: dict[str, str]
    members: list[dict[str, Any]]
    room: dict[str, Any]

    def personal_token(self, member: dict[str, Any]) -> str:
        issued = self.api.call(
            "POST",
            f"/api/v1/projects/{self.project['id']}/assignments/{member['assignment_id']}/qr",
            201,
            headers=self.operator,
        )
        return str(issued["token"])


def stage_project(api: Client, tokens: dict[str, str], say: Say, out: Path | None) -> Staged:
    """Enroll the pool, create the project, draw its committee and show the room QR."""
    operator = {"Authorization": f"Bearer {tokens['operator']}"}
    admin = {"Authorization": f"Bearer {tokens['admin']}"}
    supervisor = {"Authorization": f"Bearer {tokens['supervisor']}"}

    portraits = sample_portraits(_engine(), limit=40)
    missing = [name for name, _ in POOL if name not in portraits]
    if missing:
        raise DemoFailed(f"the model packages no longer ship the faces {missing}")
    say(f"2. 登记 {len(POOL)} 名评标专家：人脸注册（来自模型包自带照片）并签发云证书")
    phones: dict[str, Phone] = {}
    conflicted = ""
    for index, ((photo, specialty), name) in enumerate(zip(POOL, NAMES, strict=True)):
        portrait = portraits[photo]
        # The B02 expert in the last place works for a bidder: the draw must exclude them.
        employer = (
            BIDDERS[1]
            if index == len(POOL) - 2
            else (f"演示第{index + 1}设计研究院", _credit_code(f"91110000D{index:08d}"))
        )
        expert = api.call(
            "POST",
            "/api/v1/experts",
            201,
            headers=operator,
            json={
                "name": name,
                "id_number": _id_number(index),
                "phone": f"1390000{index:04d}",
                "specialties": [specialty],
                "employer_name": employer[0],
                "employer_credit_code": employer[1],
                "region_code": "110101",
            },
        )
        api.call(
            "PUT",
            f"/api/v1/experts/{expert['id']}/face",
            201,
            headers=operator,
            files={"photos": (f"{index}.jpg", encode(portrait), "image/jpeg")},
            data={"consent": "true"},
        )
        api.call("POST", f"/api/v1/experts/{expert['id']}/credential", 201, headers=operator)
        phones[expert["id"]] = Phone(
            name,
            expert["id"],
            portrait,
            id_number=_id_number(index),
            mobile=f"1390000{index:04d}",
        )
        if employer[0] == BIDDERS[1][0]:
            conflicted = expert["id"]
        say(f"   {name}（{specialty}，{employer[0]}）")

    now = datetime.now(UTC)
    code = f"DEMO-{now:%Y%m%d-%H%M%S}"
    project = api.call(
        "POST",
        "/api/v1/projects",
        201,
        headers=operator,
        json={
            "code": code,
            "name": "演示市第一中学教学楼新建工程施工招标",
            "regime": "tendering",
            "tenderer": {"name": TENDERER[0], "credit_code": TENDERER[1]},
            "bidders": [{"name": n, "credit_code": c} for n, c in BIDDERS],
            "sections": [{"code": "1", "name": "施工一标段"}],
            "evaluation_start": (now + timedelta(seconds=5)).isoformat(),
            "evaluation_end": (now + timedelta(hours=8)).isoformat(),
            "mode": "remote",
            "committee": [
                {"specialty": "A01", "seats": 3, "backups": 1},
                {"specialty": "B02", "seats": 2, "backups": 1},
            ],
            "criteria": CRITERIA,
            "aggregation": "mean",
        },
    )
    say(f"3. 创建项目 {code}：评标委员会 5 人（A01 三人、B02 两人），投标人 {len(BIDDERS)} 家")

    committed = api.call("POST", f"/api/v1/projects/{project['id']}/draws", 201, headers=operator)
    say(f"4. 抽取专家：先公布承诺 commitment = {committed['commitment'][:16]}…")
    entropy = (
        f"{secrets.randbelow(100):02d} {secrets.randbelow(100):02d} {secrets.randbelow(100):02d}"
    )
    api.call(
        "POST",
        f"/api/v1/projects/{project['id']}/draws/{committed['id']}/run",
        200,
        headers=operator,
        json={"public_entropy": entropy},
    )
    time.sleep(max(0.0, (now + timedelta(seconds=5) - datetime.now(UTC)).total_seconds()))
    proof = api.call(
        "GET", f"/api/v1/projects/{project['id']}/draws/{committed['id']}", 200, headers=admin
    )["proof"]
    excluded = {e["expert_id"]: e["reason"] for e in proof["excluded"]}
    say(
        f"   现场公开随机数 {entropy!r}；排除："
        + "，".join(f"{phones[e].name}（{reason}）" for e, reason in excluded.items())
    )
    if excluded.get(conflicted) != "employer-is-bidder":
        raise DemoFailed("the conflicted expert was not excluded as employer-is-bidder")
    listing = api.call("GET", f"/api/v1/projects/{project['id']}/committee", 200, headers=admin)
    members = [m for m in listing if m["role"] == "member"]
    say("   抽中：" + "，".join(f"{m['name']}（{m['specialty']}）" for m in members))

    room = api.call("POST", f"/api/v1/projects/{project['id']}/qr", 200, headers=operator)
    say(f"5. 评标室二维码（每 30 秒刷新，60 秒内有效）：{room['url'][:80]}…")
    for line in qr_text(room["url"]).splitlines():
        say("   " + line)
    if out is not None:
        (out / "room-qr.png").write_bytes(base64.b64decode(room["png_base64"]))

    return Staged(
        api,
        operator,
        admin,
        supervisor,
        phones,
        project,
        committed,
        entropy,
        proof,
        excluded,
        members,
        room,
    )


def scan_and_consent(
    api: Client, phone: Phone, token: str
) -> tuple[dict[str, Any], dict[str, str]]:
    """The phone scans a code (or opens a link) and agrees to face recognition; returns the
    scan and the headers its next calls send."""
    scanned: dict[str, Any] = api.call(
        "POST", "/api/v1/scan", 201, json={"token": token, "device_id": phone.device_id}
    )
    headers = {"Authorization": f"Bearer {scanned['scan_token']}", "X-Device-Id": phone.device_id}
    consent = api.call("GET", "/api/v1/consent/face", 200)
    api.call(
        "POST",
        "/api/v1/scan/consent",
        200,
        headers=headers,
        json={"version": consent["version"], "accepted": True},
    )
    return scanned, headers


def bind_phone(staged: Staged, phone: Phone, say: Say) -> SoftwareAuthenticator:
    """At the desk: the operator reads the ID card and shows a binding QR; the phone opens
    it, passes a face check and makes its passkey (simulated in software here)."""
    api = staged.api
    started = api.call(
        "POST",
        f"/api/v1/experts/{phone.expert_id}/passkeys/enrollments",
        201,
        headers=staged.operator,
        json={"id_number": phone.id_number},
    )
    headers = {"Authorization": f"Bearer {started['token']}", "X-Device-Id": phone.device_id}
    api.call("POST", "/api/v1/passkey-enrollment/open", 200, headers=headers)
    result, _ = _face_check(
        api,
        phone,
        lambda: api.call("POST", "/api/v1/passkey-enrollment/challenge", 201, headers=headers),
        say,
    )
    face = result["session"]["token"]
    options = api.call(
        "POST",
        "/api/v1/passkey-enrollment/options",
        201,
        headers=headers,
        json={"face_session": face},
    )
    authenticator = SoftwareAuthenticator(api.base)
    api.call(
        "POST",
        "/api/v1/passkey-enrollment/complete",
        201,
        headers=headers,
        json={
            "face_session": face,
            "credential": authenticator.create(options),
            "label": "演示手机",
        },
    )
    phone.authenticator = authenticator
    say(f"   {phone.name}：在服务台核验身份证与人脸后绑定手机通行密钥（演示中为软件模拟）")
    return authenticator


def sign_in_by_phone(staged: Staged, member: dict[str, Any], token: str, say: Say) -> Phone:
    """One member's phone: (bound at the desk first, if it is not yet) scan, consent,
    face check, passkey, sign in, accept, declare."""
    api = staged.api
    phone = staged.phones[member["expert_id"]]
    phone.assignment_id = member["assignment_id"]
    authenticator = phone.authenticator or bind_phone(staged, phone, say)
    _, scan_headers = scan_and_consent(api, phone, token)
    result, challenge = _face_check(
        api,
        phone,
        lambda: api.call("POST", "/api/v1/scan/challenge", 201, headers=scan_headers),
        say,
    )
    face = result["session"]["token"]
    options = api.call(
        "POST", "/api/v1/scan/passkey", 201, headers=scan_headers, json={"face_session": face}
    )
    signed = api.call(
        "POST",
        "/api/v1/scan/sign-in",
        201,
        headers=scan_headers,
        json={"face_session": face, "passkey": authenticator.get(options)},
    )
    if signed["expert_id"] != phone.expert_id:
        raise DemoFailed(f"{phone.name} was identified as someone else")
    phone.evaluation = {
        "Authorization": f"Bearer {signed['evaluation_token']}",
        "X-Device-Id": phone.device_id,
    }
    overview = api.call("GET", "/api/v1/evaluation", 200, headers=phone.evaluation)
    if overview["me"]["status"] == "invited":  # not yet answered from the call-up's link
        api.call(
            "POST",
            "/api/v1/evaluation/response",
            200,
            headers=phone.evaluation,
            json={"accept": True},
        )
    api.call(
        "POST",
        "/api/v1/evaluation/recusal",
        201,
        headers=phone.evaluation,
        json={
            "conflict": False,
            "statement": "本人承诺与本项目招标人、投标人无利害关系，不存在应当回避的情形。",
        },
    )
    say(
        f"   {phone.name}：{challenge['mode']} 动作 {'/'.join(challenge['actions'])}，"
        "核验通过，已接受邀请并声明无回避情形"
    )
    return phone


def score_by_phone(api: Client, phone: Phone, m: int) -> None:
    """Member number m scores every bidder and submits."""
    points = {
        bidder: {
            # Bidders differ, and members differ in how they see them.
            c["name"]: round(float(c["max_points"]) * (0.60 + 0.08 * b + 0.03 * ((b + m) % 5)), 1)
            for c in CRITERIA
        }
        for b, (_, bidder) in enumerate(BIDDERS)
    }
    api.call(
        "PUT", "/api/v1/evaluation/scores", 200, headers=phone.evaluation, json={"points": points}
    )
    api.call("POST", "/api/v1/evaluation/scores/submit", 200, headers=phone.evaluation)


def approve_report_signature(
    api: Client, phone: Phone, signatures_url: str, say: Say
) -> tuple[dict[str, str], dict[str, Any]]:
    """A fresh face check, then the phone's passkey approving the member's prepared
    signature (its signed attributes): the headers and body that sign."""
    result, _ = _face_check(
        api,
        phone,
        lambda: api.call("POST", "/api/v1/evaluation/challenge", 201, headers=phone.evaluation),
        say,
    )
    face = {"Authorization": f"Bearer {result['session']['token']}", "X-Device-Id": phone.device_id}
    if phone.authenticator is None:
        raise DemoFailed(f"{phone.name} signs with a phone never bound")
    document_url = signatures_url.removesuffix("/signatures")
    issued = api.call("POST", f"{document_url}/approval", 201, headers=face, json={})
    approval = {"nonce": issued["nonce"], "assertion": phone.authenticator.get(issued["publicKey"])}
    return face, {"passkey": approval}


def sign_report_by_phone(api: Client, phone: Phone, signatures_url: str, say: Say) -> None:
    """A fresh face check, then the member's signature on the report."""
    face, body = approve_report_signature(api, phone, signatures_url, say)
    signature = api.call("POST", signatures_url, 201, headers=face, json=body)
    say(f"   {phone.name} 已签署（文档第 {signature['revision']['number']} 版）")


@dataclass
class Reported:
    """A committee seated, scored and agreed, its report generated and waiting for
    signatures."""

    staged: Staged
    seated: list[Phone]
    chair: Phone
    results: dict[str, Any]
    report: dict[str, Any]
    call_ups_answered: int = 0


CALL_UP_LINK = re.compile(r"/m/call/[A-Za-z0-9_-]+")


def answer_call_ups(staged: Staged, outbox: Path, say: Say, timeout_s: float = 60) -> int:
    """Step 5b: the service's call-up job sends each member a message (the local outbox
    stands in for SMS), and each answers from its link that they will take part."""
    wanted = {staged.phones[m["expert_id"]].mobile for m in staged.members}
    links: dict[str, str] = {}
    deadline = time.monotonic() + timeout_s
    while len(links) < len(wanted):
        for path in sorted(outbox.glob("*.json")):
            message = json.loads(path.read_text(encoding="utf-8"))
            if message.get("purpose") == "call-up" and message.get("to") in wanted:
                found = CALL_UP_LINK.search(message["text"])
                if found is None:
                    raise DemoFailed(f"a call-up without its answer link: {message['text']}")
                links[message["to"]] = found.group(0)
        if len(links) < len(wanted):
            if time.monotonic() > deadline:
                raise DemoFailed(f"{len(wanted) - len(links)} members got no call-up message")
            time.sleep(0.5)
    for link in links.values():
        page = staged.api.call("POST", link, 200, data={"decision": "accept"})
        if b'data-answer="accepted"' not in page:
            raise DemoFailed(f"the answer from {link} was not taken")
    say(
        f"5b. 抽取通知已发出 {len(links)} 条（本地发件箱代替短信，只含时间、方式与答复链接，"
        "不含项目与投标人）；专家点击链接确认参加"
    )
    return len(links)


def seat_and_report(
    api: Client, tokens: dict[str, str], say: Say, out: Path | None, outbox: Path | None = None
) -> Reported:
    """Steps 2 to 9: the draw, the members' answers to their call-ups (when the outbox is
    this process's to read), every member signed in by phone, the chair, the scores, one
    dissent and the others' agreement, and the report."""
    staged = stage_project(api, tokens, say, out)
    answered = answer_call_ups(staged, outbox, say) if outbox is not None else 0
    say("6. 专家扫码、活体检测并登录（第一位扫评标室二维码 1:N 识别，其余用个人二维码 1:1）")
    seated = []
    for index, member in enumerate(staged.members):
        token = staged.room["token"] if index == 0 else staged.personal_token(member)
        seated.append(sign_in_by_phone(staged, member, token, say))

    chair = seated[0]
    for phone in seated[:3]:
        vote = api.call(
            "POST",
            "/api/v1/evaluation/chair/vote",
            200,
            headers=phone.evaluation,
            json={"assignment_id": chair.assignment_id},
        )
    how = {"elected": "委员过半数推选", "appointed": "指定"}[vote["chosen_by"]]
    say(f"7. 评标委员会主任：{chair.name}（{how}）")

    say("8. 各专家独立评分并提交")
    for m, phone in enumerate(seated):
        score_by_phone(api, phone, m)
    results = api.call("POST", "/api/v1/evaluation/aggregate", 200, headers=chair.evaluation)[
        "results"
    ]
    for standing in results["standings"]:
        mark = "（推荐）" if standing["recommended"] else ""
        say(f"   第 {standing['rank']} 名 {standing['name']} {standing['score']} 分{mark}")
    dissenter = seated[-1]
    api.call(
        "POST",
        "/api/v1/evaluation/dissent",
        201,
        headers=dissenter.evaluation,
        json={
            "text": "本人认为第一名投标人的施工组织设计对雨季施工措施考虑不足，评分偏高，保留意见。"
        },
    )
    for phone in seated[:-1]:
        api.call("POST", "/api/v1/evaluation/results/agree", 200, headers=phone.evaluation)
    say(f"9. {dissenter.name} 提交书面不同意见，其余委员确认同意评标结果；主任生成评标报告")
    report = api.call("POST", "/api/v1/evaluation/report", 201, headers=chair.evaluation)
    return Reported(staged, seated, chair, results, report, answered)


def run_journey(
    api: Client, tokens: dict[str, str], say: Say, out: Path | None, outbox: Path | None = None
) -> dict[str, Any]:
    """Steps 2 to 13 and the contract, through `api` (any client that answers `call`), on an
    initialized instance whose staff tokens are `tokens`; with `outbox`, the instance's local
    messages, the members answer their call-ups from the links."""
    reported = seat_and_report(api, tokens, say, out, outbox)
    staged, seated, chair = reported.staged, reported.seated, reported.chair
    results, report = reported.results, reported.report
    operator, supervisor = staged.operator, staged.supervisor
    project, committed, proof = staged.project, staged.committed, staged.proof
    entropy, excluded = staged.entropy, staged.excluded

    say("10. 每位委员重新活体检测后签署评标报告（云证书 + 可见签章）")
    for phone in seated:
        sign_report_by_phone(api, phone, report["signatures_url"], say)

    signed_pdf: bytes = api.call("GET", report["content_url"], 200, headers=supervisor)
    verdict = api.call(
        "POST",
        "/api/v1/validate",
        200,
        headers=supervisor,
        files={"file": ("report.pdf", signed_pdf, "application/pdf")},
    )
    final = api.call("GET", f"/api/v1/projects/{project['id']}", 200, headers=operator)
    say(
        f"11. 验证签名：{verdict['verdict']}（{len(verdict['signatures'])} 个签名 + "
        f"{len(verdict['document_timestamps'])} 个文档时间戳）；项目状态 {final['status']}"
    )
    chain = api.call(
        "GET", f"/api/v1/projects/{project['id']}/draws/chain", 200, headers=supervisor
    )
    proofs = chain["proofs"]
    if proofs[0] != proof:
        raise DemoFailed("the chain of proofs does not start with the draw's proof")
    draw_proof.verify_chain(proofs)
    say("12. 抽取证明复核通过（evalsign-draw-v1，任何人可用 evalsign draw verify 复算）")
    contract = sign_contract_by_phones(staged, results, say)
    # Packed last, so it holds the sealed contract beside the report.
    package: bytes = api.call(
        "GET", f"/api/v1/projects/{project['id']}/evidence", 200, headers=supervisor
    )
    authorities = api.call("GET", "/api/v1/pki/authorities", 200, headers=supervisor)
    root_pem = next(a["certificate_pem"] for a in authorities if a["kind"] == "root")
    checked = verify_package(package, x509.load_pem_x509_certificate(root_pem.encode()))
    if not checked.ok:
        raise DemoFailed(f"the evidence package does not check out: {checked.checks}")
    say(f"15. 证据包 {len(package) // 1024} KB：" + "，".join(f"{k} ok" for k in checked.checks))
    supplementary = supplementary_draw(staged, say)
    if out is not None:
        (out / "report.pdf").write_bytes(signed_pdf)
        (out / "contract.pdf").write_bytes(contract["pdf"])
        (out / "evidence.zip").write_bytes(package)
        (out / "center-root.pem").write_text(root_pem, encoding="utf-8")
        (out / "draw-proof.json").write_text(
            json.dumps(proofs, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
        )
        (out / "supplementary-draw-proof.json").write_text(
            json.dumps(supplementary.pop("proofs"), ensure_ascii=False, indent=2) + "\n",
            encoding="utf-8",
        )
        say(
            f"    已写出 {out}/：report.pdf、contract.pdf、evidence.zip、center-root.pem、"
            "draw-proof.json、supplementary-draw-proof.json、summary.json、room-qr.png"
        )
    supplementary.pop("proofs", None)
    return {
        "center": CENTER,
        "project": {"id": project["id"], "code": project["code"], "status": final["status"]},
        "draw": {
            "id": committed["id"],
            "commitment": committed["commitment"],
            "public_entropy": entropy,
            "excluded": excluded,
            "proof_verified": True,
        },
        "call_ups_answered": reported.call_ups_answered,
        "committee": [
            {
                "name": p.name,
                "expert_id": p.expert_id,
                "assignment_id": p.assignment_id,
                "chair": p is chair,
            }
            for p in seated
        ],
        "results": _named_results(results, {p.assignment_id: p.name for p in seated}),
        "report": {
            "document_id": report["document_id"],
            "verdict": verdict["verdict"],
            "signatures": len(verdict["signatures"]),
            "document_timestamps": len(verdict["document_timestamps"]),
            "bytes": len(signed_pdf),
        },
        "evidence": {"bytes": len(package), "checks": checked.checks},
        "contract": {k: v for k, v in contract.items() if k != "pdf"},
        "supplementary_draw": supplementary,
    }


def supplementary_draw(staged: Staged, say: Say) -> dict[str, Any]:
    """Step 16 on a second project drawn without backups: a member drops out, nobody is
    left to move up, and a supplementary draw, committed before its entropy and chained to
    the first draw's proof, fills the seat; the chain of proofs replays."""
    api, operator, admin = staged.api, staged.operator, staged.admin
    now = datetime.now(UTC)
    project = api.call(
        "POST",
        "/api/v1/projects",
        201,
        headers=operator,
        json={
            "code": f"{staged.project['code']}-2",
            "name": "演示市第二中学运动场改造工程施工招标",
            "regime": "tendering",
            # Another tenderer: the first project's members served this one recently.
            "tenderer": {"name": SECOND_TENDERER[0], "credit_code": SECOND_TENDERER[1]},
            "bidders": [{"name": n, "credit_code": c} for n, c in BIDDERS],
            "sections": [{"code": "1", "name": "施工一标段"}],
            "evaluation_start": (now + timedelta(days=1)).isoformat(),
            "evaluation_end": (now + timedelta(days=1, hours=8)).isoformat(),
            "mode": "remote",
            "committee": [
                {"specialty": "A01", "seats": 3, "backups": 0},
                {"specialty": "B02", "seats": 2, "backups": 0},
            ],
            "criteria": CRITERIA,
        },
    )
    draws = f"/api/v1/projects/{project['id']}/draws"
    first = api.call("POST", draws, 201, headers=operator)
    api.call(
        "POST",
        f"{draws}/{first['id']}/run",
        200,
        headers=operator,
        json={"public_entropy": "03 18 27"},
    )
    members = [
        m
        for m in api.call("GET", f"/api/v1/projects/{project['id']}/committee", 200, headers=admin)
        if m["role"] == "member"
    ]
    leaving = next(m for m in members if m["specialty"] == "A01")
    replaced = api.call(
        "POST",
        f"/api/v1/projects/{project['id']}/assignments/{leaving['assignment_id']}/replace",
        200,
        headers=operator,
        json={"reason": "因病不能参加评标（电话告知）"},
    )
    vacancies = api.call("GET", f"{draws}/chain", 200, headers=operator)["vacancies"]
    if replaced["promoted_expert_id"] is not None or vacancies != {"A01": 1, "B02": 0}:
        raise DemoFailed(f"the seat was not left vacant: {vacancies}")
    say(
        f"16. 补充抽取：项目 {project['code']} 未设候补，{leaving['name']}（A01）因病不能参加，"
        "席位空缺"
    )
    committed = api.call("POST", f"{draws}/supplementary", 201, headers=operator, json={})
    say(
        f"   先公布补充抽取承诺 commitment = {committed['commitment'][:16]}…"
        "（绑定首次抽取证明的哈希与已抽取、已排除的专家）"
    )
    entropy = f"{secrets.randbelow(100):02d} {secrets.randbelow(100):02d}"
    api.call(
        "POST",
        f"{draws}/{committed['id']}/run",
        200,
        headers=operator,
        json={"public_entropy": entropy},
    )
    chain = api.call("GET", f"{draws}/chain", 200, headers=admin)
    proofs = chain["proofs"]
    draw_proof.verify_chain(proofs)
    drawn = proofs[-1]["specialties"][0]["selected"][0]
    if drawn in proofs[-1]["prior"] or chain["vacancies"] != {"A01": 0, "B02": 0}:
        raise DemoFailed("the supplementary draw did not fill the seat with someone new")
    say(
        f"   现场公开随机数 {entropy!r}，补抽 {staged.phones[drawn].name}（A01），已发出通知；"
        f"证明链 {len(proofs)} 环复核通过（evalsign draw verify）"
    )
    return {
        "project": project["code"],
        "vacated": leaving["name"],
        "drawn": staged.phones[drawn].name,
        "draws": [d["id"] for d in chain["draws"]],
        "proof_verified": True,
        "proofs": proofs,
    }


def _named_results(results: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    """The results as the API gives them, with each member's assignment id replaced by the
    member's name, so summary.json reads without a lookup."""
    return {
        **results,
        "members": [names.get(member, member) for member in results["members"]],
        "standings": [
            {
                **standing,
                "totals": {names.get(k, k): v for k, v in standing["totals"].items()},
            }
            for standing in results["standings"]
        ],
    }


# The legal representatives the contract names, and the people each unit authorizes to sign:
# two experts of the pool the draw left on the bench (a person can be both; the demo has
# only the faces the model packages ship).
LEGAL_REPRESENTATIVES = {
    TENDERER[1]: "孙校长",
    BIDDERS[0][1]: "钱董事长",
    BIDDERS[1][1]: "吴总经理",
    BIDDERS[2][1]: "郑董事长",
}


def _authorization_letter(unit: str, person: str) -> bytes:
    """A one-page authorization letter (授权委托书), as a unit would upload its scan."""
    from fpdf import FPDF

    from signing.report_pdf import resolve_font

    path, index = resolve_font(None, None)
    pdf = FPDF(format="A4")
    pdf.add_font("cjk", fname=path, collection_font_number=index)
    pdf.add_page()
    pdf.set_font("cjk", size=18)
    pdf.cell(0, 14, "授权委托书", align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("cjk", size=12)
    pdf.multi_cell(
        0,
        8,
        f"兹授权{person}为本单位授权代表，代表{unit}签订本项目合同，"
        "并使用本单位电子印章。授权期限一年。",
        new_x="LMARGIN",
        new_y="NEXT",
    )
    return bytes(pdf.output())


def authorize_representative(
    api: Client, operator: dict[str, str], unit: dict[str, Any], who: Phone, days: int
) -> dict[str, Any]:
    """The unit authorizes the person to sign its contracts for `days`, with its letter."""
    now = datetime.now(UTC)
    letter = _authorization_letter(unit["name"], who.name)
    metadata = {
        "name": who.name,
        "id_number": who.id_number,
        "phone": who.mobile,
        "scope": "contracts",
        "valid_from": (now - timedelta(days=1)).isoformat(),
        "valid_until": (now + timedelta(days=days)).isoformat(),
    }
    authorization: dict[str, Any] = api.call(
        "POST",
        f"/api/v1/units/{unit['id']}/representatives",
        201,
        headers=operator,
        files={"letter": ("authorization.pdf", letter, "application/pdf")},
        data={"metadata": json.dumps(metadata)},
    )
    return authorization


def _seal_and_sign(
    api: Client, phone: Phone, contract_id: str, face: dict[str, str], say: Say
) -> dict[str, Any]:
    """The representative's phone approves each mark (the seal, then the signature) with
    its passkey; a phone never bound is bound on the link first, after the face check."""
    url = f"/api/v1/contracts/{contract_id}"
    if phone.authenticator is None:
        phone.authenticator = SoftwareAuthenticator(api.base)
        options = api.call("POST", f"{url}/passkey-binding", 201, headers=face)
        api.call(
            "POST",
            f"{url}/passkey-binding/complete",
            201,
            headers=face,
            json={
                "enrollment_id": options["enrollment_id"],
                "credential": phone.authenticator.create(options["publicKey"]),
                "label": f"{phone.name} 的手机（模拟）",
            },
        )
        say(f"   {phone.name} 在合同链接上绑定手机通行密钥（软件模拟）")
    while True:
        issued = api.call("POST", f"{url}/approval", 201, headers=face)
        assertion = phone.authenticator.get(issued["publicKey"])
        signed: dict[str, Any] = api.call(
            "POST",
            f"{url}/signatures",
            201,
            headers=face,
            json={"passkey": {"nonce": issued["nonce"], "assertion": assertion}},
        )
        if signed["remaining"] == 0:
            return signed


def sign_contract_by_phones(staged: Staged, results: dict[str, Any], say: Say) -> dict[str, Any]:
    """The award's contract: both units' seals and representatives, a contract from the
    template with a cross-page seal, each representative signing from a personal link
    after a face check; validated at the end."""
    api, operator, supervisor = staged.api, staged.operator, staged.supervisor
    project_id = staged.project["id"]
    winner_code = results["recommended"][0]
    units = {
        u["credit_code"]: u
        for u in api.call("GET", "/api/v1/units?limit=500", 200, headers=operator)
    }
    bench = [
        staged.phones[m["expert_id"]]
        for m in api.call("GET", f"/api/v1/projects/{project_id}/committee", 200, headers=operator)
        if m["role"] == "backup" and m["expert_id"] not in staged.excluded
    ]
    if len(bench) < 2:
        raise DemoFailed("the draw left fewer than two experts on the bench")
    say("13. 合同签订：招标人与中标人登记法定代表人、生成电子印章并签发单位证书，授权代表签约")
    signers = []
    for party, code, phone in (("甲方", TENDERER[1], bench[0]), ("乙方", winner_code, bench[1])):
        unit = units[code]
        api.call(
            "PATCH",
            f"/api/v1/units/{unit['id']}",
            200,
            headers=operator,
            json={"legal_representative": LEGAL_REPRESENTATIVES[code]},
        )
        api.call(
            "POST", f"/api/v1/units/{unit['id']}/seal/generate", 200, headers=operator, json={}
        )
        api.call("POST", f"/api/v1/units/{unit['id']}/seal/credentials", 201, headers=operator)
        authorization = authorize_representative(api, operator, unit, phone, days=365)
        signers.append((party, unit, phone, authorization))
        say(f"   {party} {unit['name']}：授权代表 {phone.name}（合同专用章，证书已签发）")
    contract = api.call(
        "POST",
        f"/api/v1/projects/{project_id}/contracts",
        201,
        headers=operator,
        json={"amount_yuan": "38650000.00", "cross_page_seal": True, "ordered": True},
    )
    say(
        f"   合同 {contract['document']['page_count']} 页，金额 {contract['amount_words']}"
        f"（{contract['amount_figures']}），含骑缝章，甲方先签"
    )
    for party, unit, phone, authorization in signers:
        link = api.call(
            "POST",
            f"/api/v1/contracts/{contract['id']}/links",
            201,
            headers=operator,
            json={"authorization_id": authorization["id"]},
        )
        _, scan_headers = scan_and_consent(api, phone, link["token"])
        result, _ = _face_check(
            api,
            phone,
            partial(api.call, "POST", "/api/v1/scan/challenge", 201, headers=scan_headers),
            say,
        )
        face = {
            "Authorization": f"Bearer {result['session']['token']}",
            "X-Device-Id": phone.device_id,
        }
        signed = _seal_and_sign(api, phone, contract["id"], face, say)
        say(f"   {party} {phone.name} 人脸核验通过，手机确认后加盖 {unit['name']} 印章并签名")
    pdf: bytes = api.call(
        "GET", f"/api/v1/documents/{contract['document']['id']}/content", 200, headers=supervisor
    )
    verdict = api.call(
        "POST",
        "/api/v1/validate",
        200,
        headers=supervisor,
        files={"file": ("contract.pdf", pdf, "application/pdf")},
    )
    say(
        f"14. 合同验证：{verdict['verdict']}（{len(verdict['signatures'])} 个签名 + "
        f"{len(verdict['document_timestamps'])} 个文档时间戳）；合同状态 "
        f"{signed['contract']['status']}"
    )
    return {
        "id": contract["id"],
        "status": signed["contract"]["status"],
        "verdict": verdict["verdict"],
        "signatures": len(verdict["signatures"]),
        "document_timestamps": len(verdict["document_timestamps"]),
        "pdf": pdf,
    }

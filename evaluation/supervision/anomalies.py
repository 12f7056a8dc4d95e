"""Anomaly flags: patterns in a project's records that suggest proxy evaluation (代评) or
collusion, for supervisors to look at. Each rule reads the records and returns findings
with a rule code, a severity, the evidence (record ids and values) and an explanation in
Chinese and English. Findings become flags once (a finding already flagged is not raised
again); flags are acknowledged or resolved with a note, never deleted.

The rules run when the records they read change (sign-in, submitted scores) and on demand;
running them again over the same records raises nothing new.
"""

from __future__ import annotations

import ipaddress
import itertools
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from evaluation.committee.projects import get_project
from evaluation.identity import cross_matches
from evaluation.kernel import audit
from evaluation.kernel.actions import Action
from evaluation.kernel.errors import InvalidTransition
from evaluation.kernel.tenancy import in_center
from evaluation.supervision.evidence import verification_ids_of
from models.clock import Clock
from models.settings import Settings
from models.tables import (
    AnomalyFlag,
    EvaluationSession,
    FaceCrossCheck,
    FaceVerification,
    OneTimeCode,
    Passkey,
    PasskeyUse,
    Project,
    ScoreSheet,
    SignatureActivation,
    SignerSlot,
)


@dataclass(frozen=True)
class AnomalyPolicy:
    match_threshold: float
    shared_ip_experts: int
    failures_before_pass: int
    sheet_difference: float
    borderline_margin: float
    early_sign_in: timedelta
    new_binding: timedelta = timedelta(days=7)
    timezone: str = "Asia/Shanghai"  # whose day "one device per day" counts

    @classmethod
    def from_settings(cls, settings: Settings) -> AnomalyPolicy:
        return cls(
            match_threshold=settings.face_match_threshold,
            shared_ip_experts=settings.anomaly_shared_ip_experts,
            failures_before_pass=settings.anomaly_failures_before_pass,
            sheet_difference=settings.anomaly_sheet_difference_points,
            borderline_margin=settings.anomaly_borderline_margin,
            early_sign_in=timedelta(minutes=settings.anomaly_early_sign_in_minutes),
            new_binding=timedelta(days=settings.passkey_new_binding_flag_days),
            timezone=settings.display_timezone,
        )


@dataclass(frozen=True)
class Finding:
    rule: str
    severity: str
    key: str
    evidence: dict[str, Any]
    zh: str
    en: str


def _verifications(db: Session, project: Project) -> list[FaceVerification]:
    ids = verification_ids_of(db, project)
    return list(
        db.execute(
            select(FaceVerification)
            .where(FaceVerification.id.in_(ids))
            .order_by(FaceVerification.created_at, FaceVerification.id)
        ).scalars()
    )


def shared_device(project: Project, checks: list[FaceVerification]) -> list[Finding]:
    """One phone used by two or more experts: one person checking in for another."""
    experts: dict[str, set[str]] = defaultdict(set)
    records: dict[str, list[str]] = defaultdict(list)
    for check in checks:
        if check.expert_id:
            experts[check.device_id].add(check.expert_id)
            records[check.device_id].append(check.id)
    return [
        Finding(
            "shared-device",
            "high",
            f"{project.id}:{device}",
            {"device_id": device, "experts": sorted(ids), "verifications": records[device]},
            f"同一设备 {device} 被 {len(ids)} 名专家用于人脸核验，可能存在代评。",
            f"Device {device} was used for the face checks of {len(ids)} experts: possible "
            "proxy evaluation.",
        )
        for device, ids in experts.items()
        if len(ids) >= 2
    ]


def device_day(
    db: Session, project: Project, checks: list[FaceVerification], policy: AnomalyPolicy
) -> list[Finding]:
    """One phone that checked the faces of two or more people on one day across the
    center: someone evaluating for others in several projects. A device shared within this
    project alone is the shared-device rule's finding, not this one."""
    zone = ZoneInfo(policy.timezone)
    mine = {check.id for check in checks}
    days = {
        (check.device_id, check.created_at.astimezone(zone).date())
        for check in checks
        if check.expert_id
    }
    findings = []
    for device, day in sorted(days):
        start = datetime.combine(day, time.min, zone)
        same_day = list(
            db.execute(
                select(FaceVerification.id, FaceVerification.expert_id)
                .where(
                    FaceVerification.center_id == project.center_id,
                    FaceVerification.device_id == device,
                    FaceVerification.expert_id.is_not(None),
                    FaceVerification.created_at >= start,
                    FaceVerification.created_at < start + timedelta(days=1),
                )
                .order_by(FaceVerification.created_at, FaceVerification.id)
            )
        )
        experts = sorted({expert for _, expert in same_day if expert})
        if len(experts) < 2 or all(record in mine for record, _ in same_day):
            continue
        findings.append(
            Finding(
                "device-shared-day",
                "high",
                f"{device}:{day.isoformat()}",
                {
                    "device_id": device,
                    "day": day.isoformat(),
                    "experts": experts,
                    "verifications": [record for record, _ in same_day],
                },
                f"{day.isoformat()} 当天，同一设备 {device} 在本中心为 {len(experts)} 人做了"
                "人脸核验（跨项目），可能存在代评。",
                f"On {day.isoformat()} device {device} took the face checks of "
                f"{len(experts)} people across the center's projects: possible proxy "
                "evaluation.",
            )
        )
    return findings


def _cross_values(check: FaceVerification, swept: FaceCrossCheck | None) -> dict[str, Any] | None:
    """What the background sweep found (cross_matches), or, for checks recorded before it
    existed, the cross-match the check itself stored."""
    if swept is not None:
        return {
            "other_expert_id": swept.other_expert_id,
            "other_similarity": round(swept.other_similarity or 0.0, 4),
            "claimed_similarity": round(swept.claimed_similarity, 4),
        }
    cross = next((c for c in check.checks if c.get("check") == "cross-match"), None)
    return None if cross is None else dict(cross["values"])


def matches_other(db: Session, project: Project, checks: list[FaceVerification]) -> list[Finding]:
    """A face check whose face matched another enrolled person better than the one it was
    for: someone checking in as another expert, or a look-alike at the threshold."""
    found = []
    swept = cross_matches.found_for(db, [check.id for check in checks])
    for check in checks:
        values = _cross_values(check, swept.get(check.id))
        if values is None:
            continue
        found.append(
            Finding(
                "face-matches-other",
                "high",
                f"{project.id}:{check.id}",
                {
                    "verification_id": check.id,
                    "claimed_expert_id": check.expert_id,
                    "passed": check.passed,
                    **values,
                },
                f"人脸核验（声称为专家 {check.expert_id}）的人脸与另一名已登记人员 "
                f"{values['other_expert_id']} 更相似（{values['other_similarity']} > "
                f"{values['claimed_similarity']}），可能冒名核验。",
                f"The face of a check for expert {check.expert_id} matches another enrolled "
                f"person, {values['other_expert_id']}, better ({values['other_similarity']} > "
                f"{values['claimed_similarity']}): possibly someone checking in as another.",
            )
        )
    return found


def shared_address(
    project: Project, checks: list[FaceVerification], policy: AnomalyPolicy
) -> list[Finding]:
    """Many experts of one remote evaluation from one network address."""
    if project.mode != "remote":
        return []
    experts: dict[str, set[str]] = defaultdict(set)
    for check in checks:
        if _external(check.client_ip) and check.expert_id and check.passed:
            experts[str(check.client_ip)].add(check.expert_id)
    return [
        Finding(
            "shared-address",
            "medium",
            f"{project.id}:{address}",
            {"client_ip": address, "experts": sorted(ids)},
            f"远程评标中 {len(ids)} 名专家从同一网络地址 {address} 登录。",
            f"{len(ids)} experts of a remote evaluation came from one address, {address}.",
        )
        for address, ids in experts.items()
        if len(ids) >= policy.shared_ip_experts
    ]


def _external(address: str | None) -> bool:
    """An address that says where a phone is: not this machine's own (a demo, or a proxy
    that does not pass on the client's address)."""
    try:
        return address is not None and not ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def failures_before_pass(
    project: Project, checks: list[FaceVerification], policy: AnomalyPolicy
) -> list[Finding]:
    """Repeated failed face checks before a pass: someone trying until a face got through."""
    found = []
    failed: dict[str, list[FaceVerification]] = defaultdict(list)
    for check in checks:
        if not check.expert_id:
            continue
        if not check.passed:
            failed[check.expert_id].append(check)
        elif len(failed[check.expert_id]) >= policy.failures_before_pass:
            misses = failed.pop(check.expert_id)
            found.append(
                Finding(
                    "failures-before-pass",
                    "medium",
                    f"{project.id}:{check.id}",
                    {
                        "expert_id": check.expert_id,
                        "passed_verification": check.id,
                        "failed_verifications": [m.id for m in misses],
                        "reasons": sorted({r for m in misses for r in m.reasons}),
                    },
                    f"专家在通过核验前失败 {len(misses)} 次。",
                    f"The expert failed {len(misses)} face checks before passing one.",
                )
            )
        else:
            failed.pop(check.expert_id, None)
    return found


def borderline_pass(
    project: Project, checks: list[FaceVerification], policy: AnomalyPolicy
) -> list[Finding]:
    """A pass whose face match barely cleared the threshold."""
    limit = policy.match_threshold + policy.borderline_margin
    return [
        Finding(
            "borderline-pass",
            "low",
            f"{project.id}:{check.id}",
            {
                "verification_id": check.id,
                "expert_id": check.expert_id,
                "similarity": round(check.similarity, 4),
                "threshold": policy.match_threshold,
            },
            f"人脸比对相似度 {check.similarity:.3f} 仅略高于阈值 {policy.match_threshold:.3f}。",
            f"The face match ({check.similarity:.3f}) barely cleared the threshold "
            f"({policy.match_threshold:.3f}).",
        )
        for check in checks
        if check.passed and check.similarity is not None and check.similarity < limit
    ]


def in_person_path(project: Project, checks: list[FaceVerification]) -> list[Finding]:
    """Every pass of the non-face path (an in-person ID check plus the signing PIN): lawful,
    but a lower assurance than a face match, and a PIN can be shared; supervisors always
    see it."""
    return [
        Finding(
            "in-person-path",
            "medium",
            f"{project.id}:{check.id}",
            {
                "verification_id": check.id,
                "expert_id": check.expert_id,
                "in_person_check_id": check.in_person_check_id,
                "checked_by": check.checks[0]["values"].get("checked_by"),
                "device_id": check.device_id,
            },
            "该专家未使用人脸识别，经工作人员现场核验身份证件后以签名口令通过核验，核验等级较低。",
            "The expert did not use face recognition: an operator checked their ID in "
            "person and they passed with their signing PIN, a lower assurance.",
        )
        for check in checks
        if check.method == "in-person-pin" and check.passed
    ]


def sign_ins(db: Session, project: Project, policy: AnomalyPolicy) -> list[Finding]:
    """Sign-ins outside the evaluation window, and one expert on two devices at once."""
    found = []
    sessions = db.execute(
        select(EvaluationSession)
        .where(EvaluationSession.project_id == project.id)
        .order_by(EvaluationSession.created_at, EvaluationSession.id)
    ).scalars()
    for session in sessions:
        early = session.created_at < project.evaluation_start - policy.early_sign_in
        if early or session.created_at > project.evaluation_end:
            found.append(
                Finding(
                    "outside-window",
                    "medium",
                    f"{project.id}:{session.id}",
                    {
                        "evaluation_session_id": session.id,
                        "expert_id": session.expert_id,
                        "signed_in_at": session.created_at.isoformat(),
                        "window": [
                            project.evaluation_start.isoformat(),
                            project.evaluation_end.isoformat(),
                        ],
                    },
                    "专家在评标时间之外登录。",
                    "The expert signed in outside the evaluation window.",
                )
            )
        if session.flagged:
            found.append(
                Finding(
                    "two-devices",
                    "high",
                    f"{project.id}:{session.id}",
                    {
                        "evaluation_session_id": session.id,
                        "expert_id": session.expert_id,
                        "device_id": session.device_id,
                    },
                    "同一专家同时在两台设备上登录。",
                    "The same expert is signed in on two devices at once.",
                )
            )
    return found


def late_bindings(db: Session, project: Project, policy: AnomalyPolicy) -> list[Finding]:
    """A member signed in with a phone bound shortly before the evaluation: whoever stood
    at the desk then holds the passkey now; worth a look at who witnessed the binding."""
    rows = db.execute(
        select(EvaluationSession, Passkey)
        .join(PasskeyUse, PasskeyUse.id == EvaluationSession.passkey_use_id)
        .join(Passkey, Passkey.id == PasskeyUse.passkey_id)
        .where(
            EvaluationSession.project_id == project.id,
            Passkey.created_at > project.evaluation_start - policy.new_binding,
        )
        .order_by(EvaluationSession.created_at, EvaluationSession.id)
    ).all()
    found = []
    for session, passkey in rows:
        before = project.evaluation_start - passkey.created_at
        hours = round(before.total_seconds() / 3600, 1)
        found.append(
            Finding(
                "passkey-bound-late",
                "medium",
                f"{project.id}:{passkey.id}",
                {
                    "expert_id": session.expert_id,
                    "evaluation_session_id": session.id,
                    "passkey_id": passkey.id,
                    "bound_at": passkey.created_at.isoformat(),
                    "witnessed_by": passkey.witnessed_by,
                    "hours_before_start": hours,
                },
                f"专家签到所用手机在评标开始{'前' if hours >= 0 else '后'} {abs(hours)} 小时"
                "才绑定，请核实绑定时在场的是否为本人。",
                f"The expert signed in with a phone bound {abs(hours)} h "
                f"{'before' if hours >= 0 else 'after'} the evaluation started: check who "
                "stood at the desk for that binding.",
            )
        )
    return found


def sms_codes(db: Session, project: Project) -> list[Finding]:
    """Every sign-in and report signature an SMS code approved in place of the passkey:
    allowed where the center chose to, but a SIM is weaker than a bound phone (a swapped
    SIM, a forwarded message); supervisors always see it."""
    found = []
    used = db.execute(
        select(EvaluationSession.id, EvaluationSession.expert_id, OneTimeCode)
        .join(OneTimeCode, OneTimeCode.id == EvaluationSession.one_time_code_id)
        .where(EvaluationSession.project_id == project.id)
        .order_by(EvaluationSession.created_at, EvaluationSession.id)
    ).all()
    signed: list[tuple[str, str, OneTimeCode]] = []
    if project.report_document_id:
        signed = [
            (activation_id, expert_id, code)
            for activation_id, expert_id, code in db.execute(
                select(SignatureActivation.id, SignatureActivation.expert_id, OneTimeCode)
                .join(OneTimeCode, OneTimeCode.id == SignatureActivation.one_time_code_id)
                .join(SignerSlot, SignerSlot.sad_id == SignatureActivation.id)
                .where(SignerSlot.document_id == project.report_document_id)
                .order_by(SignatureActivation.created_at)
            ).all()
        ]
    for what, rows in (("sign-in", used), ("signature", signed)):
        for record_id, expert_id, code in rows:
            found.append(
                Finding(
                    "sms-code",
                    "medium",
                    f"{project.id}:{code.id}",
                    {
                        "expert_id": expert_id,
                        "approved": what,
                        "record_id": record_id,
                        "one_time_code_id": code.id,
                        "sent_to": code.sent_to,
                        "channel": code.channel,
                    },
                    f"该专家的{'签到' if what == 'sign-in' else '报告签名'}以短信验证码代替手机"
                    "通行密钥确认，核验等级较低（短信可被转发或补卡）。",
                    f"The expert's {what} was approved by an SMS code in place of their bound "
                    "phone's passkey: a lower assurance (a message can be forwarded, a SIM "
                    "swapped).",
                )
            )
    return found


def similar_sheets(db: Session, project: Project, policy: AnomalyPolicy) -> list[Finding]:
    """Two members' submitted sheets that are identical or nearly so: collusion, or one
    person scoring for two."""
    sheets = list(
        db.execute(
            select(ScoreSheet)
            .where(ScoreSheet.project_id == project.id, ScoreSheet.status == "submitted")
            .order_by(ScoreSheet.expert_id)
        ).scalars()
    )
    found = []
    for first, second in itertools.combinations(sheets, 2):
        cells = [
            (bidder, name)
            for bidder, row in first.points.items()
            for name in row
            if name in second.points.get(bidder, {})
        ]
        if not cells:
            continue
        difference = sum(
            abs(float(first.points[b][n]) - float(second.points[b][n])) for b, n in cells
        ) / len(cells)
        if difference <= policy.sheet_difference:
            identical = difference == 0
            found.append(
                Finding(
                    "similar-sheets",
                    "high" if identical else "medium",
                    f"{project.id}:{first.id}:{second.id}",
                    {
                        "sheets": [first.id, second.id],
                        "experts": [first.expert_id, second.expert_id],
                        "mean_difference": round(difference, 4),
                        "values": len(cells),
                    },
                    ("两名专家的评分表完全相同。" if identical else "两名专家的评分表几乎相同")
                    + f"（平均每项相差 {difference:.2f} 分）。",
                    (
                        "Two experts' score sheets are identical"
                        if identical
                        else "Two experts' score sheets are nearly identical"
                    )
                    + f" (mean difference {difference:.2f} points per value).",
                )
            )
    return found


def detect(db: Session, project: Project, policy: AnomalyPolicy) -> list[Finding]:
    """Every rule over the project's records."""
    checks = _verifications(db, project)
    return [
        *shared_device(project, checks),
        *device_day(db, project, checks, policy),
        *matches_other(db, project, checks),
        *shared_address(project, checks, policy),
        *failures_before_pass(project, checks, policy),
        *borderline_pass(project, checks, policy),
        *in_person_path(project, checks),
        *sign_ins(db, project, policy),
        *late_bindings(db, project, policy),
        *sms_codes(db, project),
        *similar_sheets(db, project, policy),
    ]


def raise_flags(
    db: Session,
    caller: audit.Caller,
    clock: Clock,
    policy: AnomalyPolicy,
    center_id: str,
    project_id: str,
) -> list[AnomalyFlag]:
    """Run the rules for a project and flag what is new; returns the new flags."""
    project = get_project(db, center_id, project_id)
    known = {
        (rule, key)
        for rule, key in db.execute(
            select(AnomalyFlag.rule, AnomalyFlag.key).where(AnomalyFlag.center_id == center_id)
        )
    }
    new = []
    for finding in detect(db, project, policy):
        if (finding.rule, finding.key) in known:
            continue
        known.add((finding.rule, finding.key))
        flag = AnomalyFlag(
            center_id=center_id,
            project_id=project.id,
            rule=finding.rule,
            key=finding.key,
            severity=finding.severity,
            evidence=finding.evidence,
            explanation_zh=finding.zh,
            explanation_en=finding.en,
            status="open",
            created_at=clock.now(),
        )
        db.add(flag)
        new.append(flag)
    db.flush()
    for flag in new:
        audit.record(
            db,
            caller,
            clock,
            Action.ANOMALY_FLAGGED,
            "anomaly_flag",
            flag.id,
            {"project_id": project.id, "rule": flag.rule, "severity": flag.severity},
        )
    return new


def list_flags(
    db: Session,
    center_id: str,
    *,
    project_id: str | None = None,
    status: str | None = None,
    limit: int = 100,
) -> list[AnomalyFlag]:
    query = select(AnomalyFlag).where(AnomalyFlag.center_id == center_id)
    if project_id is not None:
        query = query.where(AnomalyFlag.project_id == project_id)
    if status is not None:
        query = query.where(AnomalyFlag.status == status)
    query = query.order_by(AnomalyFlag.created_at.desc(), AnomalyFlag.id).limit(limit)
    return list(db.execute(query).scalars())


FLAG_TRANSITIONS = {
    ("open", "acknowledge"): "acknowledged",
    ("open", "resolve"): "resolved",
    ("acknowledged", "resolve"): "resolved",
}
_HANDLED_ACTIONS = {
    "acknowledged": Action.ANOMALY_ACKNOWLEDGED,
    "resolved": Action.ANOMALY_RESOLVED,
}


def handle(
    db: Session, caller: audit.Caller, clock: Clock, flag_id: str, action: str, note: str
) -> AnomalyFlag:
    """A supervisor acknowledges (looking into it) or resolves (explained) a flag."""
    flag = in_center(db, AnomalyFlag, flag_id, caller.center_id, "anomaly flag", lock=True)
    target = FLAG_TRANSITIONS.get((flag.status, action))
    if target is None:
        raise InvalidTransition(
            f"cannot {action} a flag that is {flag.status}", current_status=flag.status
        )
    previous = flag.status
    flag.status = target
    flag.note = note
    flag.handled_by = caller.actor
    flag.handled_at = clock.now()
    db.flush()
    audit.record(
        db,
        caller,
        clock,
        _HANDLED_ACTIONS[target],
        "anomaly_flag",
        flag.id,
        {"from": previous, "to": target, "note": note, "rule": flag.rule},
    )
    return flag

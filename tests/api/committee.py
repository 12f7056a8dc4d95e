"""A drawn project whose evaluation has started, and members signed in from their phones:
what the task, evaluation and report tests build on.

Face checks here are the records a passed check leaves (tests.factories.face_session), tied
to the scan they were asked for; tests/api/test_evaluation_flow.py makes them the real way,
from video frames."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from api.services import Services
from evaluation.registry.staff import Role
from models.clock import FrozenClock
from tests.api.test_projects_api import BIDDERS, TENDERER, project_payload
from tests.factories import (
    CenterWithStaff,
    bound_phone,
    drawable_expert,
    establish_pki,
    face_session,
)


@dataclass
class Committee:
    client: TestClient
    center: CenterWithStaff
    db: Session
    clock: FrozenClock
    project: dict[str, Any]
    members: list[dict[str, Any]]  # seated, from the committee list
    backups: list[dict[str, Any]]
    phones: dict[str, dict[str, str]] = field(default_factory=dict)  # assignment -> headers
    passkeys: dict[str, Any] = field(default_factory=dict)  # expert -> bound authenticator

    @property
    def operator(self) -> dict[str, str]:
        return self.center.headers(Role.OPERATOR)

    @property
    def admin(self) -> dict[str, str]:
        return self.center.headers(Role.ADMIN)

    @property
    def project_id(self) -> str:
        return str(self.project["id"])

    def refresh(self) -> None:
        listing = self.client.get(
            f"/api/v1/projects/{self.project_id}/committee", headers=self.admin
        ).json()
        self.members = [m for m in listing if m["role"] == "member"]
        self.backups = [m for m in listing if m["role"] == "backup"]

    def seated(self) -> list[dict[str, Any]]:
        self.refresh()
        return [m for m in self.members if m["status"] in ("invited", "accepted")]

    def scan(self, token: str, device: str) -> Any:
        return self.client.post("/api/v1/scan", json={"token": token, "device_id": device})

    def personal_token(self, assignment_id: str) -> str:
        issued = self.client.post(
            f"/api/v1/projects/{self.project_id}/assignments/{assignment_id}/qr",
            headers=self.operator,
        )
        assert issued.status_code == 201, issued.text
        return str(issued.json()["token"])

    def sign_in(
        self, member: dict[str, Any], device: str | None = None, *, accept: bool = True
    ) -> dict[str, str]:
        """Personal QR -> scan -> a passed face check of that scan -> evaluation session;
        accepts the seat unless told not to. Returns the phone's headers."""
        device = device or f"phone-{member['assignment_id'][:8]}"
        scanned = self.scan(self.personal_token(member["assignment_id"]), device)
        assert scanned.status_code == 201, scanned.text
        scan_headers = {
            "Authorization": f"Bearer {scanned.json()['scan_token']}",
            "X-Device-Id": device,
        }
        scan_id = self._scan_id(scanned.json()["scan_token"])
        face_token, _ = face_session(
            self.db,
            self.clock,
            self.center.id,
            member["expert_id"],
            device_id=device,
            scan_session_id=scan_id,
        )
        signed = self.client.post(
            "/api/v1/scan/sign-in",
            json={
                "face_session": face_token,
                "passkey": self.approve(member, scan_headers, face_token),
            },
            headers=scan_headers,
        )
        assert signed.status_code == 201, signed.text
        headers = {
            "Authorization": f"Bearer {signed.json()['evaluation_token']}",
            "X-Device-Id": device,
        }
        if accept:
            answered = self.client.post(
                "/api/v1/evaluation/response", json={"accept": True}, headers=headers
            )
            assert answered.status_code == 200, answered.text
        self.phones[member["assignment_id"]] = headers
        return headers

    def phone_of(self, expert_id: str, device: str) -> Any:
        """The authenticator of the person's bound phone (bound on first use)."""
        if expert_id not in self.passkeys:
            services = self.client.app.state.services  # type: ignore[attr-defined]
            self.passkeys[expert_id] = bound_phone(
                self.db, self.clock, services.passkeys, self.center.id, expert_id, device_id=device
            )
        return self.passkeys[expert_id]

    def approve(
        self, member: dict[str, Any], scan_headers: dict[str, str], face_token: str
    ) -> dict[str, Any]:
        """The bound phone's answer to this scan's sign-in challenge."""
        phone = self.phone_of(member["expert_id"], scan_headers["X-Device-Id"])
        options = self.client.post(
            "/api/v1/scan/passkey", json={"face_session": face_token}, headers=scan_headers
        )
        assert options.status_code == 201, options.text
        return dict(phone.get(options.json()))

    def _scan_id(self, token: str) -> str:
        from sqlalchemy import select

        from evaluation.kernel.tokens import hash_token
        from models.tables import ScanSession

        self.db.expire_all()
        return str(
            self.db.execute(
                select(ScanSession.id).where(ScanSession.token_hash == hash_token(token))
            ).scalar_one()
        )

    def declare_no_conflict(self, headers: dict[str, str]) -> None:
        declared = self.client.post(
            "/api/v1/evaluation/recusal",
            json={"conflict": False, "statement": "本人与本项目招标人、投标人均无利害关系。"},
            headers=headers,
        )
        assert declared.status_code == 201, declared.text

    def full_sheet(self, base: float = 0) -> dict[str, dict[str, float]]:
        """Every bidder on every criterion; `base` shifts the points so members differ."""
        sheet = {}
        for index, bidder in enumerate(self.project["bidders"]):
            sheet[bidder["credit_code"]] = {
                c["name"]: round(
                    max(0, min(c["max_points"], c["max_points"] * 0.5 + base + index)), 2
                )
                for c in self.project["criteria"]
            }
        return sheet


def build_committee(
    client: TestClient,
    center: CenterWithStaff,
    db: Session,
    clock: FrozenClock,
    services: Services,
    **overrides: Any,
) -> Committee:
    """A tendering project (5 seats: A01 x3, B02 x2, one backup each), drawn, with the
    evaluation window open at the clock's time."""
    establish_pki(db, clock, services, center)
    for _ in range(5):
        drawable_expert(db, clock, services, center, ["A0101"])
    for _ in range(3):
        drawable_expert(db, clock, services, center, ["B0203"])
    start = clock.now() - timedelta(minutes=30)
    payload = project_payload(
        code=f"EVAL-{clock.now().timestamp()}-{len(overrides)}",
        evaluation_start=start.isoformat(),
        evaluation_end=(start + timedelta(hours=10)).isoformat(),
        **overrides,
    )
    operator = center.headers(Role.OPERATOR)
    project = client.post("/api/v1/projects", json=payload, headers=operator)
    assert project.status_code == 201, project.text
    project_id = project.json()["id"]
    draw = client.post(f"/api/v1/projects/{project_id}/draws", headers=operator).json()
    ran = client.post(
        f"/api/v1/projects/{project_id}/draws/{draw['id']}/run",
        json={"public_entropy": "31 07 58"},
        headers=operator,
    )
    assert ran.status_code == 200, ran.text
    committee = Committee(client, center, db, clock, project.json(), [], [])
    committee.refresh()
    assert len(committee.members) == 5
    return committee


__all__ = ["BIDDERS", "TENDERER", "Committee", "build_committee"]

"""Real, valid domain objects for tests: ID numbers with correct check digits, credit codes,
centers with staff tokens."""

from __future__ import annotations

import random
import secrets
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy.orm import Session

from evaluation import audit, centers
from evaluation import staff as staff_tokens
from evaluation.identity import credit_code_check_char, id_number_check_digit
from evaluation.staff import Role
from models.clock import Clock

_rng = random.Random(secrets.randbits(64))
CREDIT_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"


def id_number(region: str = "110101", born: date | None = None) -> str:
    born = born or date(1960, 1, 1) + timedelta(days=_rng.randrange(0, 365 * 35))
    first17 = f"{region}{born:%Y%m%d}{_rng.randrange(0, 1000):03d}"
    return first17 + id_number_check_digit(first17)


def credit_code(region: str = "110000") -> str:
    body = "".join(_rng.choice(CREDIT_CHARS) for _ in range(9))
    first17 = f"91{region}{body}"
    return first17 + credit_code_check_char(first17)


def phone() -> str:
    return f"13{_rng.randrange(0, 10**9):09d}"


def expert_payload(**overrides: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "name": _rng.choice(["张伟", "王芳", "李娜", "刘洋", "陈静"]) + str(_rng.randrange(100)),
        "id_number": id_number(),
        "phone": phone(),
        "specialties": ["A0101", "B02"],
        "employer_name": "北京市建筑设计研究院有限公司",
        "employer_credit_code": credit_code(),
        "region_code": "110101",
    }
    payload.update(overrides)
    return payload


@dataclass(frozen=True)
class CenterWithStaff:
    """A center and one live token per role, as tests use them."""

    id: str
    name: str
    tokens: dict[Role, str]

    def headers(self, role: Role | str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[Role(role)]}"}

    @property
    def caller(self) -> audit.Caller:
        return audit.Caller(self.id, "test")


def make_center(db: Session, clock: Clock, name: str | None = None) -> CenterWithStaff:
    center = centers.create_center(db, name or f"测试交易中心 {secrets.token_hex(4)}", clock)
    caller = audit.Caller(center.id, "test")
    tokens = {
        role: staff_tokens.issue_staff_token(db, caller, clock, role, f"test {role}").secret
        for role in Role
    }
    db.commit()
    return CenterWithStaff(center.id, center.name, tokens)

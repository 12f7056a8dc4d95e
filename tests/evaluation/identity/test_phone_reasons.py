"""What a phone is told of a failed check: a 1:few check never says whether the face was
one of the candidates; a 1:1 check, whose claimed person the phone already named, says
everything."""

from __future__ import annotations

import pytest

from evaluation.identity.face_checks import VerificationOutcome
from face.liveness import Check, Judgement
from models.tables import FaceVerification


def _outcome(mode: str, *checks: Check) -> VerificationOutcome:
    passed = all(check.passed for check in checks)
    judgement = Judgement(passed, list(checks), None, None, [], [], [])
    return VerificationOutcome(FaceVerification(mode=mode), judgement, None, None, 4, False)


IDENTITY = Check("identity", False, "face-not-identified")
ACTIONS = Check("actions", False, "action-not-seen")
LIGHT = Check("light", True)


@pytest.mark.parametrize(
    ("mode", "checks", "told"),
    [
        ("1:few", (IDENTITY, LIGHT), ["not-verified"]),
        ("1:few", (IDENTITY, ACTIONS), ["action-not-seen"]),
        ("1:few", (LIGHT, ACTIONS), ["action-not-seen"]),
        # A replay is found only among the identified person's captures: it would say whose.
        ("1:few", (Check("replay", False, "replayed-frames"), LIGHT), ["not-verified"]),
        ("1:1", (Check("identity", False, "face-mismatch"), LIGHT), ["face-mismatch"]),
        ("1:1", (IDENTITY, ACTIONS), ["face-not-identified", "action-not-seen"]),
    ],
)
def test_the_phone_hears_no_more_than_it_may(
    mode: str, checks: tuple[Check, ...], told: list[str]
) -> None:
    assert _outcome(mode, *checks).phone_reasons == told


def test_a_passed_check_has_nothing_to_hide() -> None:
    assert _outcome("1:few", LIGHT).phone_reasons == []

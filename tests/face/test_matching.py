"""Matching on real faces: phone uploads of a person match that person's portrait and no one
else's at the configured threshold; identification among a few templates; templates from
several photos."""

from __future__ import annotations

import numpy as np
import pytest

from face.analysis import analyze_image
from face.engine import FaceEngine, Vector
from face.intake import decode_image
from face.matching import identify, mean_template, normalize, similarity, verify
from face.quality import QualityThresholds
from models.settings import Settings
from tests.face.corpus import BGR, PHONE_TRANSFORMS, encode

THRESHOLD = Settings().face_match_threshold
MARGIN = Settings().face_identify_margin


def _embedding(face_engine: FaceEngine, upload: bytes) -> Vector:
    analysis = analyze_image(
        face_engine, decode_image(upload), QualityThresholds(), single_face=False
    )
    assert analysis.embedding is not None
    return analysis.embedding


@pytest.fixture(scope="module")
def enrolled(face_engine: FaceEngine, people: dict[str, BGR]) -> dict[str, Vector]:
    """Each person's embedding from their portrait, sent as a lossless PNG."""
    return {name: _embedding(face_engine, encode(img, fmt="PNG")) for name, img in people.items()}


@pytest.fixture(scope="module")
def uploads(face_engine: FaceEngine, people: dict[str, BGR]) -> dict[tuple[str, str], Vector]:
    """(person, phone transformation) -> embedding of that upload."""
    return {
        (name, transform): _embedding(face_engine, apply(img))
        for name, img in people.items()
        for transform, apply in PHONE_TRANSFORMS.items()
    }


@pytest.fixture(scope="module")
def scores(
    enrolled: dict[str, Vector], uploads: dict[tuple[str, str], Vector]
) -> dict[tuple[str, str, str], float]:
    """(enrolled person, uploader, transformation) -> similarity."""
    return {
        (enrolled_name, uploader, transform): similarity(template, probe)
        for enrolled_name, template in enrolled.items()
        for (uploader, transform), probe in uploads.items()
    }


def test_default_threshold_is_the_one_these_tests_hold_to() -> None:
    assert 0 < THRESHOLD < 1
    assert 0 < MARGIN < 1


def test_every_phone_upload_matches_its_own_portrait(
    scores: dict[tuple[str, str, str], float],
) -> None:
    genuine = {key: score for key, score in scores.items() if key[0] == key[1]}
    assert len(genuine) >= 8 * len(PHONE_TRANSFORMS)

    rejected = {key: round(score, 3) for key, score in genuine.items() if score < THRESHOLD}

    assert rejected == {}


def test_no_phone_upload_matches_anyone_else(
    scores: dict[tuple[str, str, str], float],
) -> None:
    impostor = {key: score for key, score in scores.items() if key[0] != key[1]}

    accepted = {key: round(score, 3) for key, score in impostor.items() if score >= THRESHOLD}

    assert accepted == {}


def test_genuine_and_impostor_scores_are_far_apart(
    scores: dict[tuple[str, str, str], float],
) -> None:
    genuine = min((score, key) for key, score in scores.items() if key[0] == key[1])
    impostor = max((score, key) for key, score in scores.items() if key[0] != key[1])

    print(f"lowest genuine {genuine[0]:.3f} {genuine[1]}")
    print(f"highest impostor {impostor[0]:.3f} {impostor[1]}")
    print(f"threshold {THRESHOLD:.2f}, gap {genuine[0] - impostor[0]:.3f}")
    assert genuine[0] - impostor[0] > 0.15
    assert impostor[0] < THRESHOLD <= genuine[0]


def test_verify_accepts_from_the_threshold_up() -> None:
    template = np.array([1, 0, 0], dtype=np.float32)
    orthogonal = np.array([0, 3, 0], dtype=np.float32)

    assert verify(template, orthogonal, threshold=0.0).matched
    assert not verify(template, orthogonal, threshold=1e-6).matched
    assert verify(template, template * 5, threshold=0.99).similarity == pytest.approx(1.0)


FOUR = ("yaoming-0", "gdp-2", "t1-5", "players-0")


@pytest.mark.parametrize("person", FOUR)
@pytest.mark.parametrize("transform", ["rotate+15", "darker", "exif-rotated"])
def test_upload_is_identified_as_the_right_one_of_four_people(
    enrolled: dict[str, Vector],
    uploads: dict[tuple[str, str], Vector],
    person: str,
    transform: str,
) -> None:
    templates = {name: enrolled[name] for name in FOUR}

    result = identify(templates, uploads[(person, transform)], THRESHOLD, MARGIN)

    assert result.outcome == "identified"
    assert result.candidate == person
    assert set(result.scores) == set(FOUR)


def test_two_ids_holding_the_same_persons_template_are_ambiguous(
    enrolled: dict[str, Vector], uploads: dict[tuple[str, str], Vector]
) -> None:
    # The same expert enrolled twice (say under an old and a new record).
    templates = {
        "expert-17": enrolled["gdp-2"],
        "expert-42": enrolled["gdp-2"],
        "expert-08": enrolled["players-0"],
    }

    result = identify(templates, uploads[("gdp-2", "jpeg-q30")], THRESHOLD, MARGIN)

    assert result.outcome == "ambiguous"
    assert result.candidate is None
    assert result.scores["expert-17"] >= THRESHOLD


def test_stranger_matches_no_one(
    enrolled: dict[str, Vector], uploads: dict[tuple[str, str], Vector]
) -> None:
    templates = {name: enrolled[name] for name in FOUR}
    stranger = next(name for name in enrolled if name not in FOUR)

    result = identify(templates, uploads[(stranger, "scale-up")], THRESHOLD, MARGIN)

    assert result.outcome == "no-match"
    assert result.candidate is None
    assert max(result.scores.values()) < THRESHOLD


def test_nobody_enrolled_is_no_match() -> None:
    probe = np.ones(512, dtype=np.float32)

    assert identify({}, probe, THRESHOLD, MARGIN).outcome == "no-match"


def test_template_from_several_photos_is_unit_length_and_closer_to_them_than_strangers(
    enrolled: dict[str, Vector], uploads: dict[tuple[str, str], Vector]
) -> None:
    person = "players-5"
    members = [uploads[(person, t)] for t in ("scale-down", "rotate-12", "brighter", "webp")]
    strangers = [probe for (name, _), probe in uploads.items() if name != person]

    template = mean_template(members)

    assert float(np.linalg.norm(template)) == pytest.approx(1.0, abs=1e-6)
    nearest_stranger = max(similarity(member, s) for member in members for s in strangers)
    for member in members:
        assert similarity(template, member) > nearest_stranger
    # The template sits at least as close to the members, on average, as they are to each
    # other: averaging keeps what they share.
    mean_to_template = np.mean([similarity(template, m) for m in members])
    mean_between = np.mean(
        [similarity(a, b) for i, a in enumerate(members) for b in members[i + 1 :]]
    )
    assert mean_to_template >= mean_between
    assert similarity(template, enrolled[person]) >= THRESHOLD


def test_template_weighs_each_photo_equally_whatever_its_length() -> None:
    a = np.array([1, 0], dtype=np.float32)
    b = np.array([0, 10], dtype=np.float32)

    template = mean_template([a, b])

    assert template == pytest.approx(np.array([1, 1]) / np.sqrt(2))


def test_normalize_refuses_the_zero_vector() -> None:
    with pytest.raises(ValueError, match="zero"):
        normalize(np.zeros(512, dtype=np.float32))
    with pytest.raises(ValueError):
        mean_template([])


def test_normalize_gives_unit_length() -> None:
    vector = np.array([3, 4], dtype=np.float32)

    assert normalize(vector) == pytest.approx(np.array([0.6, 0.8]))

"""The evalsign-draw-v1 committee draw: the arithmetic replayed independently, the selection
walk, exclusions, and a verifier that names every tampered field."""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from api.cli import main
from evaluation.committee.draw_proof import (
    ALGORITHM,
    Candidate,
    Exclusion,
    NotEnoughExperts,
    ProofMismatch,
    SeatSpec,
    commitment_of,
    draw_committee,
    draw_seed,
    expert_key,
    new_server_secret,
    next_backup,
    verify_proof,
)

SECRET = bytes(range(32))
ENTROPY = "lottery 2024-123: 07 19 22 31 33 + 05"
DRAW_ID = "draw-2024-0001"


def _pool(spec: dict[str, str]) -> list[Candidate]:
    """Candidates from {expert_id: "A,B"}."""
    return [Candidate(expert_id, frozenset(codes.split(","))) for expert_id, codes in spec.items()]


def _sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _expected_ranking(specialty: str, ids: list[str]) -> list[tuple[str, str]]:
    """The spec's ranking, computed here without the module: (expert_id, key hex) by key."""
    seed = _sha(
        b"evalsign-draw-v1\x00" + SECRET + b"\x00" + ENTROPY.encode() + b"\x00" + b"draw-2024-0001"
    )
    keyed = [(_sha(seed + specialty.encode() + b"\x00" + i.encode()), i) for i in ids]
    keyed.sort(key=lambda pair: int.from_bytes(pair[0], "big"))
    return [(i, key.hex()) for key, i in keyed]


def _sample_draw() -> dict[str, Any]:
    pool = _pool(
        {
            "E01": "A01",
            "E02": "A01,B02",
            "E03": "A01",
            "E04": "A01,B02",
            "E05": "B02",
            "E06": "B02",
            "E07": "A01",
            "E08": "B02,C03",
            "E09": "C03",
            "E10": "A01",
        }
    )
    spec = [SeatSpec("A01", 2, 1), SeatSpec("B02", 1, 2)]
    exclusions = [Exclusion("E10", "employer-is-bidder")]
    return draw_committee(DRAW_ID, SECRET, ENTROPY, spec, pool, exclusions).proof


def test_seed_keys_and_order_match_an_independent_computation() -> None:
    seed = _sha(
        b"evalsign-draw-v1\x00" + SECRET + b"\x00" + ENTROPY.encode() + b"\x00" + DRAW_ID.encode()
    )
    assert draw_seed(SECRET, ENTROPY, DRAW_ID) == seed
    assert expert_key(seed, "A01", "E03") == _sha(seed + b"A01\x00E03")
    assert commitment_of(SECRET) == hashlib.sha256(SECRET).hexdigest()
    # Multi-byte UTF-8 in every text input.
    assert draw_seed(SECRET, "摇号", "抽取-1") == _sha(
        b"evalsign-draw-v1\x00" + SECRET + b"\x00" + "摇号".encode() + b"\x00" + "抽取-1".encode()
    )
    assert expert_key(seed, "建筑", "专家7") == _sha(
        seed + "建筑".encode() + b"\x00" + "专家7".encode()
    )

    proof = _sample_draw()
    assert proof["algorithm"] == "evalsign-draw-v1"
    assert proof["commitment"] == hashlib.sha256(SECRET).hexdigest()
    assert proof["server_secret"] == SECRET.hex()
    a01 = _expected_ranking("A01", ["E01", "E02", "E03", "E04", "E07"])  # E10 excluded
    b02 = _expected_ranking("B02", ["E02", "E04", "E05", "E06", "E08"])
    assert [(r["expert_id"], r["key"]) for r in proof["specialties"][0]["ranking"]] == a01
    assert [(r["expert_id"], r["key"]) for r in proof["specialties"][1]["ranking"]] == b02

    # The walk, replayed by hand: A01 takes its first three; B02 skips any of them.
    a_ids = [i for i, _ in a01]
    assert proof["specialties"][0]["selected"] == a_ids[:2]
    assert proof["specialties"][0]["backup_ids"] == a_ids[2:3]
    b_free = [i for i, _ in b02 if i not in a_ids[:3]]
    assert proof["specialties"][1]["selected"] == b_free[:1]
    assert proof["specialties"][1]["backup_ids"] == b_free[1:3]
    verify_proof(proof)


def test_committee_then_backups_and_cross_specialty_skipping() -> None:
    # Everyone has both specialties, so B02 must skip whatever A01 took.
    pool = _pool({f"E{n}": "A01,B02" for n in range(8)})
    result = draw_committee(
        DRAW_ID, SECRET, ENTROPY, [SeatSpec("A01", 2, 2), SeatSpec("B02", 2, 1)], pool, []
    )
    a_rank = [r["expert_id"] for r in result.proof["specialties"][0]["ranking"]]
    b_rank = [r["expert_id"] for r in result.proof["specialties"][1]["ranking"]]
    assert len(a_rank) == len(b_rank) == 8  # the ranking lists every eligible expert
    assert result.committee[:2] == (("A01", a_rank[0]), ("A01", a_rank[1]))
    assert result.backups["A01"] == (a_rank[2], a_rank[3])
    b_free = [i for i in b_rank if i not in a_rank[:4]]
    assert result.committee[2:] == (("B02", b_free[0]), ("B02", b_free[1]))
    assert result.backups["B02"] == (b_free[2],)
    taken = [e for _, e in result.committee] + [*result.backups["A01"], *result.backups["B02"]]
    assert len(taken) == len(set(taken)) == 7  # an expert in two specialties is taken once


def test_too_few_backups_is_not_an_error() -> None:
    pool = _pool({"E1": "A01", "E2": "A01", "E3": "A01"})
    result = draw_committee(DRAW_ID, SECRET, ENTROPY, [SeatSpec("A01", 2, 5)], pool, [])
    assert len(result.committee) == 2
    assert len(result.backups["A01"]) == 1


def test_fewer_eligible_than_seats_raises() -> None:
    pool = _pool({"E1": "A01,B02", "E2": "A01,B02", "E3": "B02", "E4": "A01"})
    with pytest.raises(NotEnoughExperts) as info:
        draw_committee(
            DRAW_ID,
            SECRET,
            ENTROPY,
            [SeatSpec("A01", 2, 1), SeatSpec("B02", 2, 0)],
            pool,
            [Exclusion("E4", "declined-recently")],
        )
    # A01 takes E1 and E2 (members + backup); B02 is left with E3 only.
    assert info.value.specialty == "B02"
    assert (info.value.seats, info.value.eligible, info.value.available) == (2, 3, 1)
    assert "B02" in str(info.value) and "needs 2" in str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"server_secret": b"short"}, "32 bytes"),
        ({"spec": []}, "no specialty"),
        ({"spec": [SeatSpec("A01", 1, 0), SeatSpec("A01", 1, 0)]}, "twice in the spec"),
        ({"spec": [SeatSpec("A01", 0, 0)]}, "seats must be"),
        ({"candidates": _pool({"E1": "A01"}) * 2}, "twice among the candidates"),
        ({"draw_id": "a\x00b"}, "NUL"),
        ({"candidates": _pool({"E\x001": "A01"})}, "NUL"),
    ],
)
def test_rejects_ambiguous_inputs(kwargs: dict[str, Any], message: str) -> None:
    arguments: dict[str, Any] = {
        "draw_id": DRAW_ID,
        "server_secret": SECRET,
        "public_entropy": ENTROPY,
        "spec": [SeatSpec("A01", 1, 0)],
        "candidates": _pool({"E1": "A01", "E2": "A01"}),
        "exclusions": [],
    } | kwargs
    with pytest.raises(ValueError, match=message):
        draw_committee(**arguments)


def test_deterministic_and_entropy_sensitive() -> None:
    pool = _pool({f"E{n:02d}": "A01" for n in range(30)})
    spec = [SeatSpec("A01", 3, 2)]
    first = draw_committee(DRAW_ID, SECRET, ENTROPY, spec, pool, []).proof
    again = draw_committee(DRAW_ID, SECRET, ENTROPY, spec, list(reversed(pool)), []).proof
    assert json.dumps(first) == json.dumps(again)  # candidate order does not matter
    other = draw_committee(DRAW_ID, SECRET, ENTROPY + ".", spec, pool, []).proof
    ids = [r["expert_id"] for r in first["specialties"][0]["ranking"]]
    assert ids != [r["expert_id"] for r in other["specialties"][0]["ranking"]]


def test_excluded_experts_are_never_ranked_and_listed_with_reasons() -> None:
    pool = _pool({f"E{n}": "A01" for n in range(6)})
    exclusions = [
        Exclusion("E1", "employer-is-bidder"),
        Exclusion("E4", "served-same-tenderer"),
        Exclusion("X9", "excluded-by-operator"),  # not in the pool: still recorded
    ]
    result = draw_committee(DRAW_ID, SECRET, ENTROPY, [SeatSpec("A01", 2, 2)], pool, exclusions)
    ranked = {r["expert_id"] for r in result.proof["specialties"][0]["ranking"]}
    assert ranked == {"E0", "E2", "E3", "E5"}
    assert result.proof["excluded"] == [
        {"expert_id": "E1", "reason": "employer-is-bidder"},
        {"expert_id": "E4", "reason": "served-same-tenderer"},
        {"expert_id": "X9", "reason": "excluded-by-operator"},
    ]
    verify_proof(result.proof)


def test_new_server_secret_is_32_random_bytes() -> None:
    a, b = new_server_secret(), new_server_secret()
    assert len(a) == len(b) == 32 and a != b


def test_a_real_proof_verifies_after_a_json_round_trip() -> None:
    proof = _sample_draw()
    verify_proof(json.loads(json.dumps(proof)))


def _swap_ranking(p: dict[str, Any]) -> None:
    ranking = p["specialties"][0]["ranking"]
    ranking[1], ranking[3] = ranking[3], ranking[1]


def _set(path: tuple[Any, ...], value: Any) -> Callable[[dict[str, Any]], None]:
    def alter(p: dict[str, Any]) -> None:
        target: Any = p
        for step in path[:-1]:
            target = target[step]
        target[path[-1]] = value(target[path[-1]]) if callable(value) else value

    return alter


def _flip_hex(h: str) -> str:
    return ("1" if h[0] == "0" else "0") + h[1:]


ALTERATIONS: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    ("commitment", _set(("commitment",), _flip_hex), "commitment"),
    ("server_secret", _set(("server_secret",), _flip_hex), "commitment"),
    (
        "public_entropy",
        _set(("public_entropy",), "lottery 2024-124"),
        "specialties[0].ranking[0].key",
    ),
    ("draw_id", _set(("draw_id",), "draw-2024-0002"), "specialties[1].ranking[0].key"),
    (
        "key",
        _set(("specialties", 0, "ranking", 2, "key"), _flip_hex),
        "specialties[0].ranking[2].key",
    ),
    ("ranking order", _swap_ranking, "specialties[0].ranking[1].expert_id"),
    ("selected", _set(("specialties", 1, "selected"), ["E09"]), "specialties[1].selected"),
    (
        "backup_ids",
        _set(("specialties", 0, "backup_ids"), lambda b: [*b, "E06"]),
        "specialties[0].backup_ids",
    ),
    ("seats", _set(("specialties", 0, "seats"), 1), "specialties[0].selected"),
    ("backups", _set(("specialties", 1, "backups"), 1), "specialties[1].backup_ids"),
    ("algorithm", _set(("algorithm",), "evalsign-draw-v2"), "algorithm"),
    (
        "uppercase key",
        _set(("specialties", 0, "ranking", 0, "key"), str.upper),
        "specialties[0].ranking[0].key",
    ),
    ("malformed secret", _set(("server_secret",), "zz" * 32), "server_secret"),
    ("short secret", _set(("server_secret",), "00" * 31), "server_secret"),
    ("seats as bool", _set(("specialties", 0, "seats"), True), "specialties[0].seats"),
    ("missing field", lambda p: p.pop("public_entropy"), "public_entropy"),
    (
        "missing ranking field",
        lambda p: p["specialties"][0].pop("backup_ids"),
        "specialties[0].backup_ids",
    ),
    ("extra field", _set(("note",), "trust me"), "note"),
    (
        "duplicate expert",
        lambda p: p["specialties"][0]["ranking"].append(dict(p["specialties"][0]["ranking"][0])),
        "specialties[0].ranking[5].expert_id",
    ),
    (
        "excluded expert ranked",
        lambda p: p["excluded"][0].update(expert_id=p["specialties"][0]["ranking"][0]["expert_id"]),
        "specialties[0].ranking[0].expert_id",
    ),
    ("no specialties", _set(("specialties",), []), "specialties"),
]


@pytest.mark.parametrize(
    ("alter", "path"), [(a, p) for _, a, p in ALTERATIONS], ids=[n for n, _, _ in ALTERATIONS]
)
def test_verify_names_every_altered_field(
    alter: Callable[[dict[str, Any]], None], path: str
) -> None:
    proof = _sample_draw()
    alter(proof)
    with pytest.raises(ProofMismatch) as info:
        verify_proof(proof)
    paths = [d.path for d in info.value.differences]
    assert path in paths, paths


def test_a_swap_names_both_positions_and_nothing_else() -> None:
    proof = _sample_draw()
    _swap_ranking(proof)
    with pytest.raises(ProofMismatch) as info:
        verify_proof(proof)
    ranking = proof["specialties"][0]["ranking"]
    assert [d.as_json() for d in info.value.differences] == [
        {
            "path": "specialties[0].ranking[1].expert_id",
            "expected": ranking[3]["expert_id"],
            "found": ranking[1]["expert_id"],
        },
        {
            "path": "specialties[0].ranking[3].expert_id",
            "expected": ranking[1]["expert_id"],
            "found": ranking[3]["expert_id"],
        },
    ]


def test_a_non_object_proof_is_a_mismatch() -> None:
    with pytest.raises(ProofMismatch):
        verify_proof([])  # type: ignore[arg-type]


def test_next_backup_skips_unavailable_and_runs_out() -> None:
    pool = _pool({f"E{n}": "A01" for n in range(6)})
    result = draw_committee(DRAW_ID, SECRET, ENTROPY, [SeatSpec("A01", 2, 3)], pool, [])
    first, second, third = result.backups["A01"]
    assert next_backup(result.proof, "A01", set()) == first
    assert next_backup(result.proof, "A01", {first}) == second
    assert result.next_backup("A01", {first, second}) == third
    assert next_backup(result.proof, "A01", {first, second, third}) is None
    with pytest.raises(KeyError):
        next_backup(result.proof, "Z99", set())


def test_cli_verifies_a_proof(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    proof = _sample_draw()
    path = tmp_path / "proof.json"
    path.write_text(json.dumps(proof, ensure_ascii=False), encoding="utf-8")
    assert main(["draw", "verify", str(path)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] is True and out["draw_id"] == DRAW_ID
    assert [e["expert_id"] for e in out["committee"]] == (
        proof["specialties"][0]["selected"] + proof["specialties"][1]["selected"]
    )

    altered = copy.deepcopy(proof)
    altered["commitment"] = _flip_hex(altered["commitment"])
    path.write_text(json.dumps(altered), encoding="utf-8")
    assert main(["draw", "verify", str(path)]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] is False
    assert [d["path"] for d in out["differences"]] == ["commitment"]

    path.write_text("{not json", encoding="utf-8")
    assert main(["draw", "verify", str(path)]) == 2
    assert main(["draw", "verify", str(tmp_path / "absent.json")]) == 2
    assert ALGORITHM == "evalsign-draw-v1"

"""The supplementary draw ``evalsign-draw-supplementary-v1`` and the chain of proofs: the
arithmetic replayed independently, nobody drawn or excluded before is ranked again, and a
verifier that names the link that broke (a changed previous hash, a re-drawn expert, links
swapped or dropped)."""

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
    SUPPLEMENTARY,
    Candidate,
    ChainMismatch,
    Exclusion,
    NotEnoughExperts,
    ProofMismatch,
    SeatSpec,
    canonical_json,
    committee_of_chain,
    draw_committee,
    draw_supplementary,
    prior_experts,
    proof_hash,
    supplementary_commitment,
    supplementary_seed,
    verify_chain,
    verify_proof,
)

FIRST_SECRET = bytes(range(32))
SECOND_SECRET = bytes(range(32, 64))
THIRD_SECRET = bytes(range(64, 96))


def _pool(spec: dict[str, str]) -> list[Candidate]:
    return [Candidate(expert_id, frozenset(codes.split(","))) for expert_id, codes in spec.items()]


POOL = _pool(
    {
        **{f"A{n:02d}": "A01" for n in range(9)},
        **{f"B{n:02d}": "B02" for n in range(6)},
        "AB": "A01,B02",
    }
)


def _left_in_a01(first: dict[str, Any]) -> str:
    return next(
        c.expert_id
        for c in POOL
        if "A01" in c.specialties and c.expert_id not in prior_experts([first])
    )


def _chain() -> list[dict[str, Any]]:
    """A first draw (A01 3+1, B02 2+1; B05 conflicted), then two supplementary draws; the
    first of them finds a new conflict among the A01 experts left."""
    first = draw_committee(
        "draw-1",
        FIRST_SECRET,
        "07 19 22",
        [SeatSpec("A01", 3, 1), SeatSpec("B02", 2, 1)],
        POOL,
        [Exclusion("B05", "employer-is-bidder")],
    ).proof
    second = draw_supplementary(
        "draw-2",
        SECOND_SECRET,
        "31 33 05",
        [SeatSpec("A01", 1, 0)],
        POOL,
        [
            Exclusion(_left_in_a01(first), "declined-recently"),
            Exclusion("B05", "employer-is-bidder"),
        ],
        chain=[first],
    ).proof
    third = draw_supplementary(
        "draw-3", THIRD_SECRET, "12 40 41", [SeatSpec("B02", 1, 1)], POOL, [], chain=[first, second]
    ).proof
    return [first, second, third]


def test_canonical_json_is_sorted_compact_utf8() -> None:
    value = {"b": [1, "专家"], "a": {"y": "\n", "x": 2}}
    assert canonical_json(value) == '{"a":{"x":2,"y":"\\n"},"b":[1,"专家"]}'.encode()
    first = _chain()[0]
    shuffled = dict(reversed(list(first.items())))
    assert proof_hash(shuffled) == proof_hash(first)  # key order does not matter
    assert proof_hash(first) == hashlib.sha256(canonical_json(first)).hexdigest()


def test_commitment_and_seed_match_an_independent_computation() -> None:
    first, second, _ = _chain()
    previous = hashlib.sha256(
        json.dumps(first, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    ).hexdigest()
    assert second["previous_proof_hash"] == previous
    prior = sorted(
        {e for s in first["specialties"] for e in s["selected"] + s["backup_ids"]} | {"B05"}
    )
    assert second["prior"] == prior == prior_experts([first])
    binding = (
        '{"draw_id":"draw-2","previous_proof_hash":"'
        + previous
        + '","prior":['
        + ",".join(f'"{p}"' for p in prior)
        + '],"spec":[{"backups":0,"seats":1,"specialty":"A01"}]}'
    )
    commitment = hashlib.sha256(
        b"evalsign-draw-supplementary-v1\x00" + SECOND_SECRET + b"\x00" + binding.encode()
    ).hexdigest()
    assert second["commitment"] == commitment
    assert commitment == supplementary_commitment(
        SECOND_SECRET,
        draw_id="draw-2",
        previous_proof_hash=previous,
        prior=prior,
        spec=[SeatSpec("A01", 1, 0)],
    )
    seed = hashlib.sha256(
        b"evalsign-draw-supplementary-v1\x00"
        + SECOND_SECRET
        + b"\x0031 33 05\x00draw-2\x00"
        + previous.encode()
    ).digest()
    assert supplementary_seed(SECOND_SECRET, "31 33 05", "draw-2", previous) == seed
    ranking = second["specialties"][0]["ranking"]
    for entry in ranking:
        key = hashlib.sha256(seed + b"A01\x00" + entry["expert_id"].encode()).hexdigest()
        assert entry["key"] == key
    assert [e["key"] for e in ranking] == sorted(e["key"] for e in ranking)
    assert second["algorithm"] == SUPPLEMENTARY


def test_nobody_drawn_or_excluded_before_is_ranked_again() -> None:
    first, second, third = _chain()
    earlier = set(prior_experts([first]))
    ranked = {e["expert_id"] for e in second["specialties"][0]["ranking"]}
    assert ranked and not ranked & earlier
    conflicted = _left_in_a01(first)
    assert conflicted not in ranked  # a new conflict, excluded with its reason
    # Only the new conflict is listed: B05 was excluded by the first draw already.
    assert second["excluded"] == [{"expert_id": conflicted, "reason": "declined-recently"}]
    assert set(third["prior"]) == earlier | set(second["specialties"][0]["selected"]) | {conflicted}
    assert not {e["expert_id"] for e in third["specialties"][0]["ranking"]} & set(third["prior"])


def test_a_chain_replays_and_a_single_proof_is_a_chain_of_one() -> None:
    chain = _chain()
    assert verify_chain(json.loads(json.dumps(chain))) == chain
    assert verify_chain(chain[0]) == [chain[0]]
    committee = committee_of_chain(chain)
    assert [link for link, _, _ in committee] == [0] * 5 + [1, 2]
    assert committee[5][1:] == ("A01", chain[1]["specialties"][0]["selected"][0])


def test_too_few_left_for_a_supplementary_draw_raises() -> None:
    first = _chain()[0]
    with pytest.raises(NotEnoughExperts):
        draw_supplementary(
            "draw-x", SECOND_SECRET, "1", [SeatSpec("B02", 4, 0)], POOL, [], chain=[first]
        )
    with pytest.raises(ValueError, match="follows at least"):
        draw_supplementary(
            "draw-x", SECOND_SECRET, "1", [SeatSpec("B02", 1, 0)], POOL, [], chain=[]
        )


def _redraw_an_earlier_expert(chain: list[dict[str, Any]]) -> None:
    """The center ranks (and seats) someone the first draw had already taken."""
    entry = chain[1]["specialties"][0]
    taken = chain[0]["specialties"][0]["selected"][0]
    entry["ranking"].insert(0, {"expert_id": taken, "key": "00" * 32})
    entry["selected"] = [taken]


def _set(link: int, field: str, value: Any) -> Callable[[list[dict[str, Any]]], None]:
    def alter(chain: list[dict[str, Any]]) -> None:
        chain[link][field] = value(chain[link][field]) if callable(value) else value

    return alter


def _flip_hex(h: str) -> str:
    return ("1" if h[0] == "0" else "0") + h[1:]


TAMPERED: list[tuple[str, Callable[[list[dict[str, Any]]], object], int, str]] = [
    ("previous hash", _set(1, "previous_proof_hash", _flip_hex), 1, "[1].previous_proof_hash"),
    # A reason is not arithmetic, but the next link's hash pins every byte of the first.
    (
        "first proof edited",
        lambda c: c[0]["excluded"][0].update(reason="excluded-by-operator"),
        1,
        "[1].previous_proof_hash",
    ),
    ("re-drawn expert", _redraw_an_earlier_expert, 1, "[1].specialties[0].ranking[0].expert_id"),
    ("prior shortened", _set(1, "prior", lambda p: p[1:]), 1, "[1].prior"),
    ("commitment", _set(2, "commitment", _flip_hex), 2, "[2].commitment"),
    ("secret", _set(2, "server_secret", _flip_hex), 2, "[2].commitment"),
    (
        "seats changed after the commitment",
        lambda c: c[2]["specialties"][0].update(seats=2),
        2,
        "[2].commitment",
    ),
    ("entropy", _set(1, "public_entropy", "31 33 06"), 1, "[1].specialties[0].ranking[0].key"),
    ("swapped order", lambda c: c.insert(1, c.pop(2)), 1, "[1].previous_proof_hash"),
    ("supplementary first", lambda c: c.insert(0, c.pop(1)), 0, "[0].algorithm"),
    ("first draw later", lambda c: c.append(c.pop(0)), 0, "[0].algorithm"),
    ("link dropped", lambda c: c.pop(1), 1, "[1].previous_proof_hash"),
    ("extra field", _set(1, "note", "trust me"), 1, "[1].note"),
    ("missing hash", lambda c: c[2].pop("previous_proof_hash"), 2, "[2].previous_proof_hash"),
]


@pytest.mark.parametrize(
    ("alter", "link", "path"),
    [(a, link, p) for _, a, link, p in TAMPERED],
    ids=[n for n, _, _, _ in TAMPERED],
)
def test_verify_names_the_broken_link(
    alter: Callable[[list[dict[str, Any]]], object], link: int, path: str
) -> None:
    chain = _chain()
    alter(chain)
    with pytest.raises(ChainMismatch) as info:
        verify_chain(chain)
    assert info.value.link == link
    assert info.value.draw_id == chain[link]["draw_id"]
    paths = [d.path for d in info.value.differences]
    assert path in paths, paths


def test_a_re_drawn_expert_is_named_as_drawn_before() -> None:
    chain = _chain()
    _redraw_an_earlier_expert(chain)
    with pytest.raises(ChainMismatch) as info:
        verify_chain(chain)
    named = next(
        d for d in info.value.differences if d.path == "[1].specialties[0].ranking[0].expert_id"
    )
    assert named.expected == "not an expert drawn or excluded earlier in the chain"


def test_not_a_chain_is_a_mismatch() -> None:
    for value in ([], "proof", [_chain()[0], "link"]):
        with pytest.raises(ProofMismatch):
            verify_chain(value)
    # A supplementary proof alone is not a first draw.
    with pytest.raises(ProofMismatch):
        verify_proof(_chain()[1])


def test_cli_replays_a_chain_and_names_the_broken_link(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    chain = _chain()
    path = tmp_path / "draw-proof.json"
    path.write_text(json.dumps(chain, ensure_ascii=False), encoding="utf-8")
    assert main(["draw", "verify", str(path)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] is True and out["draw_id"] == "draw-3"
    assert [link["draw_id"] for link in out["links"]] == ["draw-1", "draw-2", "draw-3"]
    assert [(m["link"], m["specialty"]) for m in out["committee"]] == [
        (0, "A01"),
        (0, "A01"),
        (0, "A01"),
        (0, "B02"),
        (0, "B02"),
        (1, "A01"),
        (2, "B02"),
    ]

    altered = copy.deepcopy(chain)
    altered[1]["previous_proof_hash"] = _flip_hex(altered[1]["previous_proof_hash"])
    path.write_text(json.dumps(altered), encoding="utf-8")
    assert main(["draw", "verify", str(path)]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] is False and out["link"] == 1 and out["draw_id"] == "draw-2"
    # The next link names the altered one's hash: it breaks too.
    paths = [d["path"] for d in out["differences"]]
    assert paths[0] == "[1].previous_proof_hash"
    assert all(p.startswith("[2].") for p in paths[1:]) and "[2].previous_proof_hash" in paths

    path.write_text("[]", encoding="utf-8")
    assert main(["draw", "verify", str(path)]) == 1

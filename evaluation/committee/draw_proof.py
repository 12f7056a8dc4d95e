"""The verifiable committee draw ``evalsign-draw-v1``, and the supplementary draw
``evalsign-draw-supplementary-v1`` chained to it: pure functions from published inputs to a
committee, and the proofs that let anyone replay them.

The first draw (a public spec; nothing else is needed to replay a draw):

1. Before the draw the center publishes ``commitment = hex(SHA-256(server_secret))``, where
   ``server_secret`` is 32 random bytes kept private until the draw has run. The commitment
   stops the center from choosing a secret after seeing ``public_entropy``.
2. ``public_entropy`` is a string nobody controls in advance (e.g. a lottery result or a
   block hash published after the commitment); ``draw_id`` names the draw.
   ``seed = SHA-256(b"evalsign-draw-v1" || 0x00 || server_secret || 0x00
   || UTF-8(public_entropy) || 0x00 || UTF-8(draw_id))`` (the raw 32 bytes).
3. For each specialty of the spec, in the order given, every eligible expert of that
   specialty (a candidate with that specialty who is not excluded) gets
   ``key = SHA-256(seed || UTF-8(specialty) || 0x00 || UTF-8(expert_id))``. The ranking is
   those experts sorted by key read as a 256-bit big-endian unsigned integer, ascending
   (equal keys, which need a SHA-256 collision, would be ordered by expert_id as Unicode code
   points).
4. Walking a ranking and skipping every expert already taken (as a member or a backup, by
   this or an earlier specialty), the first ``seats`` experts join the committee and the next
   ``backups`` become that specialty's backups, in order. Fewer than ``seats`` experts left
   means the draw cannot be held (:class:`NotEnoughExperts`).

The proof (JSON, hex in lowercase)::

    {"algorithm": "evalsign-draw-v1", "draw_id": ..., "commitment": ...,
     "server_secret": ..., "public_entropy": ...,
     "specialties": [{"specialty": ..., "seats": n, "backups": m,
                      "ranking": [{"expert_id": ..., "key": ...}, ...],
                      "selected": [expert_id, ...], "backup_ids": [expert_id, ...]}, ...],
     "excluded": [{"expert_id": ..., "reason": ...}, ...]}

A supplementary draw fills seats left vacant once a specialty's backups are used up. It
follows the steps above with three changes:

a. It names the proof it follows: ``previous_proof_hash = hex(SHA-256(canonical(previous)))``,
   where ``canonical`` is the RFC 8785 (JCS) encoding of the previous proof as published:
   UTF-8, object keys sorted, no whitespace, strings escaped as JSON requires and nothing
   more. Proofs hold only strings, integers, lists and objects with ASCII keys, for which
   that is Python's ``json.dumps(p, sort_keys=True, separators=(",", ":"),
   ensure_ascii=False).encode()``.
b. ``prior`` is every expert the earlier proofs of the chain drew (selected or backup) or
   excluded, sorted by code point without repeats. Nobody in ``prior`` is ranked again: the
   supplementary draw cannot re-roll the first one. Its own ``excluded`` lists the new
   conflicts among the others.
c. ``commitment = hex(SHA-256(b"evalsign-draw-supplementary-v1" || 0x00 || server_secret
   || 0x00 || canonical({"draw_id": ..., "previous_proof_hash": ..., "prior": [...],
   "spec": [{"specialty": ..., "seats": n, "backups": m}, ...]})))``: published before the
   entropy, it binds the secret to the chain so far, who is out, and the seats to fill.
   ``seed = SHA-256(b"evalsign-draw-supplementary-v1" || 0x00 || server_secret || 0x00
   || UTF-8(public_entropy) || 0x00 || UTF-8(draw_id) || 0x00 || previous_proof_hash)``
   (the hash as its 64 ASCII hex digits); keys, rankings and the walk are as in 3 and 4.

Its proof has the first draw's fields with ``"algorithm":
"evalsign-draw-supplementary-v1"``, plus ``"previous_proof_hash"`` and ``"prior"``.

A chain is the JSON list of proofs in draw order: the first is an ``evalsign-draw-v1``
proof, each later one a supplementary proof naming the hash of the one before it. A single
proof object is a chain of one. :func:`verify_chain` checks every link: the first draw's
replay, then for each supplementary proof the previous proof's hash, ``prior`` against the
earlier proofs, the commitment's binding, that no earlier expert is ranked, and its replay.

:func:`verify_proof` recomputes the commitment, the seed, every key, every ranking's order
and the selection walk from the proof alone. The rankings are the eligible set as the center
published it: who was eligible, and why others were excluded, is checked against the registry
and the exclusion reasons, not by this arithmetic.

No strings may contain NUL (0x00): it is the field separator, so forbidding it keeps every
hash input unambiguous.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Iterable, Mapping, Sequence, Set
from dataclasses import dataclass, field
from itertools import chain
from operator import attrgetter
from typing import Any, TypeGuard

from evaluation.kernel.errors import DomainError

ALGORITHM = "evalsign-draw-v1"
SUPPLEMENTARY = "evalsign-draw-supplementary-v1"
SECRET_BYTES = 32
_SEP = b"\x00"
_HEX_DIGITS = frozenset("0123456789abcdef")
_TOP_FIELDS = (
    "algorithm",
    "draw_id",
    "commitment",
    "server_secret",
    "public_entropy",
    "specialties",
    "excluded",
)
_SUPPLEMENTARY_FIELDS = (
    "algorithm",
    "draw_id",
    "previous_proof_hash",
    "prior",
    "commitment",
    "server_secret",
    "public_entropy",
    "specialties",
    "excluded",
)
_SPECIALTY_FIELDS = ("specialty", "seats", "backups", "ranking", "selected", "backup_ids")
_RANKING_FIELDS = frozenset(("expert_id", "key"))


@dataclass(frozen=True)
class SeatSpec:
    """How many members and ordered backups a specialty contributes to the committee."""

    specialty: str
    seats: int
    backups: int


@dataclass(frozen=True)
class Candidate:
    """An expert in the pool, with every specialty code they are registered for."""

    expert_id: str
    specialties: frozenset[str]


@dataclass(frozen=True)
class Exclusion:
    """An expert kept out of this draw; the caller decides the reason code
    (``employer-is-bidder``, ``declined-recently``, ...), the proof records it."""

    expert_id: str
    reason: str


class NotEnoughExperts(DomainError):
    """A specialty has fewer experts left (eligible and not already taken) than seats."""

    status = 409
    code = "not-enough-experts"
    title = "Too few eligible experts for the committee spec"

    def __init__(self, specialty: str, seats: int, eligible: int, available: int) -> None:
        super().__init__(
            f"specialty {specialty!r} needs {seats} experts but only {available} are available "
            f"({eligible} eligible, {eligible - available} already taken by earlier specialties)",
            specialty=specialty,
            seats=seats,
            eligible=eligible,
            available=available,
        )
        self.specialty = specialty
        self.seats = seats
        self.eligible = eligible
        self.available = available


@dataclass(frozen=True)
class Difference:
    """One way a proof departs from its replay: the field, what replay gives, what was found."""

    path: str
    expected: Any
    found: Any

    def as_json(self) -> dict[str, Any]:
        return {"path": self.path, "expected": self.expected, "found": self.found}


class ProofMismatch(Exception):
    """The proof does not replay; ``differences`` names every field that is wrong."""

    def __init__(self, differences: Sequence[Difference]) -> None:
        self.differences = list(differences)
        shown = ", ".join(d.path for d in self.differences[:5])
        more = len(self.differences) - 5
        super().__init__(
            f"{len(self.differences)} difference(s): {shown}"
            + (f" (+{more} more)" if more > 0 else "")
        )


@dataclass(frozen=True)
class DrawResult:
    """The outcome of a draw: committee members in draw order, backups per specialty, and
    the proof to publish."""

    committee: tuple[tuple[str, str], ...]  # (specialty, expert_id)
    backups: Mapping[str, tuple[str, ...]]
    proof: dict[str, Any] = field(repr=False)

    def next_backup(self, specialty: str, unavailable: Set[str]) -> str | None:
        return next_backup(self.proof, specialty, unavailable)


def new_server_secret() -> bytes:
    return secrets.token_bytes(SECRET_BYTES)


def commitment_of(server_secret: bytes) -> str:
    return hashlib.sha256(server_secret).hexdigest()


def draw_seed(server_secret: bytes, public_entropy: str, draw_id: str) -> bytes:
    return hashlib.sha256(
        ALGORITHM.encode()
        + _SEP
        + server_secret
        + _SEP
        + public_entropy.encode()
        + _SEP
        + draw_id.encode()
    ).digest()


def expert_key(seed: bytes, specialty: str, expert_id: str) -> bytes:
    return hashlib.sha256(seed + specialty.encode() + _SEP + expert_id.encode()).digest()


def _rank(seed: bytes, specialty: str, expert_ids: Sequence[str]) -> tuple[list[int], list[bytes]]:
    """Every expert's key, and the ranking as indexes into ``expert_ids``.

    The hot loop of a draw: one hash per expert with the prefix built once, and a sort of
    indexes by key (cheaper than sorting (key, id) tuples). Equal-length digests compare as
    bytes exactly as they do as big-endian unsigned integers.
    """
    prefix = seed + specialty.encode() + _SEP
    sha256 = hashlib.sha256
    keys = [sha256(prefix + expert_id.encode()).digest() for expert_id in expert_ids]
    if len(set(keys)) == len(keys):
        order = sorted(range(len(keys)), key=keys.__getitem__)
    else:  # only duplicate ids (or a SHA-256 collision) get here: ties go by expert_id
        order = sorted(range(len(keys)), key=lambda i: (keys[i], expert_ids[i]))
    return order, keys


def _walk(
    ranked: Iterable[str], seats: int, backups: int, taken: set[str]
) -> tuple[int, list[str]]:
    """The first ``seats + backups`` experts of a ranking not yet taken; marks them taken.
    Returns how many were available in all, and those drawn (members first)."""
    available = [expert_id for expert_id in ranked if expert_id not in taken]
    drawn = available[: seats + backups]
    taken.update(drawn)
    return len(available), drawn


def _has_nul(values: Iterable[str]) -> bool:
    return "\x00" in "".join(values)


def _check_inputs(
    draw_id: str,
    server_secret: bytes,
    public_entropy: str,
    spec: Sequence[SeatSpec],
    candidates: Sequence[Candidate],
) -> None:
    if len(server_secret) != SECRET_BYTES:
        raise ValueError(f"server_secret must be {SECRET_BYTES} bytes, got {len(server_secret)}")
    if not spec:
        raise ValueError("the spec names no specialty")
    wanted = [seat.specialty for seat in spec]
    if len(set(wanted)) != len(wanted):
        raise ValueError("a specialty appears twice in the spec")
    for seat in spec:
        if seat.seats < 1 or seat.backups < 0:
            raise ValueError(f"specialty {seat.specialty!r}: seats must be >= 1, backups >= 0")
    if _has_nul([draw_id, public_entropy, *wanted]):
        raise ValueError("draw_id, public_entropy and specialties may not contain NUL")
    candidate_ids = list(map(attrgetter("expert_id"), candidates))
    if len(set(candidate_ids)) != len(candidate_ids):
        raise ValueError("an expert appears twice among the candidates")


def _select(
    seed: bytes, spec: Sequence[SeatSpec], candidates: Sequence[Candidate], excluded: Set[str]
) -> tuple[list[tuple[str, str]], dict[str, tuple[str, ...]], list[dict[str, Any]]]:
    """Steps 3 and 4: the committee, the backups per specialty and the proof's entries."""
    # One pass over the pool, grouping eligible ids by the specialties the spec asks for.
    eligible: dict[str, list[str]] = {seat.specialty: [] for seat in spec}
    for candidate in candidates:
        if candidate.expert_id in excluded:
            continue
        for specialty in candidate.specialties:
            bucket = eligible.get(specialty)
            if bucket is not None:
                bucket.append(candidate.expert_id)
    if _has_nul(chain.from_iterable(eligible.values())):
        raise ValueError("expert ids may not contain NUL")

    taken: set[str] = set()
    committee: list[tuple[str, str]] = []
    backups: dict[str, tuple[str, ...]] = {}
    entries: list[dict[str, Any]] = []
    for seat in spec:
        ids = eligible[seat.specialty]
        order, keys = _rank(seed, seat.specialty, ids)
        # map() over the order keeps these per-expert steps out of the interpreter loop.
        ranked = list(map(ids.__getitem__, order))
        available, drawn = _walk(ranked, seat.seats, seat.backups, taken)
        if available < seat.seats:
            raise NotEnoughExperts(seat.specialty, seat.seats, len(ids), available)
        selected, backup_ids = drawn[: seat.seats], drawn[seat.seats :]
        committee.extend((seat.specialty, expert_id) for expert_id in selected)
        backups[seat.specialty] = tuple(backup_ids)
        entries.append(
            {
                "specialty": seat.specialty,
                "seats": seat.seats,
                "backups": seat.backups,
                "ranking": [
                    {"expert_id": expert_id, "key": key.hex()}
                    for expert_id, key in zip(ranked, map(keys.__getitem__, order), strict=True)
                ],
                "selected": selected,
                "backup_ids": backup_ids,
            }
        )
    return committee, backups, entries


def draw_committee(
    draw_id: str,
    server_secret: bytes,
    public_entropy: str,
    spec: Sequence[SeatSpec],
    candidates: Sequence[Candidate],
    exclusions: Sequence[Exclusion],
) -> DrawResult:
    """Run the draw over ``candidates`` minus ``exclusions``; see the module docstring."""
    _check_inputs(draw_id, server_secret, public_entropy, spec, candidates)
    seed = draw_seed(server_secret, public_entropy, draw_id)
    excluded = {exclusion.expert_id for exclusion in exclusions}
    committee, backups, entries = _select(seed, spec, candidates, excluded)
    proof = {
        "algorithm": ALGORITHM,
        "draw_id": draw_id,
        "commitment": commitment_of(server_secret),
        "server_secret": server_secret.hex(),
        "public_entropy": public_entropy,
        "specialties": entries,
        "excluded": [{"expert_id": e.expert_id, "reason": e.reason} for e in exclusions],
    }
    return DrawResult(committee=tuple(committee), backups=backups, proof=proof)


# The chain ---------------------------------------------------------------------------------


def canonical_json(value: Any) -> bytes:
    """RFC 8785 for what proofs hold (strings, integers, lists, objects with ASCII keys)."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


def proof_hash(proof: Any) -> str:
    """What the next supplementary draw names as ``previous_proof_hash``."""
    return hashlib.sha256(canonical_json(proof)).hexdigest()


def prior_experts(chain: Iterable[Mapping[str, Any]]) -> list[str]:
    """Every expert the proofs drew (selected or backup) or excluded, sorted, once each."""
    found: set[str] = set()
    for proof in chain:
        for entry in proof["specialties"]:
            found.update(entry["selected"], entry["backup_ids"])
        found.update(item["expert_id"] for item in proof["excluded"])
    return sorted(found)


def _binding(
    draw_id: str, previous_proof_hash: str, prior: Sequence[str], spec: Sequence[SeatSpec]
) -> bytes:
    return canonical_json(
        {
            "draw_id": draw_id,
            "previous_proof_hash": previous_proof_hash,
            "prior": sorted(set(prior)),
            "spec": [
                {"specialty": s.specialty, "seats": s.seats, "backups": s.backups} for s in spec
            ],
        }
    )


def supplementary_commitment(
    server_secret: bytes,
    *,
    draw_id: str,
    previous_proof_hash: str,
    prior: Sequence[str],
    spec: Sequence[SeatSpec],
) -> str:
    """Step c's commitment: the secret bound to the chain so far, who is out, the seats."""
    return hashlib.sha256(
        SUPPLEMENTARY.encode()
        + _SEP
        + server_secret
        + _SEP
        + _binding(draw_id, previous_proof_hash, prior, spec)
    ).hexdigest()


def supplementary_seed(
    server_secret: bytes, public_entropy: str, draw_id: str, previous_proof_hash: str
) -> bytes:
    return hashlib.sha256(
        SUPPLEMENTARY.encode()
        + _SEP
        + server_secret
        + _SEP
        + public_entropy.encode()
        + _SEP
        + draw_id.encode()
        + _SEP
        + previous_proof_hash.encode()
    ).digest()


def draw_supplementary(
    draw_id: str,
    server_secret: bytes,
    public_entropy: str,
    spec: Sequence[SeatSpec],
    candidates: Sequence[Candidate],
    exclusions: Sequence[Exclusion],
    *,
    chain: Sequence[Mapping[str, Any]],
) -> DrawResult:
    """A supplementary draw after the proofs of ``chain`` (the first draw's first): nobody
    they drew or excluded is ranked; see the module docstring."""
    if not chain:
        raise ValueError("a supplementary draw follows at least the first draw")
    _check_inputs(draw_id, server_secret, public_entropy, spec, candidates)
    previous = proof_hash(chain[-1])
    prior = prior_experts(chain)
    out = set(prior)
    fresh = [e for e in exclusions if e.expert_id not in out]
    seed = supplementary_seed(server_secret, public_entropy, draw_id, previous)
    committee, backups, entries = _select(
        seed, spec, candidates, out | {e.expert_id for e in fresh}
    )
    proof = {
        "algorithm": SUPPLEMENTARY,
        "draw_id": draw_id,
        "previous_proof_hash": previous,
        "prior": prior,
        "commitment": supplementary_commitment(
            server_secret, draw_id=draw_id, previous_proof_hash=previous, prior=prior, spec=spec
        ),
        "server_secret": server_secret.hex(),
        "public_entropy": public_entropy,
        "specialties": entries,
        "excluded": [{"expert_id": e.expert_id, "reason": e.reason} for e in fresh],
    }
    return DrawResult(committee=tuple(committee), backups=backups, proof=proof)


def committee_of(proof: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The committee a (verified) proof records, as (specialty, expert_id) in draw order."""
    return [
        (entry["specialty"], expert_id)
        for entry in proof["specialties"]
        for expert_id in entry["selected"]
    ]


def next_backup(proof: Mapping[str, Any], specialty: str, unavailable: Set[str]) -> str | None:
    """The first backup of ``specialty`` not in ``unavailable`` (declined, recused, ...), or
    None when that specialty's backups are exhausted."""
    for entry in proof["specialties"]:
        if entry["specialty"] == specialty:
            return next((b for b in entry["backup_ids"] if b not in unavailable), None)
    raise KeyError(f"specialty {specialty!r} is not in draw {proof.get('draw_id')!r}")


# Verification ------------------------------------------------------------------------------


def _hex_bytes(value: Any, size: int) -> bytes | None:
    if isinstance(value, str) and len(value) == 2 * size and _HEX_DIGITS.issuperset(value):
        return bytes.fromhex(value)
    return None


def _is_count(value: Any, minimum: int) -> TypeGuard[int]:
    # bool is an int subclass; true/false in JSON is not a count.
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def _is_text(value: Any) -> TypeGuard[str]:
    return isinstance(value, str) and "\x00" not in value


def _check_fields(
    obj: Mapping[str, Any], path: str, names: Iterable[str], diffs: list[Difference]
) -> bool:
    """Every named field present and no other; returns whether all are present."""
    names = tuple(names)
    prefix = f"{path}." if path else ""
    missing = [name for name in names if name not in obj]
    diffs.extend(Difference(prefix + name, "present", "missing") for name in missing)
    diffs.extend(
        Difference(prefix + str(name), "absent", "present") for name in obj if name not in names
    )
    return not missing


def _check_id_list(value: Any, path: str, diffs: list[Difference]) -> list[str] | None:
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return value
    diffs.append(Difference(path, "a list of expert ids", value))
    return None


def _check_excluded(value: Any, diffs: list[Difference]) -> set[str]:
    if not isinstance(value, list):
        diffs.append(Difference("excluded", "a list", value))
        return set()
    excluded: set[str] = set()
    for k, item in enumerate(value):
        path = f"excluded[{k}]"
        if not isinstance(item, Mapping):
            diffs.append(Difference(path, "an object", item))
            continue
        if not _check_fields(item, path, ("expert_id", "reason"), diffs):
            continue
        if isinstance(item["expert_id"], str):
            excluded.add(item["expert_id"])
        else:
            diffs.append(Difference(f"{path}.expert_id", "a string", item["expert_id"]))
        if not isinstance(item["reason"], str) or not item["reason"]:
            diffs.append(Difference(f"{path}.reason", "a reason code", item["reason"]))
    return excluded


def _check_ranking(
    value: Any, path: str, ruled_out: Mapping[str, str], diffs: list[Difference]
) -> tuple[list[str], list[Any]] | None:
    """The ranking's ids and published keys, after its shape, duplicates and exclusions."""
    if not isinstance(value, list):
        diffs.append(Difference(path, "a list", value))
        return None
    ids: list[str] = []
    keys: list[Any] = []
    seen: set[str] = set()
    well_formed = True
    for j, item in enumerate(value):
        item_path = f"{path}[{j}]"
        if not isinstance(item, Mapping) or item.keys() != _RANKING_FIELDS:
            diffs.append(Difference(item_path, "an object with expert_id and key", item))
            well_formed = False
            continue
        expert_id = item["expert_id"]
        if not _is_text(expert_id):
            diffs.append(Difference(f"{item_path}.expert_id", "a string without NUL", expert_id))
            well_formed = False
            continue
        if expert_id in seen:
            diffs.append(Difference(f"{item_path}.expert_id", "unique in this ranking", expert_id))
        elif expert_id in ruled_out:
            diffs.append(Difference(f"{item_path}.expert_id", ruled_out[expert_id], expert_id))
        seen.add(expert_id)
        ids.append(expert_id)
        keys.append(item["key"])
    # Positions are only meaningful when every entry could be read.
    return (ids, keys) if well_formed else None


def _check_prior(value: Any, expected: list[str], diffs: list[Difference]) -> None:
    if value != expected:
        diffs.append(Difference("prior", expected, value))


def _spec_of(entries: Any) -> list[SeatSpec] | None:
    """The seats a proof's entries state, when every one is readable (for the commitment)."""
    if not isinstance(entries, list) or not entries:
        return None
    spec = []
    for entry in entries:
        if not isinstance(entry, Mapping):
            return None
        specialty, seats, backups = entry.get("specialty"), entry.get("seats"), entry.get("backups")
        if _is_text(specialty) and _is_count(seats, 1) and _is_count(backups, 0):
            spec.append(SeatSpec(specialty, seats, backups))
        else:
            return None
    return spec


def _check_link(proof: Mapping[str, Any], previous: Any, prior: list[str]) -> list[Difference]:
    """Every difference between one proof of a chain and its replay. ``previous`` is the
    proof before it (None: this is the first draw) and ``prior`` who the earlier proofs
    drew or excluded."""
    diffs: list[Difference] = []
    supplementary = previous is not None
    expected_algorithm = SUPPLEMENTARY if supplementary else ALGORITHM
    _check_fields(proof, "", _SUPPLEMENTARY_FIELDS if supplementary else _TOP_FIELDS, diffs)
    get = proof.get

    if "algorithm" in proof and get("algorithm") != expected_algorithm:
        diffs.append(Difference("algorithm", expected_algorithm, get("algorithm")))
    for name in ("draw_id", "public_entropy"):
        if name in proof and not _is_text(get(name)):
            diffs.append(Difference(name, "a string without NUL", get(name)))
    secret = _hex_bytes(get("server_secret"), SECRET_BYTES)
    if "server_secret" in proof and secret is None:
        diffs.append(
            Difference(
                "server_secret", f"{2 * SECRET_BYTES} lowercase hex digits", get("server_secret")
            )
        )
    excluded = _check_excluded(get("excluded"), diffs) if "excluded" in proof else set()
    ruled_out = dict.fromkeys(excluded, "not an excluded expert")
    draw_id, public_entropy = get("draw_id"), get("public_entropy")

    seed: bytes | None = None
    if previous is None:
        expected = commitment_of(secret) if secret is not None else None
        if expected is not None and "commitment" in proof and get("commitment") != expected:
            diffs.append(Difference("commitment", expected, get("commitment")))
        if secret is not None and _is_text(draw_id) and _is_text(public_entropy):
            seed = draw_seed(secret, public_entropy, draw_id)
    else:
        try:
            previous_hash: str | None = proof_hash(previous)
        except ValueError:  # no canonical form (a lone surrogate, NaN): already reported
            previous_hash = None
        if "previous_proof_hash" in proof and get("previous_proof_hash") != previous_hash:
            diffs.append(
                Difference("previous_proof_hash", previous_hash, get("previous_proof_hash"))
            )
        if "prior" in proof:
            _check_prior(get("prior"), prior, diffs)
        ruled_out.update(
            dict.fromkeys(prior, "not an expert drawn or excluded earlier in the chain")
        )
        spec = _spec_of(get("specialties"))
        if secret is not None and _is_text(draw_id) and previous_hash is not None:
            if spec is not None and "commitment" in proof:
                expected = supplementary_commitment(
                    secret,
                    draw_id=draw_id,
                    previous_proof_hash=previous_hash,
                    prior=prior,
                    spec=spec,
                )
                if get("commitment") != expected:
                    diffs.append(Difference("commitment", expected, get("commitment")))
            if _is_text(public_entropy):
                seed = supplementary_seed(secret, public_entropy, draw_id, previous_hash)

    entries = get("specialties")
    if "specialties" in proof and (not isinstance(entries, list) or not entries):
        diffs.append(Difference("specialties", "a non-empty list", entries))
        entries = []
    taken: set[str] = set()
    walking = seed is not None  # the walk carries `taken` forward; one unreadable entry stops it
    seen_specialties: set[str] = set()
    for i, entry in enumerate(entries or []):
        path = f"specialties[{i}]"
        if not isinstance(entry, Mapping):
            diffs.append(Difference(path, "an object", entry))
            walking = False
            continue
        if not _check_fields(entry, path, _SPECIALTY_FIELDS, diffs):
            walking = False
            continue
        specialty, seats, backups = entry["specialty"], entry["seats"], entry["backups"]
        if not _is_text(specialty):
            diffs.append(Difference(f"{path}.specialty", "a string without NUL", specialty))
            walking = False
            continue
        if specialty in seen_specialties:
            diffs.append(
                Difference(f"{path}.specialty", "a specialty not already drawn", specialty)
            )
        seen_specialties.add(specialty)
        if not _is_count(seats, 1):
            diffs.append(Difference(f"{path}.seats", "an integer >= 1", seats))
            walking = False
        if not _is_count(backups, 0):
            diffs.append(Difference(f"{path}.backups", "an integer >= 0", backups))
            walking = False
        selected = _check_id_list(entry["selected"], f"{path}.selected", diffs)
        backup_ids = _check_id_list(entry["backup_ids"], f"{path}.backup_ids", diffs)
        ranking = _check_ranking(entry["ranking"], f"{path}.ranking", ruled_out, diffs)
        if ranking is None or seed is None:
            walking = False
            continue

        ids, published_keys = ranking
        order, keys = _rank(seed, specialty, ids)
        expected_keys = list(map(bytes.hex, keys))
        if expected_keys != published_keys:  # whole-list compare first: the usual case is equal
            diffs.extend(
                Difference(f"{path}.ranking[{j}].key", expected, published)
                for j, (expected, published) in enumerate(
                    zip(expected_keys, published_keys, strict=True)
                )
                if expected != published
            )
        ranked = list(map(ids.__getitem__, order))
        if ranked != ids:
            diffs.extend(
                Difference(f"{path}.ranking[{j}].expert_id", expected, found)
                for j, (expected, found) in enumerate(zip(ranked, ids, strict=True))
                if expected != found
            )
        if not walking:
            continue
        # The walk follows the replayed order; dict.fromkeys drops duplicates (reported above).
        available, drawn = _walk(dict.fromkeys(ranked), seats, backups, taken)
        if available < seats:
            diffs.append(
                Difference(
                    f"{path}.ranking", f"at least {seats} experts not already taken", available
                )
            )
        if selected is not None and selected != drawn[:seats]:
            diffs.append(Difference(f"{path}.selected", drawn[:seats], selected))
        if backup_ids is not None and backup_ids != drawn[seats:]:
            diffs.append(Difference(f"{path}.backup_ids", drawn[seats:], backup_ids))
    return diffs


def verify_proof(proof: Mapping[str, Any]) -> None:
    """Replay a first draw from its proof; raise :class:`ProofMismatch` naming every
    difference."""
    if not isinstance(proof, Mapping):
        raise ProofMismatch([Difference("proof", "a JSON object", type(proof).__name__)])
    diffs = _check_link(proof, None, [])
    if diffs:
        raise ProofMismatch(diffs)


class ChainMismatch(ProofMismatch):
    """A chain of proofs does not replay: ``link`` is the first proof (0 = the first draw)
    that does not, ``differences`` name every wrong field as ``[link].path`` (as ``path``
    alone when a single proof was given)."""

    def __init__(self, link: int, draw_id: Any, differences: Sequence[Difference]) -> None:
        super().__init__(differences)
        self.link = link
        self.draw_id = draw_id if isinstance(draw_id, str) else None


def _readable_prior(proof: Mapping[str, Any]) -> set[str]:
    """Who one proof drew or excluded, as far as it can be read (a broken link is reported
    on its own; the links after it are still checked against what it says)."""
    found: set[str] = set()
    entries = proof.get("specialties")
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, Mapping):
            for name in ("selected", "backup_ids"):
                ids = entry.get(name)
                if isinstance(ids, list):
                    found.update(i for i in ids if isinstance(i, str))
    excluded = proof.get("excluded")
    for item in excluded if isinstance(excluded, list) else []:
        if isinstance(item, Mapping) and isinstance(item.get("expert_id"), str):
            found.add(item["expert_id"])
    return found


def chain_of(value: Any) -> list[Mapping[str, Any]]:
    """A chain as published: a list of proofs, or a single proof (a chain of one)."""
    if isinstance(value, Mapping):
        return [value]
    if isinstance(value, list) and value:
        return value
    raise ChainMismatch(
        0, None, [Difference("proof", "a JSON object or a non-empty list", type(value).__name__)]
    )


def verify_chain(value: Any) -> list[Mapping[str, Any]]:
    """Replay every link of a chain (or a single proof); returns the chain, or raises
    :class:`ChainMismatch` naming the first broken link and every difference in all."""
    chain = chain_of(value)
    diffs: list[Difference] = []
    first_broken: tuple[int, Any] | None = None
    prior: set[str] = set()
    for link, proof in enumerate(chain):
        if not isinstance(proof, Mapping):
            found = [Difference("proof", "a JSON object", type(proof).__name__)]
        else:
            found = _check_link(proof, chain[link - 1] if link else None, sorted(prior))
            prior |= _readable_prior(proof)
        if found and first_broken is None:
            first_broken = (link, proof.get("draw_id") if isinstance(proof, Mapping) else None)
        prefix = f"[{link}]." if len(chain) > 1 or not isinstance(value, Mapping) else ""
        diffs.extend(Difference(prefix + d.path, d.expected, d.found) for d in found)
    if first_broken is not None:
        raise ChainMismatch(first_broken[0], first_broken[1], diffs)
    return chain


def committee_of_chain(chain: Sequence[Mapping[str, Any]]) -> list[tuple[int, str, str]]:
    """The members each draw of a (verified) chain seated, as (link, specialty, expert_id)
    in draw order. Who then declined, and which backups moved up, is in the audit log."""
    return [
        (link, specialty, expert_id)
        for link, proof in enumerate(chain)
        for specialty, expert_id in committee_of(proof)
    ]

"""The verifiable committee draw ``evalsign-draw-v1``: a pure function from published inputs
to a committee, and the proof that lets anyone replay it.

The algorithm (a public spec; nothing else is needed to replay a draw):

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

:func:`verify_proof` recomputes the commitment, the seed, every key, every ranking's order
and the selection walk from the proof alone. The rankings are the eligible set as the center
published it: who was eligible, and why others were excluded, is checked against the registry
and the exclusion reasons, not by this arithmetic.

No strings may contain NUL (0x00): it is the field separator, so forbidding it keeps every
hash input unambiguous.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable, Mapping, Sequence, Set
from dataclasses import dataclass, field
from itertools import chain
from operator import attrgetter
from typing import Any, TypeGuard

from evaluation.kernel.errors import DomainError

ALGORITHM = "evalsign-draw-v1"
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


def draw_committee(
    draw_id: str,
    server_secret: bytes,
    public_entropy: str,
    spec: Sequence[SeatSpec],
    candidates: Sequence[Candidate],
    exclusions: Sequence[Exclusion],
) -> DrawResult:
    """Run the draw over ``candidates`` minus ``exclusions``; see the module docstring."""
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

    excluded = {exclusion.expert_id for exclusion in exclusions}
    # One pass over the pool, grouping eligible ids by the specialties the spec asks for.
    eligible: dict[str, list[str]] = {specialty: [] for specialty in wanted}
    for candidate in candidates:
        if candidate.expert_id in excluded:
            continue
        for specialty in candidate.specialties:
            bucket = eligible.get(specialty)
            if bucket is not None:
                bucket.append(candidate.expert_id)
    if _has_nul(chain.from_iterable(eligible.values())):
        raise ValueError("expert ids may not contain NUL")

    seed = draw_seed(server_secret, public_entropy, draw_id)
    taken: set[str] = set()
    committee: list[tuple[str, str]] = []
    backups: dict[str, tuple[str, ...]] = {}
    specialties_proof: list[dict[str, Any]] = []
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
        specialties_proof.append(
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
    proof = {
        "algorithm": ALGORITHM,
        "draw_id": draw_id,
        "commitment": commitment_of(server_secret),
        "server_secret": server_secret.hex(),
        "public_entropy": public_entropy,
        "specialties": specialties_proof,
        "excluded": [{"expert_id": e.expert_id, "reason": e.reason} for e in exclusions],
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


def _is_count(value: Any, minimum: int) -> bool:
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
    value: Any, path: str, excluded: set[str], diffs: list[Difference]
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
        elif expert_id in excluded:
            diffs.append(Difference(f"{item_path}.expert_id", "not an excluded expert", expert_id))
        seen.add(expert_id)
        ids.append(expert_id)
        keys.append(item["key"])
    # Positions are only meaningful when every entry could be read.
    return (ids, keys) if well_formed else None


def verify_proof(proof: Mapping[str, Any]) -> None:
    """Replay a draw from its proof; raise :class:`ProofMismatch` naming every difference."""
    diffs: list[Difference] = []
    if not isinstance(proof, Mapping):
        raise ProofMismatch([Difference("proof", "a JSON object", type(proof).__name__)])
    _check_fields(proof, "", _TOP_FIELDS, diffs)
    get = proof.get

    if "algorithm" in proof and get("algorithm") != ALGORITHM:
        diffs.append(Difference("algorithm", ALGORITHM, get("algorithm")))
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
    if secret is not None and "commitment" in proof and get("commitment") != commitment_of(secret):
        diffs.append(Difference("commitment", commitment_of(secret), get("commitment")))
    excluded = _check_excluded(get("excluded"), diffs) if "excluded" in proof else set()

    seed: bytes | None = None
    draw_id, public_entropy = get("draw_id"), get("public_entropy")
    if secret is not None and _is_text(draw_id) and _is_text(public_entropy):
        seed = draw_seed(secret, public_entropy, draw_id)

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
        ranking = _check_ranking(entry["ranking"], f"{path}.ranking", excluded, diffs)
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
    if diffs:
        raise ProofMismatch(diffs)

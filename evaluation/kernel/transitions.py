"""The check every status machine makes before it changes anything: is (status, action) an
arrow of its transition table."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import TypeVar

from evaluation.kernel.errors import InvalidTransition

S = TypeVar("S", bound=StrEnum)
A = TypeVar("A", bound=StrEnum)


def next_status(table: Mapping[tuple[S, A], S], current: S, action: A, refusal: str) -> S:
    """The status ``action`` leads to from ``current``; InvalidTransition (409) with
    ``refusal`` as its detail when the table has no such arrow."""
    target = table.get((current, action))
    if target is None:
        raise InvalidTransition(refusal, current_status=current.value)
    return target

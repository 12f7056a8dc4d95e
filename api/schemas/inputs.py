"""The types every request field is declared with, so a value the database cannot hold or
a certificate should not carry is a 422 naming the field, never a 500 deeper in."""

from __future__ import annotations

from typing import Annotated, Any

from annotated_types import Interval
from pydantic import AfterValidator

from evaluation.kernel.identifiers import Name, Prose, Text, Token, check_characters

__all__ = ["Count", "Int32", "Int64", "JsonObject", "Name", "Prose", "Seq", "Text", "Token"]

# PostgreSQL's integer and bigint: a larger number is refused here, not by the driver.
Int32 = Annotated[int, Interval(ge=-(2**31), le=2**31 - 1)]
Int64 = Annotated[int, Interval(ge=-(2**63), le=2**63 - 1)]
Count = Annotated[int, Interval(ge=0, le=2**31 - 1)]
Seq = Annotated[int, Interval(ge=0, le=2**63 - 1)]

_MAX_JSON_DEPTH = 20


def _check_json(value: Any, depth: int = 0) -> Any:
    if depth > _MAX_JSON_DEPTH:
        raise ValueError(f"nested deeper than {_MAX_JSON_DEPTH} levels")
    if isinstance(value, str):
        check_characters(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            check_characters(key)
            _check_json(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_json(item, depth + 1)
    elif isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**63:
        raise ValueError("integer out of range")
    return value


# A JSON object passed through to a verifier (WebAuthn credentials, assertions): the
# verifier judges its meaning; here it is only kept storable and shallow.
JsonObject = Annotated[dict[str, Any], AfterValidator(_check_json)]

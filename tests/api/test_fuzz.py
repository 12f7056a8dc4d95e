"""The whole OpenAPI document fuzzed with Schemathesis, as an operator, a supervisor and an
anonymous phone: no answer may be a 5xx or differ from the documented schema. Fixed seed
(derandomized), a few examples per operation, valid and invalid ones alike, no shrinking:
a bounded, repeatable run."""

from __future__ import annotations

import time
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import response_schema_conformance

from evaluation.registry.staff import Role
from tests.factories import CenterWithStaff

pytestmark = pytest.mark.slow

EXAMPLES = 4
CHECKS = [not_a_server_error, response_schema_conformance]


def _callers(center: CenterWithStaff) -> dict[str, dict[str, str]]:
    return {
        "operator": center.headers(Role.OPERATOR),
        "supervisor": center.headers(Role.SUPERVISOR),
        "anonymous phone": {"X-Device-Id": "phone-fuzz-00000001"},
    }


def _fuzz(operation: Any, callers: dict[str, dict[str, str]], found: list[str]) -> None:
    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(
        case=operation.as_strategy(GenerationMode.POSITIVE)
        | operation.as_strategy(GenerationMode.NEGATIVE)
    )
    def run(case: Any) -> None:
        for who, headers in callers.items():
            try:
                case.call_and_validate(headers=headers, checks=CHECKS)
            except Exception as exc:  # each failure reported, not only the first
                found.append(f"{operation.label} as {who}: {str(exc)[:600]}")

    run()


def test_no_operation_answers_a_5xx_or_off_schema(app: FastAPI, center: CenterWithStaff) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    callers = _callers(center)
    found: list[str] = []
    started = time.process_time()
    operations = []
    for result in schema.get_all_operations():
        if isinstance(result, Ok):
            operations.append(result.ok())
        else:  # a part of the document Schemathesis cannot read is a finding too
            found.append(f"invalid schema: {result.err()}")
    assert len(operations) > 100
    for operation in operations:
        _fuzz(operation, callers, found)
    assert found == [], "\n\n".join(found)
    assert time.process_time() - started < 90

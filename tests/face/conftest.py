"""Fixtures for the face library's tests."""

from __future__ import annotations

import pytest

from tests.face.corpus import BGR, portraits


@pytest.fixture(scope="module")
def people() -> dict[str, BGR]:
    """Single-face portraits of distinct people, made from the shipped photos."""
    return portraits()

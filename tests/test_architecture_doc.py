"""docs/architecture.md shows the state machines the code enforces, not a drawing of them."""

from __future__ import annotations

import importlib.util
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_the_state_diagrams_match_the_transition_tables() -> None:
    spec = importlib.util.spec_from_file_location("states", DOCS / "states.py")
    assert spec is not None and spec.loader is not None
    states = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(states)
    page = (DOCS / "architecture.md").read_text(encoding="utf-8")
    for name, diagram in states.DIAGRAMS.items():
        assert f"### {name}\n\n```mermaid\n{diagram}\n```" in page, name

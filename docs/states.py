"""The state diagrams in docs/architecture.md, rendered from the transition tables the code
enforces (Mermaid). `python docs/states.py` prints them; tests/test_architecture_doc.py
fails when the document no longer shows what the tables say."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from evaluation.committee.draws import ASSIGNMENT_TRANSITIONS, DRAW_TRANSITIONS
from evaluation.committee.projects import PROJECT_TRANSITIONS
from evaluation.documents.documents import DOCUMENT_TRANSITIONS
from evaluation.registry.experts import EXPERT_TRANSITIONS
from evaluation.supervision.anomalies import FLAG_TRANSITIONS
from evaluation.trust.credential_states import CREDENTIAL_TRANSITIONS


def mermaid(table: Mapping[tuple[Any, Any], Any]) -> str:
    """One stateDiagram: an arrow per (from, action) -> to, in the table's order."""
    lines = ["stateDiagram-v2"]
    for (source, action), target in table.items():
        lines.append(f"    {source} --> {target}: {action}")
    return "\n".join(lines)


# A table's statuses and actions are StrEnums or plain strings: both print as their value.
DIAGRAMS = {
    "expert": mermaid(EXPERT_TRANSITIONS),
    "credential": mermaid(CREDENTIAL_TRANSITIONS),
    "project": mermaid(PROJECT_TRANSITIONS),
    "draw": mermaid(DRAW_TRANSITIONS),
    "assignment": mermaid(ASSIGNMENT_TRANSITIONS),
    "document": mermaid(DOCUMENT_TRANSITIONS),
    "anomaly flag": mermaid(FLAG_TRANSITIONS),
}


if __name__ == "__main__":
    for name, diagram in DIAGRAMS.items():
        print(f"### {name}\n\n```mermaid\n{diagram}\n```\n")

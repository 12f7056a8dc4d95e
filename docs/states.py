"""The state diagrams in docs/architecture.md, rendered from the transition tables the code
enforces (Mermaid). `python docs/states.py` prints them; tests/test_architecture_doc.py
fails when the document no longer shows what the tables say."""

from __future__ import annotations

from collections.abc import Mapping

from evaluation.documents.documents import DOCUMENT_TRANSITIONS
from evaluation.registry.experts import EXPERT_TRANSITIONS
from evaluation.supervision.anomalies import FLAG_TRANSITIONS


def mermaid(table: Mapping[tuple[str, str], str]) -> str:
    """One stateDiagram: an arrow per (from, action) -> to, in the table's order."""
    lines = ["stateDiagram-v2"]
    for (source, action), target in table.items():
        lines.append(f"    {source} --> {target}: {action}")
    return "\n".join(lines)


DIAGRAMS = {
    "expert": mermaid({(str(s), str(a)): str(t) for (s, a), t in EXPERT_TRANSITIONS.items()}),
    "document": mermaid(DOCUMENT_TRANSITIONS),
    "anomaly flag": mermaid(FLAG_TRANSITIONS),
}


if __name__ == "__main__":
    for name, diagram in DIAGRAMS.items():
        print(f"### {name}\n\n```mermaid\n{diagram}\n```\n")

"""Workflow specs for editor tests and the editor benchmark."""

from __future__ import annotations

from typing import Any

_HS = "haystack.components"
CHAIN = (
    ("clean", f"{_HS}.preprocessors.document_cleaner.DocumentCleaner", {}),
    ("split", f"{_HS}.preprocessors.document_splitter.DocumentSplitter", {"split_by": "word", "split_length": 50}),
    ("join", f"{_HS}.joiners.document_joiner.DocumentJoiner", {"join_mode": "concatenate"}),
    ("rank", f"{_HS}.rankers.lost_in_the_middle.LostInTheMiddleRanker", {}),
)


def big_workflow(nodes: int = 100) -> dict[str, Any]:
    """``nodes`` CPU-only nodes in chains of four (clean → split → join → rank), laid out on a grid, valid.

    Each chain's first input is a workflow input (``documents``) and each last output a workflow output.
    """
    chains = nodes // len(CHAIN)
    components: dict[str, Any] = {}
    connections = []
    positions: dict[str, list[int]] = {}
    for c in range(chains):
        previous = None
        for step, (stem, type_, params) in enumerate(CHAIN):
            name = f"{stem}_{c}"
            components[name] = {"type": type_, "init_parameters": dict(params)}
            positions[name] = [80 + step * 380, 60 + c * 150]
            if previous:
                connections.append({"sender": f"{previous}.documents", "receiver": f"{name}.documents"})
            previous = name
    return {
        "components": components,
        "connections": connections,
        "inputs": {"documents": [f"clean_{c}.documents" for c in range(chains)]},
        "outputs": {f"ranked_{c}": f"rank_{c}.documents" for c in range(chains)},
        "metadata": {"stackyard": {"positions": positions, "notes": [{"id": "n1", "text": "100 nodes", "x": 80, "y": 0}]}},
    }

"""A dataset's own label tree, as discovery finds it (main paper, section 3.2).

Folder-per-class datasets give their labels as folder names; nested folders give a
hierarchy. Manifests and metadata give flat label sets. Either way the tree is a list of
``(name, parent)`` nodes with per-label sample counts, serialised as JSON in the
``datasets`` registry and handed to the label graph.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from samplehub.errors import ManifestError


@dataclass
class LabelTree:
    """Labels of one dataset: ``parents[name]`` is the parent label or ``None`` at the root."""

    parents: dict[str, str | None] = field(default_factory=dict)
    counts: Counter[str] = field(default_factory=Counter)

    def add_path(self, path: Iterable[str]) -> None:
        """Add a root-first label path such as ``("water", "river")``."""
        parent: str | None = None
        for name in path:
            known = self.parents.get(name, parent)
            if name in self.parents and known != parent:
                raise ManifestError(
                    f"label {name!r} appears under two parents ({known!r} and {parent!r}); "
                    "rename one of the folders"
                )
            self.parents[name] = parent
            parent = name

    def count(self, labels: Iterable[str]) -> None:
        """Count one sample under each of ``labels``."""
        self.counts.update(labels)

    @property
    def leaves(self) -> list[str]:
        """Labels that are nobody's parent, in insertion order."""
        inner = {p for p in self.parents.values() if p is not None}
        return [n for n in self.parents if n not in inner]

    def nodes(self) -> list[tuple[str, str | None]]:
        """``(name, parent)`` pairs, parents before children."""
        return list(self.parents.items())

    def to_json(self) -> str:
        """Serialise as ``{"nodes": [{"name", "parent", "count"}]}``."""
        return json.dumps(
            {
                "nodes": [
                    {"name": n, "parent": p, "count": int(self.counts.get(n, 0))}
                    for n, p in self.parents.items()
                ]
            }
        )

    @classmethod
    def from_json(cls, text: str) -> LabelTree:
        """Inverse of :meth:`to_json`."""
        tree = cls()
        for node in json.loads(text)["nodes"]:
            tree.parents[node["name"]] = node["parent"]
            tree.counts[node["name"]] = node.get("count", 0)
        return tree

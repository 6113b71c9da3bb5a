"""``samplehub labels ...``: the label category graph from the command line.

Main paper, section 3.3.

Every command opens the repository of ``conf/`` (:meth:`samplehub.repository.Repository.open`)
and its label-graph store (:attr:`~samplehub.repository.Repository.labels`); ``--set`` takes
Hydra overrides as everywhere in the CLI (``--set home=DIR``, ``--set graph=neo4j``). Errors
reach the CLI's one handler (:func:`samplehub.cli.main.main`: one line, exit code 2).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from samplehub.cli.common import Overrides, open_repository

if TYPE_CHECKING:
    from samplehub.labels.association import AssociationWeights
    from samplehub.repository import Repository

labels_app = typer.Typer(help="Label category graph: base taxonomy, merged datasets, associations.")

MaxDistance = Annotated[
    float | None,
    typer.Option(
        "--max-distance", help="Eq. 1 distance threshold (default: association.max_distance)"
    ),
]


def _association(repo: Repository, max_distance: float | None) -> tuple[float, AssociationWeights]:
    """The distance bound (``--max-distance`` or the configured default) and Eq. 1's weights."""
    weights = repo.graph_settings.association
    return (max_distance if max_distance is not None else weights.max_distance), weights


@labels_app.command("merge-taxonomy")
def merge_taxonomy(
    datasets: Annotated[list[str], typer.Argument(help="dataset keys of the taxonomy file")],
    overrides: Overrides = None,
) -> None:
    """Merge class lists from the taxonomy file (by dataset key) and commit a new version."""
    from samplehub.labels.workflow import merge_taxonomy_datasets, open_semantics

    repo = open_repository(overrides)
    settings = repo.graph_settings
    semantics = open_semantics(settings, repo.config.home_path, repo.models)
    merged, rows = merge_taxonomy_datasets(repo.labels, settings, semantics, datasets)
    grown = sum(r.new for rs in rows.values() for r in rs)
    print(
        f"label graph version {merged.version}: merged {', '.join(rows)}; "
        f"{grown} new unified labels"
    )


@labels_app.command("tree")
def tree(overrides: Overrides = None) -> None:
    """Print the unified label hierarchy (IS_A), '?' marking uncertain placements."""
    from samplehub.labels.graph import UNIFIED_ORIGINS

    g = open_repository(overrides).labels.load()

    def show(label: str, depth: int) -> None:
        data = g.label(label)
        mark = "?" if data.get("uncertain") else ""
        grown = " [grown]" if data["origin"] == "unified" else ""
        mapped = sum(1 for u, _, d in g.g.in_edges(label, data=True) if d["type"] == "MAPS_TO")
        print(
            f"{'  ' * depth}{label}{mark}{grown}"
            + (f"  ({mapped} dataset labels)" if mapped else "")
        )
        for child in sorted(
            c for c in g.children(label) if g.is_unified(c)
        ):
            show(child, depth + 1)

    roots = [n for n in g.labels(UNIFIED_ORIGINS) if not g.parents(n)]
    print(f"label graph version {g.version}")
    for root in sorted(roots, key=lambda n: (g.origin(n) != "base", n)):
        show(root, 0)


@labels_app.command("map")
def map_(
    dataset: Annotated[str, typer.Argument(help="a merged dataset key")],
    markdown: Annotated[bool, typer.Option("--markdown", help="print a Markdown table")] = False,
    overrides: Overrides = None,
) -> None:
    """Table of dataset label -> unified label, score and why."""
    from samplehub.labels.merge import mapping_table

    rows = mapping_table(open_repository(overrides).labels.load(), dataset)
    if markdown:
        print("| dataset label | unified label | score | why |\n|---|---|---|---|")
    for row in rows:
        name = row.dataset_label.split("/", 1)[1]
        unified = f"{row.unified} (new)" if row.new else row.unified
        if markdown:
            print(f"| {name} | {unified} | {row.score:.2f} | {row.why} |")
        else:
            print(f"{name:28s} -> {unified:28s} {row.score:5.2f}  {row.why}")


@labels_app.command("associated")
def associated(
    label: Annotated[str, typer.Argument(help="label name or id, e.g. river")],
    max_distance: MaxDistance = None,
    overrides: Overrides = None,
) -> None:
    """Associated labels within a distance (Eq. 1 weighted shortest paths), with paths."""
    from samplehub.labels.association import associated_labels

    repo = open_repository(overrides)
    bound, weights = _association(repo, max_distance)
    found = associated_labels(repo.labels.load(), label, bound, weights)
    for a in found:
        hops = " ".join(
            f"-{rel}-> {node}" for rel, node in zip(a.relations, a.path[1:], strict=True)
        )
        print(f"{a.distance:5.2f}  {a.label:40s} {a.path[0]} {hops}")


@labels_app.command("export")
def export(
    out: Annotated[Path, typer.Argument(help="output file")],
    format: Annotated[str, typer.Option("--format", help="graphml or json")] = "json",
    overrides: Overrides = None,
) -> None:
    """Export the latest graph version as GraphML or node-link JSON."""
    path = open_repository(overrides).labels.load().export(out, format)
    print(f"wrote {path}")


@labels_app.command("draw")
def draw(
    label: Annotated[str, typer.Argument(help="label name or id")],
    out: Annotated[Path, typer.Option("--out", help="PNG or SVG file")] = Path("label.png"),
    max_distance: MaxDistance = None,
    overrides: Overrides = None,
) -> None:
    """Draw a label's neighbourhood (labels within --max-distance) to PNG/SVG."""
    from samplehub.labels.draw import draw_neighbourhood

    repo = open_repository(overrides)
    bound, weights = _association(repo, max_distance)
    path = draw_neighbourhood(repo.labels.load(), label, out, bound, weights)
    print(f"wrote {path}")


@labels_app.command("cooccur-ucmerced")
def cooccur_ucmerced(
    path: Annotated[Path, typer.Argument(help="LandUse_Multilabeled.txt of UC Merced multi-label")],
    overrides: Overrides = None,
) -> None:
    """Add CO_OCCURS edges from UC Merced multi-label and commit a new version.

    Merge uc_merced_21 and uc_merced_multilabel_17 first.
    """
    from samplehub.labels.cooccurrence import read_ucmerced_multilabel
    from samplehub.labels.workflow import add_cooccurrence_source

    repo = open_repository(overrides)
    merged, added = add_cooccurrence_source(
        repo.labels, repo.graph_settings, read_ucmerced_multilabel(path), "ucmerced_multilabel"
    )
    print(f"label graph version {merged.version}: {added} CO_OCCURS edges from {path}")

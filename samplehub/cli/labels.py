"""``samplehub labels ...``: the label category graph from the command line (issue 3).

Mounted on the main CLI by the integrator (``app.add_typer(labels_app, name="labels")``).
The SampleHub home and the graph settings come from ``samplehub.config.load_config()``
(``conf/config.yaml``, ``SAMPLEHUB_HOME``); ``--home`` overrides the home and ``--graph``
picks ``conf/graph/<name>.yaml``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from samplehub.errors import SampleHubError

labels_app = typer.Typer(help="Label category graph: base taxonomy, merged datasets, associations.")

HomeOption = Annotated[
    Path | None,
    typer.Option("--home", help="SampleHub home (default: the config's home, $SAMPLEHUB_HOME)."),
]
GraphOption = Annotated[
    str, typer.Option("--graph", help="conf/graph/<name>.yaml: embedded or neo4j.")
]


def _fail(exc: SampleHubError) -> typer.Exit:
    typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
    return typer.Exit(code=1)


def _open(home: Path | None, graph: str):
    from samplehub.config import load_config
    from samplehub.labels.settings import graph_settings_from_config
    from samplehub.labels.workflow import open_store

    config = load_config([f"graph={graph}"])
    settings = graph_settings_from_config(config)
    root = home if home is not None else config.home_path
    return settings, root, open_store(settings, root)


@labels_app.command("merge-taxonomy")
def merge_taxonomy(
    datasets: Annotated[list[str], typer.Argument(help="dataset keys of the taxonomy file")],
    home: HomeOption = None,
    graph: GraphOption = "embedded",
) -> None:
    """Merge class lists from the taxonomy file (by dataset key) and commit a new version."""
    from samplehub.labels.workflow import merge_taxonomy_datasets, open_semantics

    try:
        settings, root, store = _open(home, graph)
        semantics = open_semantics(settings, root)
        merged, rows = merge_taxonomy_datasets(store, settings, semantics, datasets)
    except SampleHubError as exc:
        raise _fail(exc) from exc
    grown = sum(r.new for rs in rows.values() for r in rs)
    print(
        f"label graph version {merged.version}: merged {', '.join(rows)}; "
        f"{grown} new unified labels"
    )


@labels_app.command("tree")
def tree(home: HomeOption = None, graph: GraphOption = "embedded") -> None:
    """Print the unified label hierarchy (IS_A), '?' marking uncertain placements."""
    from samplehub.labels.graph import UNIFIED_ORIGINS

    try:
        _, _, store = _open(home, graph)
        g = store.load()
    except SampleHubError as exc:
        raise _fail(exc) from exc

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
    home: HomeOption = None,
    graph: GraphOption = "embedded",
) -> None:
    """Table of dataset label -> unified label, score and why."""
    from samplehub.labels.merge import mapping_table

    try:
        _, _, store = _open(home, graph)
        rows = mapping_table(store.load(), dataset)
    except SampleHubError as exc:
        raise _fail(exc) from exc
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
    max_distance: Annotated[
        float | None,
        typer.Option(
            "--max-distance", help="Eq. 1 distance threshold (default: association.max_distance)"
        ),
    ] = None,
    home: HomeOption = None,
    graph: GraphOption = "embedded",
) -> None:
    """Associated labels within a distance (Eq. 1 weighted shortest paths), with paths."""
    from samplehub.labels.association import associated_labels

    try:
        settings, _, store = _open(home, graph)
        found = associated_labels(
            store.load(),
            label,
            max_distance if max_distance is not None else settings.association.max_distance,
            settings.association,
        )
    except SampleHubError as exc:
        raise _fail(exc) from exc
    for a in found:
        hops = " ".join(
            f"-{rel}-> {node}" for rel, node in zip(a.relations, a.path[1:], strict=True)
        )
        print(f"{a.distance:5.2f}  {a.label:40s} {a.path[0]} {hops}")


@labels_app.command("export")
def export(
    out: Annotated[Path, typer.Argument(help="output file")],
    format: Annotated[str, typer.Option("--format", help="graphml or json")] = "json",
    home: HomeOption = None,
    graph: GraphOption = "embedded",
) -> None:
    """Export the latest graph version as GraphML or node-link JSON."""
    try:
        _, _, store = _open(home, graph)
        path = store.load().export(out, format)
    except SampleHubError as exc:
        raise _fail(exc) from exc
    print(f"wrote {path}")


@labels_app.command("draw")
def draw(
    label: Annotated[str, typer.Argument(help="label name or id")],
    out: Annotated[Path, typer.Option("--out", help="PNG or SVG file")] = Path("label.png"),
    max_distance: Annotated[
        float | None,
        typer.Option("--max-distance", help="default: association.max_distance"),
    ] = None,
    home: HomeOption = None,
    graph: GraphOption = "embedded",
) -> None:
    """Draw a label's neighbourhood (labels within --max-distance) to PNG/SVG."""
    from samplehub.labels.draw import draw_neighbourhood

    try:
        settings, _, store = _open(home, graph)
        bound = max_distance if max_distance is not None else settings.association.max_distance
        path = draw_neighbourhood(store.load(), label, out, bound, settings.association)
    except SampleHubError as exc:
        raise _fail(exc) from exc
    print(f"wrote {path}")


@labels_app.command("cooccur-ucmerced")
def cooccur_ucmerced(
    path: Annotated[Path, typer.Argument(help="LandUse_Multilabeled.txt of UC Merced multi-label")],
    home: HomeOption = None,
    graph: GraphOption = "embedded",
) -> None:
    """Add CO_OCCURS edges from UC Merced multi-label (merge uc_merced_21 and
    uc_merced_multilabel_17 first) and commit a new version."""
    from samplehub.labels.cooccurrence import read_ucmerced_multilabel
    from samplehub.labels.workflow import add_cooccurrence_source

    try:
        settings, _, store = _open(home, graph)
        merged, added = add_cooccurrence_source(
            store, settings, read_ucmerced_multilabel(path), "ucmerced_multilabel"
        )
    except SampleHubError as exc:
        raise _fail(exc) from exc
    print(f"label graph version {merged.version}: {added} CO_OCCURS edges from {path}")

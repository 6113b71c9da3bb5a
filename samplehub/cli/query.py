"""``samplehub query``: the three-step cross-dataset query from the command line.

Mounted in :mod:`samplehub.cli.main` with ``app.command()(query)``. Prints exact and
supplementary hits with score and reason as a table, or the whole result as JSON.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime
from typing import Annotated, Any, cast

import typer

from samplehub.cli.common import Overrides, console, open_repository, print_table
from samplehub.retrieval.landcover import parse_weights
from samplehub.retrieval.query import run_query
from samplehub.retrieval.types import IndexChoice, LandcoverRequest, QueryResult, QuerySpec


def query(
    label: Annotated[list[str], typer.Option("--label", "-l", help="query label (repeatable)")],
    bbox: Annotated[
        str | None, typer.Option(help="minx,miny,maxx,maxy in degrees (EPSG:4326)")
    ] = None,
    time: Annotated[
        str | None, typer.Option("--time", help="START/END acquisition times (ISO 8601)")
    ] = None,
    dataset: Annotated[
        list[str] | None, typer.Option("--dataset", help="only this dataset (repeatable)")
    ] = None,
    k: Annotated[int, typer.Option(help="supplementary samples per label at most")] = 100,
    limit: Annotated[
        int | None, typer.Option(help="exact matches per label at most (default: all)")
    ] = None,
    index: Annotated[str, typer.Option(help="auto, ivfpq, exact or hash")] = "auto",
    no_supplementary: Annotated[
        bool, typer.Option("--no-supplementary", help="exact matches only (skip steps 2-3)")
    ] = False,
    rerank_k: Annotated[
        int, typer.Option(help="K: re-rank each label's visual top K by land cover (HIR Eq. "
                          "1, towards its exact matches' mean); 0: off")
    ] = 0,
    weights: Annotated[
        str | None, typer.Option(help="Eq. 1 class weights, e.g. 'buildings=4' (others: 1)")
    ] = None,
    landcover: Annotated[
        str | None, typer.Option(help="land-cover constraint on every hit, e.g. "
                                 "'water>=0.2,buildings<=0.1'")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the result as JSON")] = False,
    overrides: Overrides = None,
) -> None:
    """Find samples of LABELs across datasets: exact matches plus supplementary samples."""
    spec = QuerySpec(
        labels=tuple(label),
        bbox=parse_bbox(bbox) if bbox else None,
        time_range=parse_time_range(time) if time else None,
        datasets=tuple(dataset) if dataset else None,
        k=k,
        exact_limit=limit,
        include_supplementary=not no_supplementary,
        index=parse_index(index),
        landcover=(LandcoverRequest(rerank_k or None, parse_weights(weights or ""), landcover)
                   if rerank_k or landcover else None),
    )
    result = run_query(open_repository(overrides), spec)
    if as_json:
        typer.echo(json.dumps(result_json(result), indent=2))
    else:
        print_result(result)


def parse_bbox(text: str) -> tuple[float, float, float, float]:
    """``"minx,miny,maxx,maxy"`` -> four floats."""
    parts = text.split(",")
    try:
        minx, miny, maxx, maxy = (float(p) for p in parts)
    except ValueError as exc:
        raise typer.BadParameter(f"--bbox {text!r}: expected minx,miny,maxx,maxy") from exc
    return minx, miny, maxx, maxy


def parse_time_range(text: str) -> tuple[datetime, datetime]:
    """``"2020-01-01/2021-01-01"`` -> (start, end)."""
    start, sep, end = text.partition("/")
    try:
        if not sep:
            raise ValueError(text)
        return datetime.fromisoformat(start), datetime.fromisoformat(end)
    except ValueError as exc:
        raise typer.BadParameter(f"--time {text!r}: expected START/END in ISO 8601") from exc


def parse_index(text: str) -> IndexChoice:
    """Check the ``--index`` value."""
    if text not in ("auto", "ivfpq", "exact", "hash"):
        raise typer.BadParameter(f"--index {text!r}: choose auto, ivfpq, exact or hash")
    return text  # type: ignore[return-value]


def result_json(result: QueryResult) -> dict[str, Any]:
    """The result as JSON-ready values."""
    payload = dataclasses.asdict(result)
    spec = payload["spec"]
    if spec["time_range"] is not None:
        spec["time_range"] = [t.isoformat() for t in result.spec.time_range or ()]
    return payload


def print_result(result: QueryResult) -> None:
    """One table per query label: exact matches, then supplementary samples."""
    labels = cast(dict[str, dict[str, Any]], result.plan.get("labels", {}))
    for query_label, entry in labels.items():
        hits = [h for h in result.hits if h.query_label == query_label]
        search = entry.get("search", {})
        title = (
            f"{query_label} -> {entry['unified']}: {entry['exact_total']} exact, "
            f"{sum(h.kind == 'supplementary' for h in hits)} supplementary "
            f"(search: {search.get('method', 'skipped')})"
        )
        print_table(
            ("kind", "score", "dataset", "relpath", "labels", "reason"),
            (
                (hit.kind, f"{hit.score:.3f}", ", ".join(hit.datasets), hit.relpath,
                 ", ".join(hit.labels), hit.reason)
                for hit in hits
            ),
            title=title,
        )
        if isinstance(entry.get("rerank"), dict):
            console.print(f"land cover: {entry['rerank']}")
    console.print(f"[dim]{result.timings_ms.get('total', 0):.1f} ms[/]")

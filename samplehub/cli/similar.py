"""``samplehub similar``: query by image or by a catalogued sample, with land cover.

The visual top K can be re-ranked by land cover (HIR stage 2,
``../shared/papers/hir-hierarchical-retrieval-tkanet-esformer.txt`` Eq. 1) and the results
constrained by it (``--landcover "water>=0.2,buildings<=0.1"``).

Mounted in :mod:`samplehub.cli.main` with ``app.command()(similar)``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from samplehub.cli.common import Overrides, console, open_repository, print_table
from samplehub.cli.query import parse_index, result_json
from samplehub.errors import QueryError
from samplehub.retrieval.landcover import LandcoverRequest, parse_weights


def similar(
    sample_id: Annotated[int | None, typer.Option(help="a catalogued sample as the query")] = None,
    image: Annotated[Path | None, typer.Option(help="an RGB image file as the query")] = None,
    k: Annotated[int, typer.Option(help="results")] = 20,
    index: Annotated[str, typer.Option(help="auto, ivfpq, exact or hash")] = "auto",
    rerank_k: Annotated[
        int, typer.Option(help="K: re-rank the visual top K by land cover (HIR Eq. 1); 0: off")
    ] = 0,
    weights: Annotated[
        str | None, typer.Option(help="Eq. 1 class weights, e.g. 'buildings=4' (others: 1)")
    ] = None,
    landcover: Annotated[
        str | None, typer.Option(help="land-cover constraint, e.g. 'water>=0.2,buildings<=0.1'")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the result as JSON")] = False,
    overrides: Overrides = None,
) -> None:
    """The K samples most similar to an image or sample, optionally re-ranked by land cover."""
    from samplehub.retrieval.query import query_by_image

    if (sample_id is None) == (image is None):
        raise QueryError("pass exactly one of --sample-id and --image")
    pixels = None
    if image is not None:
        from PIL import Image

        with Image.open(image) as picture:
            pixels = np.asarray(picture.convert("RGB")).transpose(2, 0, 1).copy()
    request = None
    if rerank_k or landcover:
        request = LandcoverRequest(rerank_k or None, parse_weights(weights or ""), landcover)
    result = query_by_image(open_repository(overrides), image=pixels, sample_id=sample_id, k=k,
                            index=parse_index(index), landcover=request)
    if as_json:
        typer.echo(json.dumps(result_json(result), indent=2))
        return
    print_table(
        ["dataset", "sample", "labels", "score"],
        [[h.dataset, h.relpath, ",".join(h.labels), f"{h.score:.3f}"] for h in result.hits],
    )
    rerank = result.plan.get("rerank")
    if isinstance(rerank, dict):
        console.print(f"land cover: {rerank}")

"""Spatial pruning of the catalog: files a bbox read opens, per layout -> spatial.json.

Real data: the OSCD Sentinel-2 scenes of ten cities cut into 551 georeferenced chips
(``conf/sources/oscd_tiles.yaml``), ingested by the shipped ingest. The dataset's
``samples`` partition is written three ways, each in files of ``--rows-per-file`` rows
(32 by default, so 551 rows make 18 files as a large dataset's 4,096-row files would):

- ``discovery``: in the order ingest finds the files (folder by folder: by city);
- ``shuffled``: in a seeded random order, as a dataset whose file order says nothing
  about place would be (a control: real rows, not real order);
- ``hilbert``: :meth:`~samplehub.catalog.Catalog.cluster_by_hilbert`, what ingest does.

For each city's bbox the read (:meth:`~samplehub.catalog.Catalog.bbox_expression`) reports
the files it opens out of the table's, the rows it returns (equal in every layout: the
pruning skips files, never rows) and its time (median of 5, one client).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import time
from typing import Any

import numpy as np
from common import REPO, machine, require_data, write_json

CACHE = REPO / "bench" / ".cache" / "spatial"


def main() -> None:
    """Ingest the chips once, then measure each layout; writes ``spatial.json``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows-per-file", type=int, default=32)
    args = parser.parse_args()
    data = require_data("sentinel2_oscd")
    from samplehub.config import load_sources
    from samplehub.repository import Repository

    shutil.rmtree(CACHE, ignore_errors=True)
    repo = Repository.open([f"home={CACHE}", f"data_root={data}"])
    repo.ingest(load_sources(repo.config)["oscd_tiles"])
    catalog = repo.catalog
    rows = catalog.read("samples", "oscd_tiles")
    cities = rows.select(["relpath", "minx", "miny", "maxx", "maxy"]).to_pandas()
    cities["city"] = cities["relpath"].str.split("/").str[0]
    boxes = cities.groupby("city")[["minx", "miny", "maxx", "maxy"]].agg(
        {"minx": "min", "miny": "min", "maxx": "max", "maxy": "max"})
    n = args.rows_per_file
    orders = {
        "discovery": rows.sort_by("relpath"),
        "shuffled": rows.take(np.random.default_rng(0).permutation(rows.num_rows)),
    }
    layouts: dict[str, Any] = {}
    for layout in ("discovery", "shuffled", "hilbert"):
        if layout == "hilbert":
            catalog.cluster_by_hilbert("oscd_tiles", rows_per_file=n)
        else:
            ordered = orders[layout]
            files = [catalog.write_file("samples", "oscd_tiles", ordered.slice(i, n))
                     for i in range(0, ordered.num_rows, n)]
            catalog.commit_files("samples", files, replace="oscd_tiles")
        per_city = {}
        for city, box in boxes.iterrows():
            expression = catalog.bbox_expression(tuple(box))
            opened, total = catalog.files_read("samples", expression)
            times = []
            for _ in range(5):
                started = time.perf_counter()
                found = catalog.read("samples", filter_expression=expression,
                                     columns=["sample_id"]).num_rows
                times.append(time.perf_counter() - started)
            per_city[city] = {"files_read": opened, "files_total": total, "rows": found,
                              "read_ms": round(1000 * statistics.median(times), 2)}
        layouts[layout] = {
            "cities": per_city,
            "mean_fraction_of_files_read": round(float(np.mean(
                [c["files_read"] / c["files_total"] for c in per_city.values()])), 3),
        }
    same_rows = len({tuple(c["rows"] for c in v["cities"].values())
                     for v in layouts.values()}) == 1
    write_json("spatial.json", {
        "data": "real: OSCD Sentinel-2 L1C, 10 cities cut into 551 georeferenced 100 px chips",
        "rows_per_file": n,
        "clients": 1,
        "machine": machine(),
        "query": "each city's bbox (the union of its chips' bboxes), bbox-intersection filter",
        "same_rows_in_every_layout": same_rows,
        "layouts": layouts,
    })


if __name__ == "__main__":
    main()

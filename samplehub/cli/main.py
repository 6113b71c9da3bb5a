"""``samplehub``: ingest datasets, list them, look at samples.

Every command reads ``conf/`` through :func:`samplehub.config.load_config`; ``--set``
takes Hydra overrides (``--set executor.workers=2``) and ``SAMPLEHUB_HOME`` picks the
home directory (:mod:`samplehub.cli.common`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import typer
from rich.table import Column

from samplehub.cli.build import build
from samplehub.cli.common import Overrides, console, open_repository, print_table
from samplehub.cli.instance import instance_app
from samplehub.cli.labels import labels_app
from samplehub.cli.query import query
from samplehub.cli.serve import serve
from samplehub.cli.similar import similar
from samplehub.errors import SampleHubError
from samplehub.sources import SourceSpec

app = typer.Typer(
    help="SampleHub: one catalog for remote-sensing training samples.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(labels_app, name="labels")
app.add_typer(instance_app, name="instance")
app.command()(query)
app.command()(similar)
app.command("build")(build)
app.command("serve")(serve)


@app.command()
def ingest(
    uri: Annotated[
        str,
        typer.Argument(
            help="folder, manifest, GeoTIFF folder, s3://bucket/prefix, or the name "
            "of a source in conf/sources"
        ),
    ],
    name: Annotated[
        str | None, typer.Option(help="dataset name (default: the folder name)")
    ] = None,
    kind: Annotated[
        str, typer.Option(help="folder_tree, multilabel_manifest, bigearthnet, geotiff or auto")
    ] = "auto",
    option: Annotated[
        list[str] | None,
        typer.Option("--option", help="source option KEY=VALUE, e.g. images=DIR for a manifest"),
    ] = None,
    endpoint_url: Annotated[
        str | None, typer.Option(help="S3-compatible endpoint for s3:// URIs")
    ] = None,
    overrides: Overrides = None,
) -> None:
    """Ingest a dataset into the catalog and the image store (idempotent)."""
    repo = open_repository(overrides)
    configured = repo.sources()
    if uri in configured and not Path(uri).exists():
        spec = configured[uri]
    else:
        options = parse_options(option or [])
        storage = {"endpoint_url": endpoint_url} if endpoint_url else {}
        resolved = uri if "://" in uri else str(Path(uri).expanduser().resolve())
        spec = SourceSpec(
            name=name or Path(uri.rstrip("/")).stem,
            uri=resolved,
            kind=kind,
            options=options,
            storage_options=storage,
        )
    report = repo.ingest(spec, progress=True)
    console.print(
        f"[bold]{report.dataset}[/]: found {report.found}, added {report.added}, "
        f"already there {report.skipped}, quarantined {len(report.quarantined)}; "
        f"{report.total} samples in {report.labels} labels "
        f"({report.seconds:.1f} s, {report.samples_per_s:.0f} samples/s)"
    )
    if report.hashed:
        console.print(f"  content hash filled in for {report.hashed} catalogued samples")
    for item in report.quarantined[:20]:
        console.print(f"  [yellow]quarantined[/] {item.entry.relpath}: {item.reason}")
    for folder in report.empty_label_folders:
        console.print(f"  [yellow]empty label folder[/] {folder}")


@app.command()
def datasets(overrides: Overrides = None) -> None:
    """List ingested datasets with their sample and label counts."""
    frame = open_repository(overrides).catalog.datasets()
    print_table(
        ("dataset", "samples", "labels", "quarantined", "kind", "version", "source"),
        (
            (row.dataset, f"{row.n_samples:,}", str(row.n_labels), str(row.n_quarantined),
             row.kind, str(row.version), row.source_uri)
            for row in frame.itertuples()
        ),
    )


@app.command()
def samples(
    dataset: Annotated[str | None, typer.Option(help="only this dataset")] = None,
    label: Annotated[str | None, typer.Option(help="only samples with this label")] = None,
    limit: Annotated[int, typer.Option(help="at most this many rows")] = 20,
    overrides: Overrides = None,
) -> None:
    """List samples of the catalog."""
    frame = open_repository(overrides).catalog.samples(
        dataset,
        label,
        limit,
        columns=[
            "sample_id",
            "dataset",
            "relpath",
            "labels",
            "width",
            "height",
            "bands",
            "minx",
            "miny",
        ],
    )
    print_table(
        ("dataset", "relpath", "labels", "size", "bands", "lon/lat",
         Column("sample_id", no_wrap=True, min_width=19)),
        (
            (row.dataset, row.relpath, ", ".join(row.labels), f"{row.width}x{row.height}",
             str(len(row.bands)),
             "" if row.minx != row.minx else f"{row.minx:.3f}, {row.miny:.3f}",
             str(row.sample_id))
            for row in frame.itertuples()
        ),
    )


@app.command()
def show(
    sample_id: Annotated[int, typer.Argument(help="a sample id from `samplehub samples`")],
    out: Annotated[
        Path | None, typer.Option(help="PNG to write (default: <sample_id>.png)")
    ] = None,
    bands: Annotated[
        str | None, typer.Option(help="band triple for the composite, e.g. B08,B04,B03")
    ] = None,
    overrides: Overrides = None,
) -> None:
    """Print a sample's metadata and write a PNG picture of it."""
    from PIL import Image

    from samplehub.bands import rgb_composite

    row, pixels = open_repository(overrides).image(sample_id)
    triple = tuple(bands.split(",")) if bands else None
    picture = rgb_composite(pixels, row["bands"], row["sensor"], triple)
    path = out or Path(f"{sample_id}.png")
    Image.fromarray(picture.transpose(1, 2, 0)).save(path)
    for key in (
        "dataset",
        "relpath",
        "labels",
        "width",
        "height",
        "bands",
        "dtype",
        "sensor",
        "gsd",
        "minx",
        "miny",
        "maxx",
        "maxy",
        "time",
        "uri",
    ):
        console.print(f"{key:>8}: {row[key]}")
    console.print(f"wrote {path}")


@app.command()
def quarantine(
    dataset: Annotated[str | None, typer.Option(help="only this dataset")] = None,
    overrides: Overrides = None,
) -> None:
    """List quarantined samples and why."""
    frame = open_repository(overrides).catalog.quarantine(dataset)
    print_table(
        ("dataset", "relpath", "error", "reason"),
        ((row.dataset, row.relpath, row.error_type, row.reason) for row in frame.itertuples()),
    )


@app.command()
def duplicates(
    dataset: Annotated[
        list[str] | None,
        typer.Option("--dataset", help="only images with a copy in this dataset (repeatable)"),
    ] = None,
    limit: Annotated[int, typer.Option(help="list at most this many images")] = 10,
    overrides: Overrides = None,
) -> None:
    """List images that several catalog samples hold (same decoded pixels), with all labels."""
    from samplehub.catalog import find_duplicates

    report = find_duplicates(open_repository(overrides).catalog, dataset)
    console.print(
        f"{len(report.images):,} images held by more than one sample "
        f"({report.copies:,} of {report.samples:,} samples)"
    )
    if report.images:
        print_table(
            ("datasets", "images"),
            ((", ".join(names), f"{count:,}") for names, count in report.by_datasets().items()),
            title="copies by dataset",
        )
        shown = min(limit, len(report.images))
        print_table(
            ("content hash", "copies", "labels"),
            (
                (image.content_hash[:12],
                 "\n".join(f"{c.dataset}/{c.relpath}" for c in image.copies),
                 ", ".join(image.labels))
                for image in report.images[:limit]
            ),
            title=f"first {shown} of {len(report.images):,} images",
        )
    for name, count in sorted(report.unhashed.items()):
        console.print(
            f"[yellow]{name}: {count:,} samples have no content hash[/] (catalogued before "
            f"hashes were recorded); compute them with `samplehub ingest {name}`"
        )


@app.command()
def fsck(
    repair: Annotated[
        bool, typer.Option(help="drop what interrupted runs left behind (store rows past the "
                                "last commit, unpublished index versions)")
    ] = False,
    overrides: Overrides = None,
) -> None:
    """Check that catalog, store, features and index agree; exit 1 if anything is left."""
    from samplehub.fsck import check_repository

    report = check_repository(open_repository(overrides), repair=repair)
    console.print(f"{report.datasets} datasets, {report.samples:,} catalogued samples")
    for finding in report.findings:
        state = ("[green]repaired[/]" if finding.repaired
                 else "[yellow]reclaimable[/]" if finding.reclaimable else "[red]inconsistent[/]")
        console.print(f"  {state} {finding.where}: {finding.what}")
    if report.clean:
        console.print("[green]consistent[/]")
        return
    if any(f.reclaimable and not f.repaired for f in report.findings):
        console.print("run `samplehub fsck --repair` to drop what interrupted runs left")
    raise typer.Exit(1)


def parse_options(pairs: list[str]) -> dict[str, str]:
    """``["images=DIR"]`` -> ``{"images": "/abs/DIR"}``; local paths are made absolute."""
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"--option {pair!r}: expected KEY=VALUE")
        is_path = "://" not in value and Path(value).exists()
        options[key] = str(Path(value).resolve()) if is_path else value
    return options


def main() -> None:
    """Entry point: turn SampleHub errors into one clear line and exit code 2."""
    try:
        app()
    except SampleHubError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise SystemExit(2) from exc

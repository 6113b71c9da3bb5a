"""``samplehub build SPEC --out DIR``: build a dataset from a spec and export it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from samplehub.cli.common import Overrides, open_repository
from samplehub.errors import SampleHubError


def build(
    spec: Annotated[Path, typer.Argument(help="dataset spec, YAML or JSON")],
    out: Annotated[Path, typer.Option("--out", help="export folder (must not exist)")],
    supplementary: Annotated[
        str,
        typer.Option(help="which supplementary samples to export: unrejected, accepted or none"),
    ] = "unrejected",
    formats: Annotated[
        str, typer.Option(help="comma-separated: imagefolder, stac, zarr (manifests always)")
    ] = "imagefolder,stac,zarr",
    overwrite: Annotated[bool, typer.Option(help="replace an existing export folder")] = False,
    overrides: Overrides = None,
) -> None:
    """Build the logical dataset of SPEC, store it, and export it to --out."""
    from samplehub.export import BuildStore, build_dataset, export_dataset, load_spec

    try:
        dataset_spec = load_spec(spec)
        repo = open_repository(overrides)
        logical = build_dataset(repo, dataset_spec)
        BuildStore(repo.config.home_path / "builds").save(logical)
        report = export_dataset(
            repo, logical, out, formats=[f.strip() for f in formats.split(",") if f.strip()],
            supplementary=supplementary,  # type: ignore[arg-type] # checked by export_dataset
            overwrite=overwrite, progress=True,
        )
    except SampleHubError as exc:
        typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
        raise typer.Exit(code=2) from exc
    print(f"build {logical.build_id} (query {logical.spec_id}): {len(logical.members)} samples")
    for label, splits in logical.counts().items():
        print(f"  {label:24s} " + ", ".join(f"{k} {v}" for k, v in splits.items()))
    print(f"exported {report.samples} samples ({report.dropped} left out by review) to "
          f"{report.path}")

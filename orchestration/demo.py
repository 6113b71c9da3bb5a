"""``make demo``: materialize the asset graph on the demo sources and print a summary.

Per dataset: ingest, then image features (a progress bar per dataset; EuroSAT's 27k
samples take about five minutes on two cores); then the label graph, the IVF-PQ index
and the label prototypes; then HIR's TKANet and ESFormer (training bounded by the
``hir=demo`` config option) and the land-cover statistics of the datasets they train on
(the automation sensor fills the other partitions when it runs).

Runs against a real Dagster instance in ``<SAMPLEHUB_HOME>/dagster`` whose ``dagster.yaml``
is written for the configured ``instance`` (SQLite, or ``instance=postgres``;
:mod:`samplehub.instance`), so the runs show up afterwards in ``dg dev``'s UI with the same
``DAGSTER_HOME``.
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

from dagster import DagsterInstance, ExecuteInProcessResult
from rich.console import Console
from rich.table import Table

from assets.partitions import DATASET_PARTITIONS
from jobs.features import features_job, index_job
from jobs.hir import hir_training_job, landcover_stats_job
from jobs.ingest import ingest_job
from jobs.labels import label_graph_job
from orchestration.definitions import defs
from samplehub.instance import write_instance_yaml
from samplehub.repository import Repository
from samplehub.retrieval.query import run_query
from samplehub.retrieval.types import QuerySpec

console = Console()


# The console shows progress bars and the summary; the runs' full logs stay in the
# instance's event log (the Dagster UI over the same DAGSTER_HOME shows them).
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def run_job(
    instance: DagsterInstance, job: str, partition: str | None = None
) -> ExecuteInProcessResult:
    """Execute one job in-process against ``instance``, printing a line when it fails."""
    result = defs.resolve_job_def(job).execute_in_process(
        partition_key=partition, instance=instance, run_config=QUIET, raise_on_error=False
    )
    if not result.success:
        where = f" for {partition}" if partition else ""
        console.print(f"[red]run {result.run_id} ({job}) failed{where}; see the Dagster UI[/]")
    return result


def show_query(repo: Repository, labels: tuple[str, ...]) -> None:
    """Print what the three-step query returns for ``labels`` across every dataset."""
    result = run_query(repo, QuerySpec(labels=labels, k=10))
    table = Table("kind", "label", "dataset", "sample", "score", "reason", title=f"query {labels}")
    for hit in [*result.exact[:4], *result.supplementary[:8]]:
        table.add_row(
            hit.kind, hit.query_label, hit.dataset, hit.relpath, f"{hit.score:.2f}", hit.reason
        )
    console.print(table)
    exact, supplementary = len(result.exact), len(result.supplementary)
    console.print(f"{exact} exact and {supplementary} supplementary samples")
    per_label = result.plan.get("labels", {})
    for label, plan in per_label.items() if isinstance(per_label, dict) else []:
        search = plan.get("search", {})
        knobs = [f"{k} {search[k]}" for k in ("nprobe", "k_factor", "max_codes") if search.get(k)]
        why = ", ".join(knobs) or search.get("reason")
        console.print(f"  {label}: {search.get('method')} search ({why})")


def quiet_libraries() -> None:
    """Keep MLflow's table set-up, registration and pickle notices off the console.

    The runs record what they did as Dagster metadata and MLflow runs; the console keeps the
    progress bars and the summary.
    """
    from mlflow.utils.logging_utils import disable_logging

    disable_logging()  # MLflow's own stream: its log records and its registration prints
    warnings.filterwarnings("ignore", module="mlflow")


def main() -> int:
    """Ingest every available demo source through Dagster, then print the catalog."""
    quiet_libraries()
    repo = Repository.open()
    sources = repo.available_sources()
    if not sources:
        console.print(
            f"[red]No demo data found under {Path(repo.config.data_root).resolve()}.[/]\n"
            "Point SAMPLEHUB_DATA at a folder holding eurosat_rgb/, ucmerced/, "
            "ucmerced_multilabel/, bigearthnet_examples/ or multispectral_rgbn/, e.g.\n"
            "  SAMPLEHUB_DATA=/path/to/shared/data make demo\n"
            "or ingest your own folder with: .venv/bin/samplehub ingest PATH --name NAME"
        )
        return 1
    dagster_home = write_instance_yaml(repo.config).parent
    os.environ["DAGSTER_HOME"] = str(dagster_home)
    instance = DagsterInstance.get()
    instance.add_dynamic_partitions(DATASET_PARTITIONS, sorted(sources))
    for name in sorted(sources):
        for job, assets in ((ingest_job, "samples, label_tree"), (features_job, "image_features")):
            console.print(f"[bold]materializing[/] {assets} of \\[{name}] ...")
            if not run_job(instance, job.name, name).success:
                return 1
    console.print("[bold]materializing[/] label_graph, label_embeddings ...")
    if not run_job(instance, label_graph_job.name).success:
        return 1
    console.print("[bold]materializing[/] ivfpq_index, label_prototypes ...")
    index_run = run_job(instance, index_job.name)
    if not index_run.success:
        return 1
    for check in index_run.get_asset_check_evaluations():
        console.print(
            f"check {check.check_name}: passed={check.passed} "
            f"{ {k: v.value for k, v in check.metadata.items()} }"
        )
    console.print("[bold]materializing[/] tkanet_model, esformer_model (HIR) ...")
    if not run_job(instance, hir_training_job.name).success:
        return 1
    for name in sorted({repo.config.hir.tkanet_dataset, repo.config.hir.esformer_dataset}
                       & set(sources)):
        console.print(f"[bold]materializing[/] landcover_stats of \\[{name}] ...")
        if not run_job(instance, landcover_stats_job.name, name).success:
            return 1
    summary = Table("dataset", "samples", "labels", "quarantined", "kind")
    for row in repo.catalog.datasets().itertuples():
        summary.add_row(
            row.dataset, f"{row.n_samples:,}", str(row.n_labels), str(row.n_quarantined), row.kind
        )
    console.print(summary)
    show_query(repo, ("river", "bridge"))
    console.print(
        f"home: {repo.config.home_path}   dagster UI: DAGSTER_HOME={dagster_home} "
        ".venv/bin/dg dev -m orchestration.definitions"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The label-graph job: merge every dataset's label tree, then embed the labels."""

from dagster import AssetSelection, define_asset_job

label_graph_job = define_asset_job(
    name="build_label_graph",
    selection=AssetSelection.groups("labels"),
    description="Merge every label_tree partition into the label graph (Algorithm 1).",
)

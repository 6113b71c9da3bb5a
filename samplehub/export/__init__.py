"""Application-tailored datasets (main paper, section 3.4.3).

A spec becomes a logical dataset, review feedback refines it, and an export writes it out
(ImageFolder, Parquet/CSV manifest, STAC items, Zarr bundle).
"""

from samplehub.export.builder import LogicalDataset, Member, QueryFunction, build_dataset
from samplehub.export.builds import BuildStore
from samplehub.export.export import FORMATS, ExportReport, export_dataset, reviewed_members
from samplehub.export.feedback import (
    Decision,
    export_feedback,
    feedback_rows,
    latest_decisions,
    record_feedback,
    rejected_ids,
)
from samplehub.export.spec import DatasetSpec, load_spec, parse_spec, query_id

__all__ = [
    "FORMATS",
    "BuildStore",
    "DatasetSpec",
    "Decision",
    "ExportReport",
    "LogicalDataset",
    "Member",
    "QueryFunction",
    "build_dataset",
    "export_dataset",
    "export_feedback",
    "feedback_rows",
    "latest_decisions",
    "load_spec",
    "parse_spec",
    "query_id",
    "record_feedback",
    "rejected_ids",
    "reviewed_members",
]

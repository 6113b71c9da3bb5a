"""The one Dagster ``Definitions`` of SampleHub (``dagster dev -m orchestration.definitions``)."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from dagster import Definitions, load_asset_checks_from_modules, load_assets_from_modules

import assets.features
import assets.ingest
import assets.label_graph
from jobs.features import features_job, index_job, scene_model_job
from jobs.ingest import ingest_job
from jobs.labels import label_graph_job
from orchestration.resources import RESOURCES
from orchestration.schedules import rescan_schedule
from orchestration.sensors import new_dataset_sensor

ASSET_MODULES = [assets.ingest, assets.label_graph, assets.features]

defs = Definitions(
    assets=load_assets_from_modules(ASSET_MODULES),
    asset_checks=load_asset_checks_from_modules(ASSET_MODULES),
    jobs=[ingest_job, label_graph_job, features_job, index_job, scene_model_job],
    sensors=[new_dataset_sensor],
    schedules=[rescan_schedule],
    resources=RESOURCES,
)

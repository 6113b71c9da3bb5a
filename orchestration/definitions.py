"""The one Dagster ``Definitions`` of SampleHub (``dg dev -m orchestration.definitions``)."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from dagster import (
    Definitions,
    in_process_executor,
    load_asset_checks_from_modules,
    load_assets_from_modules,
)

import assets.features
import assets.hashing
import assets.hir
import assets.ingest
import assets.label_graph
import assets.labelling
from jobs.features import features_job, index_job, scene_model_job
from jobs.hashing import hash_codes_job, hash_index_job, hash_training_job
from jobs.hir import hir_training_job, landcover_stats_job
from jobs.ingest import ingest_job
from jobs.labelling import labelling_job
from jobs.labels import label_graph_job
from orchestration.resources import RESOURCES
from orchestration.schedules import build_schedules
from orchestration.sensors import (
    automation_sensor,
    hash_retraining_sensor,
    new_dataset_sensor,
    orphaned_runs_sensor,
)
from samplehub.config import load_config

ASSET_MODULES = [
    assets.ingest, assets.label_graph, assets.features, assets.hashing, assets.hir,
    assets.labelling,
]

defs = Definitions(
    assets=load_assets_from_modules(ASSET_MODULES),
    asset_checks=load_asset_checks_from_modules(ASSET_MODULES),
    jobs=[
        ingest_job,
        label_graph_job,
        features_job,
        index_job,
        scene_model_job,
        hash_training_job,
        hash_codes_job,
        hash_index_job,
        hir_training_job,
        landcover_stats_job,
        labelling_job,
    ],
    sensors=[new_dataset_sensor, hash_retraining_sensor, automation_sensor,
             orphaned_runs_sensor],
    # The cron strings are configuration: composed here, once, when the code location loads.
    schedules=build_schedules(load_config()),
    resources=RESOURCES,
    # One process per run: a step subprocess would import torch again for each step, and
    # the heavy steps already use every core (the run queue bounds the parallelism).
    executor=in_process_executor,
)

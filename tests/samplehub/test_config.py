"""Hydra configuration: composition, validation errors that name the key, source files."""

from dataclasses import asdict, fields
from pathlib import Path

import pytest

from ml.features import SceneTrainConfig
from samplehub.config import (
    REPO_CONF_DIR,
    SampleHubConfig,
    SceneTrainingConfig,
    SourceConfig,
    load_config,
    load_source,
    load_sources,
)
from samplehub.errors import ConfigError, LabelGraphError
from samplehub.labels.merge import MergeSettings
from samplehub.labels.settings import graph_settings_from_config
from samplehub.sources import SourceSpec


def test_defaults_compose_and_env_sets_home(home: Path) -> None:
    config = load_config()
    assert config.home_path == home
    assert config.catalog_uri == str(home / "catalog")
    assert config.executor.kind == "threads"
    assert load_config(["executor.workers=2"]).executor.workers == 2



def test_stack_profile_picks_the_server_groups_and_reads_their_addresses(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``profile=stack`` (conf/profile/stack.yaml): what infra/stack.py's stack.env exports."""
    monkeypatch.delenv("SAMPLEHUB_OVERRIDES", raising=False)
    env = {"DAGSTER_POSTGRES_URL": "postgresql://dagster@127.0.0.1:15432/dagster",
           "AWS_ENDPOINT_URL": "http://127.0.0.1:15000",
           "SPARK_MASTER_URL": "spark://127.0.0.1:17077",
           "MLFLOW_TRACKING_URI": "http://127.0.0.1:15001"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    config = load_config(["profile=stack"])
    assert (config.instance.kind, config.executor.kind) == ("postgres", "spark")
    assert config.instance.postgres_url == env["DAGSTER_POSTGRES_URL"]
    assert config.catalog_uri == "s3://samplehub/catalog"
    assert config.storage.storage_options["AWS_ENDPOINT_URL"] == env["AWS_ENDPOINT_URL"]
    assert config.executor.spark_master == env["SPARK_MASTER_URL"]
    assert config.mlflow.tracking_uri == env["MLFLOW_TRACKING_URI"]
    assert load_config(["profile=stack", "executor=threads"]).executor.kind == "threads"
    monkeypatch.delenv("SPARK_MASTER_URL")
    assert load_config(["executor=spark"]).executor.spark_master == "local[*]"
    assert load_config().instance.kind == "sqlite", "no profile: the embedded default"

@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("executor.workerz=3", "executor.workerz"),
        ("executor.workers=abc", "executor.workers"),
        ("retrieval.nprobe=many", "retrieval.nprobe"),
        ("+graph.merge.kk=3", "graph.merge.kk"),
        ("graph.merge.k=ten", "graph.merge.k"),
        ("model.train.epochs=many", "model.train.epochs"),
    ],
)
def test_bad_override_names_the_key(override: str, key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config([override])


def test_bad_key_in_a_config_file_names_it(tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    for group, option in [
        ("storage", "local"),
        ("graph", "embedded"),
        ("executor", "threads"),
        ("instance", "sqlite"),
        ("mlflow", "local"),
        ("model", "efficientnet_lite0"),
        ("retrieval", "ivfpq"),
        ("hashing", "deep"),
        ("hir", "demo"),
        ("labelling", "default"),
    ]:
        (conf / group).mkdir(parents=True)
        (conf / group / f"{option}.yaml").write_text("{}\n")
    (conf / "executor" / "threads.yaml").write_text("kind: threads\nbatchsize: 10\n")
    (conf / "config.yaml").write_text(
        Path("conf/config.yaml").read_text() if Path("conf/config.yaml").exists() else ""
    )
    with pytest.raises(ConfigError, match="batchsize"):
        load_config(conf_dir=conf)


def test_source_files_validate_and_resolve_data_root(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("name: demo\nuri: ${data_root}/eurosat_rgb\nkind: folder_tree\n")
    spec = load_source(good, str(tmp_path / "data"))
    assert spec.uri == str(tmp_path / "data" / "eurosat_rgb")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: demo\nuri: /x\nkinds: folder_tree\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*kinds"):
        load_source(bad)
    missing = tmp_path / "missing.yaml"
    missing.write_text("uri: /x\n")
    with pytest.raises(ConfigError, match="name"):
        load_source(missing)


def test_repository_sources_are_unique_and_valid(home: Path) -> None:
    specs = load_sources(load_config())
    assert {"eurosat", "ucmerced", "ucmerced_multilabel", "bigearthnet_s2", "rgbn"} <= set(specs)
    assert all(spec.name == name for name, spec in specs.items())


def test_code_defaults_are_the_conf_values(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One source of truth: every dataclass default equals the composed ``conf/`` value."""
    for name in ("NEO4J_URI", "NEO4J_USER", "NEO4J_PASSWORD", "NEO4J_DATABASE"):
        monkeypatch.delenv(name, raising=False)
    for name in ("SAMPLEHUB_OVERRIDES", "SAMPLEHUB_DATA", "SAMPLEHUB_CONF"):
        monkeypatch.delenv(name, raising=False)
    composed, defaults = asdict(load_config()), asdict(SampleHubConfig())
    for key in ("home", "sources_dir"):  # the environment's and the conf folder's
        del composed[key], defaults[key]
    assert composed == defaults


def test_graph_section_is_typed_and_resolved_for_the_label_graph(home: Path) -> None:
    config = load_config(["graph.merge.k=7"])
    assert config.graph.merge.k == 7 and config.graph.overrides == "conf/label_overrides.yaml"
    settings = graph_settings_from_config(config)
    assert settings.merge == MergeSettings(**asdict(config.graph.merge))
    assert (settings.merge.text_weight, settings.merge.map_threshold) == (0.5, 0.7)
    assert settings.taxonomy == REPO_CONF_DIR.parent / "../shared/taxonomy/dataset_labels.json"
    assert settings.overrides == REPO_CONF_DIR.parent / "conf/label_overrides.yaml"
    with pytest.raises(ConfigError, match=r"graph\.backend"):
        load_config(["graph.backend=graphdb"])



def test_the_osm_network_follows_the_data_root(home: Path, tmp_path: Path) -> None:
    """``SAMPLEHUB_DATA`` (``data_root``) moves every real-data path, the OSM network too."""
    settings = graph_settings_from_config(load_config([f"data_root={tmp_path}"]))
    assert settings.osm_network == (
        tmp_path / "osm_semantic_network" / "osm_semantic_network.skos.rdf.gz")


def test_merge_and_association_ranges_are_checked_when_the_config_loads(home: Path) -> None:
    config = load_config(["graph.association.theta=0.2"])
    assert isinstance(config.graph.merge, MergeSettings)
    assert graph_settings_from_config(config).association is config.graph.association
    with pytest.raises(LabelGraphError, match=r"merge\.k"):
        load_config(["graph.merge.k=0"])


def test_model_train_section_mirrors_the_scene_trainer() -> None:
    """``model.train`` is SceneTrainConfig but ``dim`` (``model.dim``); see SceneTrainingConfig."""
    trainer = {f.name: (f.type, f.default) for f in fields(SceneTrainConfig) if f.name != "dim"}
    section = {f.name: (f.type, f.default) for f in fields(SceneTrainingConfig)}
    assert section == trainer


def test_source_file_schema_names_every_field_of_the_spec() -> None:
    """``load_source`` copies a source file into a SourceSpec by field name."""
    assert {f.name for f in fields(SourceConfig)} == {f.name for f in fields(SourceSpec)}

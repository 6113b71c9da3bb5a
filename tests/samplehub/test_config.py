"""Hydra configuration: composition, validation errors that name the key, source files."""

from pathlib import Path

import pytest

from samplehub.config import load_config, load_source, load_sources
from samplehub.errors import ConfigError


def test_defaults_compose_and_env_sets_home(home: Path) -> None:
    config = load_config()
    assert config.home_path == home
    assert config.catalog_uri == str(home / "catalog")
    assert config.executor.kind == "threads"
    assert load_config(["executor.workers=2"]).executor.workers == 2


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("executor.workerz=3", "executor.workerz"),
        ("executor.workers=abc", "executor.workers"),
        ("retrieval.nprobe=many", "retrieval.nprobe"),
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

"""Executor selection and the deploy/cluster files, checked against the real schemas.

The files a lab copies (celery.yaml, dagster.yaml.example, worker.sbatch) are validated with
the same code dagster-celery workers and the Dagster instance use, so a typo fails here and
not on the cluster.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster._config import Shape, validate_config
from dagster._core.instance.config import dagster_instance_config_schema
from dagster_celery.cli import get_validated_config

from ace_assets.defs.executors import (
    CELERY_QUEUE_TAG,
    HEAVY_QUEUE,
    REDIS_VISIBILITY_TIMEOUT_S,
    celery_executor_config,
    celery_executor_def,
    celery_executor_from_yaml,
    celery_yaml_text,
    executor_from_env,
    heavy_op_tags,
    local_executor_config,
    local_executor_def,
    read_celery_yaml,
)
from ace_assets.errors import AceInputError
from ace_assets_tests.helpers.paths import REPO

CLUSTER = REPO / "deploy" / "cluster"


def test_redis_config_shares_broker_and_guards_long_steps() -> None:
    config = celery_executor_config("redis://ace-data:6379/0")
    assert config["backend"] == "redis://ace-data:6379/0"
    source = config["config_source"]
    assert source["broker_transport_options"]["visibility_timeout"] == REDIS_VISIBILITY_TIMEOUT_S
    assert source["broker_transport_options"]["max_retries"] == 3
    assert source["worker_prefetch_multiplier"] == 1
    assert source["worker_disable_prefetch"] is True


def test_non_redis_broker_gets_rpc_backend_and_no_redis_options() -> None:
    config = celery_executor_config("pyamqp://guest@rabbit//")
    assert config["backend"] == "rpc://"
    assert "visibility_timeout" not in config["config_source"]["broker_transport_options"]
    assert "worker_disable_prefetch" not in config["config_source"]


def test_config_source_merges_transport_options() -> None:
    config = celery_executor_config(
        "filesystem://",
        "file:///tmp/results",
        config_source={"broker_transport_options": {"data_folder_in": "/q"}, "x": 1},
    )
    options = config["config_source"]["broker_transport_options"]
    assert options["data_folder_in"] == "/q" and options["max_retries"] == 3
    assert config["config_source"]["x"] == 1


@pytest.mark.parametrize("broker", ["", "ace-data:6379"])
def test_bad_broker_is_an_input_error(broker: str) -> None:
    with pytest.raises(AceInputError, match="broker"):
        celery_executor_config(broker)


def test_generated_yaml_is_what_dagster_celery_workers_accept(tmp_path: Path) -> None:
    path = tmp_path / "celery.yaml"
    path.write_text(celery_yaml_text("redis://127.0.0.1:6399/0"))
    worker_view = get_validated_config(str(path))  # what `dagster-celery worker start -y` does
    assert worker_view["broker"] == "redis://127.0.0.1:6399/0"
    ours = read_celery_yaml(path)
    assert ours["config_source"] == worker_view["config_source"]


def test_env_form_keeps_password_out_of_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "celery.yaml"
    path.write_text("execution:\n  config:\n    broker: {env: ACE_TEST_BROKER}\n")
    with pytest.raises(AceInputError, match="ACE_TEST_BROKER"):
        read_celery_yaml(path)
    monkeypatch.setenv("ACE_TEST_BROKER", "redis://:secret@ace-data:6379/0")
    assert read_celery_yaml(path)["broker"] == "redis://:secret@ace-data:6379/0"
    assert get_validated_config(str(path))["broker"] == "redis://:secret@ace-data:6379/0"


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("execution: {config: {backend: 'rpc://'}}\n", "broker"),
        ("execution: {config: {broker: 'redis://h/0', brokr: 1}}\n", "unknown keys"),
        ("execution: [\n", "cannot read"),
    ],
)
def test_bad_celery_yaml_names_the_file(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "celery.yaml"
    path.write_text(text)
    with pytest.raises(AceInputError, match=match) as info:
        read_celery_yaml(path)
    assert str(path) in str(info.value)


def test_shipped_celery_yaml_matches_the_code() -> None:
    path = CLUSTER / "celery.yaml"
    shipped = read_celery_yaml(path)
    assert shipped == celery_executor_config(shipped["broker"], shipped["backend"])
    assert get_validated_config(str(path))["broker"] == shipped["broker"]
    assert celery_executor_from_yaml(path).name == "ace_celery"


def test_shipped_dagster_yaml_example_is_a_valid_instance_config(tmp_path: Path) -> None:
    text = (CLUSTER / "dagster.yaml.example").read_text()
    parsed = yaml.safe_load(text)
    result = validate_config(Shape(dagster_instance_config_schema()), parsed)
    assert result.success, [e.message for e in result.errors or []]
    # and it loads: everything but Postgres (needs a server) on a temp "shared" folder
    local = yaml.safe_load(text.replace("/lab/dagster", str(tmp_path)))
    local.pop("storage")
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text(yaml.safe_dump(local))
    instance = dg.DagsterInstance.from_config(str(home))
    assert type(instance.run_launcher).__name__ == "DefaultRunLauncher"
    assert instance.get_concurrency_config().run_queue_config.max_concurrent_runs == 8
    assert str(instance.storage_directory()).startswith(str(tmp_path / "storage"))


def test_worker_sbatch_is_valid_bash_and_refuses_missing_config(tmp_path: Path) -> None:
    script = CLUSTER / "worker.sbatch"
    assert subprocess.run(["bash", "-n", str(script)], check=False).returncode == 0
    head = script.read_text().splitlines()[:10]
    assert any(line.startswith("#SBATCH --signal=B:TERM@") for line in head)
    done = subprocess.run(
        ["bash", str(script)],
        env={
            "PATH": "/usr/bin:/bin",
            "ACE_ENV": str(tmp_path),
            "DAGSTER_HOME": str(tmp_path),
            "ACE_CELERY_CONFIG": str(tmp_path / "missing.yaml"),
        },
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert done.returncode == 2 and "missing.yaml" in done.stderr


def test_executor_from_env_switches_without_code_edits(tmp_path: Path) -> None:
    assert executor_from_env({}).name == "local_x2"
    assert executor_from_env({"ACE_MAX_CONCURRENT": "6"}).name == "local_x6"
    assert executor_from_env({"ACE_MAX_HEAVY": "1"}).name == "local_x2_heavy1"
    assert executor_from_env({"ACE_CELERY_BROKER": "redis://h:6379/0"}).name == "ace_celery"
    path = tmp_path / "celery.yaml"
    path.write_text(celery_yaml_text("redis://h:6379/0"))
    assert executor_from_env({"ACE_CELERY_CONFIG": str(path)}).name == "ace_celery"
    with pytest.raises(AceInputError, match="ACE_MAX_CONCURRENT"):
        executor_from_env({"ACE_MAX_CONCURRENT": "two"})
    with pytest.raises(AceInputError):
        local_executor_def(0)


def test_executor_configs_satisfy_the_executor_schemas() -> None:
    from dagster_celery import celery_executor

    local_schema = dg.multiprocess_executor.config_schema.config_type
    for config in (local_executor_config(2), local_executor_config(3, 1)):
        result = validate_config(local_schema, config)
        assert result.success, [e.message for e in result.errors or []]
    assert local_executor_config(2) == {"max_concurrent": 2}  # exactly the documented config
    celery_schema = celery_executor.config_schema.config_type
    result = validate_config(celery_schema, celery_executor_config("redis://h:6379/0"))
    assert result.success, [e.message for e in result.errors or []]


def test_heavy_tag_routes_in_a_job_built_with_either_executor() -> None:
    @dg.asset(op_tags=heavy_op_tags())
    def big() -> None: ...

    @dg.asset(deps=[big])
    def small() -> None: ...

    for executor in (celery_executor_def("redis://h:6379/0"), local_executor_def(2, 1)):
        defs = dg.Definitions(assets=[big, small], executor=executor)
        job = defs.resolve_implicit_global_asset_job_def()
        tags = {n.name: n.definition.tags for n in job.graph.node_dict.values()}
        assert tags["big"][CELERY_QUEUE_TAG] == HEAVY_QUEUE
        assert CELERY_QUEUE_TAG not in tags["small"]
        assert job.executor_def is executor

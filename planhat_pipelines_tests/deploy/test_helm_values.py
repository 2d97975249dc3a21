"""deploy/helm/values.yaml, the values of Dagster's Helm chart for this project: its structure, and its agreement
with deploy/dagster.yaml (the same instance settings, for a deployment on VMs).

No chart and no network: the values are read as YAML and checked for what this project needs (the code
location's module, the Secrets, the config and the store volume in the code server and in every run pod, no
secret value in the file). The instance settings are translated from the chart's keys to dagster.yaml's and
compared with deploy/dagster.yaml, so a change to either file that the other lacks fails here.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
VALUES_FILE = ROOT / "deploy" / "helm" / "values.yaml"
INSTANCE_FILE = ROOT / "deploy" / "dagster.yaml"

DEPLOYMENT = "planhat-pipelines"
CONFIG_ENV = "PLANHAT_PIPELINES_CONFIG"
CONFIG_MAP = "planhat-pipelines-config"
CONFIG_KEY = "planhat_pipelines.yaml"
STORE_SECRET = "planhat-store-catalog"
STORE_PASSWORD_ENV = "PLANHAT_STORE_PG_PASSWORD"
WAREHOUSE_SECRET = "planhat-warehouse-credentials"
STORE_CLAIM = "planhat-store-data"

#: What Dagster keeps a tick status for when `purge_after_days` does not name it (-1: forever); from
#: dagster/_core/instance/config.py, get_default_tick_retention_settings (importing dagster here costs 2 s).
DEFAULT_TICK_RETENTION = {
    "schedule": {"started": -1, "skipped": -1, "success": -1, "failure": -1},
    "sensor": {"started": -1, "skipped": 7, "success": -1, "failure": -1},
}
#: The top-level dagster.yaml sections the chart writes from its own keys; additionalInstanceConfig must not
#: repeat them (the chart would write the section twice).
CHART_SECTIONS = {
    "scheduler",
    "schedule_storage",
    "run_launcher",
    "run_storage",
    "event_log_storage",
    "run_coordinator",
    "compute_logs",
    "python_logs",
    "run_monitoring",
    "run_retries",
    "sensors",
    "schedules",
    "backfills",
    "telemetry",
    "retention",
    "concurrency",
}
#: Keys whose value would be a secret if written out.
SECRET_KEY = re.compile(r"pass(word|phrase)?|token|secret|private_?key|credential|api_?key", re.IGNORECASE)
EXAMPLE_BLOCK = re.compile(
    r"^# BEGIN example planhat_pipelines\.yaml\n(?P<body>.*?)^# END example planhat_pipelines\.yaml$",
    re.MULTILINE | re.DOTALL,
)


def _values() -> dict[str, Any]:
    values = yaml.safe_load(VALUES_FILE.read_text())
    assert isinstance(values, dict), f"{VALUES_FILE} is not a YAML mapping"
    return values


def _instance() -> dict[str, Any]:
    instance = yaml.safe_load(INSTANCE_FILE.read_text())
    assert isinstance(instance, dict), f"{INSTANCE_FILE} is not a YAML mapping"
    return instance


def _example_config() -> dict[str, Any]:
    """The project config shown, commented out, at the top of values.yaml (what goes into the ConfigMap)."""
    match = EXAMPLE_BLOCK.search(VALUES_FILE.read_text())
    assert match is not None, "values.yaml has no '# BEGIN/END example planhat_pipelines.yaml' block"
    body = "\n".join(re.sub(r"^# ?", "", line) for line in match["body"].splitlines())
    config = yaml.safe_load(body)
    assert isinstance(config, dict), "the example project config is not a YAML mapping"
    return config


def _deployment(values: dict[str, Any]) -> dict[str, Any]:
    deployments = values["dagster-user-deployments"]["deployments"]
    assert [d["name"] for d in deployments] == [DEPLOYMENT]
    deployment = deployments[0]
    assert isinstance(deployment, dict)
    return deployment


def _launcher(values: dict[str, Any]) -> dict[str, Any]:
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    assert isinstance(launcher, dict)
    return launcher


def _pods(values: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The two pod specs this project's code runs in: the code server and each run's Job."""
    return {"user deployment": _deployment(values), "run launcher": _launcher(values)}


def _snake(key: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower()


def _snake_keys(node: Any) -> Any:
    """The chart's camelCase keys as dagster.yaml spells them; unset (null) values left out, as the chart does."""
    if isinstance(node, dict):
        return {_snake(k): _snake_keys(v) for k, v in node.items() if v is not None}
    return node


def _retention(section: dict[str, Any], defaults: dict[str, int]) -> Any:
    """A `purge_after_days`, with the statuses it does not name at Dagster's default."""
    days = section["purge_after_days"]
    return {**defaults, **days} if isinstance(days, dict) else days


def _chart_instance(values: dict[str, Any]) -> dict[str, Any]:
    """The instance sections that the chart's configmap-instance.yaml writes from these values (not storage)."""
    daemon = values["dagsterDaemon"]
    instance: dict[str, Any] = {"run_coordinator": {"class": daemon["runCoordinator"]["type"]}}
    if daemon["runMonitoring"]["enabled"]:
        instance["run_monitoring"] = _snake_keys(daemon["runMonitoring"])
    if daemon["runRetries"]["enabled"]:
        instance["run_retries"] = _snake_keys(daemon["runRetries"])
    concurrency = values["concurrency"]
    if concurrency["enabled"]:
        instance["concurrency"] = _snake_keys({"pools": concurrency["pools"], "runs": concurrency["runs"]})
    retention = values["retention"]
    if retention["enabled"]:
        instance["retention"] = {
            kind: {"purge_after_days": retention[kind]["purgeAfterDays"]} for kind in ("schedule", "sensor")
        }
    instance["telemetry"] = {"enabled": values["telemetry"]["enabled"]}
    instance.update(values.get("additionalInstanceConfig") or {})
    return instance


def _secret_names(pod: dict[str, Any]) -> list[str]:
    return [secret["name"] for secret in pod.get("envSecrets") or []]


def _config_path(name: str, pod: dict[str, Any]) -> str:
    if name == "user deployment":
        env = pod.get("env") or {}
        assert isinstance(env, dict), "the user deployment's env is expected as a map (it goes to a ConfigMap)"
        return str(env.get(CONFIG_ENV, ""))
    settings = dict(entry.split("=", 1) for entry in pod.get("envVars") or [] if "=" in entry)
    return settings.get(CONFIG_ENV, "")


def _mount_of(pod: dict[str, Any], volume: dict[str, Any]) -> dict[str, Any]:
    mounts = [m for m in pod.get("volumeMounts") or [] if m["name"] == volume["name"]]
    assert len(mounts) == 1, f"volume {volume['name']} is mounted {len(mounts)} times"
    return mounts[0]


def _volumes(pod: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [v for v in pod.get("volumes") or [] if kind in v]


def _literal_secrets(node: Any, path: str = "") -> list[str]:
    """Where a password/token/secret-like key holds a value written out rather than a reference."""
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            where = f"{path}.{key}" if path else str(key)
            written = isinstance(value, str | int | float) and not isinstance(value, bool) and str(value) != ""
            # Allowed: nothing, or the *name* of a Kubernetes Secret (postgresqlSecretName, secretName).
            if SECRET_KEY.search(str(key)) and written and not str(key).lower().endswith("secretname"):
                found.append(where)
            found.extend(_literal_secrets(value, where))
    elif isinstance(node, list):
        for i, item in enumerate(node):
            where = f"{path}[{i}]"
            if isinstance(item, str) and "=" in item and SECRET_KEY.search(item.split("=", 1)[0]):
                found.append(where)  # an envVars entry NAME=value carrying a secret
            found.extend(_literal_secrets(item, where))
    return found


def _secret_fields(node: Any, path: str = "") -> list[tuple[str, Any]]:
    """Every password/token/secret-like key of the project config, with its value."""
    found: list[tuple[str, Any]] = []
    if isinstance(node, dict):
        for key, value in node.items():
            where = f"{path}.{key}" if path else str(key)
            if SECRET_KEY.search(str(key)):
                found.append((where, value))
            else:
                found.extend(_secret_fields(value, where))
    elif isinstance(node, list):
        for i, item in enumerate(node):
            found.extend(_secret_fields(item, f"{path}[{i}]"))
    return found


def test_the_values_are_a_yaml_mapping_with_the_sections_this_deployment_sets() -> None:
    values = _values()
    for section in ("dagster-user-deployments", "runLauncher", "dagsterDaemon", "dagsterWebserver", "postgresql"):
        assert section in values, section


def test_runs_are_kubernetes_jobs() -> None:
    values = _values()
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    assert "k8sRunLauncher" in values["runLauncher"]["config"]


def test_the_user_deployment_serves_the_definitions_module() -> None:
    deployment = _deployment(_values())
    args = deployment["dagsterApiGrpcArgs"]
    assert args[0] in ("--module-name", "-m") and len(args) == 2, args
    assert args[1] == "planhat_pipelines.definitions"
    assert importlib.util.find_spec(args[1]) is not None, f"{args[1]} is not importable"
    assert deployment["port"] == 3030


def test_the_image_tag_is_pinned() -> None:
    image = _deployment(_values())["image"]
    assert image["repository"]
    tag = image["tag"]
    assert isinstance(tag, str) and tag.strip(), "the image tag must be a quoted, non-empty string"
    assert tag != "latest"
    assert image["pullPolicy"] == "IfNotPresent"


def test_the_project_config_is_mounted_where_its_variable_points_in_every_pod() -> None:
    for name, pod in _pods(_values()).items():
        path = PurePosixPath(_config_path(name, pod))
        assert path.name == CONFIG_KEY, f"{name}: {CONFIG_ENV} is {str(path)!r}"
        [volume] = [v for v in _volumes(pod, "configMap") if v["configMap"]["name"] == CONFIG_MAP]
        items = {item["key"]: item["path"] for item in volume["configMap"].get("items") or []}
        assert items.get(CONFIG_KEY, CONFIG_KEY) == path.name, f"{name}: the ConfigMap key lands elsewhere"
        mount = _mount_of(pod, volume)
        assert PurePosixPath(mount["mountPath"]) == path.parent, f"{name}: the config is mounted elsewhere"
        assert "subPath" not in mount, f"{name}: a subPath mount would never see an updated ConfigMap"


def test_the_store_and_warehouse_secrets_reach_every_pod() -> None:
    pods = _pods(_values())
    for name, pod in pods.items():
        secrets = _secret_names(pod)
        assert STORE_SECRET in secrets, f"{name} lacks the Secret {STORE_SECRET}"
        assert WAREHOUSE_SECRET in secrets, f"{name} lacks the Secret {WAREHOUSE_SECRET}"
    assert _secret_names(pods["user deployment"]) == _secret_names(pods["run launcher"])


def test_the_example_config_reads_the_store_password_from_the_store_secret_and_its_files_from_the_volume() -> None:
    store = _example_config()["store"]
    postgres = store["postgres"]
    assert set(postgres) == {"host", "port", "database", "user", "password"}
    assert postgres["password"] == {"env": STORE_PASSWORD_ENV}
    for name, pod in _pods(_values()).items():
        [volume] = [v for v in _volumes(pod, "persistentVolumeClaim") if v["name"] == STORE_CLAIM]
        assert volume["persistentVolumeClaim"]["claimName"] == STORE_CLAIM
        mount = _mount_of(pod, volume)
        assert PurePosixPath(mount["mountPath"]) == PurePosixPath(store["data_path"]), name
        assert not mount.get("readOnly"), f"{name}: the store's files must be writable"


def test_run_pods_get_the_code_locations_env_secrets_and_volumes() -> None:
    values = _values()
    assert _deployment(values)["includeConfigInLaunchedRuns"]["enabled"] is True
    deployment, launcher = _deployment(values), _launcher(values)
    assert launcher["volumes"] == deployment["volumes"]
    assert launcher["volumeMounts"] == deployment["volumeMounts"]


@pytest.mark.parametrize("section", ["run_monitoring", "run_retries", "concurrency", "telemetry", "freshness"])
def test_an_instance_section_equals_deploy_dagster_yaml(section: str) -> None:
    chart, instance = _chart_instance(_values()), _instance()
    assert section in instance, f"deploy/dagster.yaml has no {section}"
    assert chart.get(section) == instance[section]


def test_tick_retention_equals_deploy_dagster_yaml() -> None:
    chart, instance = _chart_instance(_values()), _instance()
    for kind, defaults in DEFAULT_TICK_RETENTION.items():
        assert _retention(chart["retention"][kind], defaults) == _retention(instance["retention"][kind], defaults)


def test_the_run_queue_equals_deploy_dagster_yaml() -> None:
    values, instance = _values(), _instance()
    assert _chart_instance(values)["run_coordinator"]["class"] == instance["run_coordinator"]["class"]
    # Dagster refuses a run coordinator's max_concurrent_runs once `concurrency:` sets pools or runs.
    queued = values["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"] or {}
    assert queued.get("maxConcurrentRuns") is None


def test_every_instance_section_of_deploy_dagster_yaml_is_in_the_values() -> None:
    values, instance = _values(), _instance()
    assert set(_chart_instance(values)) == set(instance) - {"storage"}
    assert not set(values.get("additionalInstanceConfig") or {}) & CHART_SECTIONS


def test_dagsters_database_is_external_and_uses_the_installed_driver() -> None:
    values, instance = _values(), _instance()
    postgresql = values["postgresql"]
    assert postgresql["enabled"] is False
    assert postgresql["postgresqlScheme"] == instance["storage"]["postgres"]["postgres_db"]["scheme"]
    assert values["generatePostgresqlPasswordSecret"] is False
    assert values["global"]["postgresqlSecretName"]


def test_no_secret_value_is_written_in_the_values_or_the_example_config() -> None:
    assert _literal_secrets(_values()) == []
    config = _example_config()
    assert _literal_secrets(config) == []
    fields = _secret_fields(config)
    assert fields, "the example config names no secret"
    for where, value in fields:
        assert isinstance(value, dict) and set(value) == {"env"}, f"{where} is not an {{env: NAME}} reference"

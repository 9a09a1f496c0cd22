"""deploy/ must agree with the code: Docker is not available where the tests run, so the image
is never built here; instead the files are parsed and checked against what the code reads (the
definitions module and attribute, the settings' environment variables, the location name, the
ports, the files the Dockerfile copies, Dagster's own instance schema)."""

from __future__ import annotations

import importlib.util
import json
import re
import shlex
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml

from ingest_assets.settings import IngestSettings, variable_names
from ingest_assets_tests.dagster_internals import DagsterInvalidConfigError, checked_instance_config

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
MODULE, ATTRIBUTE, LOCATION = "ingest_assets.definitions", "defs", "ingest_assets"
# What IngestSettings reads (INGEST_ + field name), and `ingest backfill --url`'s variable.
INGEST_VARIABLES = set(variable_names()) | {"INGEST_DAGSTER_URL"}
DAGSTER_SERVICES = ("code-server", "webserver", "daemon")


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def dockerfile() -> list[tuple[str, str]]:
    """(instruction, arguments) per Dockerfile instruction, continuation lines joined."""
    text = re.sub(r"\\\n", " ", (DEPLOY / "Dockerfile").read_text())
    lines = [ln.strip() for ln in text.splitlines()]
    return [
        (ln.split(None, 1)[0].upper(), ln.split(None, 1)[1] if " " in ln else "")
        for ln in lines
        if ln and not ln.startswith("#")
    ]


def instructions(name: str) -> list[str]:
    return [args for kind, args in dockerfile() if kind == name]


def option(command: list[str], *flags: str) -> str:
    index = next(i for i, word in enumerate(command) if word in flags)
    return command[index + 1]


def image_cmd() -> list[str]:
    (cmd,) = instructions("CMD")
    return json.loads(cmd)


def env_names(env: Any) -> set[str]:
    if isinstance(env, dict):
        return set(env)
    return {item["name"] if isinstance(item, dict) else item.split("=")[0] for item in env}


def test_variable_list_is_what_settings_read():
    # Guards the guard: a renamed field must change the list the files are checked against.
    assert {"INGEST_DATABASE_URL", "INGEST_EMBEDDING_API_KEY", "INGEST_SHARDS"} < INGEST_VARIABLES
    assert "INGEST_DB_URL" not in INGEST_VARIABLES


def test_module_and_attribute_exist():
    # `defs` is built when first asked for (a module __getattr__), as Dagster asks for it.
    assert isinstance(getattr(importlib.import_module(MODULE), ATTRIBUTE), dg.Definitions)
    (entry,) = load(REPO / "workspace.yaml")["load_from"]
    assert entry["python_module"] == {
        "module_name": MODULE,
        "attribute": ATTRIBUTE,
        "location_name": LOCATION,
    }


def test_image_serves_the_definitions_on_the_workspace_port():
    command = image_cmd()
    assert command[:3] == ["dagster", "api", "grpc"], command
    assert option(command, "-m", "--module-name") == MODULE
    assert option(command, "-a", "--attribute") == ATTRIBUTE
    assert option(command, "--location-name") == LOCATION
    assert option(command, "-h", "--host") == "0.0.0.0"  # reachable from the other containers
    port = int(option(command, "-p", "--port"))
    assert instructions("EXPOSE") == [str(port)]
    (entry,) = load(DEPLOY / "docker" / "workspace.yaml")["load_from"]
    assert entry["grpc_server"] == {"host": "code-server", "port": port, "location_name": LOCATION}


def test_dockerfile_copies_files_that_exist_and_installs_the_project():
    copies = instructions("COPY")
    assert copies
    for args in copies:
        words = [w for w in shlex.split(args) if not w.startswith("--")]
        for source in words[:-1]:
            assert (REPO / source).exists(), f"COPY {source}: no such path in the repository"
    (run,) = [r for r in instructions("RUN") if "pip install" in r]
    assert re.search(r"pip install .*\"\.\$\{EXTRAS", run), run  # the project itself
    assert "dagster-k8s" in run  # run pods load a K8sRunLauncher instance from this image
    env = " ".join(instructions("ENV"))
    home = re.search(r"DAGSTER_HOME=(\S+)", env)
    assert home, env
    assert any(c.endswith(home.group(1) + "/") for c in copies), copies  # dagster.yaml goes there
    extras = re.search(r"ARG EXTRAS=(\S*)", "\n".join(f"ARG {a}" for a in instructions("ARG")))
    pyproject = (REPO / "pyproject.toml").read_text()
    assert extras and f"\n{extras.group(1)} = [" in pyproject  # the default extra exists


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load(DEPLOY / "docker-compose.yaml")


def test_compose_services(compose: dict[str, Any]):
    services = compose["services"]
    assert set(services) == {"postgres", *DAGSTER_SERVICES}
    assert services["postgres"]["image"].startswith("pgvector/pgvector:")
    build = services["code-server"]["build"]
    assert (DEPLOY / build["context"]).resolve() == REPO
    assert (REPO / build["dockerfile"]).resolve() == DEPLOY / "Dockerfile"
    image = services["code-server"]["image"]
    assert services["webserver"]["image"] == services["daemon"]["image"] == image
    port = int(option(image_cmd(), "-p"))
    assert services["code-server"]["expose"] == [str(port)]
    assert str(port) in services["code-server"]["healthcheck"]["test"]
    # The UI is published on the host's loopback only; the webserver listens on it.
    web = services["webserver"]
    (published,) = web["ports"]
    host, _, container_port = published.split(":")
    assert host == "127.0.0.1" and container_port == option(web["command"], "-p")
    workspace = "/opt/dagster/dagster_home/workspace.yaml"
    assert option(web["command"], "-w") == option(services["daemon"]["command"], "-w") == workspace
    for name in ("webserver", "daemon"):
        assert services[name]["depends_on"]["code-server"]["condition"] == "service_healthy"
    for source in (v.split(":")[0] for s in services.values() for v in s.get("volumes", [])):
        if source.startswith("."):
            assert (DEPLOY / source).exists() or source == "../data", source


def test_compose_environment_matches_settings(compose: dict[str, Any]):
    services = compose["services"]
    for name in DAGSTER_SERVICES:
        names = env_names(services[name]["environment"])
        assert "DAGSTER_PG_URL" in names, name  # dagster.yaml's storage
        unknown = {n for n in names if n.startswith("INGEST_")} - INGEST_VARIABLES
        assert not unknown, (name, unknown)
    code_env = services["code-server"]["environment"]
    for required in ("INGEST_DATABASE_URL", "INGEST_EMBEDDING_PROVIDER", "INGEST_SHARDS"):
        assert required in code_env
    # Both URLs name the compose PostgreSQL; Dagster's through psycopg2 (see local_stack.py).
    assert code_env["INGEST_DATABASE_URL"].startswith("postgresql://")
    assert "@postgres:5432/" in code_env["INGEST_DATABASE_URL"]
    assert code_env["DAGSTER_PG_URL"].startswith("postgresql+psycopg2://")
    assert code_env["DAGSTER_PG_URL"].endswith("@postgres:5432/dagster")
    init = (DEPLOY / "docker" / "initdb.sql").read_text()
    assert "CREATE DATABASE dagster;" in init
    assert code_env.get("INGEST_EMBEDDING_API_KEY") is None  # passed through, never written


def test_container_instance_is_valid_and_matches_the_project(monkeypatch, tmp_path: Path):
    monkeypatch.setenv("DAGSTER_PG_URL", "postgresql+psycopg2://u:p@postgres:5432/dagster")
    (tmp_path / "dagster.yaml").write_text((DEPLOY / "docker" / "dagster.yaml").read_text())
    config = checked_instance_config(str(tmp_path))  # Dagster's own schema check
    project = load(REPO / "dagster.yaml")
    for key in ("storage", "concurrency", "run_retries", "run_monitoring"):
        assert config[key] == project[key], key
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert config["run_launcher"]["class"] == "DefaultRunLauncher"
    assert project["concurrency"]["runs"]["max_concurrent_runs"] >= 2


def test_container_instance_check_catches_a_bad_key(tmp_path: Path):
    (tmp_path / "dagster.yaml").write_text("concurrency: {runz: {max_concurrent_runs: 4}}\n")
    with pytest.raises(DagsterInvalidConfigError):
        checked_instance_config(str(tmp_path))


@pytest.fixture(scope="module")
def helm() -> dict[str, Any]:
    return load(DEPLOY / "helm" / "values.yaml")


def test_helm_user_deployment_serves_the_definitions(helm: dict[str, Any]):
    user = helm["dagster-user-deployments"]
    assert user["enabled"] and user["enableSubchart"]
    (deployment,) = user["deployments"]
    # The chart names a Deployment, a Service and the location after it: a DNS label.
    assert re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", deployment["name"])
    args = deployment["dagsterApiGrpcArgs"]
    assert option(args, "-m") == MODULE and option(args, "-a") == ATTRIBUTE
    assert isinstance(deployment["port"], int)
    assert deployment["includeConfigInLaunchedRuns"] == {"enabled": True}
    assert {"repository", "tag", "pullPolicy"} <= set(deployment["image"])


def test_helm_environment_matches_settings_and_secrets(helm: dict[str, Any]):
    (deployment,) = helm["dagster-user-deployments"]["deployments"]
    env = {item["name"]: item for item in deployment["env"]}
    assert set(env) <= INGEST_VARIABLES, set(env) - INGEST_VARIABLES
    for secret in ("INGEST_DATABASE_URL", "INGEST_EMBEDDING_API_KEY"):
        ref = env[secret]["valueFrom"]["secretKeyRef"]
        assert ref["name"] and ref["key"], secret
        assert "value" not in env[secret]
    assert env["INGEST_EMBEDDING_PROVIDER"]["value"] in {"openai", "tei", "ollama", "local"}
    IngestSettings(
        **{  # the plain values parse as settings
            n[len("INGEST_") :].lower(): e["value"] for n, e in env.items() if "value" in e
        }
    )
    mounts = {m["name"]: m["mountPath"] for m in deployment["volumeMounts"]}
    assert {v["name"] for v in deployment["volumes"]} == set(mounts)
    assert Path(env["INGEST_SOURCES_FILE"]["value"]).parent == Path(mounts["sources-registry"])


def test_helm_run_launcher_queue_and_storage(helm: dict[str, Any]):
    assert helm["runLauncher"]["type"] == "K8sRunLauncher"
    assert set(helm["runLauncher"]["config"]) == {"k8sRunLauncher"}
    concurrency = helm["concurrency"]
    assert concurrency["enabled"] and concurrency["runs"]["maxConcurrentRuns"] >= 2
    project = load(REPO / "dagster.yaml")
    assert concurrency["pools"]["defaultLimit"] == project["concurrency"]["pools"]["default_limit"]
    coordinator = helm["dagsterDaemon"]["runCoordinator"]
    assert coordinator["type"] == "QueuedRunCoordinator" and "config" not in coordinator
    retries = helm["dagsterDaemon"]["runRetries"]
    assert (retries["maxRetries"], retries["retryOnAssetOrOpFailure"]) == (
        project["run_retries"]["max_retries"],
        project["run_retries"]["retry_on_asset_or_op_failure"],
    )
    postgresql = helm["postgresql"]
    assert postgresql["enabled"] is False and postgresql["postgresqlHost"]
    assert {"postgresqlUsername", "postgresqlDatabase", "service"} <= set(postgresql)
    assert helm["generatePostgresqlPasswordSecret"] is False
    assert helm["global"]["postgresqlSecretName"]

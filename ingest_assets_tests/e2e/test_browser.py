"""The Dagster UI of `ingest dev` in a real browser: headless Chromium (Debian's `chromium`;
`make test-e2e` installs it when missing) renders the `ingestion` asset group's lineage after a
source was ingested, with the three stages materialised, and saves a screenshot (copied to
$INGEST_SCREENSHOT_DIR when set, e.g. for CI artefacts).

`--dump-dom` prints the DOM after the page's scripts ran for the virtual-time budget: the React
app's rendering, not the HTML shell the webserver sends (which names no asset).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from ingest_assets_tests.e2e.conftest import (
    ASSETS,
    SOURCE,
    Stack,
    report,
    running_stack,
    stack_env,
    write_corpus,
)

pytestmark = pytest.mark.slow

SHARDS = 4
CORPUS = {
    "astronomy/comets.md": "# Comets\n\nIcy comets grow glowing tails near perihelion.\n",
    "cooking/sourdough.md": "# Sourdough\n\nFeed the levain with rye flour every morning.\n",
    "garden/tomatoes.md": "# Tomatoes\n\nStake tomato vines and pinch the suckers weekly.\n",
    "music/violin.md": "# Violin\n\nRosin the bow before playing scales on the violin.\n",
}
# The group's lineage graph: one node per asset with its checks and partition status ("Asset
# checks 1 / 1 Passed", "Partitions 100% filled", "4 partitions"). A partitioned asset's node
# says "100% filled" rather than "Materialized", which only unpartitioned assets show.
PAGE = "/locations/ingest_assets/asset-groups/ingestion/lineage"
# The first visit from 127.0.0.1 opens a "Join the Dagster community" dialog over the page until
# it is dismissed, which the UI records in the instance with this mutation ("Skip" sends it).
DISMISS_COMMUNITY_DIALOG = "mutation { setNuxSeen }"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
VIRTUAL_TIME_MS = 30_000


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found, "Chromium is not installed: `make test-e2e` installs Debian's `chromium`"
    return found


def browse(stack: Stack, profile: Path, *output: str) -> subprocess.CompletedProcess[str]:
    """Headless Chromium on the UI page; bounded by its virtual-time budget and a timeout."""
    return subprocess.run(
        [
            chromium(),
            "--headless",
            "--no-sandbox",  # root in CI containers
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-dev-shm-usage",
            "--no-first-run",
            f"--user-data-dir={profile}",
            f"--virtual-time-budget={VIRTUAL_TIME_MS}",
            "--window-size=1600,1000",
            *output,
            f"{stack.client.base_url}{PAGE}",
        ],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def page_text(dom: str) -> str:
    """The page's visible text, one space between words (styles and scripts left out)."""
    dom = re.sub(r"<(style|script)\b[^>]*>.*?</\1>", " ", dom, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", dom)).strip()


def test_ui_shows_the_three_stages_materialised(tmp_path: Path):
    started = time.monotonic()
    corpus = write_corpus(tmp_path / "corpus", CORPUS)
    env = stack_env(
        tmp_path / "home",
        INGEST_EMBEDDING_PROVIDER="hashing",
        INGEST_EMBEDDING_MODEL="hashing-384",
        INGEST_SHARDS=str(SHARDS),
    )
    with running_stack(env, tmp_path / "dev.log", corpus, wait_for_ticks=False) as stack:
        stack.cli("run", str(corpus), "--name", SOURCE)
        for asset in ASSETS:  # what the page must show, according to the API
            stats = stack.asset_node(asset)["partitionStats"]
            assert stats["numMaterialized"] == stats["numPartitions"] == SHARDS, (asset, stats)

        assert stack.graphql(DISMISS_COMMUNITY_DIALOG)["setNuxSeen"]

        clock = time.monotonic()
        dump = browse(stack, tmp_path / "profile", "--dump-dom")
        assert dump.returncode == 0, dump.stderr[-3000:]
        dom = dump.stdout
        (tmp_path / "page.html").write_text(dom)  # to read when an assertion below fails
        text = page_text(dom)
        for asset in ASSETS:
            node = re.search(rf"\b{asset}\b(.{{0,300}}?)Partitions (\d+)% filled", text)
            assert node, f"no node with partition status for {asset}:\n{text}"
            assert node.group(2) == "100", (asset, node.group(0))
            checks = re.search(r"Asset checks (\d+) / (\d+) Passed", node.group(1))
            assert checks and checks.group(1) == checks.group(2) != "0", (asset, node.group(0))
        assert text.count(f"{SHARDS} partitions") == len(ASSETS), text
        assert "Join the Dagster community" not in text, text

        screenshot = tmp_path / "ingestion-lineage.png"
        shot = browse(stack, tmp_path / "profile", f"--screenshot={screenshot}")
        assert shot.returncode == 0, shot.stderr[-3000:]
        browser_s = time.monotonic() - clock

    data = screenshot.read_bytes()
    assert data.startswith(PNG_MAGIC), data[:16]
    assert len(data) > 30_000, f"screenshot of {len(data)} bytes: a blank page?"
    if os.environ.get("INGEST_SCREENSHOT_DIR"):
        target = Path(os.environ["INGEST_SCREENSHOT_DIR"])
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy(screenshot, target / screenshot.name)
    report(
        f"browser: {PAGE} rendered ({len(dom)} characters of DOM), screenshot {len(data)} bytes "
        f"at {screenshot}; chromium {browser_s:.1f}s; test {time.monotonic() - started:.1f}s"
    )

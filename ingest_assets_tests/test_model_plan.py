"""`ingest model plan` against what the following run really sends: a source indexed with
model A (hashing), then model B built on the fake OpenAI server counting tokens with the
chunking tokenizer. The plan's texts and tokens are what the server receives."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from psycopg import sql

from ingest_assets.database import Database
from ingest_assets.lib.chunking import Chunker
from ingest_assets.testing.fake_embedding_server import FakeEmbeddingServer, FakeServerConfig
from ingest_assets_tests.conftest import cli_environment

DIMENSION = 32
PRICE = 0.02
# What HttpEmbedder.prepare sends once per run process to learn the dimension: not chunk
# texts, so no plan counts them.
PROBE_TEXTS = ["dimension probe", "second dimension probe"]


class Cli:
    def __init__(self, env: dict[str, str], db: Database):
        self.env = env
        self.db = db

    def __call__(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-m", "ingest_assets.cli", *args],
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert result.returncode == 0, f"ingest {' '.join(args)}:\n{result.stderr[-3000:]}"
        return result

    def model_a(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self(*args, INGEST_EMBEDDING_PROVIDER="hashing", INGEST_EMBEDDING_MODEL="A")

    def model_b(self, server: FakeEmbeddingServer, *args: str) -> subprocess.CompletedProcess[str]:
        return self(
            *args,
            INGEST_EMBEDDING_PROVIDER="openai",
            INGEST_EMBEDDING_URL=server.url,
            INGEST_EMBEDDING_MODEL="B",
            INGEST_EMBEDDING_PRICE_PER_MILLION_TOKENS=str(PRICE),
        )

    def plan(self, server: FakeEmbeddingServer) -> dict[str, Any]:
        return json.loads(self.model_b(server, "model", "plan", "--json").stdout)


@pytest.fixture
def cli(db: Database, tmp_path: Path) -> Iterator[Cli]:
    """The pipeline's tables in this test's schema, Dagster's storage in a database of its own."""
    with cli_environment(
        db,
        tmp_path / "home",
        INGEST_EMBEDDING_DIMENSION=str(DIMENSION),
        INGEST_SHARDS="8",
        HF_HUB_OFFLINE="1",
        COLUMNS="200",
    ) as environment:
        yield Cli(environment, db)


@pytest.fixture
def server() -> Iterator[FakeEmbeddingServer]:
    config = FakeServerConfig(dimension=DIMENSION, count_tokens=True, fast_vectors=True)
    with FakeEmbeddingServer(config) as server:
        yield server


# -- a corpus ----------------------------------------------------------------------------------

_WORD_TEXT = (
    "river mountain signal ledger harbour copper lantern orchard tensor kernel bridge meadow "
    "invoice quarry compass thunder basalt pollen cipher granary latency turbine glacier "
    "parcel vintage beacon marble falcon cedar quorum schema archive velvet nitrogen tariff "
    "canyon ember gossamer hydrant juniper kiosk lattice mosaic nectar obsidian paddock "
    "quiver rampart saffron trellis umbra vortex willow yarrow zephyr amber bramble cobalt "
    "delta estuary fjord gale heron isthmus jasper kelp lagoon mangrove nimbus oasis prairie "
    "the of and to in is was for on with as by at from that this it be are were which"
)
WORDS = _WORD_TEXT.split(" ")


def sentence(rng: random.Random) -> str:
    words = rng.choices(WORDS, k=rng.randint(6, 16))
    numbered = [f"{w}{rng.randint(0, 999)}" if rng.random() < 0.08 else w for w in words]
    return " ".join(numbered).capitalize() + "."


def paragraph(rng: random.Random, sentences: tuple[int, int] = (2, 6)) -> str:
    return " ".join(sentence(rng) for _ in range(rng.randint(*sentences)))


def write_corpus(root: Path, documents: int, seed: int = 0) -> None:
    """Small Markdown documents of varied text. Every 10th is a copy of one of 40 shared
    documents; one in five is release notes whose long "Support" section is one of 5 shared
    ones, which the chunker splits off as its own chunk (same title and heading path: the same
    input). So some texts are reused within the source."""
    rng = random.Random(seed)
    shared = [f"# Policy {i}\n\n{paragraph(rng)}\n\n{paragraph(rng)}\n" for i in range(40)]
    support = [
        "## Support\n\n" + "\n\n".join(paragraph(rng, (4, 5)) for _ in range(3)) for _ in range(5)
    ]
    for folder in range(documents // 500 + 1):
        (root / f"part{folder:02d}").mkdir(parents=True)
    for n in range(documents):
        path = root / f"part{n // 500:02d}" / f"doc{n:05d}.md"
        if n % 10 == 0:
            text = shared[rng.randrange(len(shared))]
        elif n % 5 == 1:
            changes = "\n\n".join(paragraph(rng, (4, 5)) for _ in range(3))
            text = f"# Release notes\n\n## Changes\n\n{changes}\n\n{rng.choice(support)}\n"
        else:
            body = "\n\n".join(paragraph(rng) for _ in range(rng.randint(1, 3)))
            text = f"# {sentence(rng)[:-1]}\n\n{body}\n"
        path.write_text(text)


def distinct_texts(db: Database, sources: list[str] | None = None) -> int:
    """Distinct live chunk inputs, counted directly in the chunks table."""
    with psycopg.connect(db.url) as conn:
        conn.execute(sql.SQL("SET search_path TO {}, public").format(sql.Identifier(db.schema)))
        row = conn.execute(
            "SELECT count(DISTINCT c.text_hash) FROM chunks c JOIN documents d "
            "ON d.id = c.document_id WHERE d.deleted_at IS NULL "
            "AND (%(s)s::text[] IS NULL OR d.source = ANY(%(s)s))",
            {"s": sources},
        ).fetchone()
    assert row is not None
    return int(row[0])


def probe_tokens() -> int:
    return sum(Chunker(200).count_tokens(PROBE_TEXTS))


def within(measured: int, planned: int, bound: float = 0.01) -> float:
    difference = (measured - planned) / planned
    assert abs(difference) <= bound, (measured, planned)
    return difference


# -- the tests ---------------------------------------------------------------------------------


def test_fake_server_counts_tokens_as_the_chunker_does(server: FakeEmbeddingServer):
    texts = ["Hello, world!", "Tokenisation of unfamiliar words: zephyr-gossamer42.", "a\n\nb"]
    body = httpx.post(
        f"{server.url}/v1/embeddings", json={"input": texts, "model": "m"}, trust_env=False
    ).json()
    expected = sum(Chunker(200).count_tokens(texts))
    assert body["usage"]["prompt_tokens"] == expected
    assert server.stats()["tokens_received"] == expected
    server.configure(count_tokens=False)
    server.reset_stats()
    httpx.post(f"{server.url}/v1/embeddings", json={"input": texts}, trust_env=False)
    assert server.stats()["tokens_received"] == sum(len(t.split()) for t in texts)


def test_plan_dedupes_across_sources_and_the_server_receives_the_total(
    cli: Cli, server: FakeEmbeddingServer, tmp_path: Path
):
    rng = random.Random(7)
    common = {f"common{i}.md": f"# Common {i}\n\n{paragraph(rng, (2, 3))}\n" for i in range(4)}
    for name in ("one", "two"):
        folder = tmp_path / name
        folder.mkdir()
        for file, text in common.items():
            (folder / file).write_text(text)
        for i in range(3):
            (folder / f"{name}{i}.md").write_text(f"# {name} {i}\n\n{paragraph(rng, (2, 3))}\n")
        cli.model_a("run", str(folder), "--name", name)

    plan = cli.plan(server)
    rows = {row["source"]: row for row in plan["sources"]}
    assert plan["model"] == "B" and plan["serving"] == "A"
    assert set(rows) == {"one", "two"}
    for name in ("one", "two"):
        assert rows[name]["texts"] == distinct_texts(cli.db, [name]) == 7
        assert rows[name]["reused"] == 0 and rows[name]["chunks"] == 7
    # The four common documents' texts are counted in each row, once in the total.
    assert plan["texts"] == distinct_texts(cli.db) == 10
    assert plan["tokens"] < rows["one"]["tokens"] + rows["two"]["tokens"]

    server.reset_stats()
    for name in ("one", "two"):
        cli.model_b(server, "run", name)
    stats = server.stats()
    runs = 2  # each run has texts of its own to embed, so each probes the server once
    assert stats["texts_embedded"] == plan["texts"] + runs * len(PROBE_TEXTS)
    assert stats["tokens_received"] == plan["tokens"] + runs * probe_tokens()
    after = cli.plan(server)
    assert after["texts"] == after["tokens"] == 0


@pytest.mark.slow
def test_plan_matches_what_the_backfill_of_a_model_change_sends(
    cli: Cli, server: FakeEmbeddingServer, tmp_path: Path
):
    started = time.monotonic()
    corpus = tmp_path / "corpus"
    write_corpus(corpus, 10_000)
    generated = time.monotonic()
    cli.model_a("run", str(corpus), "--name", "docs")
    indexed = time.monotonic()

    plan = cli.plan(server)
    assert plan["model"] == "B" and plan["serving"] == "A"
    [row] = plan["sources"]
    assert row["texts"] == plan["texts"] == distinct_texts(cli.db)
    assert row["reused"] == 0 and row["chunks"] > plan["texts"]  # some texts are shared
    assert plan["cost"] == pytest.approx(plan["tokens"] / 1e6 * PRICE)

    server.reset_stats()
    cli.model_b(server, "run", "docs")
    stats = server.stats()
    built = time.monotonic()

    texts_off = within(stats["texts_embedded"], plan["texts"])
    tokens_off = within(stats["tokens_received"], plan["tokens"])
    sys.stdout.write(
        f"\nplan: {plan['texts']} texts, {plan['tokens']} tokens "
        f"({row['chunks']} live chunks), cost {plan['cost']:.6f}\n"
        f"server: {stats['texts_embedded']} texts ({texts_off:+.4%}), "
        f"{stats['tokens_received']} tokens ({tokens_off:+.4%}); "
        f"the probe is {len(PROBE_TEXTS)} texts, {probe_tokens()} tokens\n"
        f"generate {generated - started:.1f} s, index with A {indexed - generated:.1f} s, "
        f"plan and build B {built - indexed:.1f} s\n"
    )

    after = cli.plan(server)
    assert after["texts"] == after["tokens"] == 0 and after["cost"] == 0
    assert after["sources"][0]["reused"] == plan["texts"]

"""The HTTP providers against a real fake server on 127.0.0.1, for each API."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import numpy as np
import pytest

from ingest_assets.embedders import (
    EmbeddingError,
    EmbeddingSettings,
    PermanentEmbeddingError,
    open_embedder,
)
from ingest_assets.embedders.base import embed_isolating
from ingest_assets.lib.hashed_vectors import hashed_vectors
from ingest_assets.testing.fake_embedding_server import FakeEmbeddingServer

PROVIDERS = ["openai", "tei", "ollama"]
TEXTS = [f"document {i} about tides, moons and {i % 7} oceans" for i in range(40)]


@pytest.fixture(scope="module")
def server() -> Iterator[FakeEmbeddingServer]:
    with FakeEmbeddingServer() as server:
        yield server


@pytest.fixture(autouse=True)
def clean(server: FakeEmbeddingServer) -> Iterator[None]:
    server.configure(
        rate_429=0.0, rate_503=0.0, rate_drop=0.0, rate_slow=0.0, rate_wrong_dimension=0.0,
        rate_nan=0.0, max_batch=0, poison_marker="", base64=True, retry_after_s=0.05, seed=0,
        base64_refusal_status=400, openai_path="/v1/embeddings", api_key="",
    )  # fmt: skip
    server.reset_stats()
    yield


def spec(server: FakeEmbeddingServer, provider: str, **overrides) -> EmbeddingSettings:
    values = dict(
        provider=provider, model="fake", url=server.url, timeout_s=2.0, backoff_s=0.01,
        max_attempts=8, deadline_s=30.0, concurrency=4,
    )  # fmt: skip
    values.update(overrides)
    return EmbeddingSettings(**values)


async def embed_all(settings: EmbeddingSettings, texts: list[str], batch: int = 8):
    async with open_embedder(settings) as embedder:
        batches = [texts[i : i + batch] for i in range(0, len(texts), batch)]
        results = await asyncio.gather(
            *(embed_isolating(embedder.embed, b, embedder.dimension) for b in batches)
        )
        vectors = np.concatenate([r[0] for r in results])
        errors = {}
        for n, (_, batch_errors) in enumerate(results):
            errors.update({n * batch + i: reason for i, reason in batch_errors.items()})
        return embedder, vectors, errors


@pytest.mark.parametrize("provider", PROVIDERS)
def test_vectors_match_the_servers_deterministic_ones(server, provider):
    embedder, vectors, errors = asyncio.run(embed_all(spec(server, provider), TEXTS))
    assert errors == {}
    assert embedder.dimension == 384
    np.testing.assert_allclose(vectors, hashed_vectors(TEXTS, 384), atol=1e-6)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_transient_faults_are_retried_until_every_text_is_embedded(server, provider):
    server.configure(rate_503=0.2, rate_429=0.05, rate_drop=0.05, seed=7)
    embedder, vectors, errors = asyncio.run(embed_all(spec(server, provider), TEXTS * 3))
    assert errors == {}
    np.testing.assert_allclose(vectors, hashed_vectors(TEXTS * 3, 384), atol=1e-6)
    assert sum(embedder.stats.retries.values()) > 0
    assert embedder.stats.retries.keys() <= {"503", "429", "connection", "timeout"}
    faults = server.stats()["faults"]
    assert faults["503"] > 0


@pytest.mark.parametrize("provider", PROVIDERS)
def test_too_large_batches_are_split(server, provider):
    server.configure(max_batch=3)
    _, vectors, errors = asyncio.run(embed_all(spec(server, provider), TEXTS, batch=16))
    assert errors == {}
    np.testing.assert_allclose(vectors, hashed_vectors(TEXTS, 384), atol=1e-6)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_poison_input_is_isolated_with_the_servers_message(server, provider):
    server.configure(poison_marker="POISON")
    texts = list(TEXTS)
    texts[13] = "this chunk holds POISON for the model"
    _, vectors, errors = asyncio.run(embed_all(spec(server, provider), texts, batch=16))
    assert list(errors) == [13]
    assert "forbidden marker" in errors[13] and "HTTP 400" in errors[13]
    good = [i for i in range(len(texts)) if i != 13]
    np.testing.assert_allclose(
        vectors[good], hashed_vectors([texts[i] for i in good], 384), atol=1e-6
    )


def test_openai_falls_back_to_floats_when_base64_is_refused(server):
    server.configure(base64=False)
    _, vectors, errors = asyncio.run(embed_all(spec(server, "openai"), TEXTS))
    assert errors == {}
    np.testing.assert_allclose(vectors, hashed_vectors(TEXTS, 384), atol=1e-6)


@pytest.mark.parametrize("fault", ["rate_wrong_dimension", "rate_nan"])
def test_garbled_vectors_are_retried_not_stored(server, fault):
    server.configure(**{fault: 0.3})
    embedder, vectors, _ = asyncio.run(embed_all(spec(server, "openai"), TEXTS * 3))
    np.testing.assert_allclose(vectors, hashed_vectors(TEXTS * 3, 384), atol=1e-6)
    assert embedder.stats.retries["invalid_response"] > 0


def test_slow_responses_time_out_and_are_retried(server):
    server.configure(rate_slow=0.3, slow_s=5.0)
    embedder, vectors, _ = asyncio.run(embed_all(spec(server, "tei", timeout_s=0.5), TEXTS))
    assert embedder.stats.retries["timeout"] > 0
    np.testing.assert_allclose(vectors, hashed_vectors(TEXTS, 384), atol=1e-6)


def test_a_server_that_keeps_failing_gives_up_with_a_clear_message(server):
    server.configure(rate_503=1.0)
    expected = (
        rf"ollama server at {server.url}/api/embed failed 3 times, last with 503: "
        r"HTTP 503: service unavailable \(injected fault\); giving up"
    )
    with pytest.raises(EmbeddingError, match=expected):
        asyncio.run(embed_all(spec(server, "ollama", max_attempts=3), TEXTS[:2]))


def test_an_unreachable_server_fails_fast_and_names_the_url():
    unreachable = EmbeddingSettings(
        provider="tei", model="m", url="http://127.0.0.1:9", max_attempts=2, backoff_s=0.01
    )
    with pytest.raises(
        EmbeddingError, match=r"127\.0\.0\.1:9/embed failed 2 times, last with connection"
    ):
        asyncio.run(embed_all(unreachable, TEXTS[:1]))


def test_api_key_is_sent_but_never_appears_in_errors(server):
    server.configure(poison_marker="sk-very-secret")
    key_spec = spec(server, "openai", api_key="sk-very-secret")
    _, _, errors = asyncio.run(embed_all(key_spec, ["text with sk-very-secret inside"], batch=1))
    assert errors and "sk-very-secret" not in errors[0]
    assert "sk-very-secret" not in repr(key_spec)


@pytest.mark.parametrize(
    ("base", "expected"),
    [
        ("http://h:1", "http://h:1/v1/embeddings"),
        ("http://h:1/", "http://h:1/v1/embeddings"),
        ("https://api.example.com/v1", "https://api.example.com/v1/embeddings"),
    ],
)
def test_openai_endpoint_accepts_base_urls_with_or_without_v1(base, expected):
    from ingest_assets.embedders.http import APIS, endpoint

    assert endpoint(base, APIS["openai"]) == expected


@pytest.mark.parametrize("status", [400, 500])
def test_a_server_refusing_base64_in_any_form_is_asked_in_floats(server, status):
    server.configure(base64=False, base64_refusal_status=status)
    _, vectors, errors = asyncio.run(embed_all(spec(server, "openai"), TEXTS))
    assert errors == {}
    np.testing.assert_allclose(vectors, hashed_vectors(TEXTS, 384), atol=1e-6)
    # One refused request, then floats: two probes and five batches of eight.
    assert server.stats()["embed_requests"] == 1 + 2 + 5


def test_the_other_openai_path_is_found_at_the_probe(server):
    """Infinity serves /embeddings unless started with --url-prefix /v1."""
    server.configure(openai_path="/embeddings")
    _, vectors, _ = asyncio.run(embed_all(spec(server, "openai"), TEXTS))
    np.testing.assert_allclose(vectors, hashed_vectors(TEXTS, 384), atol=1e-6)
    assert server.stats()["requests_by_endpoint"]["/embeddings"] == 2 + 5


def test_a_wrong_path_fails_at_once_naming_both_urls_tried(server):
    server.configure(openai_path="/somewhere/else")
    with pytest.raises(PermanentEmbeddingError) as failed:
        asyncio.run(embed_all(spec(server, "openai", url=f"{server.url}/api"), TEXTS[:2]))
    message = str(failed.value)
    assert f"{server.url}/api/v1/embeddings" in message
    assert f"{server.url}/api/embeddings" in message
    assert "HTTP 404" in message and "INGEST_EMBEDDING_URL" in message
    assert server.stats()["requests_by_endpoint"]["other"] == 2  # no retries beyond the probe


@pytest.mark.parametrize("provider", PROVIDERS)
def test_the_api_key_is_sent_as_a_bearer_header(server, provider):
    server.configure(api_key="sk-right-key")
    _, vectors, _ = asyncio.run(embed_all(spec(server, provider, api_key="sk-right-key"), TEXTS))
    np.testing.assert_allclose(vectors, hashed_vectors(TEXTS, 384), atol=1e-6)
    assert server.stats()["faults"]["401"] == 0

    with pytest.raises(PermanentEmbeddingError) as failed:
        asyncio.run(embed_all(spec(server, provider, api_key="sk-wrong-key"), TEXTS[:2]))
    assert "HTTP 401" in str(failed.value) and "INGEST_EMBEDDING_API_KEY" in str(failed.value)
    assert "sk-wrong-key" not in str(failed.value)
    assert server.stats()["faults"]["401"] == 1  # a wrong key is not retried

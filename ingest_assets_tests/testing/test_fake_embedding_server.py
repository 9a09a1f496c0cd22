from __future__ import annotations

import asyncio
import base64
import dataclasses
import math
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import numpy as np
import pytest

from ingest_assets.lib.hashed_vectors import hashed_vectors
from ingest_assets.testing import FakeEmbeddingServer, FakeServerConfig

TEXTS = ["the moon pulls the tides", "bake sourdough bread", "", "the moon pulls the tides"]
DIM = 32
DEFAULTS = dataclasses.asdict(FakeServerConfig(dimension=DIM))

# (path, request body for texts, vectors from the response)
APIS = {
    "openai": (
        "/v1/embeddings",
        lambda texts: {"model": "m", "input": texts},
        lambda body: [item["embedding"] for item in body["data"]],
    ),
    "tei": ("/embed", lambda texts: {"inputs": texts, "normalize": True}, lambda body: body),
    "ollama": (
        "/api/embed",
        lambda texts: {"model": "m", "input": texts},
        lambda body: body["embeddings"],
    ),
}


def error_message(api: str, body: dict) -> str:
    return body["error"]["message"] if api == "openai" else body["error"]


@pytest.fixture(scope="module")
def server() -> Iterator[FakeEmbeddingServer]:
    with FakeEmbeddingServer(FakeServerConfig(dimension=DIM)) as server:
        yield server


@pytest.fixture
def fake(server: FakeEmbeddingServer) -> FakeEmbeddingServer:
    server.configure(**DEFAULTS)
    server.reset_stats()
    return server


@pytest.fixture
def client(fake: FakeEmbeddingServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fake.url, timeout=10, trust_env=False) as client:
        yield client


def embed(client: httpx.Client, api: str, texts: list[str] | str, **extra) -> httpx.Response:
    path, body, _ = APIS[api]
    return client.post(path, json={**body(texts), **extra})


@pytest.mark.parametrize("api", APIS)
def test_each_api_returns_hashed_vectors(client: httpx.Client, api: str):
    response = embed(client, api, TEXTS)
    assert response.status_code == 200
    vectors = np.array(APIS[api][2](response.json()), dtype=np.float32)
    assert vectors.shape == (len(TEXTS), DIM)
    np.testing.assert_array_equal(vectors, hashed_vectors(TEXTS, DIM))


def test_fast_vectors_are_per_text_deterministic_unit_vectors(fake, client: httpx.Client):
    fake.configure(fast_vectors=True)
    response = embed(client, "openai", TEXTS, encoding_format="base64")
    rows = [base64.b64decode(item["embedding"]) for item in response.json()["data"]]
    vectors = np.array([np.frombuffer(row, dtype="<f4") for row in rows])
    assert vectors.shape == (len(TEXTS), DIM)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(vectors[0], vectors[3])  # the same text, the same vector
    assert not np.array_equal(vectors[0], vectors[1])
    again = embed(client, "openai", TEXTS[1:2], encoding_format="base64").json()["data"]
    assert base64.b64decode(again[0]["embedding"]) == rows[1]


def test_openai_response_shape_and_single_string(client: httpx.Client):
    body = embed(client, "openai", TEXTS[:2]).json()
    assert body["object"] == "list" and body["model"] == "m"
    assert [(item["object"], item["index"]) for item in body["data"]] == [
        ("embedding", 0),
        ("embedding", 1),
    ]
    assert body["usage"] == {"prompt_tokens": 8, "total_tokens": 8}
    single = embed(client, "openai", "bake sourdough bread").json()
    assert single["data"][0]["embedding"] == body["data"][1]["embedding"]
    ollama = embed(client, "ollama", "bake sourdough bread").json()
    assert ollama["model"] == "m" and len(ollama["embeddings"]) == 1


def test_openai_base64_equals_float(client: httpx.Client):
    floats = embed(client, "openai", TEXTS).json()["data"]
    encoded = embed(client, "openai", TEXTS, encoding_format="base64").json()["data"]
    for plain, packed in zip(floats, encoded, strict=True):
        decoded = np.frombuffer(base64.b64decode(packed["embedding"]), dtype="<f4")
        np.testing.assert_array_equal(decoded, np.array(plain["embedding"], dtype=np.float32))


def test_base64_disabled_gives_400(fake: FakeEmbeddingServer, client: httpx.Client):
    fake.configure(base64=False)
    response = embed(client, "openai", TEXTS, encoding_format="base64")
    assert response.status_code == 400
    assert response.json() == {
        "error": {
            "message": "unsupported encoding_format: base64",
            "type": "invalid_request_error",
        }
    }
    assert embed(client, "openai", TEXTS).status_code == 200


@pytest.mark.parametrize("api", APIS)
def test_batch_above_max_batch_gives_413(fake: FakeEmbeddingServer, client, api: str):
    fake.configure(max_batch=3)
    assert embed(client, api, TEXTS[:3]).status_code == 200
    response = embed(client, api, TEXTS)
    assert response.status_code == 413
    message = "batch size 4 > maximum allowed batch size 3"
    assert error_message(api, response.json()) == message
    if api == "tei":
        assert response.json() == {"error": message, "error_type": "Validation"}
    assert fake.stats()["faults"]["413"] == 1


@pytest.mark.parametrize("api", APIS)
def test_poison_marker_gives_400(fake: FakeEmbeddingServer, client, api: str):
    fake.configure(poison_marker="<<poison>>")
    response = embed(client, api, ["fine", "also fine", "bad <<poison>> text"])
    assert response.status_code == 400
    assert error_message(api, response.json()) == "input 2 rejected: contains forbidden marker"
    if api == "tei":
        assert response.json()["error_type"] == "Validation"
    assert embed(client, api, ["fine"]).status_code == 200
    assert fake.stats()["faults"]["400"] == 1


def test_429_carries_retry_after(fake: FakeEmbeddingServer, client: httpx.Client):
    fake.configure(rate_429=1.0, retry_after_s=2.0)
    response = embed(client, "openai", TEXTS)
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "2"
    assert response.json()["error"]["type"] == "rate_limit_error"
    tei = embed(client, "tei", TEXTS)
    assert tei.status_code == 429 and "error" in tei.json()


def test_503(fake: FakeEmbeddingServer, client: httpx.Client):
    fake.configure(rate_503=1.0)
    for api in APIS:
        assert embed(client, api, TEXTS).status_code == 503
    assert fake.stats()["faults"]["503"] == 3


def test_drop_closes_connection_without_response(fake: FakeEmbeddingServer, client):
    fake.configure(rate_drop=1.0)
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        embed(client, "openai", TEXTS)
    fake.configure(rate_drop=0.0)
    assert embed(client, "openai", TEXTS).status_code == 200
    assert fake.stats()["faults"]["drop"] == 1


def test_slow_exceeds_client_timeout(fake: FakeEmbeddingServer, client: httpx.Client):
    fake.configure(rate_slow=1.0, slow_s=0.6)
    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        client.post("/embed", json={"inputs": TEXTS}, timeout=0.2)
    assert time.monotonic() - started < 0.5
    assert fake.stats()["faults"]["slow"] == 1
    # The server still finishes the stalled request; let it, so later tests see none in flight.
    deadline = time.monotonic() + 5
    while fake.stats()["in_flight"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert fake.stats()["in_flight"] == 0


def test_wrong_dimension_and_nan(fake: FakeEmbeddingServer, client: httpx.Client):
    fake.configure(rate_wrong_dimension=1.0)
    for api in APIS:
        vectors = APIS[api][2](embed(client, api, TEXTS).json())
        assert {len(v) for v in vectors} == {DIM + 1}
    fake.configure(rate_wrong_dimension=0.0, rate_nan=1.0)
    for api in APIS:
        vectors = np.array(APIS[api][2](embed(client, api, TEXTS).json()))
        assert vectors.shape == (len(TEXTS), DIM) and np.isnan(vectors).sum() == 1
    packed = embed(client, "openai", TEXTS, encoding_format="base64").json()["data"][0]
    assert math.isnan(np.frombuffer(base64.b64decode(packed["embedding"]), dtype="<f4")[0])
    faults = fake.stats()["faults"]
    assert faults["wrong_dimension"] == 3 and faults["nan"] == 4


def test_control_changes_behaviour_at_run_time(fake: FakeEmbeddingServer, client):
    assert embed(client, "tei", TEXTS).status_code == 200
    assert fake.configure(rate_503=1.0, dimension=8)["rate_503"] == 1.0
    assert embed(client, "tei", TEXTS).status_code == 503
    fake.configure(rate_503=0.0)
    assert len(embed(client, "tei", TEXTS).json()[0]) == 8
    assert client.get("/config").json()["dimension"] == 8
    for bad in ({"rate_429": 2.0}, {"no_such_field": 1}, {"capacity": "3"}, {"base64": 1}):
        response = client.post("/control", json=bad)
        assert response.status_code == 400, bad
    with pytest.raises(ValueError, match="unknown config field"):
        fake.configure(no_such_field=1)


def test_faults_are_reproducible_for_a_seed(fake: FakeEmbeddingServer, client: httpx.Client):
    def statuses() -> list[int]:
        fake.configure(seed=7, rate_503=0.5)
        return [embed(client, "tei", ["x"]).status_code for _ in range(30)]

    first = statuses()
    assert set(first) == {200, 503}
    assert statuses() == first


def test_capacity_serialises_requests(fake: FakeEmbeddingServer):
    async def timed(concurrency: int) -> float:
        async with httpx.AsyncClient(base_url=fake.url, timeout=10, trust_env=False) as client:
            await client.get("/health")  # open a connection before timing
            started = time.monotonic()
            replies = await asyncio.gather(
                *(client.post("/embed", json={"inputs": ["a", "b"]}) for _ in range(concurrency))
            )
            assert all(reply.status_code == 200 for reply in replies)
            return time.monotonic() - started

    fake.configure(per_item_ms=40.0)  # 80 ms per request
    parallel = asyncio.run(timed(4))
    assert fake.stats()["max_concurrent_processing"] == 4
    fake.configure(capacity=1)
    fake.reset_stats()
    one = asyncio.run(timed(1))
    serial = asyncio.run(timed(4))
    assert 0.075 <= one < 0.3
    assert serial >= 4 * 0.075 and serial > 2.5 * one
    assert parallel < 0.5 * serial
    stats = fake.stats()
    assert stats["max_concurrent_processing"] == 1 and stats["max_concurrent_requests"] == 4
    assert stats["busy_s"] == pytest.approx(5 * 0.080, abs=0.002)  # modelled time, 5 requests


def test_stats_count_requests_texts_and_faults(fake: FakeEmbeddingServer, client):
    embed(client, "openai", TEXTS)
    embed(client, "tei", TEXTS[:2])
    embed(client, "ollama", ["brand new text"])
    fake.configure(rate_429=1.0)
    embed(client, "ollama", ["rejected"])
    stats = fake.stats()
    assert stats["embed_requests"] == 4
    assert stats["requests_by_endpoint"]["/v1/embeddings"] == 1
    assert stats["requests_by_endpoint"]["/api/embed"] == 2
    assert stats["requests_by_endpoint"]["/control"] == 1
    assert stats["requests_total"] == 6  # including this /stats request
    assert stats["texts_embedded"] == 7
    assert stats["requests_by_batch_size"] == {"1": 1, "2": 1, "4": 1}
    assert stats["distinct_texts"] == 4
    assert stats["faults"] == {
        "429": 1,
        "503": 0,
        "slow": 0,
        "drop": 0,
        "413": 0,
        "400": 0,
        "401": 0,
        "wrong_dimension": 0,
        "nan": 0,
    }
    fake.reset_stats()
    assert fake.stats()["texts_embedded"] == 0


def test_health_404_405_and_malformed_json(client: httpx.Client):
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/nowhere").status_code == 404
    assert client.get("/v1/embeddings").status_code == 405
    for path in ("/v1/embeddings", "/embed", "/api/embed", "/control"):
        response = client.post(path, content=b"{not json")
        assert response.status_code == 400 and "error" in response.json()
    assert client.post("/embed", json={"inputs": [1, 2]}).status_code == 400
    assert client.post("/embed", json={"inputs": []}).status_code == 400


def test_raw_http_keep_alive_and_bad_request(fake: FakeEmbeddingServer):
    body = b'{"inputs": "x"}'
    request = b"POST /embed HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    with socket.create_connection(("127.0.0.1", fake.port), timeout=5) as sock:
        sock.sendall(request + request)
        received = b""
        while received.count(b"HTTP/1.1 200 OK") < 2:
            chunk = sock.recv(65536)
            assert chunk
            received += chunk
        sock.sendall(b"garbage\r\n\r\n")
        tail = b""
        while chunk := sock.recv(65536):
            tail += chunk
        assert tail.startswith(b"HTTP/1.1 400 ")


def test_restart_keeps_port_and_config():
    with FakeEmbeddingServer(FakeServerConfig(dimension=8)) as server:
        port = server.port
        server.configure(rate_503=1.0)
        with httpx.Client(timeout=5, trust_env=False) as client:
            assert client.post(f"{server.url}/embed", json={"inputs": "x"}).status_code == 503
            server.restart()
            assert server.port == port
            assert client.post(f"{server.url}/embed", json={"inputs": "x"}).status_code == 503
        assert server.stats()["embed_requests"] == 1
        server.stop()
        server.stop()
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{server.url}/health", trust_env=False)


def test_command_line_prints_one_line_and_exits_zero_on_sigterm():
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "ingest_assets.testing.fake_embedding_server", "--port=0"),
            *("--dimension", "16", "--no-base64", "--rate-429", "0.0", "--max-batch", "2"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.fullmatch(r"listening on (http://127\.0\.0\.1:(\d+))\n", line)
        assert match, line
        config = httpx.get(f"{match[1]}/config", timeout=5, trust_env=False).json()
        assert (config["dimension"], config["base64"], config["max_batch"]) == (16, False, 2)
    finally:
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=10)
    assert proc.returncode == 0, stderr
    assert stdout == "" and stderr == ""

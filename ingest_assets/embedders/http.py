"""Embedding servers over HTTP: OpenAI-compatible, Hugging Face TEI and Ollama.

One pooled httpx.AsyncClient per step. Each request is retried on 429, 5xx, timeouts and
connection errors with exponential backoff and full jitter (Retry-After wins when the server
sends it), within a bounded number of attempts and an overall deadline. A 413 or a 400 are not
retried: they are raised as BatchTooLarge / InputRejected for the caller to split or bisect.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import random
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np

from ingest_assets.embedders.base import (
    BatchTooLarge,
    EmbedderStats,
    EmbeddingError,
    InputRejected,
    PermanentEmbeddingError,
    check_vectors,
)
from ingest_assets.embedders.settings import EmbeddingSettings

_RETRYABLE_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
_MAX_BACKOFF_S = 30.0


@dataclass(frozen=True)
class Api:
    """Where one provider's endpoint is and how its requests and responses look."""

    name: str
    path: str

    def payload(self, model: str, texts: Sequence[str], base64_ok: bool) -> dict[str, Any]:
        if self.name == "openai":
            body: dict[str, Any] = {"model": model, "input": list(texts)}
            if base64_ok:
                body["encoding_format"] = "base64"
            return body
        if self.name == "tei":
            return {"inputs": list(texts), "normalize": True, "truncate": True}
        return {"model": model, "input": list(texts)}

    def vectors(self, body: Any) -> Any:
        if self.name == "openai":
            rows = body["data"]
            if any(row["index"] != i for i, row in enumerate(rows)):
                rows = sorted(rows, key=lambda row: row["index"])
            return _decode([row["embedding"] for row in rows])
        if self.name == "tei":
            return list(body)
        return list(body["embeddings"])


def _decode(embeddings: list[Any]) -> Any:
    """Float lists as they are; base64 rows of little-endian float32s decoded in one call
    when they are all the same length and unpadded, so they can be concatenated."""
    if not embeddings or not all(isinstance(e, str) for e in embeddings):
        return embeddings
    size = len(embeddings[0])
    joinable = size % 4 == 0 and not embeddings[0].endswith("=")
    if joinable and all(len(e) == size for e in embeddings):
        flat = np.frombuffer(base64.b64decode("".join(embeddings)), dtype="<f4")
        return flat.reshape(len(embeddings), -1)
    return [np.frombuffer(base64.b64decode(e), dtype="<f4") for e in embeddings]


APIS = {
    "openai": Api("openai", "/v1/embeddings"),
    "tei": Api("tei", "/embed"),
    "ollama": Api("ollama", "/api/embed"),
}


def endpoint(base_url: str, api: Api) -> str:
    base = base_url.rstrip("/")
    if api.name == "openai" and base.endswith("/v1"):
        return base + "/embeddings"  # https://api.openai.com/v1 style base URLs
    return base + api.path


class HttpEmbedder:
    def __init__(self, settings: EmbeddingSettings, client: httpx.AsyncClient, api: Api):
        if not settings.url:
            raise EmbeddingError(f"provider {settings.provider!r} needs INGEST_EMBEDDING_URL")
        self.model = settings.model
        self.dimension = 0
        self.stats = EmbedderStats()
        self.max_concurrency = settings.concurrency
        self._settings = settings
        self._client = client
        self._api = api
        self._url = endpoint(settings.url, api)
        self._other_path = _other_openai_path(self._url) if api.name == "openai" else None
        self._base64 = api.name == "openai"
        self._random = random.Random()
        self._tried = ""

    async def prepare(self) -> None:
        """Learn the model's dimension before anything is written: two answers must agree,
        so one garbled response cannot size the vector table. Not counted in the stats."""
        if self.dimension:
            return
        stats, self.stats = self.stats, EmbedderStats()
        try:
            self.dimension = await self._probe()
        finally:
            self.stats = stats

    async def _probe(self) -> int:
        for _ in range(self._settings.max_attempts):
            first = (await self._request(["dimension probe"])).shape[1]
            second = (await self._request(["second dimension probe"])).shape[1]
            if first == second:
                return first
        raise EmbeddingError(f"{self._api.name} server keeps changing its vector dimension")

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        vectors = await self._request(texts)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.where(norms == 0, 1.0, norms)

    async def _request(self, texts: Sequence[str]) -> np.ndarray:
        deadline = time.monotonic() + self._settings.deadline_s
        attempt = 0
        while True:
            attempt += 1
            started = time.perf_counter()
            outcome, retry_after = await self._attempt(texts)
            self.stats.latencies.append(time.perf_counter() - started)
            self.stats.requests += 1
            if isinstance(outcome, np.ndarray):
                self.stats.texts += len(texts)
                return outcome
            delay = retry_after if retry_after is not None else self._backoff(attempt)
            if attempt >= self._settings.max_attempts or time.monotonic() + delay > deadline:
                raise EmbeddingError(
                    f"{self._api.name} server at {self._url} failed {attempt} times, "
                    f"last with {outcome}; giving up"
                )
            self.stats.retries[outcome.split(":")[0]] += 1
            await asyncio.sleep(delay)

    def _backoff(self, attempt: int) -> float:
        ceiling = min(_MAX_BACKOFF_S, self._settings.backoff_s * 2 ** (attempt - 1))
        return self._random.uniform(0, ceiling)

    async def _attempt(self, texts: Sequence[str]) -> tuple[np.ndarray | str, float | None]:
        """One request: (vectors, None) on success, else (retryable cause, Retry-After)."""
        headers = (
            {"Authorization": f"Bearer {self._settings.api_key}"} if self._settings.api_key else {}
        )
        payload = self._api.payload(self.model, texts, self._base64)
        try:
            response = await self._client.post(self._url, json=payload, headers=headers)
        except httpx.TimeoutException:
            return "timeout", None
        except httpx.TransportError as err:
            return f"connection: {type(err).__name__}", None
        if response.status_code < 400:
            return self._vectors(response, len(texts))
        message = self._error_message(response)
        if self._base64 and _refuses_base64(message):
            # The server speaks floats only, whatever status it says it with: ask in floats.
            self._base64 = False
            return "encoding_format", 0.0
        if response.status_code in _RETRYABLE_STATUS:
            return f"{response.status_code}: {message}", _retry_after(response)
        if response.status_code == 404 and self._other_path is not None:
            # Servers differ on `/v1` (Infinity serves /embeddings unless started with
            # --url-prefix /v1): try the other form once, and keep whichever answers.
            tried, self._url, self._other_path = self._url, self._other_path, None
            self._tried = tried
            return "404", 0.0
        if response.status_code == 413:
            raise BatchTooLarge(message)
        if response.status_code in (400, 422):
            raise InputRejected(message)
        where = f"{self._api.name} server answered POST {self._url}"
        raise PermanentEmbeddingError(f"{where} with {message}{self._hint(response)}")

    def _hint(self, response: httpx.Response) -> str:
        if response.status_code == 404 and self._api.name == "openai":
            return (
                f" (also tried {self._tried}); check INGEST_EMBEDDING_URL: the server's "
                "embeddings endpoint should be URL/v1/embeddings or, for a URL ending in /v1, "
                "URL/embeddings"
            )
        if response.status_code in (401, 403):
            return "; check INGEST_EMBEDDING_API_KEY"
        if response.status_code == 404:
            return "; check INGEST_EMBEDDING_URL and INGEST_EMBEDDING_MODEL"
        return ""

    def _vectors(
        self, response: httpx.Response, count: int
    ) -> tuple[np.ndarray | str, float | None]:
        try:
            vectors = np.asarray(self._api.vectors(response.json()), dtype=np.float32)
            dimension = self.dimension or (vectors.shape[1] if vectors.ndim == 2 else 0)
            return check_vectors(vectors, count, dimension), None
        except (ValueError, KeyError, TypeError, IndexError, EmbeddingError) as err:
            # A garbled answer (wrong count or dimension, NaN) is retried like a 5xx.
            return f"invalid_response: {err}", None

    def _error_message(self, response: httpx.Response) -> str:
        text = response.text[:500]
        try:
            body = response.json()
            error = body.get("error", body) if isinstance(body, dict) else body
            if isinstance(error, dict):
                error = error.get("message", error)
            text = str(error)[:500]
        except ValueError:
            pass
        if self._settings.api_key:
            text = text.replace(self._settings.api_key, "***")
        return f"HTTP {response.status_code}: {text}"


def _other_openai_path(url: str) -> str:
    """`…/v1/embeddings` <-> `…/embeddings`: the other form an OpenAI-compatible server uses."""
    base = url.removesuffix("/embeddings")
    return (
        base.removesuffix("/v1") + "/embeddings"
        if base.endswith("/v1")
        else base + "/v1/embeddings"
    )


def _refuses_base64(message: str) -> bool:
    lowered = message.lower()
    return "base64" in lowered or "encoding_format" in lowered


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return min(max(float(value), 0.0), _MAX_BACKOFF_S * 4)
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff


@contextlib.asynccontextmanager
async def open_http_embedder(settings: EmbeddingSettings) -> AsyncIterator[HttpEmbedder]:
    limits = httpx.Limits(
        max_connections=settings.concurrency, max_keepalive_connections=settings.concurrency
    )
    timeout = httpx.Timeout(settings.timeout_s, connect=min(10.0, settings.timeout_s))
    # A plain-HTTP server needs no TLS context; building one (loading the CA bundle) took
    # 50-250 ms of CPU in every run. Redirects are not followed, so no request leaves HTTP.
    verify = (settings.url or "").lower().startswith("https:")
    async with httpx.AsyncClient(limits=limits, timeout=timeout, verify=verify) as client:
        yield HttpEmbedder(settings, client, APIS[settings.provider])

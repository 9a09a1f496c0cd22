"""A fake embedding server for tests and benchmarks: real HTTP on 127.0.0.1, three APIs.

Speaks OpenAI (``POST /v1/embeddings``), Hugging Face TEI (``POST /embed``) and Ollama
(``POST /api/embed``), answering with :func:`hashed_vectors` so results are deterministic.
It models a GPU server's latency (base + per item) and capacity (requests processed at
once), and injects faults drawn from a seeded RNG: dropped connections, stalls, 503, 429,
batch-size 413, poison-input 400, wrong-dimension and NaN vectors.

Run it::

    python -m ingest_assets.testing.fake_embedding_server --port 0 --capacity 2 --rate-429 0.1

or from Python with :class:`FakeEmbeddingServer` (a subprocess; ``with`` starts and stops it).
``GET /stats`` reports counters and ``POST /control`` changes the config at run time.
Among the counters, ``tokens_received`` totals the tokens of the texts embedded (also the
OpenAI ``usage``): with ``count_tokens`` on, as the bundled MiniLM tokenizer counts each whole
text (no special tokens, no truncation), as the chunker does; off (the default, cheap for
benchmarks), whitespace-separated words. Each request is counted as configured when it came.

The HTTP layer is a minimal hand-written HTTP/1.1 server on asyncio streams (Content-Length
bodies, keep-alive) so a "drop" fault can abort the transport in the middle of a request.

Why one module of ~700 lines: it is a single program run as a subprocess (`python -m`), its
config, server loop and client handle read as one, and tests address it only through
FakeServerConfig and FakeEmbeddingServer.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import dataclasses
import hashlib
import json
import math
import random
import select
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, fields
from http import HTTPStatus
from typing import Any

import httpx
import numpy as np

from ingest_assets.lib.hashed_vectors import hashed_vectors

__all__ = ["FAULT_KINDS", "FakeEmbeddingServer", "FakeServerConfig", "main"]

HOST = "127.0.0.1"
_MODULE = "ingest_assets.testing.fake_embedding_server"
FAULT_KINDS = ("429", "503", "slow", "drop", "413", "400", "401", "wrong_dimension", "nan")
_APIS = {"/v1/embeddings": "openai", "/embed": "tei", "/api/embed": "ollama"}
_INPUT_KEY = {"openai": "input", "tei": "inputs", "ollama": "input"}
# (OpenAI error "type", TEI "error_type") per status.
_ERROR_TYPES = {
    400: ("invalid_request_error", "Validation"),
    404: ("invalid_request_error", "Validation"),
    405: ("invalid_request_error", "Validation"),
    413: ("invalid_request_error", "Validation"),
    429: ("rate_limit_error", "Overloaded"),
    503: ("server_error", "Unhealthy"),
}
_MAX_BODY = 256 * 1024 * 1024
Reply = tuple[int, Any, dict[str, str]]  # status, JSON body, extra headers
_EXIT_BIND = 3


@dataclass
class FakeServerConfig:
    dimension: int = 384
    seed: int = 0
    base_latency_ms: float = 0.0
    per_item_ms: float = 0.0
    capacity: int = 0  # requests processed at once; 0 = unlimited
    max_batch: int = 0  # 0 = unlimited
    poison_marker: str = ""
    rate_429: float = 0.0
    retry_after_s: float = 1.0
    rate_503: float = 0.0
    rate_slow: float = 0.0
    slow_s: float = 30.0
    rate_drop: float = 0.0
    rate_wrong_dimension: float = 0.0
    rate_nan: float = 0.0
    base64: bool = True
    base64_refusal_status: int = 400  # some servers say "no base64" with a 500
    # Where the OpenAI-compatible API is served: Infinity serves /embeddings unless started
    # with --url-prefix /v1.
    openai_path: str = "/v1/embeddings"
    api_key: str = ""  # when set, a request without "Authorization: Bearer <key>" gets 401
    # Vectors from a hash of each whole text: deterministic but not similar for similar
    # texts, and ~50x cheaper than hashed_vectors, so a throughput benchmark measures the
    # client rather than this server's CPU (which a real server spends on another machine).
    fast_vectors: bool = False
    # Count each text's tokens with the bundled MiniLM tokenizer (what the chunker counts, so
    # a test can compare a plan's tokens with what was sent); off, whitespace words.
    count_tokens: bool = False

    def updated(self, changes: dict[str, Any]) -> FakeServerConfig:
        """A validated copy with ``changes`` applied; ValueError names the bad field."""
        values = dataclasses.asdict(self)
        for name, value in changes.items():
            if name not in values:
                raise ValueError(f"unknown config field: {name}")
            kind = type(values[name])
            if not _is_kind(value, kind):
                raise ValueError(f"{name} must be {kind.__name__}, got {value!r}")
            values[name] = kind(value)
        config = FakeServerConfig(**values)
        config.validate()
        return config

    def validate(self) -> None:
        if self.dimension < 1:
            raise ValueError("dimension must be >= 1")
        for name in ("base_latency_ms", "per_item_ms", "capacity", "max_batch", "slow_s"):
            if not 0 <= getattr(self, name) < math.inf:
                raise ValueError(f"{name} must be a finite number >= 0")
        if not 0 <= self.retry_after_s < math.inf:
            raise ValueError("retry_after_s must be a finite number >= 0")
        for f in fields(self):
            if f.name.startswith("rate_") and not 0.0 <= getattr(self, f.name) <= 1.0:
                raise ValueError(f"{f.name} must be within [0, 1]")


def _is_kind(value: Any, kind: type) -> bool:
    if kind is bool or isinstance(value, bool):
        return kind is bool and isinstance(value, bool)
    if kind is float:
        return isinstance(value, int | float)
    return isinstance(value, kind)


class _Drop(Exception):
    """Abort the connection without answering."""


class _BadRequest(Exception):
    pass


def _error(
    api: str | None, status: int, message: str, headers: dict[str, str] | None = None
) -> Reply:
    openai_type, tei_type = _ERROR_TYPES.get(status, ("server_error", "Backend"))
    if api == "openai":
        body: Any = {"error": {"message": message, "type": openai_type}}
    elif api == "tei":
        body = {"error": message, "error_type": tei_type}
    else:
        body = {"error": message}
    return status, body, headers or {}


class _Server:
    def __init__(self, config: FakeServerConfig) -> None:
        self.config = config
        self._rng = random.Random(config.seed)
        self._cond = asyncio.Condition()
        self._in_flight = 0
        self._processing = 0
        self.tasks: set[asyncio.Task[Any]] = set()
        self._tokenizer: Any = None  # loaded when count_tokens is first on
        self.reset_stats()

    def reset_stats(self) -> None:
        self._requests: Counter[str] = Counter()
        self._texts = 0
        self._tokens = 0
        self._batch_sizes: Counter[int] = Counter()
        self._busy_s = 0.0  # modelled accelerator time: idle time is the clients' loss
        self._digests: set[bytes] = set()
        self._faults: Counter[str] = Counter(dict.fromkeys(FAULT_KINDS, 0))
        self._max_in_flight = self._in_flight
        self._max_processing = self._processing
        self._first_embed_at: float | None = None  # wall clock: start latencies in benchmarks
        self._last_embed_at: float | None = None

    def stats(self) -> dict[str, Any]:
        return {
            "requests_total": sum(self._requests.values()),
            "embed_requests": sum(
                self._requests[path] for path in {*_APIS, self.config.openai_path}
            ),
            "requests_by_endpoint": dict(self._requests),
            "texts_embedded": self._texts,
            "requests_by_batch_size": dict(sorted(self._batch_sizes.items())),
            "busy_s": round(self._busy_s, 3),
            "tokens_received": self._tokens,
            "distinct_texts": len(self._digests),
            "faults": dict(self._faults),
            "in_flight": self._in_flight,
            "max_concurrent_requests": self._max_in_flight,
            "max_concurrent_processing": self._max_processing,
            "first_embed_at": self._first_embed_at,
            "last_embed_at": self._last_embed_at,
        }

    # -- HTTP -------------------------------------------------------------------------------

    async def serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        try:
            while True:
                try:
                    request = await _read_request(reader)
                except _BadRequest as exc:
                    writer.write(_encode(_error(None, 400, str(exc)), keep_alive=False))
                    await writer.drain()
                    break
                if request is None:
                    break
                method, path, body, keep_alive, authorization = request
                try:
                    reply = await self.dispatch(method, path, body, authorization)
                except _Drop:
                    writer.transport.abort()
                    return
                writer.write(_encode(reply, keep_alive))
                await writer.drain()
                if not keep_alive:
                    break
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            pass  # shutdown; ending normally keeps asyncio 3.11 from logging the cancelled task
        finally:
            self.tasks.discard(task)
            writer.close()

    async def dispatch(self, method: str, path: str, body: bytes, authorization: str = "") -> Reply:
        apis = {**_APIS, self.config.openai_path: "openai"}
        if self.config.openai_path != "/v1/embeddings":
            del apis["/v1/embeddings"]
        self._requests[path if path in apis or path in _ROUTES else "other"] += 1
        api = apis.get(path)
        if api is None:
            route = _ROUTES.get(path)
            if route is None:
                return _error(None, 404, f"not found: {path}")
            if method != route[0]:
                return _error(None, 405, f"method not allowed: {method} {path}")
            return await route[1](self, body)
        if method != "POST":
            return _error(api, 405, f"method not allowed: {method} {path}")
        if self.config.api_key and authorization != f"Bearer {self.config.api_key}":
            self._faults["401"] += 1
            return _error(api, 401, "invalid or missing API key")
        self._in_flight += 1
        self._max_in_flight = max(self._max_in_flight, self._in_flight)
        try:
            return await self.embed(api, body)
        finally:
            self._in_flight -= 1

    # -- control endpoints ------------------------------------------------------------------

    async def _health(self, body: bytes) -> Reply:
        return 200, {"status": "ok"}, {}

    async def _stats(self, body: bytes) -> Reply:
        return 200, self.stats(), {}

    async def _get_config(self, body: bytes) -> Reply:
        return 200, dataclasses.asdict(self.config), {}

    async def _control(self, body: bytes) -> Reply:
        try:
            changes = json.loads(body or b"{}")
            if not isinstance(changes, dict):
                raise ValueError("body must be a JSON object of config fields")
            config = self.config.updated(changes)
        except ValueError as exc:  # JSONDecodeError is a ValueError
            return _error(None, 400, str(exc))
        if "seed" in changes:
            self._rng = random.Random(config.seed)
        self.config = config
        async with self._cond:
            self._cond.notify_all()  # capacity may have grown
        return 200, dataclasses.asdict(config), {}

    async def _reset_stats(self, body: bytes) -> Reply:
        self.reset_stats()
        return 200, {"status": "ok"}, {}

    # -- embedding --------------------------------------------------------------------------

    async def embed(self, api: str, body: bytes) -> Reply:
        cfg = self.config
        if self._first_embed_at is None:
            self._first_embed_at = time.time()
        # Always draw all six, so the fault sequence for a seed does not depend on the rates.
        drop, slow, r503, r429, wrong, nan = (self._rng.random() for _ in range(6))
        if drop < cfg.rate_drop:
            self._faults["drop"] += 1
            raise _Drop
        if slow < cfg.rate_slow:
            self._faults["slow"] += 1
            await asyncio.sleep(cfg.slow_s)
        if r503 < cfg.rate_503:
            self._faults["503"] += 1
            return _error(api, 503, "service unavailable (injected fault)")
        if r429 < cfg.rate_429:
            self._faults["429"] += 1
            retry = f"{cfg.retry_after_s:g}"
            return _error(api, 429, "too many requests (injected fault)", {"Retry-After": retry})

        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return _error(api, 400, "malformed JSON body")
        key = _INPUT_KEY[api]
        raw = payload.get(key) if isinstance(payload, dict) else None
        texts = [raw] if isinstance(raw, str) else raw
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
            return _error(api, 400, f"'{key}' must be a string or a non-empty list of strings")
        if cfg.max_batch and len(texts) > cfg.max_batch:
            self._faults["413"] += 1
            message = f"batch size {len(texts)} > maximum allowed batch size {cfg.max_batch}"
            return _error(api, 413, message)
        if cfg.poison_marker:
            for index, text in enumerate(texts):
                if cfg.poison_marker in text:
                    self._faults["400"] += 1
                    return _error(api, 400, f"input {index} rejected: contains forbidden marker")
        encoding = payload.get("encoding_format", "float") if api == "openai" else "float"
        if encoding not in ("float", "base64"):
            return _error(api, 400, f"unsupported encoding_format: {encoding}")
        if encoding == "base64" and not cfg.base64:
            if cfg.base64_refusal_status == 400:
                return _error(api, 400, f"unsupported encoding_format: {encoding}")
            message = f"this server does not support {encoding} encoding"
            return _error(api, cfg.base64_refusal_status, message)

        # Computed outside the capacity slot: the slot models the accelerator's time alone
        # (base + per item), not this process's CPU, which a real server spends elsewhere.
        vectors = (fast_vectors if cfg.fast_vectors else hashed_vectors)(texts, cfg.dimension)
        tokens = self._count_tokens(texts) if cfg.count_tokens else _words(texts)
        async with self._slot():
            delay_ms = cfg.base_latency_ms + cfg.per_item_ms * len(texts)
            if delay_ms > 0:
                await asyncio.sleep(delay_ms / 1000)
                self._busy_s += delay_ms / 1000 / (cfg.capacity or 1)  # 0: no limit

        if wrong < cfg.rate_wrong_dimension:
            self._faults["wrong_dimension"] += 1
            vectors = np.hstack([vectors, np.zeros((len(texts), 1), dtype=np.float32)])
        if nan < cfg.rate_nan:
            self._faults["nan"] += 1
            vectors[0, 0] = np.nan
        self._texts += len(texts)
        self._batch_sizes[len(texts)] += 1
        self._tokens += tokens
        self._last_embed_at = time.time()
        self._digests.update(
            hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest() for text in texts
        )
        return 200, _render(api, payload, tokens, vectors, encoding), {}

    def _count_tokens(self, texts: list[str]) -> int:
        if self._tokenizer is None:
            self._tokenizer = _load_tokenizer()
        encodings = self._tokenizer.encode_batch_fast(texts, add_special_tokens=False)
        return sum(len(encoding.ids) for encoding in encodings)

    @contextlib.asynccontextmanager
    async def _slot(self) -> AsyncIterator[None]:
        async with self._cond:
            await self._cond.wait_for(
                lambda: self.config.capacity <= 0 or self._processing < self.config.capacity
            )
            self._processing += 1
            self._max_processing = max(self._max_processing, self._processing)
        try:
            yield
        finally:
            async with self._cond:
                self._processing -= 1
                self._cond.notify()


def _words(texts: list[str]) -> int:
    return sum(len(text.split()) for text in texts)


def _load_tokenizer() -> Any:
    """The chunker's tokenizer, counting whole texts: its file pads and truncates to 128."""
    from tokenizers import Tokenizer  # imported only when counting: startup stays light

    from ingest_assets.lib.chunking import bundled_tokenizer_path

    tokenizer = Tokenizer.from_file(str(bundled_tokenizer_path()))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


def fast_vectors(texts: list[str], dimension: int) -> np.ndarray:
    """One unit vector per text from the SHAKE-128 stream of its UTF-8 bytes."""
    raw = b"".join(
        hashlib.shake_128(text.encode("utf-8", "surrogatepass")).digest(dimension) for text in texts
    )
    octets = np.frombuffer(raw, dtype=np.uint8).reshape(len(texts), dimension)
    vectors = octets.astype(np.float32) - 127.5
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


_ROUTES = {
    "/health": ("GET", _Server._health),
    "/stats": ("GET", _Server._stats),
    "/config": ("GET", _Server._get_config),
    "/control": ("POST", _Server._control),
    "/control/reset-stats": ("POST", _Server._reset_stats),
}


class _Json(str):
    """Already-encoded JSON, passed through by :func:`_encode`."""


class _FloatText(dict[float, str]):
    # Hashed vectors hold few distinct values (±k/norm), so caching their JSON text is about
    # twice as fast as json.dumps on every float.
    def __missing__(self, value: float) -> str:
        if len(self) > 100_000:
            self.clear()
        text = self[value] = json.dumps(value)  # NaN -> NaN, as json.dumps does
        return text


_FLOAT_TEXT = _FloatText()


def _float_rows(vectors: np.ndarray) -> list[str]:
    lookup = _FLOAT_TEXT.__getitem__
    return ["[" + ",".join(map(lookup, row)) + "]" for row in vectors.tolist()]


def _render(api: str, payload: dict, tokens: int, vectors: np.ndarray, encoding: str) -> Any:
    model = json.dumps(payload.get("model", "fake-embedding"))
    if api == "tei":
        return _Json("[" + ",".join(_float_rows(vectors)) + "]")
    if api == "ollama":
        return _Json(f'{{"model":{model},"embeddings":[{",".join(_float_rows(vectors))}]}}')
    if encoding == "base64":
        rows = [
            '"' + base64.b64encode(row.astype("<f4").tobytes()).decode("ascii") + '"'
            for row in vectors
        ]
    else:
        rows = _float_rows(vectors)
    data = ",".join(
        f'{{"object":"embedding","index":{i},"embedding":{row}}}' for i, row in enumerate(rows)
    )
    usage = f'{{"prompt_tokens":{tokens},"total_tokens":{tokens}}}'
    return _Json(f'{{"object":"list","model":{model},"data":[{data}],"usage":{usage}}}')


async def _read_request(
    reader: asyncio.StreamReader,
) -> tuple[str, str, bytes, bool, str] | None:
    """(method, path, body, keep_alive, authorization), or None when the client closed the
    connection."""
    try:
        line = await reader.readline()
        if not line.endswith(b"\n"):
            return None
        parts = line.decode("latin-1").split()
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            raise _BadRequest("malformed request line")
        method, target, version = parts
        headers: dict[str, str] = {}
        while True:
            line = await reader.readline()
            if not line.endswith(b"\n"):
                return None
            if line in (b"\r\n", b"\n"):
                break
            name, sep, value = line.decode("latin-1").partition(":")
            if not sep or len(headers) >= 100:
                raise _BadRequest("malformed headers")
            headers[name.strip().lower()] = value.strip()
        if "chunked" in headers.get("transfer-encoding", "").lower():
            raise _BadRequest("chunked request bodies are not supported")
        try:
            length = int(headers.get("content-length") or 0)
        except ValueError:
            raise _BadRequest("invalid Content-Length") from None
        if not 0 <= length <= _MAX_BODY:
            raise _BadRequest("invalid Content-Length")
        body = await reader.readexactly(length) if length else b""
    except ValueError:  # a line past the StreamReader limit
        raise _BadRequest("request line or header too long") from None
    connection = headers.get("connection", "").lower()
    keep_alive = "close" not in connection if version == "HTTP/1.1" else "keep-alive" in connection
    path = target.split("?", 1)[0]
    return method, path, body, keep_alive, headers.get("authorization", "")


def _encode(reply: Reply, keep_alive: bool) -> bytes:
    status, body, extra = reply
    text = body if isinstance(body, _Json) else json.dumps(body, separators=(",", ":"))
    payload = text.encode()
    head = [
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}",
        "Content-Type: application/json",
        f"Content-Length: {len(payload)}",
        f"Connection: {'keep-alive' if keep_alive else 'close'}",
        *(f"{name}: {value}" for name, value in extra.items()),
    ]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + payload


async def _serve(config: FakeServerConfig, port: int) -> int:
    app = _Server(config)
    try:
        server = await asyncio.start_server(app.serve_connection, HOST, port)
    except OSError as exc:
        sys.stderr.write(f"fake embedding server: cannot bind {HOST}:{port}: {exc}\n")
        return _EXIT_BIND
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    bound = server.sockets[0].getsockname()[1]
    sys.stdout.write(f"listening on http://{HOST}:{bound}\n")
    sys.stdout.flush()
    await stopping.wait()
    server.close()
    tasks = list(app.tasks)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await server.wait_closed()
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    for f in fields(FakeServerConfig):
        flag = "--" + f.name.replace("_", "-")
        if isinstance(f.default, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=f.default)
        else:
            parser.add_argument(flag, type=type(f.default), default=f.default)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    config = FakeServerConfig(**{f.name: getattr(args, f.name) for f in fields(FakeServerConfig)})
    try:
        config.validate()
    except ValueError as exc:
        parser.error(str(exc))
    return asyncio.run(_serve(config, args.port))


def _command_line(config: FakeServerConfig) -> list[str]:
    args = []
    for f in fields(config):
        value = getattr(config, f.name)
        flag = f.name.replace("_", "-")
        if isinstance(value, bool):
            args.append(f"--{flag}" if value else f"--no-{flag}")
        else:
            args.append(f"--{flag}={value}")
    return args


class FakeEmbeddingServer:
    """The fake server as a subprocess: ``with FakeEmbeddingServer(cfg) as server: server.url``.

    ``configure`` changes are remembered, so ``restart`` comes back with the same config (and
    port); its counters start from zero.
    """

    def __init__(self, config: FakeServerConfig | None = None, port: int = 0) -> None:
        self.config = dataclasses.replace(config) if config else FakeServerConfig()
        self.config.validate()
        self.port = port
        self._proc: subprocess.Popen[str] | None = None

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise RuntimeError("the fake embedding server has not been started")
        return self._proc.pid

    @property
    def url(self) -> str:
        if not self.port:
            raise RuntimeError("the fake embedding server has not been started")
        return f"http://{HOST}:{self.port}"

    def start(self) -> FakeEmbeddingServer:
        if self._proc is not None:
            return self
        deadline = time.monotonic() + 30
        bind_deadline = time.monotonic() + 10
        while True:
            proc = subprocess.Popen(
                [sys.executable, "-m", _MODULE, f"--port={self.port}", *_command_line(self.config)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                text=True,
            )
            line = _first_line(proc, deadline)
            if line.startswith("listening on "):
                break
            _terminate(proc)
            # A fixed port may still be held by the previous process for a moment.
            if self.port and proc.returncode == _EXIT_BIND and time.monotonic() < bind_deadline:
                time.sleep(0.1)
                continue
            raise RuntimeError(f"fake embedding server failed to start (exit {proc.returncode})")
        self._proc = proc
        self.port = int(line.rsplit(":", 1)[1])
        while True:
            try:
                if self._get("/health").status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                self.stop()
                raise RuntimeError("fake embedding server did not become healthy")
            time.sleep(0.05)

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            _terminate(proc, signal.SIGTERM)

    def restart(self) -> None:
        self.stop()
        self.start()

    def configure(self, **changes: Any) -> dict[str, Any]:
        response = httpx.post(f"{self.url}/control", json=changes, timeout=10, trust_env=False)
        if response.status_code != 200:
            raise ValueError(response.json().get("error", response.text))
        new = response.json()
        self.config = FakeServerConfig(**new)
        return new

    def stats(self) -> dict[str, Any]:
        response = self._get("/stats")
        response.raise_for_status()
        return response.json()

    def reset_stats(self) -> None:
        response = httpx.post(f"{self.url}/control/reset-stats", timeout=10, trust_env=False)
        response.raise_for_status()

    def _get(self, path: str) -> httpx.Response:
        return httpx.get(f"{self.url}{path}", timeout=10, trust_env=False)

    def __enter__(self) -> FakeEmbeddingServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _first_line(proc: subprocess.Popen[str], deadline: float) -> str:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
    return proc.stdout.readline() if ready else ""


def _terminate(proc: subprocess.Popen[str], signum: int = signal.SIGKILL) -> None:
    if proc.poll() is None:
        proc.send_signal(signum)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


if __name__ == "__main__":
    sys.exit(main())

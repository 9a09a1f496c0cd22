"""The HTTP client of the web sources: pooled, polite (per-host gates, robots.txt), bounded.

Each host gets at most `per_host_concurrency` requests at once, started at least `delay_s` (or
the site's Crawl-delay) apart; redirects are bounded; a response over `max_bytes` is refused;
only http and https are fetched.
"""

from __future__ import annotations

import gzip
import io
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import httpx
from protego import Protego

from ingest_assets.sources.base import SourceReadError, UnreadableDocument

if TYPE_CHECKING:
    from ingest_assets.sources.web import WebOptions

USER_AGENT = "ingest-assets"


@dataclass(frozen=True)
class Validators:
    etag: str | None
    last_modified: str | None

    @classmethod
    def parse(cls, fingerprint: str | None) -> Validators | None:
        if not fingerprint or not fingerprint.startswith("etag="):
            return None
        etag, _, last_modified = fingerprint.removeprefix("etag=").partition("|lm=")
        return cls(etag or None, last_modified or None)

    def fingerprint(self) -> str:
        return f"etag={self.etag or ''}|lm={self.last_modified or ''}"

    def headers(self) -> dict[str, str]:
        headers = {}
        if self.etag:
            headers["If-None-Match"] = self.etag
        if self.last_modified:
            headers["If-Modified-Since"] = self.last_modified
        return headers


class _HostGate:
    """At most `limit` requests to one host at once, started at least `delay_s` apart."""

    def __init__(self, limit: int, delay_s: float):
        self._slots = threading.Semaphore(limit)
        self._lock = threading.Lock()
        self._next_start = 0.0
        self.delay_s = delay_s

    def __enter__(self) -> None:
        self._slots.acquire()
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next_start)
            self._next_start = start + self.delay_s
        if start > now:
            time.sleep(start - now)

    def __exit__(self, *exc: object) -> None:
        self._slots.release()


class WebClient:
    """One pooled HTTP client for a source, with per-host gates and robots.txt rules."""

    def __init__(self, options: WebOptions):
        self.options = options
        self._client = httpx.Client(
            follow_redirects=True,
            max_redirects=options.max_redirects,
            timeout=options.timeout_s,
            headers={"User-Agent": options.user_agent},
        )
        self._gates: dict[str, _HostGate] = {}
        self._robots: dict[str, Protego | None] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        self._client.close()

    def allowed(self, url: str) -> bool:
        if not self.options.respect_robots:
            return True
        robots = self._robots_for(url)
        return robots is None or robots.can_fetch(url, self.options.user_agent)

    def get(self, url: str, headers: Mapping[str, str] | None = None) -> tuple[int, dict, bytes]:
        """(status, headers, body) of a GET, the body at most max_bytes; raises
        SourceReadError (retryable or permanent) for what is not an HTTP answer."""
        limit = self.options.max_bytes
        with self._gate(url):
            try:
                with self._client.stream("GET", url, headers=dict(headers or {})) as response:
                    if urlsplit(str(response.url)).scheme not in ("http", "https"):
                        raise UnreadableDocument(f"{url}: redirected out of http(s)")
                    declared = response.headers.get("Content-Length", "")
                    if declared.isdigit() and int(declared) > limit:
                        raise UnreadableDocument(_too_large(url, limit))
                    body = bytearray()
                    for piece in response.iter_bytes():
                        body += piece
                        if len(body) > limit:
                            raise UnreadableDocument(_too_large(url, limit))
                    return response.status_code, dict(response.headers), bytes(body)
            except httpx.TooManyRedirects:
                raise UnreadableDocument(
                    f"{url}: more than {self.options.max_redirects} redirects"
                ) from None
            except httpx.UnsupportedProtocol as err:
                raise UnreadableDocument(f"{url}: not fetched ({err})") from None
            except httpx.HTTPError as err:
                reason = str(err) or type(err).__name__
                raise SourceReadError(f"{url}: {reason}") from None

    def _gate(self, url: str) -> _HostGate:
        host = urlsplit(url).netloc.lower()
        with self._lock:
            gate = self._gates.get(host)
            if gate is None:
                gate = self._gates[host] = _HostGate(
                    self.options.per_host_concurrency, self.options.delay_s
                )
        return gate

    def _robots_for(self, url: str) -> Protego | None:
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc.lower()}"
        with self._lock:
            if origin in self._robots:
                return self._robots[origin]
        robots = self._load_robots(origin)
        with self._lock:
            self._robots[origin] = robots
        return robots

    def _load_robots(self, origin: str) -> Protego | None:
        """RFC 9309: a missing robots.txt (4xx) allows everything; one the server cannot
        serve (5xx, unreachable) means wait: nothing on that host is fetched this run."""
        status, _, body = self.get(f"{origin}/robots.txt")
        if 400 <= status < 500:
            return None
        if status >= 500:
            raise SourceReadError(f"{origin}/robots.txt: HTTP {status}; not crawling {origin}")
        robots = Protego.parse(body.decode("utf-8", "replace"))
        delay = robots.crawl_delay(self.options.user_agent)
        if delay:
            gate = self._gate(origin + "/")
            gate.delay_s = max(gate.delay_s, float(delay))
        return robots


def _too_large(url: str, limit: int) -> str:
    return f"{url}: larger than {limit // 2**20 or 1} MiB; not read"


def gunzip(url: str, body: bytes, limit: int) -> bytes:
    with gzip.GzipFile(fileobj=io.BytesIO(body)) as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise UnreadableDocument(_too_large(url, limit))
    return data

"""Web sources: a list of page URLs, or a site's sitemap.xml.

A page's id is its URL (without the fragment). Listing a web source cannot tell whether a
page changed, so every fetch is conditional: the stored validators (ETag, Last-Modified) go
out as If-None-Match / If-Modified-Since and a 304 costs no download, no hashing, no
extraction. A server without validators gets its body hashed instead.

Politeness and safety: robots.txt is honoured (a disallowed URL is not listed, so one ingested
earlier is tombstoned); each host gets at most `per_host_concurrency` requests at once, started
at least `delay_s` (or the site's Crawl-delay) apart; redirects are bounded; a response over
`max_bytes` is refused; only http and https are fetched.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urldefrag, urlsplit

import httpx
from defusedxml import ElementTree
from protego import Protego
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ingest_assets.lib.webpage import WEBPAGE_SUFFIX
from ingest_assets.sources import registry
from ingest_assets.sources.base import (
    DocumentGone,
    DocumentRef,
    Fetched,
    SourceReadError,
    UnreadableDocument,
)

USER_AGENT = "ingest-assets"
MAX_URL_BYTES = 2048  # a document id is a btree key (see sources/folder.py)
_SITEMAP_NS = "{http://www.sitemaps.org/schemas/sitemap/0.9}"
_GONE = {404, 410}
_REFUSED = {401, 403, 451}
_SUFFIX_BY_TYPE = {
    "text/html": WEBPAGE_SUFFIX,
    "application/xhtml+xml": WEBPAGE_SUFFIX,
    "application/pdf": ".pdf",
    "text/plain": ".txt",
    "text/markdown": ".md",
}


class WebOptions(BaseModel):
    """Options of the `urls` and `sitemap` kinds (the `options:` mapping in sources.yaml)."""

    model_config = ConfigDict(extra="forbid")

    per_host_concurrency: int = Field(default=2, ge=1, le=32)
    delay_s: float = Field(default=0.0, ge=0, description="Least time between request starts.")
    timeout_s: float = Field(default=30.0, gt=0)
    max_bytes: int = Field(default=16 * 2**20, ge=1024)
    max_redirects: int = Field(default=5, ge=0, le=20)
    max_pages: int = Field(default=50_000, ge=1, description="Sitemap: stop listing beyond.")
    respect_robots: bool = True
    # The change sensor asks every page "changed since?" at most this often.
    recheck_s: float = Field(default=300.0, ge=0)
    user_agent: str = USER_AGENT


@dataclass(frozen=True)
class _Validators:
    etag: str | None
    last_modified: str | None

    @classmethod
    def parse(cls, fingerprint: str | None) -> _Validators | None:
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


class WebSource:
    """What both web kinds share: conditional, throttled, parallel fetching."""

    kind = "web"

    def __init__(self, name: str, location: str, options: WebOptions):
        self.name = name
        self.location = location
        self.options = options
        self.unlisted_prefixes: list[str] = []
        self.skipped: list[tuple[str, str]] = []  # (url, reason): not listed, e.g. robots.txt
        self._web: WebClient | None = None

    @classmethod
    def from_record(cls, record: registry.SourceRecord) -> WebSource:
        try:
            options = WebOptions(**record.options)
        except ValidationError as err:
            raise ValueError(f"source {record.name!r}: invalid options: {err}") from None
        return cls(record.name, record.location, options)

    @property
    def web(self) -> WebClient:
        if self._web is None:
            self._web = WebClient(self.options)
        return self._web

    def close(self) -> None:
        if self._web is not None:
            self._web.close()
            self._web = None

    def page_urls(self) -> Iterator[str]:
        raise NotImplementedError

    def change_token(self) -> str | None:
        return None  # pages change without the listing changing: see revalidate

    @property
    def recheck_s(self) -> float:
        return self.options.recheck_s

    def list_documents(self) -> Iterator[DocumentRef]:
        self.skipped = []
        self.unlisted_prefixes = []
        seen: set[str] = set()
        for raw in self.page_urls():
            url, _ = urldefrag(raw.strip())
            problem = _url_problem(url)
            if problem is None and url not in seen and not self.web.allowed(url):
                problem = "disallowed by robots.txt"
            if problem is not None:
                self.skipped.append((url, problem))
                continue
            if url in seen:
                continue
            seen.add(url)
            yield DocumentRef(doc_id=url, uri=url, fingerprint=None, suffix=WEBPAGE_SUFFIX)

    def fetch_all(
        self, wanted: Iterable[tuple[DocumentRef, str | None]]
    ) -> Iterator[tuple[DocumentRef, Fetched | SourceReadError]]:
        """Fetch in parallel (the host gates bound it), yield in order; memory stays bounded
        by fetching at most `window` pages ahead of the consumer."""
        window = 4 * self.options.per_host_concurrency
        with ThreadPoolExecutor(max_workers=window, thread_name_prefix="fetch") as pool:
            ahead: deque[tuple[DocumentRef, Future[Fetched | SourceReadError]]] = deque()
            for ref, stored in wanted:
                ahead.append((ref, pool.submit(self._fetch, ref, stored)))
                if len(ahead) >= window:
                    first, future = ahead.popleft()
                    yield first, future.result()
            while ahead:
                first, future = ahead.popleft()
                yield first, future.result()

    def revalidate(
        self, refs: list[DocumentRef], stored: Mapping[str, str | None]
    ) -> Iterator[DocumentRef]:
        """Each page's current fingerprint: the stored one on a 304 or a failed request (no
        news is not a change), the response's on a 200; a 404/410 page is left out."""
        fetched = self.fetch_all((ref, stored.get(ref.doc_id)) for ref in refs)
        for ref, result in fetched:
            if isinstance(result, SourceReadError):
                if result.gone:
                    continue
                fingerprint = stored.get(ref.doc_id)
            elif result.data is None:
                fingerprint = stored.get(ref.doc_id)
            else:
                fingerprint = result.fingerprint
            yield DocumentRef(ref.doc_id, ref.uri, fingerprint, ref.suffix)

    def _fetch(self, ref: DocumentRef, stored: str | None) -> Fetched | SourceReadError:
        validators = _Validators.parse(stored)
        try:
            status, headers, body = self.web.get(
                ref.uri, validators.headers() if validators else {}
            )
        except SourceReadError as err:
            return err
        if status == 304 and validators is not None and stored is not None:
            return Fetched(None, stored, WEBPAGE_SUFFIX)
        if status in _GONE:
            return DocumentGone(f"{ref.uri}: HTTP {status}")
        if status in _REFUSED:
            return UnreadableDocument(f"{ref.uri}: HTTP {status}; not allowed to read it")
        if status != 200:
            return SourceReadError(f"{ref.uri}: HTTP {status}")
        content_type = headers.get("content-type", "text/html").split(";")[0].strip().lower()
        suffix = _SUFFIX_BY_TYPE.get(content_type)
        if suffix is None:
            return UnreadableDocument(f"{ref.uri}: unsupported content type {content_type!r}")
        answered = _Validators(headers.get("etag"), headers.get("last-modified"))
        if answered.etag or answered.last_modified:
            fingerprint = answered.fingerprint()
        else:
            fingerprint = "sha256=" + hashlib.sha256(body).hexdigest()
        return Fetched(body, fingerprint, suffix)


class UrlListSource(WebSource):
    """Pages named in a text file, one URL per line (`#` starts a comment); edit the file to
    add or remove pages."""

    kind = "urls"

    def page_urls(self) -> Iterator[str]:
        path = Path(self.location).expanduser()
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as err:
            raise SourceReadError(f"source {self.name!r}: cannot read {path}: {err}") from None
        for line in lines:
            url = line.strip()
            if url and not url.startswith("#"):
                yield url


class SitemapSource(WebSource):
    """Pages a sitemap.xml lists (a sitemap index is followed, at most two levels deep);
    a page dropped from the sitemap is deleted."""

    kind = "sitemap"

    def page_urls(self) -> Iterator[str]:
        for count, url in enumerate(self._sitemap(self.location, depth=0), 1):
            if count > self.options.max_pages:
                limit = self.options.max_pages
                self.skipped.append((self.location, f"sitemap lists more than {limit} pages"))
                # The pages past the limit were not seen, not deleted: infer no deletion.
                self.unlisted_prefixes = [""]
                return
            yield url

    def _sitemap(self, url: str, depth: int) -> Iterator[str]:
        problem = _url_problem(url)
        if problem is not None:
            raise UnreadableDocument(f"source {self.name!r}: sitemap {url}: {problem}")
        status, _, body = self.web.get(url)
        if status != 200:
            # Never read a sitemap we could not fetch as "every page is gone".
            raise SourceReadError(f"source {self.name!r}: sitemap {url}: HTTP {status}")
        if body[:2] == b"\x1f\x8b":
            body = _gunzip(url, body, self.options.max_bytes)
        try:
            root = ElementTree.fromstring(body)
        except Exception as err:  # defusedxml's refusals and the parser's errors alike
            raise SourceReadError(f"source {self.name!r}: sitemap {url}: not XML ({err})") from None
        locations = [(loc.text or "").strip() for loc in root.iter(f"{_SITEMAP_NS}loc")]
        if root.tag == f"{_SITEMAP_NS}sitemapindex":
            if depth >= 2:
                raise UnreadableDocument(f"source {self.name!r}: sitemap {url}: nested too deep")
            for child in locations:
                yield from self._sitemap(child, depth + 1)
        else:
            yield from (loc for loc in locations if loc)


def _url_problem(url: str) -> str | None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return "not an http(s) URL"
    if len(url.encode()) > MAX_URL_BYTES:
        return f"URL longer than {MAX_URL_BYTES} bytes"
    return None


def _too_large(url: str, limit: int) -> str:
    return f"{url}: larger than {limit // 2**20 or 1} MiB; not read"


def _gunzip(url: str, body: bytes, limit: int) -> bytes:
    with gzip.GzipFile(fileobj=io.BytesIO(body)) as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise UnreadableDocument(_too_large(url, limit))
    return data

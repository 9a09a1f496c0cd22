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

import hashlib
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urldefrag, urlsplit

from defusedxml import ElementTree
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
from ingest_assets.sources.web_client import USER_AGENT, Validators, WebClient, gunzip

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
        validators = Validators.parse(stored)
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
        answered = Validators(headers.get("etag"), headers.get("last-modified"))
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
            body = gunzip(url, body, self.options.max_bytes)
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

"""A small website on 127.0.0.1 for tests: pages that can be added, changed and deleted while it
runs, a generated sitemap.xml, a robots.txt, ETag / Last-Modified validators with 304 answers,
redirects, and a log of every request (to assert what was downloaded and what was not)."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Page:
    body: bytes
    content_type: str = "text/html; charset=utf-8"
    validators: bool = True  # send ETag and Last-Modified, answer conditional GETs with 304
    in_sitemap: bool = True
    modified: float = 0.0
    status: int = 200  # e.g. 404: still in the sitemap, gone from the server


@dataclass(frozen=True)
class Request:
    path: str
    status: int
    conditional: bool
    started: float


class Site:
    def __init__(self, robots: str = "User-agent: *\nDisallow: /private/\n"):
        self.pages: dict[str, Page] = {}
        self.redirects: dict[str, str] = {}
        self.robots = robots
        self.failing: dict[str, int] = {}  # path -> the HTTP status it answers with instead
        self.requests: list[Request] = []
        self.latency_s = 0.0
        self.in_flight = 0
        self.max_in_flight = 0  # the most requests the site was answering at once
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def base_url(self) -> str:
        assert self._server is not None, "the site is not serving"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def url(self, path: str) -> str:
        return self.base_url + path

    def put(self, path: str, body: str | bytes, **page: object) -> None:
        data = body.encode() if isinstance(body, str) else body
        with self._lock:
            self.pages[path] = Page(data, modified=time.time(), **page)  # type: ignore[arg-type]

    def delete(self, path: str) -> None:
        with self._lock:
            self.pages.pop(path, None)

    def fetched(self, path: str) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def clear_log(self) -> None:
        with self._lock:
            self.requests.clear()
            self.max_in_flight = 0

    def sitemap(self) -> bytes:
        with self._lock:
            paths = [p for p, page in sorted(self.pages.items()) if page.in_sitemap]
        entries = "".join(f"<url><loc>{self.url(p)}</loc></url>" for p in paths)
        return (
            '<?xml version="1.0" encoding="UTF-8"?>'
            '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
            f"{entries}</urlset>"
        ).encode()

    @contextmanager
    def serving(self) -> Iterator[Site]:
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                site._answer(self)

            def log_message(self, format: str, *args: object) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        self._server = server
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)
            self._server = None

    def _answer(self, handler: BaseHTTPRequestHandler) -> None:
        started = time.monotonic()
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.latency_s:
                time.sleep(self.latency_s)
            path = handler.path.split("?", 1)[0]
            conditional = (
                "If-None-Match" in handler.headers or "If-Modified-Since" in handler.headers
            )
            status, headers, body = self._response(path, handler)
        finally:
            with self._lock:
                self.in_flight -= 1
        with self._lock:
            self.requests.append(Request(path, status, conditional, started))
        handler.send_response(status)
        for key, value in headers.items():
            handler.send_header(key, value)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def _response(
        self, path: str, handler: BaseHTTPRequestHandler
    ) -> tuple[int, dict[str, str], bytes]:
        if path in self.failing:
            return self.failing[path], {}, b"failing on purpose"
        if path == "/robots.txt":
            if self.robots is None:
                return 404, {}, b""
            return 200, {"Content-Type": "text/plain"}, self.robots.encode()
        if path == "/sitemap.xml":
            return 200, {"Content-Type": "application/xml"}, self.sitemap()
        if path in self.redirects:
            return 302, {"Location": self.redirects[path]}, b""
        with self._lock:
            page = self.pages.get(path)
        if page is None:
            return 404, {"Content-Type": "text/plain"}, b"not found"
        headers = {"Content-Type": page.content_type}
        if page.status != 200:
            return page.status, {"Content-Type": "text/plain"}, b"unavailable"
        if not page.validators:
            return 200, headers, page.body
        etag = '"' + hashlib.sha1(page.body).hexdigest()[:16] + '"'
        headers["ETag"] = etag
        headers["Last-Modified"] = formatdate(page.modified, usegmt=True)
        if handler.headers.get("If-None-Match") == etag:
            return 304, {"ETag": etag}, b""
        return 200, headers, page.body

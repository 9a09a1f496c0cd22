"""PDF text through PDFium, in a helper process.

PDFium (Chrome's PDF engine) reads text about 3x faster than pypdf's pure-Python parser.
It is C++, and a hostile PDF can make it abort (it does so by design when memory runs out,
and a 7 MB PDF can inflate to gigabytes) or spin. So it runs in a child process under an
address-space limit and a per-document time limit: a child that dies or overruns costs that
one document, which is refused with the reason, and the next PDF gets a fresh child.

The child speaks length-prefixed frames on stdin/stdout: PDF bytes in, JSON out.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import itertools
import json
import os
import resource
import selectors
import signal
import struct
import subprocess
import sys
import threading
import time
import weakref
from dataclasses import dataclass, field
from typing import IO, Any

MEMORY_LIMIT_BYTES = 1 << 30
TIME_LIMIT_S = 120.0
_MAX_OUTLINE_ENTRIES = 5000
_REQUEST = struct.Struct(">II")  # PDF size, max_chars; then the PDF
_HEADER = struct.Struct(">I")  # reply size; then the JSON reply


class PdfError(Exception):
    """A PDF that yields no text; str(err) is a short human reason."""


@dataclass(frozen=True)
class PdfText:
    title: str | None
    pages: list[str]
    # The document's outline (bookmarks) in order: (depth from 0, title, page index).
    outline: list[tuple[int, str, int]] = field(default_factory=list)


class PdfTextReader:
    """One PDFium child per process (and per fork), started on first use, reused after."""

    def __init__(
        self, memory_limit: int = MEMORY_LIMIT_BYTES, time_limit_s: float = TIME_LIMIT_S
    ) -> None:
        self.memory_limit = memory_limit
        self.time_limit_s = time_limit_s
        self._child: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        atexit.register(self.close)
        os.register_at_fork(after_in_child=functools.partial(_after_fork, weakref.ref(self)))

    def read(self, data: bytes, max_chars: int) -> PdfText:
        """Text per page, stopping once more than ``max_chars`` were read."""
        with self._lock:
            child = self._running()
            assert child.stdin is not None and child.stdout is not None
            try:
                child.stdin.write(_REQUEST.pack(len(data), max_chars) + data)
                child.stdin.flush()
                reply = json.loads(_read_frame(child.stdout, time.monotonic() + self.time_limit_s))
            except TimeoutError:
                self._stop()
                raise PdfError(
                    f"PDF text extraction took over {self.time_limit_s:.0f} s; stopped"
                ) from None
            except (OSError, EOFError, ValueError):
                raise PdfError(self._death()) from None
        if "error" in reply:
            raise PdfError(reply["error"])
        outline = [(int(d), str(t), int(p)) for d, t, p in reply.get("outline", [])]
        return PdfText(title=reply["title"], pages=reply["pages"], outline=outline)

    def close(self) -> None:
        if self._child is not None:
            self._stop()

    def _after_fork(self) -> None:
        """In a forked process: the parent's child is not ours to use, and the lock may have
        been held by a thread that does not exist here."""
        self._lock = threading.Lock()
        if self._child is not None:
            _close_pipes(self._child)
            self._child = None

    def _running(self) -> subprocess.Popen[bytes]:
        if self._child is not None and self._child.poll() is not None:
            self._stop()  # died between documents
        if self._child is None:
            self._child = subprocess.Popen(
                [sys.executable, "-m", __name__, str(self.memory_limit)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
            )
        return self._child

    def _death(self) -> str:
        """The reason a child stopped answering, once it is reaped."""
        child = self._child
        if child is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=5)
        self._stop()
        code = child.returncode if child is not None else None
        if code is not None and code < 0:
            name = signal.Signals(-code).name
            return (
                f"PDF reader crashed ({name}) on this file: malformed, or needs more than "
                f"{self.memory_limit >> 20} MiB"
            )
        return f"PDF reader stopped (exit {code}) on this file"

    def _stop(self) -> None:
        child, self._child = self._child, None
        if child is None:
            return
        child.kill()
        child.wait()
        _close_pipes(child)


def _after_fork(reader: weakref.ref[PdfTextReader]) -> None:
    alive = reader()
    if alive is not None:
        alive._after_fork()


def _close_pipes(child: subprocess.Popen[bytes]) -> None:
    for pipe in (child.stdin, child.stdout):
        if pipe is not None:
            with contextlib.suppress(OSError):  # a flush into a dead child's pipe
                pipe.close()


def _read_frame(stream: IO[bytes], deadline: float) -> bytes:
    fd = stream.fileno()
    wanted = _HEADER.size
    buffer = bytearray()
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while len(buffer) < wanted:
            left = deadline - time.monotonic()
            if left <= 0 or not selector.select(left):
                raise TimeoutError
            piece = os.read(fd, max(wanted - len(buffer), 65536))
            if not piece:
                raise EOFError
            buffer += piece
            if wanted == _HEADER.size and len(buffer) >= _HEADER.size:
                wanted += _HEADER.unpack_from(buffer)[0]
    return bytes(buffer[_HEADER.size : wanted])


# --- the child ---------------------------------------------------------------------------------


def _serve(memory_limit: int) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))
    import pypdfium2 as pdfium  # type: ignore[import-untyped]

    source, sink = sys.stdin.buffer, sys.stdout.buffer
    while header := source.read(_REQUEST.size):
        size, max_chars = _REQUEST.unpack(header)
        data = source.read(size)
        reply = json.dumps(_extract(pdfium, data, max_chars)).encode()
        sink.write(_HEADER.pack(len(reply)) + reply)
        sink.flush()


def _extract(pdfium: Any, data: bytes, max_chars: int) -> dict[str, Any]:
    try:
        document = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as err:
        if "password" in str(err).lower():
            return {"error": "encrypted PDF"}
        return {"error": f"corrupt PDF: {_reason(err)}"}
    try:
        pages: list[str] = []
        size = 0
        for index in range(len(document)):
            page = document[index]
            textpage = page.get_textpage()
            pages.append(str(textpage.get_text_range()))
            textpage.close()
            page.close()
            size += len(pages[-1])
            if size > max_chars:
                break  # no point reading more: the caller refuses the document
        title = document.get_metadata_value("Title")
        outline = _outline(document, len(pages))
    except pdfium.PdfiumError as err:
        return {"error": f"corrupt PDF: {_reason(err)}"}
    finally:
        document.close()
    return {"title": title or None, "pages": pages, "outline": outline}


def _outline(document: Any, pages: int) -> list[tuple[int, str, int]]:
    """Bookmarks that point at a page that was read: (depth, title, page index)."""
    entries = []
    for bookmark in itertools.islice(document.get_toc(max_depth=6), _MAX_OUTLINE_ENTRIES):
        destination = bookmark.get_dest()
        page = destination.get_index() if destination is not None else None
        title = " ".join((bookmark.get_title() or "").split())
        if title and page is not None and 0 <= page < pages:
            entries.append((bookmark.level, title[:200], page))
    return entries


def _reason(err: Exception) -> str:
    # "Failed to load document (PDFium: Data format error)." -> "Data format error"
    message = str(err)
    start = message.find("PDFium: ")
    if start < 0:
        return " ".join(message.split())[:200] or type(err).__name__
    return message[start + len("PDFium: ") :].split(")")[0]


if __name__ == "__main__":
    _serve(int(sys.argv[1]))

"""The PDFium helper process: hostile PDFs cost one document, never the caller."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
import zlib

import pytest

from ingest_assets.lib.pdf import PdfError, PdfText, PdfTextReader
from ingest_assets_tests.lib.test_extract import make_pdf


def make_bomb_pdf(inflated_mib: int) -> bytes:
    """One page whose Flate content stream inflates to `inflated_mib` MiB (a few MB on disk)."""
    deflate = zlib.compressobj(1)
    parts = [deflate.compress(b"BT /F1 12 Tf 72 720 Td (Bomb page) Tj ET")]
    spaces = b" " * (1 << 20)
    parts += [deflate.compress(spaces) for _ in range(inflated_mib)]
    parts.append(deflate.flush())
    stream = b"".join(parts)
    page = make_pdf(["x" * 40])
    # Swap make_pdf's one plain content stream for the deflated one (offsets are rebuilt).
    plain = b"BT /F1 12 Tf 72 720 Td (" + b"x" * 40 + b") Tj ET"
    head, tail = page.split(b"<< /Length %d >>\nstream\n%s" % (len(plain), plain))
    body = head + b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(stream) + stream + tail
    return _rebuild_xref(body)


def _rebuild_xref(data: bytes) -> bytes:
    body = data[: data.index(b"xref\n")]
    offsets = []
    number = 1
    while (at := body.find(b"\n%d 0 obj\n" % number)) >= 0:
        offsets.append(at + 1)
        number += 1
    trailer = data[data.index(b"trailer\n") : data.index(b"startxref")]
    xref = b"xref\n0 %d\n0000000000 65535 f \n" % (len(offsets) + 1)
    xref += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    return body + xref + trailer + b"startxref\n%d\n%%%%EOF\n" % len(body)


@pytest.fixture()
def reader() -> PdfTextReader:
    pdf = PdfTextReader()
    yield pdf
    pdf.close()


def test_reads_pages_and_title(reader: PdfTextReader) -> None:
    assert reader.read(make_pdf(["Alpha (1)", "Beta"], title="T"), 1000) == PdfText(
        title="T", pages=["Alpha (1)", "Beta"]
    )


def test_stops_reading_pages_past_the_limit(reader: PdfTextReader) -> None:
    read = reader.read(make_pdf([f"page {i:02}" for i in range(10)]), max_chars=15)
    assert read.pages == ["page 00", "page 01", "page 02"]  # 21 characters: stopped there


def test_a_pdf_that_exhausts_memory_costs_only_itself() -> None:
    reader = PdfTextReader(memory_limit=256 << 20)
    try:
        with pytest.raises(PdfError, match=r"PDF reader crashed \(SIGABRT\).*256 MiB"):
            reader.read(make_bomb_pdf(400), 1000)
        assert reader.read(make_pdf(["After the bomb"]), 1000).pages == ["After the bomb"]
    finally:
        reader.close()


def test_the_same_pdf_reads_under_a_higher_limit() -> None:
    """The bomb above is refused for its memory, not for being malformed."""
    reader = PdfTextReader(memory_limit=1 << 30)
    try:
        assert reader.read(make_bomb_pdf(100), 1000).pages[0].startswith("Bomb page")
    finally:
        reader.close()


def test_a_pdf_over_the_time_limit_is_stopped(reader: PdfTextReader) -> None:
    reader.read(make_pdf(["warm"]), 1000)
    child = reader._child
    assert child is not None
    os.kill(child.pid, signal.SIGSTOP)  # a child that never answers, as a spinning parser
    reader.time_limit_s = 0.5
    started = time.monotonic()
    with pytest.raises(PdfError, match="took over 0 s; stopped"):
        reader.read(make_pdf(["stuck"]), 1000)
    assert 0.5 <= time.monotonic() - started < 5
    assert child.poll() is not None  # killed, not left behind
    assert reader.read(make_pdf(["next"]), 1000).pages == ["next"]


def test_a_child_that_died_between_documents_is_replaced(reader: PdfTextReader) -> None:
    reader.read(make_pdf(["first"]), 1000)
    child = reader._child
    assert child is not None
    child.kill()
    child.wait()
    assert reader.read(make_pdf(["second"]), 1000).pages == ["second"]
    assert reader._child is not None and reader._child.pid != child.pid


def _read_in_fork(reader: PdfTextReader, queue: multiprocessing.Queue) -> None:
    inherited = reader._child
    pages = reader.read(make_pdf(["forked"]), 1000).pages
    queue.put((pages, reader._child.pid if reader._child else None, inherited))


def test_a_fork_starts_its_own_child(reader: PdfTextReader) -> None:
    reader.read(make_pdf(["parent"]), 1000)
    parent_child = reader._child
    assert parent_child is not None
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    process = context.Process(target=_read_in_fork, args=(reader, queue))
    with reader._lock:  # held at the fork, as by another thread reading a PDF
        process.start()
    pages, fork_child, inherited = queue.get(timeout=30)
    process.join(timeout=30)
    assert pages == ["forked"]
    assert inherited is None  # the parent's child is forgotten in the fork
    assert fork_child not in (None, parent_child.pid)
    assert parent_child.poll() is None  # and left alone
    assert reader.read(make_pdf(["parent again"]), 1000).pages == ["parent again"]

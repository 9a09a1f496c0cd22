"""Hostile and broken input through the real pipeline.

Every file is either ingested or quarantined with a reason that starts with its id; entries
that name no file (dangling or looping links, directory links, never followed) are not listed.
The run succeeds without a traceback, and the normal documents beside them stay searchable.
"""

from __future__ import annotations

import codecs
import errno
import hashlib
import io
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from pypdf import PdfReader, PdfWriter

from benchmarks.corpus import make_text_pdf
from ingest_assets.database import Database
from ingest_assets.lib.extract import ExtractionError, extract
from ingest_assets.lib.hashed_vectors import hashed_vectors
from ingest_assets.sources.base import DocumentRef
from ingest_assets.sources.folder import (
    MAX_DOC_ID_BYTES,
    DocumentGone,
    FolderSource,
    UnreadableDocument,
)
from ingest_assets.store.search import search
from ingest_assets.store.vectors import vector_table_name
from ingest_assets_tests.lib.test_extract import make_pdf
from ingest_assets_tests.lib.test_pdf import make_bomb_pdf

SECRET = "wolverinesecret"  # the content of files outside the folder: never in the database

NORMAL = {  # doc_id: (content, a query that finds it)
    "normal/tides.md": (
        "# Tides\n\nThe moon's gravity pulls the oceans into bulges.\n",
        "moon gravity oceans bulges",
    ),
    "normal/bread.txt": (
        "Sourdough starter is flour and water fermented by wild yeast.\n",
        "sourdough starter wild yeast",
    ),
    "normal/chess.html": (
        "<html><body><main><h1>Castling</h1>"
        "<p>The king moves two squares toward a rook.</p></main></body></html>",
        "king rook squares castling",
    ),
}


def top_doc(db: Database, query: str, k: int = 1) -> list[str]:
    with db.connect() as conn:
        hits = search(conn, vector_table_name("hashing-384"), hashed_vectors([query], 384)[0], k)
    return [h.doc_id for h in hits]


def write_normal(root: Path) -> None:
    for doc_id, (text, _) in NORMAL.items():
        (root / doc_id).parent.mkdir(parents=True, exist_ok=True)
        (root / doc_id).write_text(text)


def assert_normal_searchable(db: Database) -> None:
    for doc_id, (_, query) in NORMAL.items():
        assert top_doc(db, query) == [doc_id]


def encrypted_pdf(text: str, user_password: str, owner_password: str | None = None) -> bytes:
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(make_text_pdf([text]))))
    writer.encrypt(user_password, owner_password)
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


# --- the hostile corpus ----------------------------------------------------------------------

Maker = Callable[[Path, Path], object]  # (the entry's path, a folder outside the root)


def huge_single_line(path: Path, outside: Path) -> None:
    with path.open("wb") as handle:  # 50 MiB without a newline
        for _ in range(50):
            handle.write(b"word " * (2**20 // 5) + b"word")


def sparse_over_limit(path: Path, outside: Path) -> None:
    with path.open("wb") as handle:
        handle.truncate(65 * 2**20)


def long_path(path: Path, outside: Path) -> None:
    """`path` nested in directories of 200 characters until the whole is ~3,900 long; the names
    are hex digests, which PostgreSQL cannot compress to fit a ~2.7 kB index entry."""
    folder = path.parent
    for level in range((3900 - len(str(folder))) // 201):
        digests = (hashlib.sha512(f"{level}:{half}".encode()).hexdigest() for half in (0, 1))
        folder = folder / "".join(digests)[:200]
    folder.mkdir(parents=True)
    (folder / path.name).write_text("Okapis browse quietly in the rainforest understory.\n")
    assert len(str(folder / path.name)) > 3700


def link_to(target: str) -> Maker:
    return lambda path, outside: os.symlink(target, path)


def link_out_to_file(path: Path, outside: Path) -> None:
    (outside / "secret.md").write_text(f"# Secret\n\n{SECRET} lives outside the folder.\n")
    os.symlink(outside / "secret.md", path)


def link_out_to_dir(path: Path, outside: Path) -> None:
    (outside / "dir").mkdir()
    (outside / "dir" / "inner.md").write_text(f"{SECRET} inside a linked folder.\n")
    os.symlink(outside / "dir", path)


def link_loop(path: Path, outside: Path) -> None:
    os.symlink("loop-b.md", path)
    os.symlink(path.name, path.with_name("loop-b.md"))


def fifo(path: Path, outside: Path) -> None:
    os.mkfifo(path)


@dataclass(frozen=True)
class Case:
    kind: str  # the kind of hostile input
    name: str  # where it goes in the folder
    content: bytes | str | Maker
    outcome: str  # S: searchable (detail: a query), E: empty, Q: quarantined (detail: reason),
    # U: not listed at all, L: listed under a shortened id
    detail: str = ""

    @property
    def doc_id(self) -> str:
        return os.fsencode(self.name).decode("utf-8", "backslashreplace")

    def make(self, root: Path, outside: Path) -> None:
        path = root / self.name
        path.parent.mkdir(parents=True, exist_ok=True)
        if callable(self.content):
            self.content(path, outside)
        else:
            content = self.content
            path.write_bytes(content.encode() if isinstance(content, str) else content)


S, E, Q, U, L = "searchable", "empty", "quarantined", "unlisted", "long"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" * 50
UTF16 = codecs.BOM_UTF16_LE + "Zebras graze savanna grasses.".encode("utf-16-le")
LATE_NUL = b"Kiwis forage at night. " * 400 + b"\x00\x00tail"
DEEP_HTML = "<div>" * 10_000 + "Quokkas smile deep down" + "</div>" * 10_000
SCRIPTS = "<html><head><script>var a = 1;</script></head><body><script>x()</script></body></html>"
MALFORMED = (
    "<html><body><p>Narwhals <b>tusk <i>spiral</b> arctic</i><div><p<p>x</td></tr></table>"
    "&bogus; &#0; <!-- open"
)
ENCRYPTED = encrypted_pdf("Hidden.", "user-pw")
OWNER_ONLY = encrypted_pdf("Tapirs snorkel.", "", "owner-pw")
IMAGE_ONLY = make_pdf([b"q 100 0 0 100 72 600 cm /Im1 Do Q"], image=True)
BOMB = make_bomb_pdf(1200)  # past the PDF reader's 1 GiB limit
PAGES = make_text_pdf([f"Page {i} of the ledger." for i in range(999)] + ["Xylophones resonate."])
ROW = "| amber | basil | cedar | dune | ember | fjord | glade | heath |\n"
TABLE = "# Inventory\n\nMarmots hibernate.\n\n" + ROW + "|---" * 8 + "|\n" + ROW * 1500
LONG_WORD = "# Longword\n\nPangolins roll up. " + "a" * 200_000 + "\n"
SPACED_H1 = "# Ocelots" + " " * 200_000 + "prowl\n"
DEEP_YAML = "---\ntitle: " + "[" * 10_000 + "]" * 10_000 + "\n---\nCapybaras bathe calmly.\n"
BAD_DATE = "---\ndate: 2024-02-30\n---\nGerbils burrow.\n"  # PyYAML raises ValueError
LATIN1 = "Grüße aus Köln: die Straßenbahn fährt pünktlich.".encode("latin-1")
CONTROLS = "Lynxes\x07 stalk\x1b[31m hares\x0b in\x0c snow\x01.\n"
TWIN = "# Twins\n\nAxolotls regrow lost limbs and hearts.\n"
BINARY, UTF8, TOO_MUCH = "binary data, not text", "not valid UTF-8 text", "too much text to index"
OUTSIDE, FIFO = "links outside the source folder; not read", "a FIFO, not a regular file; not read"

CASES = [
    Case("zero-byte file", "empty.md", b"", E),
    Case("binary data named .md", "binary.md", PNG, Q, BINARY),
    Case("invalid UTF-8 (read as cp1252)", "bad.md", b"Caf\xe9 lemurs leap", S, "lemurs leap"),
    Case("bytes no encoding can read", "undecodable.txt", b"\x81\x8d\x8f\x90 words", Q, UTF8),
    Case("UTF-16 with a BOM", "utf16.txt", UTF16, S, "zebras graze savanna"),
    Case("NUL bytes in the first 8 KiB", "nul.txt", b"text\x00with\x00nuls", Q, BINARY),
    Case("NUL bytes after 8 KiB (dropped)", "late-nul.txt", LATE_NUL, S, "kiwis forage night"),
    Case("50 MiB single-line file", "huge-line.md", huge_single_line, Q, f"{TOO_MUCH}: 52.4"),
    Case("over the 64 MiB limit (sparse)", "sparse.txt", sparse_over_limit, Q, "than 64 MiB"),
    Case("HTML nested 10,000 levels", "deep.html", DEEP_HTML, S, "quokkas smile deep"),
    Case("HTML with only scripts", "scripts.html", SCRIPTS, E),
    Case("malformed HTML", "malformed.html", MALFORMED, S, "narwhals tusk spiral arctic"),
    Case("corrupt PDF", "corrupt.pdf", b"%PDF-1.4\n garbage", Q, "corrupt PDF"),
    Case("truncated PDF", "cut.pdf", make_text_pdf(["Cut short."])[:300], Q, "corrupt PDF"),
    Case("encrypted PDF", "locked.pdf", ENCRYPTED, Q, "encrypted PDF"),
    Case("PDF with an empty user password", "open.pdf", OWNER_ONLY, S, "tapirs snorkel"),
    Case("image-only PDF", "scan.pdf", IMAGE_ONLY, Q, "PDF has no extractable text"),
    Case("PDF with 1,000 pages", "pages.pdf", PAGES, S, "xylophones resonate"),
    Case("PDF inflating to 1.2 GB (5 MB file)", "bomb.pdf", BOMB, Q, "PDF reader crashed"),
    Case("directory symlink to its parent", "sub/up", link_to(".."), U),
    Case("file symlinks in a loop", "loop-a.md", link_loop, U),
    Case("dangling symlink", "dangling.md", link_to("nowhere.md"), U),
    Case("file symlink out of the folder", "leak.md", link_out_to_file, Q, OUTSIDE),
    Case("directory symlink out of the folder", "leakdir", link_out_to_dir, U),
    Case("symlink to a file in the folder", "alias.md", link_to("twin-a.md"), S, "axolotls"),
    Case("FIFO named pipe.md", "pipe.md", fifo, Q, FIFO),
    Case("directory named notes.md", "notes.md/inner.md", "Pikas gather hay.", S, "pikas hay"),
    Case("file name with a newline", "new\nline.md", "Ibexes climb dams.", S, "ibexes climb"),
    Case("file name with quotes", 'it\'s "q".md', "Puffins nest.", S, "puffins nest"),
    Case("non-ASCII file name", "ünïcødé 名前.md", "Wombats dig.", S, "wombats dig"),
    Case("file name not UTF-8", os.fsdecode(b"l1-\xe9.md"), "Gharials snap.", S, "gharials"),
    Case("file name with | and ,", "a|b,c.md", "Meerkats stand sentry.", S, "meerkats sentry"),
    Case("path of ~4,000 characters", "long.md", long_path, L, "okapis browse rainforest"),
    Case("same content, two names (1)", "twin-a.md", TWIN, S, "axolotls regrow"),
    Case("same content, two names (2)", "twin-b.md", TWIN, S, "axolotls regrow"),
    Case("Markdown with a huge table", "table.md", TABLE, S, "marmots hibernate"),
    Case("a 200,000-character word", "long-word.md", LONG_WORD, S, "pangolins roll"),
    Case("H1 with 200,000 spaces", "spaces.md", SPACED_H1, S, "ocelots prowl"),
    Case("front matter nested 10,000 deep", "deep-yaml.md", DEEP_YAML, S, "capybaras bathe"),
    Case("front matter with a bad date", "date.md", BAD_DATE, S, "gerbils burrow"),
    Case("Latin-1 .txt", "latin1.txt", LATIN1, S, "grüße köln straßenbahn"),
    Case("control characters", "controls.txt", CONTROLS, S, "lynxes stalk hares snow"),
    Case("only whitespace", "blank.md", " \t\n\n   \r\n\x0c \n", E),
]


def make_corpus(root: Path, outside: Path) -> None:
    write_normal(root)
    outside.mkdir()
    for case in CASES:
        case.make(root, outside)


def test_hostile_corpus_is_ingested_or_quarantined_and_nothing_else_is_lost(
    ingest, db: Database, tmp_path: Path
) -> None:
    root, outside = tmp_path / "corpus", tmp_path / "outside"
    make_corpus(root, outside)

    started = time.perf_counter()
    summary = ingest(root)
    seconds = time.perf_counter() - started

    assert summary.success, summary.error
    assert summary.error is None
    assert seconds < 45  # ~8 s here: nothing hangs or crawls
    assert_normal_searchable(db)
    quarantined = dict(summary.quarantined)
    with db.connect() as conn:
        rows = conn.execute(
            "SELECT d.doc_id, d.body, d.quarantined_at IS NOT NULL, count(c.id) "
            "FROM documents d LEFT JOIN chunks c ON c.document_id = d.id "
            "WHERE d.deleted_at IS NULL GROUP BY d.id"
        ).fetchall()
        leaked = conn.execute(
            "SELECT (SELECT count(*) FROM documents WHERE body ILIKE %(s)s OR doc_id ILIKE %(s)s)"
            " + (SELECT count(*) FROM chunks WHERE text ILIKE %(s)s)",
            {"s": f"%{SECRET}%"},
        ).fetchone()
    documents = {
        doc_id: (body, is_quarantined, chunks) for doc_id, body, is_quarantined, chunks in rows
    }

    listed = {c.doc_id for c in CASES if c.outcome not in (U, L)}
    [long_id] = [d for d in documents if d.endswith("/long.md")]
    assert set(documents) == set(NORMAL) | listed | {long_id}
    assert leaked == (0,)
    for case in CASES:
        if case.outcome == Q:
            reason = quarantined.get(case.doc_id, "")
            assert reason.startswith(f"{case.doc_id}: ") and case.detail in reason, case.kind
            assert documents[case.doc_id][0] is None and documents[case.doc_id][2] == 0
        elif case.outcome == S:
            assert case.doc_id not in quarantined, (case.kind, quarantined.get(case.doc_id))
            assert case.doc_id in top_doc(db, case.detail, k=3), case.kind
        elif case.outcome == E:
            assert documents[case.doc_id] == ("", False, 0), case.kind
        elif case.outcome == L:  # a shortened id that PostgreSQL can index
            assert "…" in long_id and len(long_id.encode()) <= MAX_DOC_ID_BYTES
            assert top_doc(db, case.detail) == [long_id]
    assert set(quarantined) == {c.doc_id for c in CASES if c.outcome == Q}

    # Same text under two names: two documents, one embedding per distinct text.
    with db.connect() as conn:
        twins = conn.execute(
            "SELECT array_agg(DISTINCT c.text_hash) FROM chunks c "
            "JOIN documents d ON d.id = c.document_id "
            "WHERE d.doc_id IN ('twin-a.md', 'twin-b.md') GROUP BY d.doc_id"
        ).fetchall()
        embedded = conn.execute(
            f"SELECT (SELECT count(*) FROM {vector_table_name('hashing-384')}),"
            " (SELECT count(DISTINCT text_hash) FROM chunks)"
        ).fetchone()
    assert len(twins) == 2 and twins[0] == twins[1]
    assert embedded == (summary.totals["texts_embedded"],) * 2

    # A second run finds nothing to do, fails nothing, quarantines the same files.
    again = ingest(root)
    assert again.success, again.error
    assert again.totals["documents_new"] == again.totals["documents_changed"] == 0
    assert again.totals["documents_failed"] == again.totals["documents_deleted"] == 0
    assert again.totals["texts_embedded"] == 0
    assert dict(again.quarantined) == quarantined
    (root / "huge-line.md").unlink()  # pytest keeps the last few tmp folders: not 50 MiB each


# --- races and read errors -------------------------------------------------------------------


def test_file_deleted_between_listing_and_reading_counts_as_deleted(
    ingest, db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "corpus"
    write_normal(root)
    (root / "known.md").write_text("Tortoises outlive their keepers.\n")
    ingest(root)
    (root / "known.md").write_text("Tortoises outlive their keepers, again.\n")  # read again
    (root / "brand-new.md").write_text("Cicadas wait seventeen years.\n")
    original = FolderSource.read

    def read(self: FolderSource, ref: DocumentRef) -> bytes:
        if ref.doc_id in ("known.md", "brand-new.md"):
            (root / ref.doc_id).unlink()
        return original(self, ref)

    with monkeypatch.context() as patch:
        patch.setattr(FolderSource, "read", read)
        summary = ingest(root)

    # A known document is tombstoned; one never seen is simply not stored; the run succeeds.
    assert summary.success, summary.error
    assert summary.totals["documents_deleted"] == 1 and summary.totals["documents_failed"] == 0
    assert summary.quarantined == []
    with db.connect() as conn:
        states = dict(conn.execute("SELECT doc_id, deleted_at IS NOT NULL FROM documents"))
    assert states["known.md"] is True and "brand-new.md" not in states
    with db.connect() as conn:
        stale = conn.execute("SELECT count(*) FROM chunks WHERE text LIKE '%Tortoises%'").fetchone()
    assert stale == (0,)
    assert_normal_searchable(db)

    again = ingest(root)
    assert again.success and again.totals["documents_deleted"] == 0
    assert again.totals["documents_new"] == again.totals["documents_changed"] == 0


@pytest.mark.parametrize("when", ["before", "after"])
def test_file_changed_while_being_read_is_caught_up_next_run(
    ingest, db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, when: str
) -> None:
    """The listing's fingerprint is stored, not the file's at read time: whatever bytes the
    read saw, the next run sees a different fingerprint, reads again and keeps the final text."""
    root = tmp_path / "corpus"
    write_normal(root)
    (root / "moving.md").write_text("Sloths move slowly.\n")
    original = FolderSource.read

    def read(self: FolderSource, ref: DocumentRef) -> bytes:
        if ref.doc_id != "moving.md":
            return original(self, ref)
        if when == "before":
            (root / "moving.md").write_text("Cheetahs sprint fastest of all.\n")
            return original(self, ref)
        content = original(self, ref)
        (root / "moving.md").write_text("Cheetahs sprint fastest of all.\n")
        return content

    with monkeypatch.context() as patch:
        patch.setattr(FolderSource, "read", read)
        first = ingest(root)
    second = ingest(root)

    assert first.success and second.success, (first.error, second.error)
    assert top_doc(db, "cheetahs sprint fastest") == ["moving.md"]
    with db.connect() as conn:
        body = conn.execute("SELECT body FROM documents WHERE doc_id = 'moving.md'").fetchone()
        stale = conn.execute("SELECT count(*) FROM chunks WHERE text LIKE '%Sloths%'").fetchone()
    assert body == ("Cheetahs sprint fastest of all.",) and stale == (0,)
    assert_normal_searchable(db)


def fail_open(monkeypatch: pytest.MonkeyPatch, name: str, code: int) -> None:
    """Make opening one file fail with `code` (the tests run as root, where chmod 000 does not
    stop a read), leaving every other open alone."""
    real_open = os.open

    def fake_open(path, flags, *args, **kwargs):  # type: ignore[no-untyped-def]
        if os.fspath(path).endswith(os.sep + name):
            raise OSError(code, os.strerror(code), os.fspath(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", fake_open)


def test_unreadable_file_is_quarantined_at_once_and_read_again_later(
    ingest, db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "corpus"
    write_normal(root)
    (root / "locked.md").write_text("Hedgehogs hibernate in leaf piles.\n")
    ingest(root)
    (root / "locked.md").touch()  # same bytes, new fingerprint: read again, and refused
    with monkeypatch.context() as patch:
        fail_open(patch, "locked.md", errno.EACCES)
        summary = ingest(root)

    assert summary.success, summary.error
    assert summary.quarantined == [("locked.md", "locked.md: cannot read (Permission denied)")]
    assert_normal_searchable(db)

    fixed = ingest(root)  # permissions fixed: the next run reads it, same bytes as before
    assert fixed.success and fixed.quarantined == []
    assert top_doc(db, "hedgehogs hibernate leaf piles") == ["locked.md"]


def test_transient_read_error_is_retried_then_quarantined_without_losing_the_shard(
    ingest, db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "corpus"
    write_normal(root)
    (root / "flaky.md").write_text("Ravens solve puzzles.\n")
    with monkeypatch.context() as patch:
        fail_open(patch, "flaky.md", errno.EIO)
        summary = ingest(root)  # the step's two retries make three reads in all

    assert summary.success, summary.error
    assert summary.quarantined == [("flaky.md", "flaky.md: cannot read (Input/output error)")]
    assert_normal_searchable(db)

    healed = ingest(root)  # a quarantined read failure is read again on every run
    assert healed.success and healed.quarantined == []
    assert top_doc(db, "ravens solve puzzles") == ["flaky.md"]


# --- the source and the extractor alone ------------------------------------------------------


def ref_for(source: FolderSource, doc_id: str) -> DocumentRef:
    [ref] = [r for r in source.list_documents() if r.doc_id == doc_id]
    return ref


@pytest.mark.parametrize(
    ("make", "doc_id", "reason"),
    [
        (fifo, "pipe.md", FIFO),
        (sparse_over_limit, "sparse.txt", "larger than 64 MiB; not read"),
        (link_out_to_file, "leak.md", OUTSIDE),
    ],
    ids=["fifo", "too-large", "outside-link"],
)
def test_reads_that_cannot_succeed_fail_fast_and_permanently(
    tmp_path: Path, make: Maker, doc_id: str, reason: str
) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    make(root / doc_id, outside)
    source = FolderSource("docs", root)
    started = time.perf_counter()
    with pytest.raises(UnreadableDocument) as info:
        source.read(ref_for(source, doc_id))
    assert str(info.value) == f"{doc_id}: {reason}"
    assert time.perf_counter() - started < 1


def test_read_of_a_deleted_file_says_gone(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("x")
    source = FolderSource("docs", tmp_path)
    ref = ref_for(source, "a.md")
    (tmp_path / "a.md").unlink()
    with pytest.raises(DocumentGone, match=r"a\.md: deleted before it could be read"):
        source.read(ref)


def test_file_swapped_for_a_fifo_after_listing_does_not_block(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("x")
    source = FolderSource("docs", tmp_path)
    ref = ref_for(source, "a.md")
    (tmp_path / "a.md").unlink()
    os.mkfifo(tmp_path / "a.md")
    with pytest.raises(UnreadableDocument, match="a FIFO"):
        source.read(ref)


@pytest.mark.parametrize(
    ("data", "suffix", "check"),
    [
        ("# a" + " " * 1_000_000 + "b", ".md", "# a"),  # once quadratic in the H1 regex
        ("# a " + "#" * 1_000_000 + " b", ".md", "# a " + "#" * 9_996),
        ("x" * 1_000_000, ".txt", "x" * 10_000),  # lines are broken at 10,000 characters
        ("word " * 300_000, ".md", ("word " * 2_000).rstrip()),
    ],
    ids=["h1-spaces", "h1-hashes", "one-word", "one-line"],
)
def test_extraction_stays_linear_on_pathological_lines(data: str, suffix: str, check: str) -> None:
    started = time.perf_counter()
    doc = extract(data.encode(), suffix, name="f")
    assert time.perf_counter() - started < 2
    assert doc.text.split("\n")[0] == check
    assert max(len(line) for line in doc.text.split("\n")) <= 10_000


def test_too_much_text_is_refused_before_any_work() -> None:
    started = time.perf_counter()
    with pytest.raises(ExtractionError, match=r"too much text to index: 20\.0 million characters"):
        extract(b"ab" * 10_000_000, ".txt", name="f")
    assert time.perf_counter() - started < 2


def test_a_folder_that_cannot_be_listed_does_not_delete_its_documents(
    ingest, db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "corpus"
    write_normal(root)
    (root / "private").mkdir()
    (root / "private" / "otters.md").write_text("Otters hold hands while sleeping.\n")
    ingest(root)
    real_scandir = os.scandir

    def refuse_private(path=".", *args, **kwargs):  # type: ignore[no-untyped-def]
        if os.fspath(path).endswith("private"):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_scandir(path, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(os, "scandir", refuse_private)
        listing = FolderSource("docs", root)
        assert "private/otters.md" not in {ref.doc_id for ref in listing.list_documents()}
        assert listing.unlisted_prefixes == ["private/"]
        summary = ingest(root)

    assert summary.success, summary.error
    assert summary.totals["documents_deleted"] == 0
    assert top_doc(db, "otters hold hands sleeping") == ["private/otters.md"]

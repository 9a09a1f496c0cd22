"""Tests for the synthetic benchmark corpus and the committed sample corpus."""

from __future__ import annotations

import io
import re
import statistics
from pathlib import Path

import pytest
from pypdf import PdfReader

from benchmarks.corpus import TOPICS, generate_corpus, main, make_text_pdf

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "samples"
SAMPLE_CORPUS = SAMPLES / "corpus"


def _files(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _words(text: str) -> list[str]:
    return text.split()


# --------------------------------------------------------------------------------------
# make_text_pdf
# --------------------------------------------------------------------------------------


def test_pdf_round_trips_text_per_page() -> None:
    pages = [
        "First page with (parentheses), a back\\slash and an unbalanced ( bracket.\n\n"
        "A second paragraph after a blank line.",
        " ".join(f"word{i}" for i in range(120)) + "\nA final short line.",
    ]
    reader = PdfReader(io.BytesIO(make_text_pdf(pages)), strict=True)
    assert len(reader.pages) == 2
    for page, expected in zip(reader.pages, pages, strict=True):
        assert _words(page.extract_text()) == _words(expected)


def test_pdf_wraps_long_lines_at_about_90_chars() -> None:
    text = " ".join(["alpha"] * 100)
    data = make_text_pdf([text])
    shown = re.findall(rb"\((.*?)\) Tj", data)
    assert len(shown) > 1
    assert all(len(line) <= 90 for line in shown)
    extracted = PdfReader(io.BytesIO(data)).pages[0].extract_text()
    assert _words(extracted) == _words(text)


def test_pdf_latin1_kept_and_other_characters_replaced() -> None:
    data = make_text_pdf(["Café crème brûlée — 日本\tend"])
    assert data[:9] == b"%PDF-1.4\n"
    text = PdfReader(io.BytesIO(data)).pages[0].extract_text()
    assert "Café crème brûlée" in text
    assert "日" not in text and "—" not in text
    assert "? ??" in text
    assert text.rstrip().endswith("end")


def test_pdf_title_metadata() -> None:
    reader = PdfReader(io.BytesIO(make_text_pdf(["x"], title="Tides (and the Moon) — notes")))
    assert reader.metadata is not None
    assert reader.metadata.title == "Tides (and the Moon) — notes"
    assert PdfReader(io.BytesIO(make_text_pdf(["x"]))).metadata is None


def test_pdf_structure_and_exact_xref_offsets() -> None:
    data = make_text_pdf(["one", "two", "three"], title="T")
    assert data.rstrip().endswith(b"%%EOF")
    assert b"/BaseFont /Helvetica" in data
    assert data.count(b"/Type /Page ") == 3
    assert b"BT\n/F1 11 Tf\n14 TL\n72 760 Td\n" in data

    startxref = int(data.rsplit(b"startxref", 1)[1].split()[0])
    assert data[startxref:].startswith(b"xref\n")
    section = data[startxref:].split(b"trailer", 1)[0]
    _, header, body = section.split(b"\n", 2)
    first, count = map(int, header.split())
    assert first == 0
    assert len(body) == 20 * count  # fixed-width 20-byte entries
    entries = [body[i : i + 20] for i in range(0, len(body), 20)]
    assert entries[0] == b"0000000000 65535 f \n"
    for number, entry in enumerate(entries[1:], start=1):
        assert entry.endswith(b" 00000 n \n")
        offset = int(entry[:10])
        assert data[offset:].startswith(f"{number} 0 obj\n".encode())

    for match in re.finditer(rb"<< /Length (\d+) >>\nstream\n", data):
        end = match.end() + int(match.group(1))
        assert data[end:].startswith(b"endstream")


def test_pdf_is_deterministic() -> None:
    assert make_text_pdf(["same"], title="t") == make_text_pdf(["same"], title="t")


# --------------------------------------------------------------------------------------
# generate_corpus
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    root = tmp_path_factory.mktemp("corpus")
    return root, generate_corpus(root, 60, seed=7)


def test_generate_is_deterministic_for_a_seed(
    corpus: tuple[Path, dict[str, int]], tmp_path: Path
) -> None:
    root, counts = corpus
    again = generate_corpus(tmp_path / "again", 60, seed=7)
    assert again == counts
    assert _files(tmp_path / "again") == _files(root)


def test_different_seeds_give_different_corpora(tmp_path: Path) -> None:
    generate_corpus(tmp_path / "a", 20, seed=1)
    generate_corpus(tmp_path / "b", 20, seed=2)
    assert _files(tmp_path / "a") != _files(tmp_path / "b")


def test_requested_count_and_mix(corpus: tuple[Path, dict[str, int]]) -> None:
    root, counts = corpus
    files = [p for p in root.rglob("*") if p.is_file()]
    assert len(files) == 60
    assert counts == {".md": 27, ".txt": 15, ".html": 12, ".pdf": 6}
    on_disk = {suffix: sum(p.suffix == suffix for p in files) for suffix in counts}
    assert on_disk == counts


@pytest.mark.parametrize("documents", [0, 1, 3, 7, 11, 101])
def test_mix_always_sums_to_requested(tmp_path: Path, documents: int) -> None:
    counts = generate_corpus(tmp_path, documents, seed=0)
    assert sum(counts.values()) == documents
    assert sum(1 for p in tmp_path.rglob("*") if p.is_file()) == documents
    for suffix, share in {".md": 0.45, ".txt": 0.25, ".html": 0.20, ".pdf": 0.10}.items():
        assert abs(counts[suffix] - documents * share) < 1


def test_negative_count_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        generate_corpus(tmp_path, -1)


def test_files_are_in_nested_folders(corpus: tuple[Path, dict[str, int]]) -> None:
    root, _ = corpus
    parents = {p.parent.relative_to(root) for p in root.rglob("*") if p.is_file()}
    assert len(parents) >= 3
    assert all(len(parent.parts) >= 2 for parent in parents)


def test_generated_pdfs_are_readable(corpus: tuple[Path, dict[str, int]]) -> None:
    root, _ = corpus
    pdfs = sorted(root.rglob("*.pdf"))
    assert len(pdfs) == 6
    for pdf in pdfs:
        reader = PdfReader(pdf, strict=True)
        assert reader.metadata is not None and reader.metadata.title
        text = "\n".join(page.extract_text() for page in reader.pages)
        assert len(text.split()) >= 40, pdf
        assert reader.metadata.title in text


def test_markdown_and_html_structure(corpus: tuple[Path, dict[str, int]]) -> None:
    root, _ = corpus
    for md in root.rglob("*.md"):
        text = md.read_text(encoding="utf-8")
        assert text.startswith("# ")
        assert "\n## " in text or len(text) < 1500
    for page in root.rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        for tag in ("<title>", "<nav", "<main>", "<h1>", "<p>", "<footer>", "<script>"):
            assert tag in text, (page, tag)
    assert any("\n- " in md.read_text(encoding="utf-8") for md in root.rglob("*.md"))


def test_text_is_varied_and_topical(corpus: tuple[Path, dict[str, int]]) -> None:
    root, _ = corpus
    bodies = [p.read_bytes() for p in root.rglob("*") if p.suffix in {".md", ".txt"}]
    assert len(set(bodies)) == len(bodies)
    text = b" ".join(bodies).decode("utf-8").lower()
    assert "lorem" not in text
    topics_seen = sum(any(term.lower() in text for term in topic.terms[:4]) for topic in TOPICS)
    assert topics_seen >= 8
    assert len(TOPICS) >= 12


def test_size_distribution_is_skewed(tmp_path: Path) -> None:
    generate_corpus(tmp_path, 300, seed=3)
    sizes = sorted(p.stat().st_size for p in tmp_path.rglob("*") if p.is_file())
    assert 1_000 <= statistics.median(sizes) <= 6_000
    assert sum(1_000 <= s <= 8_000 for s in sizes) / len(sizes) >= 0.6
    assert sizes[-1] > 3 * statistics.median(sizes)
    assert sizes[-1] <= 75_000


def test_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main([str(tmp_path / "out"), "--documents", "10", "--seed", "4"])
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    assert "10 documents" in out
    assert sum(1 for p in (tmp_path / "out").rglob("*") if p.is_file()) == 10


# --------------------------------------------------------------------------------------
# Committed sample corpus
# --------------------------------------------------------------------------------------


def test_sample_corpus_shape() -> None:
    files = [p for p in SAMPLE_CORPUS.rglob("*") if p.is_file()]
    assert 10 <= len(files) <= 14
    suffixes = {p.suffix for p in files}
    assert {".md", ".txt", ".html", ".pdf"} <= suffixes
    assert not any(p.name.lower().startswith("readme") for p in files)
    assert (SAMPLES / "NOTICE.md").is_file()


def test_sample_corpus_pdfs_are_readable() -> None:
    pdfs = sorted(SAMPLE_CORPUS.rglob("*.pdf"))
    assert len(pdfs) >= 2
    for pdf in pdfs:
        reader = PdfReader(pdf, strict=True)
        assert reader.metadata is not None and reader.metadata.title
        text = "\n".join(page.extract_text() for page in reader.pages)
        assert len(text.split()) >= 200, pdf


def test_sample_queries() -> None:
    lines = (SAMPLES / "queries.txt").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 6
    assert all(line.strip() and line == line.strip() for line in lines)

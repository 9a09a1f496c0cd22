import codecs
import io

import pytest
from pypdf import PdfReader, PdfWriter

from benchmarks.corpus import make_text_pdf
from ingest_assets.lib.chunking import Chunker
from ingest_assets.lib.extract import (
    SUPPORTED_SUFFIXES,
    ExtractedDocument,
    ExtractionError,
    extract,
)

# --- raw PDF builder -------------------------------------------------------------------------

_IMAGE_DRAW = b"q 100 0 0 100 72 600 cm /Im1 Do Q"


def make_pdf(pages: list[str | bytes], *, title: str | None = None, image: bool = False) -> bytes:
    """Build a minimal valid PDF; a str page becomes one line of Helvetica text, bytes are used
    as the raw content stream. With image=True every page gets a 1x1 grey image as /Im1."""
    objects: list[bytes] = []

    def add(body: bytes) -> int:
        objects.append(body)
        return len(objects)

    catalog = add(b"")
    pages_ref = add(b"")
    font = add(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    resources = b"/Font << /F1 %d 0 R >>" % font
    if image:
        img = add(
            b"<< /Type /XObject /Subtype /Image /Width 1 /Height 1 /ColorSpace /DeviceGray"
            b" /BitsPerComponent 8 /Length 1 >>\nstream\n\x80\nendstream"
        )
        resources += b" /XObject << /Im1 %d 0 R >>" % img
    kids = []
    for page in pages:
        if isinstance(page, str):
            escaped = page.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
            page = f"BT /F1 12 Tf 72 720 Td ({escaped}) Tj ET".encode("latin-1")
        stream = add(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(page), page))
        kids.append(
            add(
                b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 612 792] /Resources << %s >>"
                b" /Contents %d 0 R >>" % (pages_ref, resources, stream)
            )
        )
    objects[catalog - 1] = b"<< /Type /Catalog /Pages %d 0 R >>" % pages_ref
    kid_refs = b" ".join(b"%d 0 R" % kid for kid in kids)
    objects[pages_ref - 1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kid_refs, len(kids))
    info = add(b"<< /Title (%s) >>" % title.encode("latin-1")) if title is not None else None

    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root %d 0 R" % (len(objects) + 1, catalog)
    if info is not None:
        out += b" /Info %d 0 R" % info
    out += b" >>\nstartxref\n%d\n%%%%EOF\n" % xref
    return bytes(out)


def encrypt_pdf(data: bytes, user_password: str, owner_password: str | None = None) -> bytes:
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(data)))
    writer.encrypt(user_password, owner_password)
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def extraction_error(data: bytes, suffix: str) -> str:
    with pytest.raises(ExtractionError) as info:
        extract(data, suffix, name="f")
    return str(info.value)


# --- suffixes, empty input, names ------------------------------------------------------------


def test_supported_suffixes() -> None:
    assert {".md", ".markdown", ".txt", ".html", ".htm", ".pdf"} == SUPPORTED_SUFFIXES


@pytest.mark.parametrize("suffix", [".docx", ".exe", "", "md", ".tar.gz"])
def test_unsupported_suffix(suffix: str) -> None:
    assert extraction_error(b"hello", suffix) == f"unsupported file type {suffix!r}"


@pytest.mark.parametrize(
    ("suffix", "markup"),
    [(".MD", "markdown"), (".Markdown", "markdown"), (".TXT", "text"), (".HtM", "markdown")],
)
def test_suffix_is_case_insensitive(suffix: str, markup: str) -> None:
    doc = extract(b"hello", suffix, name="a")
    assert (doc.text, doc.markup) == ("hello", markup)


def test_pdf_suffix_is_case_insensitive() -> None:
    assert extract(make_pdf(["Upper"]), ".PDF").text == "Upper"


@pytest.mark.parametrize(
    ("suffix", "markup"),
    [(".md", "markdown"), (".txt", "text"), (".html", "markdown"), (".pdf", "markdown")],
)
def test_zero_bytes_is_empty_document(suffix: str, markup: str) -> None:
    assert extract(b"", suffix, name=f"empty{suffix}") == ExtractedDocument(
        title="empty", text="", markup=markup
    )


@pytest.mark.parametrize(
    ("name", "title"),
    [
        ("notes.txt", "notes"),
        ("dir/sub/release.notes.txt", "release.notes"),
        ("README", "README"),
        ("", None),
    ],
)
def test_title_falls_back_to_name_without_suffix(name: str, title: str | None) -> None:
    assert extract(b"body", ".txt", name=name).title == title


# --- decoding --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "text"),
    [
        (codecs.BOM_UTF8 + "héllo wörld".encode(), "héllo wörld"),
        (codecs.BOM_UTF16_LE + "Grüße €".encode("utf-16-le"), "Grüße €"),
        (codecs.BOM_UTF16_BE + "Grüße €".encode("utf-16-be"), "Grüße €"),
        ("naïve “quotes” – dash".encode("cp1252"), "naïve “quotes” – dash"),
        ("plain ünïcödé ✓".encode(), "plain ünïcödé ✓"),
        (b"a\r\nb\rc\nd", "a\nb\nc\nd"),
        (codecs.BOM_UTF16_LE + "a\x00b\r\nc".encode("utf-16-le"), "ab\nc"),
        (b"x" * 9000 + b"\x00tail", "x" * 9000 + "tail"),
    ],
    ids=["utf8-bom", "utf16le", "utf16be", "cp1252", "utf8", "newlines", "utf16-nul", "late-nul"],
)
def test_decoding(data: bytes, text: str) -> None:
    assert extract(data, ".txt", name="f").text == text


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary data, not text"),
        (b"text\x00with\x00nuls", "binary data, not text"),
        (b"\x81\x8d\x8f\x90\x9d", "not valid UTF-8 text"),  # undefined in cp1252 too
        (b"\xff\x01\x02\x03\x04\x05\x06\x07\xfe" * 20, "not valid UTF-8 text"),  # control chars
        (b"x" * 9000 + b"\x00\xe9", "not valid UTF-8 text"),  # NUL rules out cp1252
        (codecs.BOM_UTF8 + b"caf\xe9", "not valid UTF-8 text"),
        (codecs.BOM_UTF8 + b"bin\x00ary", "binary data, not text"),
        (codecs.BOM_UTF16_LE + b"a\x00b", "not valid UTF-16 text"),
    ],
    ids=[
        "png",
        "nuls",
        "cp1252-undefined",
        "controls",
        "late-nul",
        "bad-after-bom",
        "bom-nul",
        "odd-utf16",
    ],
)
def test_undecodable_text(data: bytes, reason: str) -> None:
    assert extraction_error(data, ".txt") == reason


@pytest.mark.parametrize("suffix", [".md", ".html"])
def test_binary_rejected_for_every_text_format(suffix: str) -> None:
    assert extraction_error(b"\x00\x01\x02\x03binary", suffix) == "binary data, not text"


def test_blank_lines_collapsed_and_trailing_whitespace_stripped() -> None:
    data = b"\n\nfirst   \t\nsecond\n\n\n\n\nthird\n\nfourth  \n\n\n"
    assert extract(data, ".txt").text == "first\nsecond\n\nthird\n\nfourth"


# --- plain text ------------------------------------------------------------------------------


def test_plain_text_keeps_markdown_syntax_and_uses_name() -> None:
    doc = extract(b"# Not a title\n\nbody", ".txt", name="log.txt")
    assert doc == ExtractedDocument(title="log", text="# Not a title\n\nbody", markup="text")


# --- markdown --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "title", "text"),
    [
        ("intro\n\n# Main Title\n\n## Sub\n", "Main Title", "intro\n\n# Main Title\n\n## Sub"),
        ("# Closed heading ##\nbody", "Closed heading", "# Closed heading ##\nbody"),
        ("## Only h2\n\n#hashtag\n", "doc", "## Only h2\n\n#hashtag"),
        ("---\ntitle: From Meta\ntags: [a, b]\n---\n\nBody\n", "From Meta", "Body"),
        ("---\ntitle: Meta\n---\n# Heading Wins\n", "Heading Wins", "# Heading Wins"),
        ("---\nauthor: me\n...\nBody\n", "doc", "Body"),
        ("---\ntitle: 2024\n---\nBody", "2024", "Body"),
        ("---\nA paragraph: [unclosed\n---\nrest", "doc", "---\nA paragraph: [unclosed\n---\nrest"),
        ("```sh\n# comment\n```\n\n# Real\n", "Real", "```sh\n# comment\n```\n\n# Real"),
        ("~~~\n# in tilde fence\n~~~\n", "doc", "~~~\n# in tilde fence\n~~~"),
        ("Some *emphasis* and [link](x)\n", "doc", "Some *emphasis* and [link](x)"),
    ],
    ids=[
        "h1",
        "closing-hashes",
        "no-h1",
        "front-matter",
        "h1-beats-front-matter",
        "front-matter-no-title",
        "front-matter-number",
        "not-yaml",
        "code-fence",
        "tilde-fence",
        "kept-as-is",
    ],
)
def test_markdown(source: str, title: str, text: str) -> None:
    assert extract(source.encode(), ".md", name="doc.md") == ExtractedDocument(
        title=title, text=text, markup="markdown"
    )


# --- HTML ------------------------------------------------------------------------------------


def html_text(body: str) -> str:
    return extract(f"<html><body>{body}</body></html>".encode(), ".html", name="p").text


@pytest.mark.parametrize(
    ("html", "title"),
    [
        ("<title>  Page\n  Title </title><h1>Heading</h1>", "Page Title"),
        ("<title> </title><h1>First <em>one</em></h1><h1>Second</h1>", "First one"),
        ("<p>no title</p>", "page"),
        ("<header><h1>Site name</h1></header><p>x</p>", "page"),
    ],
    ids=["title-tag", "first-h1", "name", "h1-in-dropped-header"],
)
def test_html_title(html: str, title: str) -> None:
    assert extract(html.encode(), ".html", name="page.html").title == title


def test_html_headings_and_paragraphs_in_document_order() -> None:
    body = (
        "<h1>Top</h1><p>Intro text.</p><h2>Second</h2><div>Div para</div>"
        "<h3>Third</h3><p>Deep</p><h6>Six</h6><h2>Back to two</h2><p>End</p>"
    )
    assert html_text(body) == (
        "# Top\n\nIntro text.\n\n## Second\n\nDiv para\n\n### Third\n\nDeep\n\n"
        "###### Six\n\n## Back to two\n\nEnd"
    )


@pytest.mark.parametrize(
    ("body", "text"),
    [
        ("<p>  lots   of\n\n  space\t here </p>", "lots of space here"),
        ("<p>a <b>bold</b> <a href='#'>link</a>&amp;&nbsp;more</p>", "a bold link& more"),
        ("<p>line one<br>line two</p>", "line one\nline two"),
        ("<ul><li>one</li><li>two <i>it</i></li></ul>", "- one\n\n- two it"),
        ("<ol><li>outer<ul><li>inner</li></ul></li></ol>", "- outer\n\n- inner"),
        ("<pre>  x = 1\n    y = 2\n</pre>", "```\n  x = 1\n    y = 2\n```"),
        ("<pre>has ``` fence</pre>", "````\nhas ``` fence\n````"),
        (
            "<blockquote>quoted</blockquote><dl><dt>term</dt><dd>def</dd></dl>",
            "quoted\n\nterm\n\ndef",
        ),
        ("<table><tr><th>h</th><td>a</td></tr></table>", "h\n\na"),
        ("loose <span>text</span><p>para</p>tail", "loose text\n\npara\n\ntail"),
        ("<li><h2>Heading in item</h2></li>", "## Heading in item"),
        ("<!-- comment --><p>after</p>", "after"),
    ],
    ids=[
        "whitespace",
        "inline",
        "br",
        "list",
        "nested-list",
        "pre",
        "pre-backticks",
        "blocks",
        "table",
        "loose-text",
        "heading-in-li",
        "comment",
    ],
)
def test_html_to_markdown(body: str, text: str) -> None:
    assert html_text(body) == text


def test_html_drops_boilerplate_elements() -> None:
    body = (
        "<header>HEAD</header><nav>NAV</nav><aside>ASIDE</aside><form>FORM<input></form>"
        "<script>SCRIPT()</script><style>.STYLE{}</style><noscript>NOSCRIPT</noscript>"
        "<template><p>TEMPLATE</p></template><svg><text>SVG</text></svg>"
        "<iframe src='x'>IFRAME</iframe><p>kept</p><footer>FOOTER</footer>"
    )
    assert html_text(body) == "kept"


@pytest.mark.parametrize(
    ("body", "text"),
    [
        ("<p>outside</p><article>art</article><main><p>main</p></main>", "main"),
        ("<p>outside</p><article><p>art</p></article><article>second</article>", "art"),
        ("<div>all</div><section>of body</section>", "all\n\nof body"),
    ],
    ids=["main", "first-article", "body"],
)
def test_html_main_content_selection(body: str, text: str) -> None:
    assert html_text(body) == text


def test_html_with_only_scripts_is_empty() -> None:
    data = b"<html><head><script>var a = 1;</script></head><body><script>go()</script></body>"
    assert extract(data, ".html", name="app.html") == ExtractedDocument(
        title="app", text="", markup="markdown"
    )


@pytest.mark.parametrize("tag", ["div", "span", "li", "nav"])
def test_html_deeply_nested(tag: str) -> None:
    depth = 10_000
    body = f"<{tag}>" * depth + "deep text" + f"</{tag}>" * depth + "<p>after</p>"
    expected = {"nav": "after", "li": "- deep text\n\nafter"}.get(tag, "deep text\n\nafter")
    assert html_text(body) == expected


def test_html_decoding_uses_text_rules() -> None:
    data = codecs.BOM_UTF16_LE + "<title>Ünï</title><p>ok</p>".encode("utf-16-le")
    assert extract(data, ".htm") == ExtractedDocument(title="Ünï", text="ok", markup="markdown")


# --- PDF -------------------------------------------------------------------------------------


def test_pdf_builder_produces_a_valid_pdf() -> None:
    reader = PdfReader(io.BytesIO(make_pdf(["Alpha (1)", "Beta"], title="T")), strict=True)
    assert [page.extract_text() for page in reader.pages] == ["Alpha (1)", "Beta"]
    assert reader.metadata is not None
    assert reader.metadata.title == "T"


@pytest.mark.parametrize(
    ("pages", "title", "expected"),
    [
        (["Single page text"], "Report 2024", ("Report 2024", "Single page text")),
        (
            ["Page one", "Page two", "Page three"],
            None,
            ("scan", "Page one\n\nPage two\n\nPage three"),
        ),
        (["Has text", b""], "  ", ("scan", "Has text")),
        (["Text"], "\\000", ("scan", "Text")),
        ([r"Back\slash (paren)"], None, ("scan", r"Back\slash (paren)")),
    ],
    ids=["single", "multi", "blank-title-and-empty-page", "nul-title", "escapes"],
)
def test_pdf_text_and_title(
    pages: list[str | bytes], title: str | None, expected: tuple[str, str]
) -> None:
    doc = extract(make_pdf(pages, title=title), ".pdf", name="scan.pdf")
    assert (doc.title, doc.text, doc.markup) == (*expected, "markdown")


@pytest.mark.parametrize(
    ("pages", "image"),
    [([b""], False), ([b"0 0 m 200 200 l S", b""], False), ([_IMAGE_DRAW], True)],
    ids=["empty-stream", "vector-only", "image-only"],
)
def test_pdf_without_text(pages: list[str | bytes], image: bool) -> None:
    assert (
        extraction_error(make_pdf(pages, image=image), ".pdf")
        == "PDF has no extractable text (scanned or image-only?)"
    )


@pytest.mark.parametrize(
    "data",
    [
        b"%PDF-1.4\nthis is not really a pdf at all",
        make_pdf(["Some text"])[:150],
        b"%PDF-",
    ],
    ids=["garbage", "truncated", "header-only"],
)
def test_corrupt_pdf(data: bytes) -> None:
    reason = extraction_error(data, ".pdf")
    assert reason.startswith("corrupt PDF: ")
    assert len(reason) > len("corrupt PDF: ")


def test_encrypted_pdf_with_password() -> None:
    data = encrypt_pdf(make_pdf(["Top secret"]), "secret")
    assert PdfReader(io.BytesIO(data)).is_encrypted
    assert extraction_error(data, ".pdf") == "encrypted PDF"


def test_encrypted_pdf_with_empty_user_password_is_read() -> None:
    data = encrypt_pdf(make_pdf(["Open to all"], title="Shared"), "", owner_password="owner")
    assert PdfReader(io.BytesIO(data)).is_encrypted
    assert extract(data, ".pdf", name="x") == ExtractedDocument(
        title="Shared", text="Open to all", markup="markdown"
    )


@pytest.mark.parametrize(
    ("text", "title"),
    [
        ("Tide Tables for 2026\n\nHigh water at dawn.\n", "Tide Tables for 2026"),
        ("\n\n  Release notes v2.1  \n\nFixed the pump.\n", "Release notes v2.1"),
        ("This is a sentence, not a title.\n\nMore.\n", None),  # ends like a sentence
        ("Title without a blank line\nbody right after\n", None),
        ("Only one line\n", None),
        ("# Not a title\n\nbody", None),  # text files have no markup
        (" ".join(["word"] * 20) + "\n\nbody\n", None),  # too many words for a title
    ],
)
def test_a_text_files_title_is_its_first_line_when_it_reads_as_one(text, title):
    assert extract(text.encode(), ".txt", name="file.txt").title == (title or "file")


def outlined_pdf() -> bytes:
    pages = [
        "Chapter 1. Tides\nThe Moon pulls the oceans into two bulges.",
        "1.1 The Sun's share\nThe Sun adds a smaller pull of its own.\n\n"
        "1.2 Why local tides differ\nCoastlines and basins shape each tide.",
        "Appendix text on a page the outline does not name.",
    ]
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(make_text_pdf(pages, title="Oceans"))))
    chapter = writer.add_outline_item(title="Chapter 1. Tides", page_number=0)
    writer.add_outline_item(title="1.1 The Sun's share", page_number=1, parent=chapter)
    writer.add_outline_item(title="1.2 Why local tides differ", page_number=1, parent=chapter)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_a_pdfs_outline_gives_its_chunks_their_sections():
    doc = extract(outlined_pdf(), ".pdf", name="oceans.pdf")
    assert doc.markup == "markdown"
    assert "# Chapter 1. Tides" in doc.text and "## 1.2 Why local tides differ" in doc.text
    contexts = {
        c.text.split("\n")[-1]: c.context
        for c in Chunker(16).chunk(doc.text, doc.markup, doc.title)
    }
    assert contexts["The Moon pulls the oceans into two bulges."] == "Oceans › Chapter 1. Tides"
    assert contexts["The Sun adds a smaller pull of its own."] == (
        "Oceans › Chapter 1. Tides › 1.1 The Sun's share"
    )
    assert contexts["Coastlines and basins shape each tide."] == (
        "Oceans › Chapter 1. Tides › 1.2 Why local tides differ"
    )


def test_html_headings_give_chunks_their_sections():
    html = (
        "<html><head><title>Manual</title></head><body><main>"
        "<h1>Manual</h1><p>Welcome to the manual of the pump.</p>"
        "<h2>71.1. Introduction</h2><p>The pump moves water uphill.</p>"
        "<h3>71.1.1. Index Maintenance</h3><p>Clean the filter every month.</p>"
        "</main></body></html>"
    )
    doc = extract(html.encode(), ".html", name="manual.html")
    chunks = Chunker(16).chunk(doc.text, doc.markup, doc.title)  # a chunk per section
    (chunk,) = [c for c in chunks if "Clean the filter" in c.text]
    assert chunk.context.endswith("71.1. Introduction › 71.1.1. Index Maintenance")

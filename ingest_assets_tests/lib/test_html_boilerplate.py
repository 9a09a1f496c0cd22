"""Navigation, sidebars, tables of contents and the like do not become text (lib/html.py).

The fixtures are small pages in the shape their generators write them (DocBook, Sphinx,
MkDocs Material, Javadoc, a Hugo-like saved site) and one hand-written page that has no such
structure and must lose nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from selectolax.lexbor import LexborHTMLParser

from ingest_assets.lib.chunking import Chunker
from ingest_assets.lib.extract import extract
from ingest_assets.lib.html import extract_html

FIXTURES = Path(__file__).parent / "html_fixtures"


@dataclass(frozen=True)
class Page:
    file: str
    title: str
    headings: list[str]  # every Markdown heading line of the text, in order
    content: str  # where the page's own paragraphs, code and tables are
    navigation_lines: list[str]  # lines that must not appear (a list item's "- " aside)
    navigation_phrases: list[str] = field(default_factory=list)  # not anywhere in the text
    not_content: str = ""  # parts of `content` that are navigation all the same

    @property
    def html(self) -> str:
        return (FIXTURES / self.file).read_text(encoding="utf-8")


DOCBOOK = Page(
    file="docbook.html",
    title="35.5. Example Program",
    headings=[
        "## 35.5. Example Program",
        "### 35.5.1. Importing a File",
        "### 35.5.2. Overwriting Part of an Object",
    ],
    content="div.sect1",
    not_content="div.toc",
    navigation_lines=[
        "Prev", "Up", "Home", "Next", "35.5. Example Program", "Chapter 35. Large Objects",
        "35.4. Server-Side Functions", "Chapter 36. Server Programming Interface",
        "35.5.1. Importing a File", "35.5.2. Overwriting Part of an Object",  # the TOC
    ],
    navigation_phrases=["Prev", "Chapter 36", " #"],
)  # fmt: skip
SPHINX = Page(
    file="sphinx.html",
    title="Configuration — Frobnicator 2.1 documentation",
    headings=["# Configuration", "## Search", "## Logging"],
    content="div.body",
    navigation_lines=[
        "Navigation", "index", "modules |", "next |", "previous |", "Configuration",
        "Search", "Logging", "Installation", "Deployment",
    ],
    navigation_phrases=[
        "Frobnicator 2.1 documentation", "Table of Contents", "Previous topic", "Next topic",
        "This Page", "Show Source", "Quick search", "Copyright", "Created using", "¶",
    ],
)  # fmt: skip
MKDOCS = Page(
    file="mkdocs_material.html",
    title="Getting started - Frobnicator",
    headings=["# Getting started", "## Installation", "## First run"],
    content="article",
    navigation_lines=[
        "Frobnicator", "Home", "Getting started", "Configuration", "Changelog", "Installation",
        "First run", "Next", "Previous",
    ],
    navigation_phrases=[
        "Skip to content", "Initializing search", "Table of contents", "Back to top",
        "Made with", "Material for MkDocs", "¶",
    ],
)  # fmt: skip
JAVADOC = Page(
    file="javadoc.html",
    title="WidgetCache (Frobnicator 2.1 API)",
    headings=["## Class WidgetCache", "### Constructor Summary", "### Method Detail", "#### get"],
    content="div.header, div.contentContainer",
    navigation_lines=["Package", "Class", "Tree", "Index", "Help", "Constr", "Method", "Field |"],
    navigation_phrases=[
        "Skip navigation links", "Overview", "Deprecated", "Prev Class", "Next Class", "Frames",
        "All Classes", "Summary:", "Detail:", "JavaScript is disabled",
    ],
)  # fmt: skip
HUGO = Page(
    file="hugo.html",
    title="Tuning autovacuum | Ops Notes",
    headings=[
        "# Tuning autovacuum",
        "## Why autovacuum falls behind",
        "## The settings that matter",
        "## Further reading",
    ],
    content="div.post-content",
    navigation_lines=[
        "Home", "Posts", "Tags", "About", "Tuning autovacuum",  # header and breadcrumb
        "Why autovacuum falls behind", "The settings that matter", "Further reading",  # TOC
        "postgres", "performance",  # the post's tags
    ],
    navigation_phrases=[
        "Skip to main content", "Ops Notes", "On this page", "Related posts", "Recent posts",
        "Connection pooling", "Measuring index bloat", "Sizing the WAL", "RSS",
        "Notes from running databases",
    ],
)  # fmt: skip
GENERATED = [DOCBOOK, SPHINX, MKDOCS, JAVADOC, HUGO]
IDS = ["docbook", "sphinx", "mkdocs-material", "javadoc", "hugo"]


def lines_without_markers(text: str) -> set[str]:
    return {line.removeprefix("- ") for line in text.split("\n") if line}


def flattened(text: str) -> str:
    """The text as one line of words, without the Markdown that the writer adds."""
    lines = [re.sub(r"^(#{1,6} |- )", "", line) for line in text.split("\n")]
    return " ".join(" ".join(line for line in lines if not line.startswith("```")).split())


def content_blocks(page: Page) -> list[str]:
    """The page's own headings, paragraphs, code and table cells, as flattened text."""
    tree = LexborHTMLParser(page.html)
    for permalink in tree.css("a.headerlink, a.id_link"):
        permalink.decompose()
    if page.not_content:
        for node in tree.css(page.not_content):
            node.decompose()
    blocks = []
    for container in tree.css(page.content):
        for node in container.css("h1, h2, h3, h4, h5, h6, p, pre, td, th, dt, dd, li"):
            if node.tag == "li" and node.css_first("ul, ol, p, div, pre, table") is not None:
                continue  # judged by its parts
            if text := " ".join(node.text(deep=True).split()):
                blocks.append(text)
    return blocks


@pytest.mark.parametrize("page", GENERATED, ids=IDS)
def test_navigation_is_not_text(page: Page) -> None:
    _, text = extract_html(page.html)
    lines = lines_without_markers(text)
    assert [line for line in page.navigation_lines if line in lines] == []
    assert [phrase for phrase in page.navigation_phrases if phrase in text] == []


@pytest.mark.parametrize("page", GENERATED, ids=IDS)
def test_every_content_block_is_kept(page: Page) -> None:
    _, text = extract_html(page.html)
    blocks = content_blocks(page)
    assert len(blocks) >= 5
    assert [block for block in blocks if block not in flattened(text)] == []


@pytest.mark.parametrize("page", GENERATED, ids=IDS)
def test_headings_are_markdown_and_title_kept(page: Page) -> None:
    title, text = extract_html(page.html)
    assert title == page.title
    assert [line for line in text.split("\n") if line.startswith("#")] == page.headings


def test_code_blocks_are_fenced() -> None:
    _, text = extract_html(DOCBOOK.html)
    assert "```\nstatic Oid\nimportFile(PGconn *conn, char *filename)\n{\n" in text
    _, text = extract_html(MKDOCS.html)
    assert "```\npython -m venv .venv\n.venv/bin/pip install frobnicator\n```" in text


SEMANTIC_TAGS = [
    (f"<{tag} ", "<div ") for tag in ("main", "article", "nav", "header", "footer")
] + [(f"</{tag}>", "</div>") for tag in ("main", "article", "nav", "header", "footer")]


@pytest.mark.parametrize(
    ("page", "edits"),
    [
        (SPHINX, [(' role="main"', "")]),  # older themes: only the class names tell
        (MKDOCS, SEMANTIC_TAGS),  # no <main>, <article>, <nav>, <header>, <footer>
    ],
    ids=["sphinx-without-role-main", "mkdocs-without-semantic-tags"],
)
def test_class_names_alone_find_the_navigation(page: Page, edits: list[tuple[str, str]]) -> None:
    plain = page.html
    for old, new in edits:
        assert old in plain
        plain = plain.replace(old, new)
    assert extract_html(plain) == extract_html(page.html)


def test_handwritten_page_loses_nothing() -> None:
    html = (FIXTURES / "handwritten.html").read_text(encoding="utf-8")
    assert extract_html(html) == (
        "Notes on sourdough",
        "# Notes on sourdough\n\n"
        "I have kept the same starter since 2019. These are the notes I wish I had had at the "
        "start; see my rye notes for the darker loaves.\n\n"
        "## Starter\n\nFeed it twice a day at room temperature:\n\n"
        "- 50 g of flour\n\n- 50 g of water at 28 °C\n\n- a spoon of the old starter\n\n"
        "## Schedule\n\n- Mix and rest for an hour (the autolyse).\n\n"
        "- Add the salt and fold every half hour, four times.\n\n"
        "- Shape, then proof overnight in the fridge.\n\n"
        "Day\n\nHydration\n\nSaturday\n\n70 %\n\nSunday\n\n75 %\n\n"
        "## Oven\n\nMy oven runs hot, so I set it with a small script:\n\n"
        "```\ndef oven_setting(target_c):\n    return target_c - 15\n```\n\n"
        "Bake it darker than you think. — my grandmother\n\n"
        "First loaf and second loaf, both from the same dough.\n\n"
        "Levain\n\nThe part of the starter that goes into the dough.\n\n"
        "Books I keep going back to:\n\n- Tartine Bread\n\n- Flour Water Salt Yeast\n\n"
        "## See also\n\n- Rye\n\n- Pizza dough\n\n- Discard crackers\n\n"
        "Last changed in May. Write to me with corrections.",
    )


def test_docbook_chunks_are_not_navigation() -> None:
    """The reported failure: a chunk that was only the page's navigation bar."""
    document = extract(DOCBOOK.html.encode(), ".html", name="lo-exampleprogram.html")
    chunks = Chunker(200).chunk(document.text, document.markup, document.title)
    assert len(chunks) >= 2
    navigation = set(DOCBOOK.navigation_lines)
    for chunk in chunks:
        assert lines_without_markers(chunk.text) - navigation, chunk.text
        assert "Prev" not in chunk.text and "Home" not in chunk.text, chunk.text
    assert any("35.5.1. Importing a File" in chunk.context for chunk in chunks)


def html_text(body: str) -> str:
    return extract_html(f"<html><body>{body}</body></html>")[1]


PROSE = "<p>Widgets are frobnicated in batches of eight, each under its own lock.</p>"


@pytest.mark.parametrize(
    ("body", "text"),
    [
        # named by class, id or role
        ("<div class='breadcrumbs'><a href='/'>Docs</a> » <a href='/a'>A</a></div>" + PROSE,
         None),
        ("<ul class='nav-list'><li><a href='/x'>X</a></li></ul>" + PROSE, None),
        ("<div role='navigation'><p>Prev topic</p></div>" + PROSE, None),
        ("<div id='sidebar'><p>Some links</p></div>" + PROSE, None),
        ("<table class='navigation'><tr><td><a href='p'>Prev</a></td></tr></table>" + PROSE,
         None),
        ("<div class='skip'><a href='#main'>Jump</a></div>" + PROSE, None),
        # short blocks of bare links
        ("<div><a href='/p'>« Previous</a> | <a href='/n'>Next »</a></div>" + PROSE, None),
        ("<ul><li><a href='/a'>Alpha</a></li><li><a href='/b'>Beta</a></li></ul>" + PROSE,
         None),
        # an in-page table of contents, even under a heading
        ("<h2>Contents</h2><ul><li><a href='#a'>A</a></li><li><a href='#b'>B</a></li>"
         "<li><a href='#c'>C</a></li></ul>" + PROSE, "## Contents"),
        # permalinks and skip links
        ("<h2>Setup<a class='headerlink' href='#setup'>¶</a></h2>" + PROSE, "## Setup"),
        ("<h2>Setup <a href='#setup'>#</a></h2>" + PROSE, "## Setup"),
        ("<a href='#content'>Skip to content</a>" + PROSE, None),
        # the page's banner; an article's header is its title
        ("<header><a href='/'>Site</a></header>" + PROSE, None),
        ("<article><header><h1>Post</h1><time>May 2</time></header>" + PROSE + "</article>",
         "# Post\n\nMay 2"),
    ],
    ids=[
        "breadcrumbs-class", "nav-list-class", "navigation-role", "sidebar-id",
        "navigation-table", "skip-class", "prev-next-links", "bare-link-list", "in-page-toc",
        "headerlink", "hash-permalink", "skip-link", "page-header", "article-header",
    ],
)  # fmt: skip
def test_dropped(body: str, text: str | None) -> None:
    prose = "Widgets are frobnicated in batches of eight, each under its own lock."
    assert html_text(body) == (f"{text}\n\n{prose}" if text else prose)


@pytest.mark.parametrize(
    "body",
    [
        # a section titled "Search" gets the id "search" (Sphinx, Pandoc, MkDocs)
        "<section id='search'><h2>Search</h2>" + PROSE + "</section>",
        # a wrapper whose class mentions the sidebar it sits beside
        "<div class='layout has-sidebar'><h1>Widgets</h1>" + PROSE + "</div>",
        # Javadoc's title block, Pandoc's table header row
        "<div class='header'><div>com.frob</div><h2>Class Widget</h2></div>",
        "<table><tr class='header'><th>Flag</th></tr><tr><td>INV_READ</td></tr></table>",
        # links introduced by a heading or a colon, links in prose, a long link list
        "<h2>See also</h2><ul><li><a href='/a'>Alpha</a></li><li><a href='/b'>Beta</a></li></ul>",
        "<p>Books:</p><ul><li><a href='/a'>Alpha</a></li><li><a href='/b'>Beta</a></li></ul>",
        "<div><p><a href='/a'>Slides</a> · <a href='/b'>Video</a></p></div>",
        "<p>Use <a href='#'>link</a> or <a class='nav' href='/n'>the nav link</a>.</p>",
        "<ul>" + "".join(f"<li><a href='/t{i}'>Topic number {i}</a></li>" for i in range(100))
        + "</ul>",
        # navigation words in headings, code and tables are text
        "<h2 class='toc'>Table of contents</h2><pre class='nav'>nav = 1</pre>",
        "<table><tr><td><div class='menu'>File</div></td></tr></table>",
    ],
    ids=[
        "section-id-search", "wrapper-with-sidebar-class", "javadoc-header",
        "pandoc-header-row", "see-also", "introduced-by-colon", "links-in-paragraph",
        "links-in-prose", "long-link-list", "words-in-heading-and-code", "words-in-table",
    ],
)  # fmt: skip
def test_kept(body: str) -> None:
    every_word = re.findall(r"\w+", LexborHTMLParser(body).text(separator=" "))
    assert re.findall(r"\w+", html_text(body)) == every_word


def test_main_role_is_the_content() -> None:
    body = "<div class='top'><p>Banner text</p></div><div role='main'>" + PROSE + "</div>"
    assert (
        html_text(body) == "Widgets are frobnicated in batches of eight, each under its own lock."
    )


def test_title_falls_back_to_the_contents_first_h1() -> None:
    sidebar = "<div class='sidebar'><h1><a href='/'>Site</a></h1><p>A theme for notes.</p></div>"
    html = f"<body>{sidebar}<div><h1>Widgets</h1>{PROSE}</div></body>"
    assert extract_html(html) == ("Widgets", "# Widgets\n\n" + flattened(html_text(PROSE)))

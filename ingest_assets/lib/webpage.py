"""Main-content extraction for web pages: the article, not the navigation, sidebars and
footers that every page of a site repeats (and that would otherwise fill search with
near-identical chunks). Headings stay as Markdown so the chunker keeps them as context."""

from __future__ import annotations

import trafilatura

from ingest_assets.lib.extract import ExtractedDocument, extract

# The suffix web sources give HTML pages; files keep their own (".pdf", ".txt", ...).
WEBPAGE_SUFFIX = ".webpage"


def extract_webpage(data: bytes, url: str) -> ExtractedDocument:
    """The page's title and main text as Markdown; the whole page's text when the content
    extractor finds no main content (a very short page)."""
    if not data.strip():
        return ExtractedDocument(title=None, text="", markup="markdown")
    # trafilatura decodes the bytes itself (meta charset, then detection).
    text = trafilatura.extract(
        data,
        url=url,
        output_format="markdown",
        include_formatting=True,
        include_comments=False,
        include_links=False,
        include_images=False,
        favor_recall=True,
    )
    if not text or not text.strip():
        return extract(data, ".html", name=url)
    metadata = trafilatura.extract_metadata(trafilatura.load_html(data), default_url=url)
    title = metadata.title if metadata is not None and metadata.title else None
    return ExtractedDocument(title=title, text=text.strip(), markup="markdown")

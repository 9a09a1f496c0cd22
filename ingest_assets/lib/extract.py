"""Turn raw file bytes (markdown, plain text, HTML, PDF) into markdown-flavoured text.

Pure functions of the bytes handed in (PDFs are read in a helper process, lib/pdf.py); no dagster.
"""

from __future__ import annotations

import codecs
import os
import re
from dataclasses import dataclass
from typing import Any

import yaml

from ingest_assets.lib.html import extract_html
from ingest_assets.lib.pdf import PdfError, PdfTextReader

SUPPORTED_SUFFIXES: frozenset[str] = frozenset(
    {".md", ".markdown", ".txt", ".html", ".htm", ".pdf"}
)

_MARKDOWN_SUFFIXES = frozenset({".md", ".markdown"})

_BINARY_SNIFF_BYTES = 8192
# Bytes that never appear in real text (everything below 0x20 except \t \n \f \r, plus DEL).
_CONTROL_BYTES = frozenset(set(range(0x20)) - {0x09, 0x0A, 0x0C, 0x0D}) | {0x7F}
_CONTROL_BYTES_TABLE = bytes(sorted(_CONTROL_BYTES))  # for bytes.translate(None, ...)
# Text beyond what one document can sensibly index (a log or data dump named .txt, say):
# such a document is quarantined rather than chunked and embedded for minutes.
MAX_TEXT_CHARS = 16_000_000
# Lines longer than this are broken (at a space where there is one): the chunker's splitter
# slows down more than linearly on very long lines, and no prose has lines this long.
MAX_LINE_CHARS = 10_000
# Front matter beyond this is not parsed as YAML (the parser is slow and recursive).
_MAX_FRONT_MATTER_CHARS = 64 * 1024


_TITLE_MAX_WORDS = 14
_TITLE_MAX_CHARS = 120


class ExtractionError(Exception):
    """Content that cannot be turned into text; str(err) is a short human reason."""


@dataclass(frozen=True)
class ExtractedDocument:
    title: str | None
    text: str
    markup: str


def extract(data: bytes, suffix: str, *, name: str = "") -> ExtractedDocument:
    """Extract the title and text of one file; raise ExtractionError if it has no usable text."""
    kind = suffix.lower()
    if kind not in SUPPORTED_SUFFIXES:
        raise ExtractionError(f"unsupported file type {suffix!r}")
    fallback_title = _title_from_name(name)
    if not data:
        markup = "text" if kind == ".txt" else "markdown"
        return ExtractedDocument(title=fallback_title, text="", markup=markup)

    if kind == ".pdf":
        title, text = _extract_pdf(data)
        return _finish(title, fallback_title, text, "markdown")

    decoded = _decode_text(data)
    if kind == ".txt" or kind in _MARKDOWN_SUFFIXES:
        _check_size(decoded)  # early, before the regexes; HTML markup is not text
    if kind == ".txt":
        return _finish(_title_line(decoded), fallback_title, decoded, "text")
    if kind in _MARKDOWN_SUFFIXES:
        title, text = _extract_markdown(decoded)
    else:
        title, text = extract_html(decoded)
    return _finish(title, fallback_title, text, "markdown")


def _title_line(text: str) -> str | None:
    """A plain-text document's first non-empty line, when it reads as a title: a few words,
    starting with a letter or digit, not a sentence (no closing punctuation), and followed by
    a blank line and more text."""
    lines = text.lstrip().split("\n", 2)
    if len(lines) < 3 or lines[1].strip() or not lines[2].strip():
        return None
    first = lines[0].strip()
    if (
        0 < len(first.split()) <= _TITLE_MAX_WORDS
        and len(first) <= _TITLE_MAX_CHARS
        and first[0].isalnum()
        and not first.endswith((".", ",", ";", ":", "!", "?"))
    ):
        return first
    return None


def _title_from_name(name: str) -> str | None:
    stem = os.path.splitext(os.path.basename(name))[0].strip()
    return stem or None


def _finish(
    title: str | None, fallback_title: str | None, text: str, markup: str
) -> ExtractedDocument:
    title = _clean(title) if title else ""
    text = _tidy(text)
    _check_size(text)
    return ExtractedDocument(title=title or fallback_title, text=text, markup=markup)


def _check_size(text: str) -> None:
    if len(text) > MAX_TEXT_CHARS:
        raise ExtractionError(
            f"too much text to index: {len(text) / 1e6:.1f} million characters, "
            f"more than the {MAX_TEXT_CHARS / 1e6:.0f} million limit"
        )


def _clean(value: str) -> str:
    # PostgreSQL text rejects NUL, and psycopg cannot encode lone surrogates (possible from PDFs).
    value = value.replace("\x00", "")
    return value.encode("utf-8", "replace").decode("utf-8").strip()


def _tidy(text: str) -> str:
    text = _clean(text.replace("\r\n", "\n").replace("\r", "\n"))
    text = "\n".join(_wrap(line.rstrip()) for line in text.split("\n"))
    return re.sub(r"\n{3,}", "\n\n", text).strip("\n")


def _wrap(line: str) -> str:
    """Break a line longer than MAX_LINE_CHARS, at its last space in each stretch if any."""
    if len(line) <= MAX_LINE_CHARS:
        return line
    pieces = []
    start = 0
    while len(line) - start > MAX_LINE_CHARS:
        end = start + MAX_LINE_CHARS
        space = line.rfind(" ", start + MAX_LINE_CHARS // 2, end + 1)
        if space > start:
            pieces.append(line[start:space].rstrip())
            start = space + 1  # the space becomes the line break
        else:
            pieces.append(line[start:end])
            start = end
    pieces.append(line[start:])
    return "\n".join(pieces)


# --- text decoding ---------------------------------------------------------------------------


def _decode_text(data: bytes) -> str:
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            text = data.decode("utf-16")  # the codec reads and drops the BOM
        except UnicodeDecodeError:
            raise ExtractionError("not valid UTF-16 text") from None
    elif b"\x00" in data[:_BINARY_SNIFF_BYTES]:
        raise ExtractionError("binary data, not text")
    elif data.startswith(codecs.BOM_UTF8):
        try:
            text = data[len(codecs.BOM_UTF8) :].decode("utf-8")
        except UnicodeDecodeError:
            raise ExtractionError("not valid UTF-8 text") from None
    else:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = _decode_legacy(data)
    return text.replace("\x00", "").replace("\r\n", "\n").replace("\r", "\n")


def _decode_legacy(data: bytes) -> str:
    controls = len(data) - len(data.translate(None, _CONTROL_BYTES_TABLE))
    if b"\x00" not in data and controls <= len(data) // 100:
        try:
            return data.decode("cp1252")
        except UnicodeDecodeError:
            pass  # cp1252 leaves five byte values undefined
    raise ExtractionError("not valid UTF-8 text")


# --- markdown --------------------------------------------------------------------------------

_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?)^(?:---|\.\.\.)[ \t]*$\n?", re.DOTALL | re.MULTILINE)
_ATX_H1_START = re.compile(r" {0,3}#[ \t]")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")


def _extract_markdown(text: str) -> tuple[str | None, str]:
    meta_title = None
    match = _FRONT_MATTER.match(text)
    if match and len(match.group(1)) <= _MAX_FRONT_MATTER_CHARS:
        try:
            meta: Any = yaml.safe_load(match.group(1))
        except (yaml.YAMLError, RecursionError, ValueError):
            # a leading '---' thematic break, not front matter; or YAML nested too deep,
            # or a value PyYAML cannot build (a date like 2024-02-30)
            meta = False
        if meta is None or isinstance(meta, dict):
            text = text[match.end() :]
            raw = meta.get("title") if isinstance(meta, dict) else None
            if isinstance(raw, str | int | float) and str(raw).strip():
                meta_title = str(raw).strip()
    return _first_h1(text) or meta_title, text


def _first_h1(text: str) -> str | None:
    fence = ""
    for line in text.split("\n"):
        opener = _FENCE.match(line)
        if fence:
            # a '# comment' inside a code block is not a heading
            if opener and opener.group(1)[0] == fence[0] and len(opener.group(1)) >= len(fence):
                fence = ""
            continue
        if opener:
            fence = opener.group(1)
            continue
        if (title := _atx_h1(line)) is not None:
            return title
    return None


def _atx_h1(line: str) -> str | None:
    """The text of an ATX level-1 heading line ('# Title ##'), or None.

    String operations rather than one regex: a lazy group before an optional closing sequence
    backtracks quadratically over a long run of spaces or '#'s.
    """
    if not _ATX_H1_START.match(line):
        return None
    text = line[line.index("#") + 1 :].strip(" \t")
    body = text.rstrip("#")
    if len(body) < len(text) and body.endswith((" ", "\t")):
        text = body  # drop the closing sequence: '#'s after a space
    return text.strip() or None


# --- PDF -------------------------------------------------------------------------------------


def _extract_pdf(data: bytes) -> tuple[str | None, str]:
    try:
        read = _PDF.read(data, max_chars=MAX_TEXT_CHARS)
    except PdfError as err:
        raise ExtractionError(str(err)) from err
    pages = read.pages
    _check_size("".join(pages))
    if pages and not any(page.strip() for page in pages):
        raise ExtractionError("PDF has no extractable text (scanned or image-only?)")
    texts = [page.strip("\r\n") for page in pages]
    for level, heading, page in reversed(read.outline):
        if 0 <= page < len(texts):
            texts[page] = _mark_heading(texts[page], heading, level)
    text = "\n\n".join(t for t in texts if t.strip())
    return read.title, text


def _mark_heading(page: str, heading: str, level: int) -> str:
    """Make an outline entry a Markdown heading in its page's text, so the chunker gives the
    pages' chunks their section: the line that starts with the entry's title becomes the
    heading; without such a line the heading opens the page."""
    marker = "#" * min(level + 1, 6) + " " + " ".join(heading.split())
    wanted = " ".join(heading.split()).casefold()
    lines = page.split("\n")
    for i, line in enumerate(lines):
        if wanted and " ".join(line.split()).casefold().startswith(wanted):
            rest = " ".join(line.split())[len(wanted) :].strip()
            lines[i : i + 1] = ["", marker, "", *([rest] if rest else [])]
            return "\n".join(lines)
    return marker + "\n\n" + page


_PDF = PdfTextReader()

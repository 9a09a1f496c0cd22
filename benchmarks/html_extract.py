"""Throughput of the folder's HTML extractor (lib/html.py) on generated pages.

    python -m benchmarks.html_extract                  # 3,000 pages, best of 3
    python -m benchmarks.html_extract --pages 5000 --folder DIR   # or the .html files in DIR

The pages mix the shapes the extractor meets: a site page with header, nav, main and footer
(as benchmarks/corpus.py writes them), DocBook, Sphinx, Javadoc and plain hand-written HTML,
each with generated prose of a few kilobytes (seeded, so every run sees the same pages).
Prints pages/s and MB/s of markup with the load average: the machine may be shared.
"""

from __future__ import annotations

import argparse
import os
import random
import time
from collections.abc import Callable
from pathlib import Path

from ingest_assets.lib.html import extract_html

_WORDS = (
    "index", "vacuum", "table", "widget", "cache", "query", "planner", "replica", "backup",
    "schema", "column", "row", "page", "buffer", "lock", "commit", "rollback", "shard",
    "worker", "server", "client", "request", "token", "chunk", "vector", "model", "embedding",
    "search", "heading", "paragraph", "section", "document", "source", "folder", "file",
    "stream", "batch",
)  # fmt: skip


def _sentence(rng: random.Random) -> str:
    words = [rng.choice(_WORDS) for _ in range(rng.randint(8, 20))]
    return " ".join(words).capitalize() + "."


def _sections(rng: random.Random) -> list[tuple[str, list[str]]]:
    """Headings and paragraphs worth about 2-6 KB of text, like the corpus's median page."""
    return [
        (_sentence(rng)[:40].rstrip("."), [_sentence(rng) * 2 for _ in range(rng.randint(2, 5))])
        for _ in range(rng.randint(2, 6))
    ]


def _links(rng: random.Random, count: int) -> str:
    return "".join(
        f'<li><a href="/{rng.choice(_WORDS)}.html">{rng.choice(_WORDS).title()}</a></li>'
        for _ in range(count)
    )


def _body(rng: random.Random, heading: str = "h2") -> str:
    parts = []
    for title, paragraphs in _sections(rng):
        parts.append(f"<{heading}>{title}<a class='headerlink' href='#x'>¶</a></{heading}>")
        parts += [f"<p>{p} <a href='/ref.html'>{rng.choice(_WORDS)}</a></p>" for p in paragraphs]
        if rng.random() < 0.5:
            parts.append(f"<pre>{rng.choice(_WORDS)} = {rng.randint(1, 99)}\nrun()</pre>")
        if rng.random() < 0.4:
            parts.append(f"<ul>{''.join(f'<li>{_sentence(rng)}</li>' for _ in range(4))}</ul>")
    return "\n".join(parts)


def _site(rng: random.Random) -> str:
    return (
        f"<html><head><title>{_sentence(rng)}</title><style>p{{}}</style></head><body>"
        f"<header class='site-header'><a href='/'>Site</a><nav><ul>{_links(rng, 6)}</ul></nav>"
        f"</header><main><article><h1>{_sentence(rng)}</h1>{_body(rng)}</article></main>"
        f"<aside><p>{_sentence(rng)}</p></aside><footer><p>(c) Site</p></footer>"
        "<script>gtag('config')</script></body></html>"
    )


def _docbook(rng: random.Random) -> str:
    bar = f"<table summary='Navigation header'><tr><td>{_links(rng, 4)}</td></tr></table>"
    toc = f"<div class='toc'><dl class='toc'>{_links(rng, 5)}</dl></div>"
    return (
        f"<html><head><title>{_sentence(rng)}</title></head><body>"
        f"<div class='navheader'>{bar}</div><div class='sect1'><div class='titlepage'>"
        f"<h2 class='title'>{_sentence(rng)}</h2></div>{toc}{_body(rng, 'h3')}</div>"
        f"<div class='navfooter'>{bar}</div></body></html>"
    )


def _sphinx(rng: random.Random) -> str:
    related = f"<div class='related' role='navigation'><h3>Navigation</h3><ul>{_links(rng, 5)}"
    return (
        f"<html><head><title>{_sentence(rng)}</title></head><body>{related}</ul></div>"
        "<div class='document'><div class='documentwrapper'><div class='bodywrapper'>"
        f"<div class='body' role='main'><section id='s'><h1>{_sentence(rng)}</h1>{_body(rng)}"
        "</section></div></div></div><div class='sphinxsidebar' role='navigation'>"
        f"<h3>Table of Contents</h3><ul>{_links(rng, 8)}</ul></div></div>"
        f"{related}</ul></div><div class='footer'>(c) Team</div></body></html>"
    )


def _javadoc(rng: random.Random) -> str:
    nav = "<div class='topNav'><div class='skipNav'><a href='#skip'>Skip navigation links</a>"
    nav += f"</div><ul class='navList'>{_links(rng, 7)}</ul></div>"
    return (
        f"<html><head><title>{_sentence(rng)}</title></head><body>{nav}"
        f"<div class='subNav'><ul class='navList'>{_links(rng, 3)}</ul></div>"
        f"<div class='header'><h2 class='title'>Class {rng.choice(_WORDS).title()}</h2></div>"
        f"<div class='contentContainer'><ul class='blockList'><li class='blockList'>"
        f"{_body(rng, 'h3')}</li></ul></div>{nav.replace('topNav', 'bottomNav')}</body></html>"
    )


def _plain(rng: random.Random) -> str:
    return f"<html><head><title>{_sentence(rng)}</title></head><body>{_body(rng)}</body></html>"


_SHAPES: tuple[Callable[[random.Random], str], ...] = (_site, _docbook, _sphinx, _javadoc, _plain)


def generated_pages(count: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [_SHAPES[i % len(_SHAPES)](rng) for i in range(count)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pages", type=int, default=3000)
    parser.add_argument("--repeat", type=int, default=3, help="best of this many passes")
    parser.add_argument("--folder", type=Path, help="measure the .html files here instead")
    args = parser.parse_args()
    if args.folder:
        files = sorted(args.folder.rglob("*.htm*"))[: args.pages]
        pages = [p.read_text(encoding="utf-8", errors="replace") for p in files]
    else:
        pages = generated_pages(args.pages)
    megabytes = sum(len(page.encode()) for page in pages) / 1e6
    best = float("inf")
    for _ in range(args.repeat):
        started = time.perf_counter()
        for page in pages:
            extract_html(page)
        best = min(best, time.perf_counter() - started)
    load = os.getloadavg()[0]
    print(
        f"{len(pages)} pages ({megabytes:.1f} MB): {len(pages) / best:.0f} pages/s, "
        f"{megabytes / best:.1f} MB/s (best of {args.repeat}) [load {load:.2f}]"
    )


if __name__ == "__main__":
    main()

"""HTML to markdown-flavoured text: the main content's headings, paragraphs, lists, tables, code.

Navigation is not content: a chunk that is only "Prev Up Home Next" or a sidebar's links
matches queries about its site and answers none. Besides scripts, forms, buttons, <nav>,
<aside>, <footer> and the page's <header>, the walk drops:
- elements whose class, id or role names them as navigation (nav, menu, sidebar, toc,
  breadcrumb, related, skip, search, header, footer...): DocBook's navheader, Sphinx's
  sphinxsidebar, Material's md-sidebar, Javadoc's topNav, Hugo's .toc. Kept: a wrapper
  holding the page's h1 or much prose, and one named only by its id (Sphinx ids a section
  titled Search "search") or as a header that holds a heading (Javadoc's div.header);
- short blocks of bare links, unless a heading or a line ending in ":" introduces them (See
  also); in-page tables of contents (only #fragment links) whatever their size;
- permalink marks (¶, #) and "Skip to content" links.
Paragraphs, headings, code and tables are never judged: their text is the content.
The main content is <main>, [role=main] or the first <article> when the page marks one.
A pure function of the markup handed in; extract.py tidies the text it returns.
"""

from __future__ import annotations

import re
from functools import lru_cache

from selectolax.lexbor import LexborHTMLParser, LexborNode

_DROP_TAGS = [
    "script", "style", "noscript", "template", "svg", "nav", "aside", "footer",
    "form", "iframe", "button", "select", "search",
]  # fmt: skip
_HEADINGS = {f"h{level}": level for level in range(1, 7)}
_BLOCK_TAGS = frozenset({
    "address", "article", "blockquote", "body", "caption", "center", "dd", "details",
    "dialog", "div", "dl", "dt", "fieldset", "figcaption", "figure", "header", "hr", "li",
    "main", "menu", "ol", "p", "pre", "section", "summary", "table", "tbody", "td", "tfoot",
    "th", "thead", "tr", "ul", *_HEADINGS,
})  # fmt: skip
# Inside these nothing is judged as navigation: their text is the content.
_PROTECTING = frozenset({"p", "code", "table", *_HEADINGS})
# Neither named nor measured: table parts (Pandoc's <tr class="header">) and list items.
_NEVER_NAVIGATION = frozenset(
    {"p", "pre", "code", "li", "dt", "dd", "tr", "td", "th", "thead", "tbody", "tfoot",
     "caption", *_HEADINGS}
)  # fmt: skip
# Containers judged by their link density when their name says nothing.
_LISTS = frozenset({"ul", "ol", "menu"})
_LINK_BLOCKS = _LISTS | {"div", "section", "center"}
# Everything else is inline: its text is written as it comes, nothing else to do.
_NOT_INLINE = _BLOCK_TAGS | {"a", "br", "code", "head"}
_SECTIONING = frozenset({"article", "section", "main"})

_NAVIGATION_WORDS = frozenset({
    "nav", "navbar", "navbox", "navigation", "navheader", "navfooter", "navlist", "navlinks",
    "navpanel", "menu", "menubar", "toolbar", "sidebar", "toc", "toctree", "breadcrumb",
    "breadcrumbs", "crumbs", "related", "skip", "skiplink", "footer", "masthead", "banner",
    "contentinfo", "complementary", "search", "searchbox", "pagination", "pager", "topbar",
})  # fmt: skip
_NAVIGATION_SUFFIXES = ("nav", "navbar", "sidebar", "menu")  # topnav, sphinxsidebar, submenu
_WEAK_WORDS = frozenset({"header"})  # a title block as often as a banner
_CAMEL_CASE = re.compile(r"([a-z0-9])([A-Z])")
_NON_WORD = re.compile(r"[^a-z0-9]+")
_SPACES = re.compile(r"\s+")
_PERMALINK_MARKS = frozenset({"", "¶", "#", "§", "🔗", "⚓"})

_LINK_DENSITY = 0.7  # share of a bare block's visible characters that are link text
_NAMED_LINK_DENSITY = 0.5  # above it a named block is navigation even with a heading
_SHORT_BLOCK_CHARS = 1000  # a longer link list is a page's content (an index, a sitemap)
_WRAPPER_PROSE_CHARS = 1000  # non-link text that makes a named element a content wrapper


def extract_html(html: str) -> tuple[str | None, str]:
    tree = LexborHTMLParser(html)
    tree.strip_tags(_DROP_TAGS, recursive=True)
    main = tree.css_first("main, [role=main]") or tree.css_first("article")
    root = main or tree.body or tree.root
    writer = _HtmlWriter(in_content=main is not None)
    text = writer.render(root) if root is not None else ""

    title_node = tree.css_first("title")
    title = " ".join(title_node.text(deep=True).split()) if title_node is not None else ""
    if not title:  # else the first h1 that is content, not a banner's or a sidebar's
        title = next((block[2:] for block in writer.blocks if block.startswith("# ")), "")
    return title or None, text


@lru_cache(maxsize=4096)
def _navigation_name(names: str) -> str:
    """'strong', 'weak' or '' for the words of a class/id/role string ("topNav md-sidebar")."""
    words = _NON_WORD.split(_CAMEL_CASE.sub(r"\1 \2", names).lower())
    if "tableofcontents" in "".join(words) or any(
        w in _NAVIGATION_WORDS or w.endswith(_NAVIGATION_SUFFIXES) for w in words if w
    ):
        return "strong"
    return "weak" if _WEAK_WORDS.intersection(words) else ""


class _Block:
    """An element under judgement: where its output starts and what its text is made of."""

    __slots__ = (
        "chars", "first_block", "fragment_links", "has_content_block", "has_h1", "has_heading",
        "introduced", "is_list", "items", "link_chars", "links", "mem_id", "name",
    )  # fmt: skip

    def __init__(self, node: LexborNode, name: str, first_block: int, introduced: str) -> None:
        self.mem_id, self.name, self.is_list = node.mem_id, name, node.tag in _LISTS
        self.first_block, self.introduced = first_block, introduced  # by a "heading", a "colon"
        self.chars = self.link_chars = self.links = self.fragment_links = self.items = 0
        self.has_heading = self.has_h1 = self.has_content_block = False

    def is_navigation(self) -> bool:
        density = self.link_chars / self.chars if self.chars else 0.0
        if self.name:
            wrapper = self.has_h1 or self.chars - self.link_chars >= _WRAPPER_PROSE_CHARS
            titled = self.name == "weak" and self.has_heading
            return density >= _NAMED_LINK_DENSITY or not (wrapper or titled)
        if self.links < 2 or density < _LINK_DENSITY or (self.is_list and self.items < 2):
            return False  # a one-item list is a sentence of links: "Type: <string> | <URL>"
        toc = self.links >= 3 and self.fragment_links == self.links <= self.items
        if toc and self.introduced != "colon":
            return True  # an in-page table of contents, one link an item, repeats the headings
        bare = not (self.has_content_block or self.has_heading or self.introduced)
        return bare and self.chars <= _SHORT_BLOCK_CHARS

    def merge_into(self, parent: _Block) -> None:
        parent.chars += self.chars
        parent.link_chars += self.link_chars
        parent.links += self.links
        parent.fragment_links += self.fragment_links
        parent.items += self.items
        parent.has_heading |= self.has_heading
        parent.has_h1 |= self.has_h1
        parent.has_content_block |= self.has_content_block


class _HtmlWriter:
    """Iterative child/next/parent walk, so deep nesting cannot hit the recursion limit."""

    def __init__(self, in_content: bool) -> None:
        self.blocks: list[str] = []
        self.inline: list[str] = []
        self.context: list[str] = []  # open li/h1-h6 elements that format their paragraphs
        self.judged: list[_Block] = []  # open elements that may turn out to be navigation
        self.open_links: list[int] = []
        self.h1_start: tuple[int, int] | None = None  # its block's counts where an h1 began
        self.protected = 0  # open paragraphs, headings, code and tables
        self.sectioning = int(in_content)  # an article's <header> is its title, not a banner

    def render(self, root: LexborNode) -> str:
        node = root.child
        while node is not None:
            if self._enter(node):
                if node.child is not None:
                    node = node.child
                    continue
                self._leave(node)
            while node is not None:
                if node.next is not None:
                    node = node.next
                    break
                node = node.parent
                if node is None or node.mem_id == root.mem_id:
                    node = None
                else:
                    self._leave(node)
        self._flush()
        return "\n\n".join(self.blocks)

    def _enter(self, node: LexborNode) -> bool:
        """Write what the node starts; False when its subtree is skipped (no _leave then)."""
        tag = node.tag or ""
        if tag == "-text":
            text = node.text_content or ""
            if text.isspace():
                self.inline.append(" ")
                return False
            text = _SPACES.sub(" ", text)
            self.inline.append(text)
            if self.judged:
                block = self.judged[-1]
                chars = len(text) - text.count(" ")
                block.chars += chars
                if self.open_links:
                    block.link_chars += chars
            return False
        if tag not in _NOT_INLINE:
            return not tag.startswith(("-", "!"))  # not a comment or a doctype
        if tag == "head":
            return False
        if tag == "br":
            self.inline.append("\n")
            return False
        if tag == "header" and not self.sectioning:
            return False  # the page's banner
        if tag == "a" and not self._enter_link(node):
            return False
        if not self.protected and tag in _BLOCK_TAGS and tag not in _NEVER_NAVIGATION:
            name = self._name(node, tag)
            if name or tag in _LINK_BLOCKS:
                self._flush()
                previous = self.blocks[-1] if self.blocks else ""
                introduced = "heading" if previous.startswith("#") else ""
                introduced = "colon" if previous.endswith(":") else introduced
                self.judged.append(_Block(node, name, len(self.blocks), introduced))
        if tag in _BLOCK_TAGS:
            self._flush()
        if tag == "pre":
            code = self._add_code(node.text(deep=True))
            self._note_block(tag)
            if self.judged:
                self.judged[-1].chars += len(code) - code.count(" ")
            return False
        if tag in _PROTECTING:
            self.protected += 1
            self._note_block(tag)
        if tag in _SECTIONING:
            self.sectioning += 1
        if tag == "li" or tag in _HEADINGS:
            self.context.append(tag)
            if tag == "li" and self.judged:
                self.judged[-1].items += 1
        return True

    def _leave(self, node: LexborNode) -> None:
        tag = node.tag or ""
        if tag not in _NOT_INLINE:
            return
        judged = self.judged[-1] if self.judged and self.judged[-1].mem_id == node.mem_id else None
        if tag in _BLOCK_TAGS or judged is not None:
            self._flush()
        if tag == "li" or tag in _HEADINGS:
            self.context.pop()
        if tag in _PROTECTING:
            self.protected -= 1
        if tag == "h1":
            self._note_h1_end()
        if tag in _SECTIONING:
            self.sectioning -= 1
        if self.open_links and self.open_links[-1] == node.mem_id:
            self.open_links.pop()
        if judged is not None:
            self.judged.pop()
            if judged.is_navigation():
                del self.blocks[judged.first_block :]
            elif self.judged:
                judged.merge_into(self.judged[-1])

    def _name(self, node: LexborNode, tag: str) -> str:
        attrs = node.attributes  # one dict: cheaper than three lookups
        names = f"{attrs.get('class') or ''} {attrs.get('role') or ''}"
        if names != " " and (name := _navigation_name(names)):
            return name
        id_ = attrs.get("id")  # ids come from titles too: a weak name
        return "weak" if tag == "header" or (id_ and _navigation_name(id_)) else ""

    def _enter_link(self, node: LexborNode) -> bool:
        """Count a link; False for a permalink mark or a skip link."""
        href = node.attrs.get("href")
        if href is None:
            return True
        if href.startswith("#"):
            text = node.text(deep=True).strip().strip("\u200b")
            if text in _PERMALINK_MARKS or text.lower().startswith("skip "):
                return False
            if self.judged:
                self.judged[-1].fragment_links += 1
        if self.judged:
            self.judged[-1].links += 1
        self.open_links.append(node.mem_id)
        return True

    def _note_block(self, tag: str) -> None:
        if self.judged:
            block = self.judged[-1]
            if tag in _HEADINGS:
                block.has_heading = True
                if tag == "h1":
                    self.h1_start = (block.chars, block.link_chars)
            else:
                block.has_content_block = True

    def _note_h1_end(self) -> None:
        """An h1 that is not a link is the page's title: its block is content (a site name
        linking home is a banner's or a sidebar's)."""
        if self.judged and self.h1_start is not None:
            block = self.judged[-1]
            chars, link_chars = block.chars - self.h1_start[0], block.link_chars - self.h1_start[1]
            block.has_h1 |= chars > 0 and link_chars < chars / 2
        self.h1_start = None

    def _flush(self) -> None:
        if not self.inline:
            return
        raw, self.inline = "".join(self.inline), []
        if raw.isspace():
            return
        lines = [" ".join(line.split()) for line in raw.split("\n")]
        text = "\n".join(line for line in lines if line)
        kind = self.context[-1] if self.context else ""
        if kind in _HEADINGS:
            text = "#" * _HEADINGS[kind] + " " + text.replace("\n", " ")
        elif kind == "li":
            text = "- " + text
        self.blocks.append(text)

    def _add_code(self, code: str) -> str:
        code = code.strip("\n")
        if not code.strip():
            return ""
        longest = max((len(run) for run in re.findall(r"`+", code)), default=0)
        fence = "`" * max(3, longest + 1)
        self.blocks.append(f"{fence}\n{code}\n{fence}")
        return code

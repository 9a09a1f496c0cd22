"""HTML to markdown-flavoured text: the main content's headings, paragraphs, lists and code.

A pure function of the markup handed in; extract.py tidies the text it returns.
"""

from __future__ import annotations

import re

from selectolax.lexbor import LexborHTMLParser, LexborNode

_DROP_TAGS = [
    "script", "style", "noscript", "template", "svg", "nav",
    "header", "footer", "aside", "form", "iframe",
]  # fmt: skip
_HEADINGS = {f"h{level}": level for level in range(1, 7)}
_BLOCK_TAGS = frozenset(
    {
        "address", "article", "blockquote", "body", "caption", "dd", "details", "dialog",
        "div", "dl", "dt", "fieldset", "figcaption", "figure", "hr", "li", "main", "ol",
        "p", "pre", "section", "summary", "table", "tbody", "td", "tfoot", "th", "thead",
        "tr", "ul", *_HEADINGS,
    }
)  # fmt: skip


def extract_html(html: str) -> tuple[str | None, str]:
    tree = LexborHTMLParser(html)
    tree.strip_tags(_DROP_TAGS, recursive=True)
    root = tree.css_first("main") or tree.css_first("article") or tree.body or tree.root
    text = _HtmlWriter().render(root) if root is not None else ""

    title = None
    for selector in ("title", "h1"):
        node = tree.css_first(selector)
        if node is not None and (title := " ".join(node.text(deep=True).split())):
            break
    return title or None, text


class _HtmlWriter:
    """Iterative child/next/parent walk, so deep nesting cannot hit the recursion limit."""

    def __init__(self) -> None:
        self.blocks: list[str] = []
        self.inline: list[str] = []
        self.context: list[str] = []  # open li/h1-h6 elements that format their paragraphs

    def render(self, root: LexborNode) -> str:
        node = root.child
        while node is not None:
            child = node.child if self._enter(node) else None
            if child is not None:
                node = child
                continue
            while node is not None:
                self._leave(node)
                if node.next is not None:
                    node = node.next
                    break
                node = node.parent
                if node is None or node.mem_id == root.mem_id:
                    node = None
        self._flush()
        return "\n\n".join(self.blocks)

    def _enter(self, node: LexborNode) -> bool:
        tag = node.tag or ""
        if tag == "-text":
            self.inline.append(re.sub(r"\s+", " ", node.text_content or ""))
            return False
        if tag.startswith(("-", "!")) or tag == "head":
            return False
        if tag == "br":
            self.inline.append("\n")
            return False
        if tag in _BLOCK_TAGS:
            self._flush()
        if tag == "pre":
            self._add_code(node.text(deep=True))
            return False
        if tag == "li" or tag in _HEADINGS:
            self.context.append(tag)
        return True

    def _leave(self, node: LexborNode) -> None:
        tag = node.tag or ""
        if tag in _BLOCK_TAGS:
            self._flush()
            if tag == "li" or tag in _HEADINGS:
                self.context.pop()

    def _flush(self) -> None:
        raw, self.inline = "".join(self.inline), []
        lines = [" ".join(line.split()) for line in raw.split("\n")]
        text = "\n".join(line for line in lines if line)
        if not text:
            return
        kind = self.context[-1] if self.context else ""
        if kind in _HEADINGS:
            text = "#" * _HEADINGS[kind] + " " + text.replace("\n", " ")
        elif kind == "li":
            text = "- " + text
        self.blocks.append(text)

    def _add_code(self, code: str) -> None:
        code = code.strip("\n")
        if not code.strip():
            return
        longest = max((len(run) for run in re.findall(r"`+", code)), default=0)
        fence = "`" * max(3, longest + 1)
        self.blocks.append(f"{fence}\n{code}\n{fence}")

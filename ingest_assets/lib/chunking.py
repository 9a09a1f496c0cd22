"""Token-aware, heading-aware chunking of extracted documents."""

from __future__ import annotations

import bisect
import hashlib
import re
from dataclasses import dataclass
from functools import cached_property
from importlib import resources
from pathlib import Path

from semantic_text_splitter import MarkdownSplitter, TextSplitter
from tokenizers import Tokenizer

from ingest_assets.lib.hashing import text_hash

# Trailing spaces and closing #s are stripped in Python: a regex doing it backtracks badly
# on long runs of spaces.
_HEADING = re.compile(r"^(#{1,6})[ \t]+(.*)$")
_FENCE = re.compile(r"^(```|~~~)")
# BERT's normaliser and pre-tokenizer split text at whitespace first and never join across
# it, so a text's token count is the sum of its whitespace-separated words' counts, and a
# word's count depends on that word alone: it is looked up in a cache instead of tokenising
# every chunk again (which was most of chunking's time). Python's str.split also splits at a
# few control characters that BERT deletes instead; those are deleted first.
_SPLIT_BUT_DELETED_RE = re.compile("[\x0b\x0c\x1c-\x1f\x85]")
_SPLIT_BUT_DELETED = dict.fromkeys([0x0B, 0x0C, *range(0x1C, 0x20), 0x85])
_WORD_CACHE_LIMIT = 200_000
_CONTEXT_SEPARATOR = " › "
_MAX_CONTEXT_CHARS = 200
# Bump when the chunk output changes for the same input and settings.
_ALGORITHM_VERSION = "4"  # 4: a chunk opening with a heading is in that section


@dataclass(frozen=True)
class Chunk:
    ordinal: int
    context: str
    text: str
    token_count: int

    @property
    def model_input(self) -> str:
        return model_input(self.context, self.text)


def model_input(context: str, text: str) -> str:
    """What the model sees: the heading path first, so a chunk keeps its section's meaning."""
    return f"{context}\n\n{text}" if context else text


def vector_key(context: str, text: str) -> bytes:
    """The key of a chunk's vector: the hash of exactly what the model sees, so identical
    input is embedded once, and a change of context is a new vector."""
    return text_hash(model_input(context, text))


def bundled_tokenizer_path() -> Path:
    return Path(str(resources.files("ingest_assets") / "data" / "minilm-tokenizer.json"))


def heading_positions(markdown: str) -> list[tuple[int, int, str]]:
    """(offset, level, title) of each ATX heading outside fenced code blocks."""
    headings = []
    offset = 0
    in_fence = False
    for line in markdown.splitlines(keepends=True):
        stripped = line.rstrip("\r\n")
        if _FENCE.match(stripped):
            in_fence = not in_fence
        elif not in_fence and (match := _HEADING.match(stripped)):
            title = match.group(2).rstrip(" \t#").strip()
            if title:
                headings.append((offset, len(match.group(1)), title))
        offset += len(line)
    return headings


def heading_path(headings: list[tuple[int, int, str]], offsets: list[int], at: int) -> list[str]:
    """The path of the section that text starting at offset `at` is in: the headings before
    it and a heading at `at` itself (a chunk that opens with its own heading belongs to it)."""
    stack: list[tuple[int, str]] = []
    for _, level, title in headings[: bisect.bisect_right(offsets, at)]:
        while stack and stack[-1][0] >= level:
            stack.pop()
        stack.append((level, title))
    return [title for _, title in stack]


def join_context(title: str | None, path: list[str]) -> str:
    parts = [title] if title else []
    parts += [p for p in path if p != title]
    return _CONTEXT_SEPARATOR.join(parts)[:_MAX_CONTEXT_CHARS]


def _only_headings(body: str) -> bool:
    return all(_HEADING.match(line) for line in body.splitlines() if line.strip())


class Chunker:
    """Splits text into chunks of at most `max_tokens` tokens at the most semantic boundary
    (headings, paragraphs, sentences), each carrying its title and heading path as context.

    Splitting by token count directly is exact but slow (the splitter tokenises candidate
    spans again and again: ~400 chunks/s). So the text is first split by characters, with a
    capacity of 3.2-4.4 characters per token (English WordPiece runs 4-5), then every chunk is
    tokenised once; the rare chunk over the limit is split again (see _split_oversize). Same
    guarantee, about twenty times faster."""

    CHARS_PER_TOKEN = (3.2, 4.4)

    def __init__(self, max_tokens: int, tokenizer_path: Path | None = None):
        self.max_tokens = max_tokens
        self.tokenizer_path = tokenizer_path or bundled_tokenizer_path()
        self._tokenizer = Tokenizer.from_file(str(self.tokenizer_path))
        self._tokenizer.no_truncation()
        self._tokenizer.no_padding()
        low, high = self.CHARS_PER_TOKEN
        by_chars = (max(1, int(max_tokens * low)), max(1, int(max_tokens * high)))
        by_tokens = (max(1, max_tokens * 3 // 4), max_tokens)
        self._markdown = MarkdownSplitter(by_chars)
        self._plain = TextSplitter(by_chars)
        self._exact = TextSplitter.from_huggingface_tokenizer(self._tokenizer, by_tokens)
        self._word_tokens: dict[str, int] = {}

    @cached_property
    def signature(self) -> str:
        """Identifies the chunk output: a change marks every document for re-chunking."""
        digest = hashlib.sha1(self.tokenizer_path.read_bytes()).hexdigest()[:8]
        return f"v{_ALGORITHM_VERSION}-tok{digest}-max{self.max_tokens}"

    def count_tokens(self, texts: list[str]) -> list[int]:
        """Tokens of each text, as the tokenizer counts them (without special tokens)."""
        cache = self._word_tokens
        counts = [0] * len(texts)
        missing: list[tuple[int, list[str]]] = []
        for i, text in enumerate(texts):
            if _SPLIT_BUT_DELETED_RE.search(text):
                text = text.translate(_SPLIT_BUT_DELETED)
            # The tokenizer lower-cases; doing it here first shares cache entries (ASCII
            # only: Unicode case mapping is left to the tokenizer).
            words = text.lower().split() if text.isascii() else text.split()
            try:
                counts[i] = sum(map(cache.__getitem__, words))
            except KeyError:
                missing.append((i, words))
        if missing:
            self._learn_words({w for _, words in missing for w in words})
            for i, words in missing:
                counts[i] = sum(map(cache.__getitem__, words))
        return counts

    def _learn_words(self, words: set[str]) -> None:
        """Make sure every word is in the cache, tokenising the new ones in one batch."""
        cache = self._word_tokens
        if len(cache) + len(words) > _WORD_CACHE_LIMIT:
            cache.clear()  # bounded memory; the common words come back at once
        new = [w for w in words if w not in cache]
        encodings = self._tokenizer.encode_batch_fast(new, add_special_tokens=False)
        cache.update(zip(new, (len(e.ids) for e in encodings), strict=True))

    def chunk(self, text: str, markup: str, title: str | None = None) -> list[Chunk]:
        if markup == "markdown":
            pieces = self._markdown.chunk_indices(text)
            headings = heading_positions(text)
        else:
            pieces = self._plain.chunk_indices(text)
            headings = []
        # A heading alone carries no content; it reaches the next chunks as their context.
        pieces = [(at, body) for at, body in pieces if not _only_headings(body)]
        if not pieces:
            return []
        pieces, body_tokens = self._within_limit(pieces)
        # Splitting an oversize piece again can leave its heading alone in a part: drop it too.
        kept = [i for i, (_, body) in enumerate(pieces) if not _only_headings(body)]
        if len(kept) < len(pieces):
            pieces, body_tokens = [pieces[i] for i in kept], [body_tokens[i] for i in kept]
        if not pieces:
            return []
        offsets = [h[0] for h in headings]
        # chunk_indices gives character offsets; headings are located by character offset too.
        contexts = [join_context(title, heading_path(headings, offsets, at)) for at, _ in pieces]
        distinct = sorted(set(contexts))
        # WordPiece splits on whitespace first, so context + "\n\n" + body counts as the sum.
        context_tokens = dict(zip(distinct, self.count_tokens(distinct), strict=True))
        return [
            Chunk(
                ordinal=i,
                context=contexts[i],
                text=body,
                token_count=body_tokens[i] + context_tokens[contexts[i]],
            )
            for i, (_, body) in enumerate(pieces)
        ]

    def _within_limit(
        self, pieces: list[tuple[int, str]]
    ) -> tuple[list[tuple[int, str]], list[int]]:
        """Count each piece's tokens once; split again the pieces over the limit (by
        characters, then by tokens what is still over)."""
        counts = self.count_tokens([body for _, body in pieces])
        if max(counts) <= self.max_tokens:
            return pieces, counts
        kept: list[tuple[int, str]] = []
        kept_counts: list[int] = []
        for (at, body), count in zip(pieces, counts, strict=True):
            if count <= self.max_tokens:
                kept.append((at, body))
                kept_counts.append(count)
                continue
            for part, part_count in self._split_oversize(at, body, count):
                if part_count <= self.max_tokens:
                    kept.append(part)
                    kept_counts.append(part_count)
                    continue
                exact = [(part[0] + sub, text) for sub, text in self._exact.chunk_indices(part[1])]
                kept += exact
                kept_counts += self.count_tokens([text for _, text in exact])
        return kept, kept_counts

    def _split_oversize(self, at: int, body: str, count: int) -> list[tuple[tuple[int, str], int]]:
        """Split a piece over the limit again by characters, at this piece's own characters
        per token (numbers and rare words run denser than the default), and count the parts.
        Splitting by tokens directly re-tokenises spans over and over: it took a quarter of
        chunking's time for the 3 % of pieces that need it."""
        ratio = len(body) / count
        capacity = (
            max(1, int(self.max_tokens * 0.75 * ratio)),
            max(1, int(self.max_tokens * 0.95 * ratio)),
        )
        parts = [(at + sub, part) for sub, part in TextSplitter(capacity).chunk_indices(body)]
        return list(zip(parts, self.count_tokens([part for _, part in parts]), strict=True))

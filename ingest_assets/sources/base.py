"""The one small interface every source kind implements."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol


class SourceReadError(Exception):
    """A document could not be read right now (missing, unreadable, too large)."""

    gone = False  # deleted since it was listed: the same as not listed
    permanent = False  # retrying cannot help (a FIFO, a link out of the folder, too large)


@dataclass(frozen=True)
class DocumentRef:
    doc_id: str  # stable within the source, e.g. a path relative to the folder
    uri: str
    fingerprint: str  # cheap change signal: mtime and size, an ETag, updated_at
    suffix: str  # decides the extractor: ".md", ".html", ".pdf", ...


class Source(Protocol):
    name: str
    # Document-id prefixes the last listing could not see into (an unreadable folder): their
    # documents are not known to be deleted.
    unlisted_prefixes: list[str]

    def list_documents(self) -> Iterator[DocumentRef]: ...

    def read(self, ref: DocumentRef) -> bytes: ...

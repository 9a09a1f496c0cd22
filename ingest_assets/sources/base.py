"""The one small interface every source kind implements.

A source lists its documents with cheap fingerprints (mtime and size, an ETag, `updated_at`)
and fetches the content of the ones that may have changed. Documents are partitioned by a hash
of their id, so every kind gets the same shards, incremental runs and deletion semantics.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Protocol


class SourceReadError(Exception):
    """A document could not be read right now (missing, unreadable, too large)."""

    gone = False  # deleted since it was listed: the same as not listed
    permanent = False  # retrying cannot help (a FIFO, a link out of the folder, too large)


class UnreadableDocument(SourceReadError):
    """A document that cannot be read as it is now; retrying soon will not help."""

    permanent = True


class DocumentGone(SourceReadError):
    """The document was listed but no longer exists: deleted between listing and reading."""

    gone = True


@dataclass(frozen=True)
class DocumentRef:
    doc_id: str  # stable within the source, e.g. a path relative to the folder, a URL, a row id
    uri: str
    # Cheap change signal: mtime and size, `updated_at`. None: the listing cannot tell (a web
    # page); the document is fetched conditionally with what was stored last time.
    fingerprint: str | None
    suffix: str  # decides the extractor: ".md", ".html", ".pdf", ".webpage", ...


@dataclass(frozen=True)
class Fetched:
    """A document's content as fetched, or `data=None`: not modified since `stored`."""

    data: bytes | None
    fingerprint: str  # what to store and compare next time
    suffix: str  # may differ from the listing's (a URL that serves a PDF)
    title: str | None = None  # the source's own title (a table's title column), if it has one


class Source(Protocol):
    name: str
    # Document-id prefixes the last listing could not see into (an unreadable folder): their
    # documents are not known to be deleted.
    unlisted_prefixes: list[str]
    # (id, reason) of entries the last listing passed over (a folder's files of kinds it does
    # not read, a URL robots.txt disallows), so that they are counted and named.
    skipped: list[tuple[str, str]]

    def list_documents(self) -> Iterator[DocumentRef]: ...

    def fetch_all(
        self, wanted: Iterable[tuple[DocumentRef, str | None]]
    ) -> Iterator[tuple[DocumentRef, Fetched | SourceReadError]]:
        """Fetch (ref, stored fingerprint) pairs, in order; errors are yielded, not raised."""
        ...

    def revalidate(
        self, refs: list[DocumentRef], stored: Mapping[str, str | None]
    ) -> Iterator[DocumentRef]:
        """Refs with their current fingerprints, for change detection without a full run."""
        ...

    def change_token(self) -> str | None:
        """A cheap value that moves whenever any document changes; None: the source has none
        and the change sensor lists it."""
        ...

    @property
    def recheck_s(self) -> float:
        """How often the change sensor may `revalidate` documents the listing cannot judge."""
        ...

    def close(self) -> None: ...


class ReadingSource:
    """Base for sources whose listing carries a fingerprint and which read one document at a
    time: fetching is reading, revalidating is listing."""

    name: str
    unlisted_prefixes: list[str]

    def read(self, ref: DocumentRef) -> bytes:
        raise NotImplementedError

    def fetch_all(
        self, wanted: Iterable[tuple[DocumentRef, str | None]]
    ) -> Iterator[tuple[DocumentRef, Fetched | SourceReadError]]:
        for ref, _ in wanted:
            try:
                yield ref, Fetched(self.read(ref), ref.fingerprint or "", ref.suffix)
            except SourceReadError as err:
                yield ref, err

    def revalidate(
        self, refs: list[DocumentRef], stored: Mapping[str, str | None]
    ) -> Iterator[DocumentRef]:
        return iter(refs)

    def change_token(self) -> str | None:
        return None

    @property
    def recheck_s(self) -> float:
        return 0.0

    def close(self) -> None:
        pass

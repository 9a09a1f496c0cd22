"""A folder of files: .md, .txt, .html/.htm and .pdf, recursively, hidden entries skipped.

What cannot be read as a document, and what happens to it:

- directory symlinks are never followed (no loops, no escaping the root), and a directory
  named like a document (``notes.md/``) is a directory: its files are listed, it is not;
- a dangling symlink or a symlink loop names no file: it is not listed;
- a symlink to a file outside the root, a FIFO, socket or device, a file over
  MAX_FILE_BYTES or one that we have no permission to read is listed but its read raises
  UnreadableDocument: retrying will not help until someone changes it, so it is quarantined at
  once (and looked at again on every later run) rather than failing the run three times;
- a file deleted between listing and reading raises DocumentGone: it is treated as deleted;
- any other OS error (EIO, ...) is a plain SourceReadError: retried, quarantined after a few.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote_from_bytes, unquote_to_bytes, urlsplit

from ingest_assets.lib.extract import SUPPORTED_SUFFIXES
from ingest_assets.sources import registry
from ingest_assets.sources.base import (
    DocumentGone,
    DocumentRef,
    ReadingSource,
    SourceReadError,
    UnreadableDocument,
)

MAX_FILE_BYTES = 64 * 1024 * 1024
# (source, doc_id) is a unique btree key, and PostgreSQL refuses index entries over ~2.7 kB:
# a longer relative path gets a shortened id (the file is located by its URI, not its id).
MAX_DOC_ID_BYTES = 2048

# Errors that will repeat on every attempt until someone changes the file or its permissions.
_PERMANENT_ERRNOS = frozenset(
    {errno.EACCES, errno.EPERM, errno.ELOOP, errno.ENAMETOOLONG, errno.EISDIR, errno.ENXIO}
)
_GONE_ERRNOS = frozenset({errno.ENOENT, errno.ENOTDIR})


class FolderSource(ReadingSource):
    def __init__(self, name: str, root: Path):
        self.name = name
        self.root = root.expanduser().resolve()
        self.unlisted_prefixes: list[str] = []
        self.skipped: list[tuple[str, str]] = []

    @classmethod
    def from_record(cls, record: registry.SourceRecord) -> FolderSource:
        if record.options:
            raise ValueError(f"source {record.name!r}: a folder source takes no options")
        return cls(record.name, Path(record.location))

    def list_documents(self) -> Iterator[DocumentRef]:
        if not self.root.is_dir():
            raise UnreadableDocument(f"source {self.name!r}: folder {self.root} does not exist")
        self.unlisted_prefixes = []
        self.skipped = []

        def unlisted(error: OSError) -> None:
            # A folder we cannot look into is not a folder whose files were deleted.
            if error.filename is not None:
                relative = os.path.relpath(os.fsdecode(error.filename), self.root)
                self.unlisted_prefixes.append("" if relative == "." else relative + "/")

        prefix = len(os.path.join(str(self.root), ""))
        # Walk without following directory symlinks: no loops, no escaping the root.
        walk = os.walk(self.root, followlinks=False, onerror=unlisted)
        for dirpath, dirnames, filenames in walk:
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for filename in sorted(filenames):
                if filename.startswith("."):
                    continue
                suffix = os.path.splitext(filename)[1].lower()
                path = os.path.join(dirpath, filename)
                if suffix not in SUPPORTED_SUFFIXES:
                    kind = suffix or "no extension"
                    self.skipped.append((_doc_id(path[prefix:]), f"not a kind it reads: {kind}"))
                    continue
                try:
                    stat_ = os.stat(path)
                except OSError:
                    continue  # dangling symlink, symlink loop, or deleted while listing
                yield DocumentRef(
                    # Slicing and quoting, not relpath() and as_uri(): the same strings for
                    # walk paths under the resolved root, at a third of the cost (100k files).
                    doc_id=_doc_id(path[prefix:]),
                    uri="file://" + quote_from_bytes(os.fsencode(path)),
                    fingerprint=f"{stat_.st_mtime_ns}:{stat_.st_size}",
                    suffix=suffix,
                )

    def read(self, ref: DocumentRef) -> bytes:
        path = os.path.realpath(self._path_of(ref))
        if not Path(path).is_relative_to(self.root):
            raise UnreadableDocument(f"{ref.doc_id}: links outside the source folder; not read")
        try:
            _check_regular_file(ref, os.stat(path))
            # O_NONBLOCK: a FIFO swapped in after the check must not block the open.
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
            try:
                info = os.fstat(fd)
                _check_regular_file(ref, info)
                data = _read_at_most(fd, MAX_FILE_BYTES + 1, info.st_size)
            finally:
                os.close(fd)
        except SourceReadError:
            raise
        except OSError as err:
            raise _read_error(ref, err) from err
        if len(data) > MAX_FILE_BYTES:
            raise UnreadableDocument(_too_large(ref))
        return data

    def _path_of(self, ref: DocumentRef) -> str:
        """The file behind a ref: from its URI, which keeps the name's exact bytes."""
        parts = urlsplit(ref.uri)
        if parts.scheme == "file" and parts.path:
            return os.fsdecode(unquote_to_bytes(parts.path))
        return str(self.root / ref.doc_id)


def _doc_id(relative: str) -> str:
    """A document's id: its path relative to the root, with '/' separators.

    PostgreSQL text is UTF-8, so name bytes that are not (a Latin-1 name, say) are written as
    \\xNN; a path over MAX_DOC_ID_BYTES keeps its start and its file name around a digest of
    the whole path, so it stays unique and stable.
    """
    raw = os.fsencode(relative)
    doc_id = raw.decode("utf-8", "backslashreplace").replace(os.sep, "/")
    encoded = doc_id.encode()
    if len(encoded) <= MAX_DOC_ID_BYTES:
        return doc_id
    digest = hashlib.sha1(raw).hexdigest()[:16]
    name = doc_id.rsplit("/", 1)[-1]
    budget = max(0, MAX_DOC_ID_BYTES - len(name.encode()) - len(digest) - 8)
    head = encoded[:budget].decode("utf-8", "ignore")
    return f"{head}…{digest}/{name}"


def _read_at_most(fd: int, limit: int, expected: int) -> bytes:
    """Up to `limit` bytes, in one read for a file still of its `expected` size (a buffered
    read(limit) would allocate the whole 64 MiB limit for every file)."""
    parts = []
    total = 0
    want = min(expected + 1, limit)
    while total < limit and (piece := os.read(fd, min(want, limit - total))):
        parts.append(piece)
        total += len(piece)
        want = 1 << 20  # it grew while being read
    return b"".join(parts)


def _check_regular_file(ref: DocumentRef, info: os.stat_result) -> None:
    mode = info.st_mode
    if not stat.S_ISREG(mode):
        kind = (
            "a FIFO" if stat.S_ISFIFO(mode)
            else "a socket" if stat.S_ISSOCK(mode)
            else "a directory" if stat.S_ISDIR(mode)
            else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
            else "not a file"
        )  # fmt: skip
        raise UnreadableDocument(f"{ref.doc_id}: {kind}, not a regular file; not read")
    if info.st_size > MAX_FILE_BYTES:
        raise UnreadableDocument(_too_large(ref))


def _too_large(ref: DocumentRef) -> str:
    return f"{ref.doc_id}: larger than {MAX_FILE_BYTES // 2**20} MiB; not read"


def _read_error(ref: DocumentRef, err: OSError) -> SourceReadError:
    if err.errno in _GONE_ERRNOS:
        return DocumentGone(f"{ref.doc_id}: deleted before it could be read")
    reason = err.strerror or type(err).__name__
    if err.errno in _PERMANENT_ERRNOS:
        return UnreadableDocument(f"{ref.doc_id}: cannot read ({reason})")
    return SourceReadError(f"{ref.doc_id}: cannot read ({reason})")

"""A folder of files: .md, .txt, .html/.htm and .pdf, recursively, hidden entries skipped."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from ingest_assets.lib.extract import SUPPORTED_SUFFIXES
from ingest_assets.sources.base import DocumentRef, SourceReadError

MAX_FILE_BYTES = 64 * 1024 * 1024


class FolderSource:
    def __init__(self, name: str, root: Path):
        self.name = name
        self.root = root.expanduser().resolve()

    def list_documents(self) -> Iterator[DocumentRef]:
        if not self.root.is_dir():
            raise SourceReadError(f"source {self.name!r}: folder {self.root} does not exist")
        # Walk without following directory symlinks: no loops, no escaping the root.
        for dirpath, dirnames, filenames in os.walk(self.root, followlinks=False):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for filename in sorted(filenames):
                suffix = os.path.splitext(filename)[1].lower()
                if filename.startswith(".") or suffix not in SUPPORTED_SUFFIXES:
                    continue
                path = os.path.join(dirpath, filename)
                try:
                    stat = os.stat(path)
                except OSError:
                    continue  # dangling symlink or deleted while listing
                yield DocumentRef(
                    doc_id=os.path.relpath(path, self.root).replace(os.sep, "/"),
                    uri=Path(path).as_uri(),
                    fingerprint=f"{stat.st_mtime_ns}:{stat.st_size}",
                    suffix=suffix,
                )

    def read(self, ref: DocumentRef) -> bytes:
        path = (self.root / ref.doc_id).resolve()
        if not path.is_relative_to(self.root):
            raise SourceReadError(f"{ref.doc_id}: resolves outside the source folder")
        try:
            with path.open("rb") as handle:
                data = handle.read(MAX_FILE_BYTES + 1)
        except FileNotFoundError as err:
            raise SourceReadError(f"{ref.doc_id}: deleted before it could be read") from err
        except OSError as err:
            raise SourceReadError(f"{ref.doc_id}: cannot read ({err.strerror})") from err
        if len(data) > MAX_FILE_BYTES:
            raise SourceReadError(f"{ref.doc_id}: larger than {MAX_FILE_BYTES // 2**20} MiB")
        return data

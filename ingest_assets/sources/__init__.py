"""Document sources: each lists its documents with cheap fingerprints and reads one by id."""

from ingest_assets.sources.base import DocumentRef, Source, SourceReadError
from ingest_assets.sources.registry import (
    InvalidSourceName,
    SourceRecord,
    open_source,
    validate_source_name,
)

__all__ = [
    "DocumentRef",
    "InvalidSourceName",
    "Source",
    "SourceReadError",
    "SourceRecord",
    "open_source",
    "validate_source_name",
]

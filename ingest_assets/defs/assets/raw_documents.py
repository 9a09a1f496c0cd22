"""Stage 1 as Dagster sees it: the `raw_documents` asset over pipeline.scan."""

import itertools
from collections import Counter
from collections.abc import Iterable

import dagster as dg

from ingest_assets.defs.partitions import partition_key, shards_by_source
from ingest_assets.defs.resources.postgres import PostgresResource
from ingest_assets.pipeline.progress import ProgressListener, StageProgress
from ingest_assets.pipeline.scan import EXTRACTOR_VERSION, SourceNotRegistered, scan_shards
from ingest_assets.sources import SourceReadError


def build_raw_documents(
    partitions: dg.MultiPartitionsDefinition,
    shard_count: int,
    retry_policy: dg.RetryPolicy,
    backfill_policy: dg.BackfillPolicy,
) -> dg.AssetsDefinition:
    @dg.asset(
        name="raw_documents",
        partitions_def=partitions,
        group_name="ingestion",
        code_version=f"extract-v{EXTRACTOR_VERSION}",
        retry_policy=retry_policy,
        backfill_policy=backfill_policy,
        kinds={"postgres"},
    )
    def raw_documents(
        context: dg.AssetExecutionContext,
        postgres: PostgresResource,
        progress: dg.ResourceParam[ProgressListener],
    ) -> dg.MaterializeResult:
        """Source documents of a shard, with their extracted text; deletions become tombstones."""
        db = postgres.database()
        totals: Counter[str] = Counter()
        failures: list[tuple[str, str]] = []
        for source_name, shards in shards_by_source(context.partition_keys).items():
            stage = StageProgress(progress, context.log, "documents")
            try:
                scan = scan_shards(db, source_name, shards, shard_count, stage)
            except (SourceNotRegistered, ValueError) as err:
                raise dg.Failure(str(err), allow_retries=False) from err
            except SourceReadError as err:
                # A missing folder will not come back by itself; a sitemap's 503 may.
                raise dg.Failure(str(err), allow_retries=not err.permanent) from err
            report = scan.report
            for shard in shards:
                counts = report.for_shard(shard)
                totals.update(counts)
                context.add_asset_metadata(
                    {
                        **{f"documents_{k}": v for k, v in counts.items()},
                        "seconds": round(scan.seconds, 3),
                        "quarantined": dg.MetadataValue.md(
                            _bullets(reason for _, s, reason in scan.quarantined if s == shard)
                        ),
                        "slowest_documents": dg.MetadataValue.md(
                            _bullets(report.slowest_in(shard), limit=5)
                        ),
                        # Entries the listing passed over, by reason with a few names.
                        "skipped": dg.MetadataValue.json(scan.skipped[shard]),
                    },
                    partition_key=partition_key(source_name, shard),
                )
            failures += report.failures
            context.log.info(f"{source_name}: {dict(totals)} in {scan.seconds:.1f}s")
        if failures:
            listed = "\n".join(f"- {doc}: {reason}" for doc, reason in failures[:20])
            raise dg.Failure(
                f"{len(failures)} document(s) could not be read and will be retried:\n{listed}",
                metadata={"failed_documents": len(failures)},
            )
        return dg.MaterializeResult()

    return raw_documents


def _bullets(lines: Iterable[str], limit: int = 50) -> str:
    return "\n".join(f"- {line}" for line in itertools.islice(lines, limit)) or "none"

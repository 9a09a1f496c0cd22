"""`ingest search`: semantic search over the stored chunks."""

from __future__ import annotations

import asyncio
import json

import click

from ingest_assets.cli.common import cli_settings, console, out
from ingest_assets.database import open_database
from ingest_assets.embedders import EmbeddingError, EmbeddingSettings, open_embedder
from ingest_assets.store.search import DEFAULT_MODE, MODES, Hit, search
from ingest_assets.store.sources import get_source, list_sources
from ingest_assets.store.vectors import list_models, model_table


@click.command(name="search")
@click.argument("query")
@click.option(
    "-k", "k", default=5, show_default=True, type=click.IntRange(min=1), help="Number of hits."
)
@click.option("--source", help="Only this source.")
@click.option("--model", help="Search this model's vectors (default: the active model).")
@click.option(
    "--mode",
    type=click.Choice(MODES),
    default=DEFAULT_MODE,
    show_default=True,
    help="hybrid: vectors and full text fused; vector; text: exact words, no model needed.",
)
@click.option("--json", "as_json", is_flag=True, help="Print hits as JSON.")
def search_command(
    query: str, k: int, source: str | None, model: str | None, mode: str, as_json: bool
) -> None:
    """Semantic search over the stored chunks."""
    if not query.strip():
        raise click.BadParameter("the query is empty", param_hint="QUERY")
    settings = cli_settings()
    embedding = settings.for_model(model)
    db = open_database(settings)
    with db.connect() as conn:
        if source is not None and get_source(conn, source) is None:
            known = ", ".join(r.name for r in list_sources(conn)) or "none yet"
            raise click.ClickException(f"no source named {source!r} (sources: {known})")
        table, vector = None, None
        if mode != "text":  # full text alone needs no model: none is loaded
            found = model_table(conn, embedding.model)
            if found is None:
                models = [name for name, *_ in list_models(conn)]
                if not models:
                    raise click.ClickException(
                        "nothing is indexed yet; run `ingest run PATH` first"
                    )
                raise click.ClickException(
                    f"no vectors for model {embedding.model!r} (models with vectors: "
                    f"{', '.join(models)}; `ingest model list`)"
                )
            table, _ = found
            try:
                vector = asyncio.run(_embed_query(embedding, query))
            except EmbeddingError as err:
                raise click.ClickException(str(err)) from err
        hits = search(conn, table, vector, k, source, mode=mode, text=query)
    if as_json:
        out.print_json(json.dumps([_hit_json(h) for h in hits]))
        return
    if not hits:
        console.print("no hits")
    for rank, hit in enumerate(hits, 1):
        out.print(f"[bold]{rank}. {hit.score:.3f}[/bold] {hit.source}:{hit.doc_id} #{hit.chunk}")
        if hit.context:
            out.print(f"   [dim]{hit.context}[/dim]")
        out.print("   " + " ".join(hit.text.split())[:240])


def _hit_json(hit: Hit) -> dict[str, object]:
    return {
        "score": round(hit.score, 6),
        "source": hit.source,
        "doc_id": hit.doc_id,
        "uri": hit.uri,
        "chunk": hit.chunk,
        "context": hit.context,
        "text": hit.text,
    }


async def _embed_query(embedding: EmbeddingSettings, query: str):  # type: ignore[no-untyped-def]
    async with open_embedder(embedding) as embedder:
        return (await embedder.embed([query]))[0]

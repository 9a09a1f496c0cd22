"""`ingest search`: semantic search over the stored chunks."""

from __future__ import annotations

import json

import click

from ingest_assets.cli.common import cli_settings, console, out
from ingest_assets.embedders import EmbeddingError
from ingest_assets.search_api import SearchError, search
from ingest_assets.store.search import DEFAULT_MODE, MODES, Hit


@click.command(name="search")
@click.argument("query")
@click.option(
    "-k", "k", default=5, show_default=True, type=click.IntRange(min=1), help="Number of hits."
)
@click.option("--source", help="Only this source.")
@click.option("--model", help="Search this model's vectors (default: the serving model).")
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
    try:
        hits = search(query, k, mode=mode, source=source, model=model, settings=cli_settings())
    except SearchError as err:
        raise click.ClickException(str(err)) from None
    except EmbeddingError as err:
        raise click.ClickException(str(err)) from err
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

"""`ingest eval`: retrieval quality of the index on a file of queries, per search mode."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.table import Table

from ingest_assets.cli.common import cli_settings, console, out
from ingest_assets.database import open_database
from ingest_assets.embedders import EmbeddingError
from ingest_assets.evaluation import CUTOFFS, EvalFileError, evaluate, load_queries
from ingest_assets.search_api import SearchError, check_source, vector_table
from ingest_assets.store.search import MODES
from ingest_assets.store.serving import serving_or, settings_for


@click.command(name="eval")
@click.argument("queries_file", metavar="QUERIES", type=click.Path(path_type=Path))
@click.option("--source", help="Search only this source's documents.")
@click.option(
    "--mode",
    "modes",
    multiple=True,
    type=click.Choice(MODES),
    help="A search mode to score (repeatable; default: every mode).",
)
@click.option("--model", help="Score this model's vectors (default: the serving model).")
@click.option("--json", "as_json", is_flag=True, help="Print the scores as JSON.")
def eval_command(
    queries_file: Path, source: str | None, modes: tuple[str, ...], model: str | None, as_json: bool
) -> None:
    """Score search on QUERIES, a JSON-lines file of {"query": ..., "expect": [doc id or URI
    glob, ...]}: recall@1/5/10, MRR@10 and each query's rank of its first expected document."""
    settings = cli_settings()
    try:
        queries = load_queries(queries_file)
    except EvalFileError as err:
        raise click.ClickException(str(err)) from None
    modes = modes or MODES
    with open_database(settings).connect() as conn:
        try:
            check_source(conn, source)
            model = model or serving_or(conn, settings.embedding.model)
            embedding = settings_for(conn, model, settings.embedding)
            table = None if set(modes) == {"text"} else vector_table(conn, model)
            scores = evaluate(conn, queries, modes, table=table, embedding=embedding, source=source)
        except SearchError as err:
            raise click.ClickException(str(err)) from None
        except EmbeddingError as err:
            raise click.ClickException(f"embedding provider error: {err}") from None
    if as_json:
        out.print_json(json.dumps([s.as_dict() for s in scores]))
        return
    summary = Table(title=f"{len(queries)} queries from {queries_file}")
    for column in ("mode", *(f"recall@{k}" for k in CUTOFFS), "MRR@10"):
        summary.add_column(column, justify="left" if column == "mode" else "right")
    for result in scores:
        recalls = [f"{result.recall[k]:.2f}" for k in CUTOFFS]
        summary.add_row(result.mode, *recalls, f"{result.mrr:.3f}")
    out.print(summary)
    ranks = Table(title="rank of the first expected document (– : not in the top 10)")
    ranks.add_column("query")
    for result in scores:
        ranks.add_column(result.mode, justify="right")
    for i, query in enumerate(queries):
        cells = [str(s.ranks[i]) if s.ranks[i] is not None else "–" for s in scores]
        ranks.add_row(query.query[:70], *cells)
    out.print(ranks)
    if any(s.recall[10] == 0 for s in scores):
        console.print("no query found its document in some mode: are the expect values doc ids?")

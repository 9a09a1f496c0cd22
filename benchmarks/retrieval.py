"""Retrieval quality side by side: the project's search modes against the pipeline a user would
copy from tutorials, on the same documents and queries, with the same model (the packaged
all-MiniLM-L6-v2).

The tutorial pipeline: BeautifulSoup's text of HTML (pypdf's of PDFs, files as they are),
LangChain's RecursiveCharacterTextSplitter at 1,000/200 characters, the model's vectors, and
cosine similarity over all chunks. The project: `ingest run` of the folder into a fresh home,
then `ingest eval --json` per mode.

    python -m benchmarks.retrieval [--work /tmp/bench-retrieval] [--sets samples,python_reference]
        [--chunk-tokens 96,128,160,200,240]   # a sweep of INGEST_CHUNK_TOKENS
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks import python_reference
from ingest_assets.evaluation import EvalQuery, ModeScore, load_queries, score
from ingest_assets.testing.environment import isolated_environment

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"
MODEL = "all-MiniLM-L6-v2"


@dataclass(frozen=True)
class EvalSet:
    name: str
    queries: Path

    def corpus(self, work: Path) -> Path:
        if self.name == "samples":
            return REPO / "samples" / "corpus"
        folder = work / f"corpus-{self.name}"
        if not folder.exists():
            python_reference.write_corpus(folder)
        return folder


SETS = {
    "samples": EvalSet("samples", REPO / "evals" / "samples.jsonl"),
    "python_reference": EvalSet("python_reference", REPO / "evals" / "python_reference.jsonl"),
}


@dataclass(frozen=True)
class TutorialHit:
    doc_id: str
    uri: str


def tutorial_text(path: Path) -> str:
    if path.suffix in (".html", ".htm"):
        from bs4 import BeautifulSoup

        return BeautifulSoup(path.read_bytes(), "html.parser").get_text()
    if path.suffix == ".pdf":
        from pypdf import PdfReader

        return "\n".join(
            page.extract_text() or "" for page in PdfReader(io.BytesIO(path.read_bytes())).pages
        )
    return path.read_text(errors="replace")


def tutorial_scores(corpus: Path, queries: list[EvalQuery]) -> ModeScore:
    from langchain_text_splitters import RecursiveCharacterTextSplitter
    from sentence_transformers import SentenceTransformer

    from ingest_assets.embedders.local import model_path

    splitter = RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200)
    chunks: list[tuple[str, str]] = []
    for path in sorted(p for p in corpus.rglob("*") if p.is_file() and not p.name.startswith(".")):
        doc_id = path.relative_to(corpus).as_posix()
        chunks += [(doc_id, text) for text in splitter.split_text(tutorial_text(path))]
    model = SentenceTransformer(str(model_path(MODEL)), device="cpu")
    vectors = model.encode([t for _, t in chunks], batch_size=32, normalize_embeddings=True)

    def search(query: str, k: int) -> list[TutorialHit]:
        q = model.encode([query], normalize_embeddings=True)[0]
        order = np.argsort(-(vectors @ q))[:k]
        return [TutorialHit(chunks[i][0], chunks[i][0]) for i in order]

    return score("tutorial", queries, search)


def project_scores(
    corpus: Path, eval_set: EvalSet, work: Path, modes: list[str], chunk_tokens: int | None
) -> list[dict]:
    home = work / f"home-{eval_set.name}-{time.time_ns()}"
    chunking = {"INGEST_CHUNK_TOKENS": str(chunk_tokens)} if chunk_tokens else {}
    env = isolated_environment(
        INGEST_HOME=str(home), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", **chunking
    )

    def ingest(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "ingest_assets.cli", *args],
            env=env, capture_output=True, text=True, timeout=3600, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"ingest {' '.join(args)}: {done.stderr[-2000:]}")
        return done.stdout

    ingest("run", str(corpus), "--name", eval_set.name)
    found = []
    for mode in modes:
        out = ingest(
            "eval", str(eval_set.queries), "--source", eval_set.name, "--mode", mode, "--json"
        )
        found += json.loads(out)
    return found


def by_kind(queries: list[EvalQuery], ranks: list[int | None]) -> dict[str, float]:
    """MRR@10 per query kind (identifier, paraphrase)."""
    kinds: dict[str, list[float]] = {}
    for query, rank in zip(queries, ranks, strict=True):
        kinds.setdefault(query.kind or "all", []).append(1 / rank if rank and rank <= 10 else 0.0)
    return {kind: round(sum(v) / len(v), 3) for kind, v in sorted(kinds.items())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench-retrieval"))
    parser.add_argument("--sets", default=",".join(SETS))
    parser.add_argument("--modes", default="hybrid,vector,text")
    parser.add_argument(
        "--chunk-tokens",
        default="",
        help="comma-separated INGEST_CHUNK_TOKENS values to sweep (default: the setting's default)",
    )
    args = parser.parse_args()
    sizes = [int(v) for v in args.chunk_tokens.split(",") if v] or [None]
    args.work.mkdir(parents=True, exist_ok=True)
    RESULTS.mkdir(exist_ok=True)
    report: dict[str, object] = {"load_at_start": [round(x, 2) for x in os.getloadavg()]}
    print(
        f"{'set':<18} {'mode':<9} {'tokens':>7} {'R@1':>5} {'R@5':>5} {'R@10':>5} {'MRR@10':>7}"
        "  by kind"
    )
    for name in args.sets.split(","):
        eval_set = SETS[name]
        queries = load_queries(eval_set.queries)
        corpus = eval_set.corpus(args.work)
        rows = [tutorial_scores(corpus, queries).as_dict()]
        for size in sizes:
            found = project_scores(corpus, eval_set, args.work, args.modes.split(","), size)
            rows += [{**row, "chunk_tokens": size or "default"} for row in found]
        for row in rows:
            row["by_kind"] = by_kind(queries, row["ranks"])
            recall = [row[f"recall_at_{k}"] for k in (1, 5, 10)]
            print(
                f"{name:<18} {row['mode']:<9} {row.get('chunk_tokens', ''):>7} "
                f"{recall[0]:>5.2f} {recall[1]:>5.2f} "
                f"{recall[2]:>5.2f} {row['mrr_at_10']:>7.3f}  {row['by_kind']}"
            )
        report[name] = rows
    report["load_at_end"] = [round(x, 2) for x in os.getloadavg()]
    out = RESULTS / f"retrieval-{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.write_text(json.dumps(report, indent=2))
    print(f"\nwritten {out}")


if __name__ == "__main__":
    main()

"""The evaluation's arithmetic and its queries file (the searches themselves are real in
test_eval_command.py and the e2e tests)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from ingest_assets.evaluation import (
    EvalFileError,
    EvalQuery,
    failed_thresholds,
    first_right_rank,
    load_queries,
    score,
)


@dataclass(frozen=True)
class Hit:
    doc_id: str
    uri: str = ""


def test_queries_file_reads_json_lines_and_names_a_bad_line(tmp_path):
    path = tmp_path / "q.jsonl"
    path.write_text(
        '# a comment\n{"query": "tides", "expect": ["science/tides.html"], "kind": "paraphrase"}\n'
        '\n{"query": "etag", "expect": "tech/*.md"}\n'
    )
    assert load_queries(path) == [
        EvalQuery("tides", ("science/tides.html",), "paraphrase"),
        EvalQuery("etag", ("tech/*.md",), ""),
    ]
    path.write_text('{"query": "ok", "expect": ["a"]}\n{"query": "no expect"}\n')
    with pytest.raises(EvalFileError, match=r"q\.jsonl:2: expected"):
        load_queries(path)
    with pytest.raises(EvalFileError, match=r"missing\.jsonl"):
        load_queries(tmp_path / "missing.jsonl")


def test_ranks_count_documents_not_chunks_and_globs_match_ids_or_uris():
    hits = [Hit("a.md"), Hit("a.md"), Hit("b.md"), Hit("c.html", "https://x/docs/c.html")]
    assert first_right_rank(hits, ["b.md"]) == 3  # as chunks
    queries = [
        EvalQuery("q1", ("b.md",)),  # second document
        EvalQuery("q2", ("https://x/docs/*",)),  # a URI glob: third document
        EvalQuery("q3", ("z.md",)),  # never found
        EvalQuery("q4", ("a.md", "c.html")),  # any of several
    ]
    result = score("vector", queries, lambda query, k: hits)
    assert result.ranks == [2, 3, None, 1]
    assert result.recall == {1: 0.25, 5: 0.75, 10: 0.75}
    assert result.mrr == pytest.approx((1 / 2 + 1 / 3 + 0 + 1) / 4)


def test_thresholds_name_what_they_miss():
    result = score("hybrid", [EvalQuery("q", ("b.md",))], lambda q, k: [Hit("a.md"), Hit("b.md")])
    assert failed_thresholds(result, {"min_recall_at_5": 0.9}) == []
    assert failed_thresholds(result, {"min_recall_at_1": 0.5, "min_mrr_at_10": 0.9}) == [
        "MRR@10 0.50 < 0.90",
        "recall@1 0.00 < 0.50",
    ]
    with pytest.raises(EvalFileError, match="unknown threshold"):
        failed_thresholds(result, {"min_recall_at_3": 0.5})

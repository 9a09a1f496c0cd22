import pytest

from ingest_assets.lib.chunking import Chunker, heading_path, heading_positions, join_context


@pytest.fixture(scope="module")
def chunker():
    return Chunker(max_tokens=48)


DOC = (
    "# Guide\n\nIntro paragraph about the guide.\n\n"
    "## Install\n\n" + "Run the installer and follow the prompts. " * 20 + "\n\n"
    "### Linux\n\nUse the package manager.\n\n"
    "```\n# not a heading inside code\n```\n\n"
    "## Usage\n\n" + "Start the service and open the dashboard. " * 20 + "\n"
)


def test_chunks_stay_within_the_token_limit(chunker):
    chunks = chunker.chunk(DOC, "markdown", "Guide")
    assert len(chunks) > 3
    bodies = chunker.count_tokens([c.text for c in chunks])
    assert max(bodies) <= 48
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))


def test_chunks_carry_their_heading_path(chunker):
    chunks = chunker.chunk(DOC, "markdown", "Guide")

    def context_of(phrase: str) -> set[str]:
        return {c.context for c in chunks if phrase in c.text}

    assert context_of("Intro paragraph") == {"Guide"}
    assert context_of("Run the installer") == {"Guide › Install"}
    # A chunk that opens with a sub-heading keeps it in its text, under its parents' context.
    assert context_of("package manager") == {"Guide › Install"}
    assert context_of("Start the service") == {"Guide › Usage"}


def test_heading_only_pieces_are_dropped_but_text_is_kept(chunker):
    chunks = chunker.chunk(DOC, "markdown", "Guide")
    text = " ".join(c.text for c in chunks)
    for word in ("Intro", "installer", "package manager", "dashboard"):
        assert word in text


def test_token_count_covers_context_and_text(chunker):
    chunk = chunker.chunk("Short text.", "text", "A fairly long title for context")[0]
    assert chunk.token_count == chunker.count_tokens([chunk.embedding_input])[0]
    assert chunk.embedding_input.startswith("A fairly long title for context\n\n")


@pytest.mark.parametrize(
    ("markdown", "expected"),
    [
        ("# A\n## B\n### C\n", [(0, 1, "A"), (4, 2, "B"), (9, 3, "C")]),
        ("```\n# code\n```\n# Real\n", [(15, 1, "Real")]),
        ("#NoSpace\n# Closed ##\n", [(9, 1, "Closed")]),
    ],
)
def test_heading_positions(markdown, expected):
    assert heading_positions(markdown) == expected


def test_heading_path_pops_siblings_and_parents():
    headings = [(0, 1, "A"), (10, 2, "B"), (20, 3, "C"), (30, 2, "D")]
    offsets = [h[0] for h in headings]
    assert heading_path(headings, offsets, 25) == ["A", "B", "C"]
    assert heading_path(headings, offsets, 35) == ["A", "D"]
    assert heading_path(headings, offsets, 0) == []


def test_context_drops_a_heading_equal_to_the_title():
    assert join_context("Guide", ["Guide", "Install"]) == "Guide › Install"
    assert join_context(None, []) == ""


def test_empty_and_whitespace_documents_have_no_chunks(chunker):
    assert chunker.chunk("", "markdown") == []
    assert chunker.chunk("   \n\n ", "text") == []


def test_signature_changes_with_settings():
    assert Chunker(48).signature != Chunker(64).signature
    assert Chunker(48).signature == Chunker(48).signature

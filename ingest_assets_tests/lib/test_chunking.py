import random

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


@pytest.mark.parametrize(
    "dense",
    [
        # Digits and symbols run at 1-2 characters per token: every piece cut by characters
        # is over the limit and must be split again, by characters then by tokens.
        " ".join(f"{i * 7919 % 100003}.{i % 97}%" for i in range(400)),
        "".join(chr(0x4E00 + (i * 37) % 2000) for i in range(3000)),  # CJK, no spaces
        "x" * 5000,  # one word: only the token splitter can cut it
    ],
)
def test_dense_text_is_split_again_within_the_limit(chunker, dense):
    text = "A few ordinary words first.\n\n" + dense + "\n\nAnd a closing sentence."
    chunks = chunker.chunk(text, "text")
    bodies = chunker.count_tokens([c.text for c in chunks])
    assert max(bodies) <= 48
    assert min(bodies) > 0
    # Nothing lost: the chunks cover every non-space character in order.
    assert "".join("".join(c.text.split()) for c in chunks) == "".join(text.split())


def test_chunks_carry_their_heading_path(chunker):
    chunks = chunker.chunk(DOC, "markdown", "Guide")

    def context_of(phrase: str) -> set[str]:
        return {c.context for c in chunks if phrase in c.text}

    assert context_of("Intro paragraph") == {"Guide"}
    assert context_of("Run the installer") == {"Guide › Install"}
    # A chunk that opens with a sub-heading keeps it in its text, and is in its section.
    assert context_of("package manager") == {"Guide › Install › Linux"}
    assert context_of("Start the service") == {"Guide › Usage"}


def test_heading_only_pieces_are_dropped_but_text_is_kept(chunker):
    chunks = chunker.chunk(DOC, "markdown", "Guide")
    text = " ".join(c.text for c in chunks)
    for word in ("Intro", "installer", "package manager", "dashboard"):
        assert word in text


def test_token_count_covers_context_and_text(chunker):
    chunk = chunker.chunk("Short text.", "text", "A fairly long title for context")[0]
    assert chunk.token_count == chunker.count_tokens([chunk.model_input])[0]
    assert chunk.model_input.startswith("A fairly long title for context\n\n")


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
    assert heading_path(headings, offsets, 30) == ["A", "D"]  # text opening with "D" is in D
    assert heading_path(headings, offsets, 29) == ["A", "B", "C"]
    assert heading_path(headings, offsets, 0) == ["A"]


def test_context_drops_a_heading_equal_to_the_title():
    assert join_context("Guide", ["Guide", "Install"]) == "Guide › Install"
    assert join_context(None, []) == ""


def test_empty_and_whitespace_documents_have_no_chunks(chunker):
    assert chunker.chunk("", "markdown") == []
    assert chunker.chunk("   \n\n ", "text") == []


def test_signature_changes_with_settings():
    assert Chunker(48).signature != Chunker(64).signature
    assert Chunker(48).signature == Chunker(48).signature


@pytest.mark.parametrize(
    "text",
    [
        "Hello, World! x_y 3.14 $100 <a href='x'> don't",
        "naïve café, İstanbul, STRASSE ß, ΣΟΦΙΑΣ, ﬁle",
        "中文和日本語 mixed with English",
        "tab\tsep\r\nline\x0bvertical\x0cform\x1cfile\x85next",
        "ctrl\x01inside\x7fword and zero\u200bwidth\u00adsoft\ufeffbom",
        "nbsp\xa0em\u2003ideographic\u3000line\u2028para\u2029end",
        "a" * 100 + " " + "b" * 101 + " " + "é" * 101,
        "emoji 😀🇦 and ① ⅷ ǅ",
        "",
        "   \n\t  ",
    ],
)
def test_token_counts_match_the_tokenizer(chunker, text):
    expected = [
        len(e.ids) for e in chunker._tokenizer.encode_batch([text], add_special_tokens=False)
    ]
    assert chunker.count_tokens([text]) == expected
    assert chunker.count_tokens([text]) == expected  # from the word cache this time


def test_token_counts_match_the_tokenizer_on_random_text(chunker):
    rng = random.Random(7)
    alphabet = [
        *"abcXYZ09 .,;!?-_'\"()[]{}<>|~`^$%&*+=/\\\t\n\r",
        *map(chr, range(32)),
        *"\x7f\x85\xa0éÉßİΣςﬁ中文\u200b\u200d\u2028\u3000\u2003\ufffd\u0301ǅ😀\u00adöø",
    ]
    texts = ["".join(rng.choices(alphabet, k=rng.randint(0, 80))) for _ in range(3000)]
    expected = [
        len(e.ids) for e in chunker._tokenizer.encode_batch_fast(texts, add_special_tokens=False)
    ]
    assert chunker.count_tokens(texts) == expected


SIBLINGS = (
    "# Tides\n\n" + "The Moon pulls the oceans into two bulges. " * 20 + "\n\n"
    "## The Sun's share\n\n" + "The Sun adds a smaller pull of its own. " * 20 + "\n\n"
    "## Why local tides differ\n\n" + "Coastlines and basins shape each tide. " * 20 + "\n"
)


def test_a_chunk_opening_with_a_heading_is_labelled_with_that_section(chunker):
    """The bug this guards against: the chunk that starts with "## Why local tides differ"
    was labelled with the previous sibling section."""
    chunks = Chunker(max_tokens=200).chunk(SIBLINGS, "markdown", "Tides")
    assert not [c.text for c in chunks if c.text.lstrip().startswith("#") and "\n" not in c.text]
    opening = [c for c in chunks if c.text.startswith("## Why local tides differ")]
    assert opening, [c.text[:40] for c in chunks]
    assert {c.context for c in opening} == {"Tides › Why local tides differ"}
    for chunk in chunks:
        if "Coastlines and basins" in chunk.text:
            assert chunk.context == "Tides › Why local tides differ"
        elif "smaller pull" in chunk.text:
            assert chunk.context == "Tides › The Sun's share"

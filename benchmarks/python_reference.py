"""The Python language reference topics (`pydoc_data.topics`, shipped with every CPython under
the PSF licence) as a folder of Markdown documents, one per topic: the corpus of the
`evals/python_reference.jsonl` evaluation set. Generated, not copied into the repository.

    python -m benchmarks.python_reference DIR
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

# reST section underlines, by the character pydoc uses for each level.
_UNDERLINES = {"*": 1, "=": 2, "-": 3, "~": 4}
_UNDERLINE = re.compile(r"^([*=~-])\1{2,}$")


def as_markdown(text: str) -> str:
    """pydoc's plain text with its underlined section titles as Markdown headings."""
    lines = text.splitlines()
    out: list[str] = []
    for line in lines:
        match = _UNDERLINE.match(line.strip())
        if match and out and out[-1].strip() and len(line.strip()) >= len(out[-1].strip()) - 1:
            out[-1] = "#" * _UNDERLINES[match.group(1)] + " " + out[-1].strip()
            continue
        out.append(line)
    return "\n".join(out).strip() + "\n"


def write_corpus(folder: Path) -> int:
    from pydoc_data.topics import topics

    folder.mkdir(parents=True, exist_ok=True)
    for name, text in sorted(topics.items()):
        (folder / f"{name}.md").write_text(as_markdown(text), encoding="utf-8")
    return len(topics)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        raise SystemExit("usage: python -m benchmarks.python_reference DIR")
    print(f"{write_corpus(Path(args[0]))} topics written to {args[0]}")


if __name__ == "__main__":
    main()

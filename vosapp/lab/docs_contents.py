"""The contents list of ``docs/benchmarks.md``, written by ``make docs`` from its headings.

The list sits between :data:`BEGIN` and :data:`END`: every ``##`` heading, and under it every
``###`` heading, linked by the anchor GitHub gives the heading. ``tests/test_docs.py`` fails
when a heading was added, renamed or removed without the list being written again.

Run ``python -m vosapp.lab.docs_contents [FILE]`` (default ``docs/benchmarks.md``).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

__all__ = ["BEGIN", "END", "anchor", "contents", "rewrite"]

BENCHMARKS = Path(__file__).resolve().parents[2] / "docs" / "benchmarks.md"
BEGIN = "<!-- contents: written by make docs from the headings below -->"
END = "<!-- /contents -->"

_HEADING = re.compile(r"^(#{1,6}) +(.+?) *#* *$")
# What GitHub keeps of a heading in its anchor: letters, digits, "_", "-" and spaces (each
# space becomes "-"); everything else (punctuation, backticks, "×", "↔") goes.
_DROPPED = re.compile(r"[^\w\- ]")


def _headings(text: str) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    fenced = False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced  # "#" lines inside a code block are not headings
            continue
        match = None if fenced else _HEADING.match(line)
        if match:
            found.append((len(match.group(1)), match.group(2)))
    return found


def anchor(title: str, seen: dict[str, int]) -> str:
    """GitHub's anchor for heading ``title``; ``seen`` counts the anchors of the headings
    before it, since GitHub gives a repeated one a ``-1``, ``-2``... suffix."""
    base = _DROPPED.sub("", title.replace("`", "").lower()).replace(" ", "-")
    count = seen.get(base, 0)
    seen[base] = count + 1
    return base if count == 0 else f"{base}-{count}"


def contents(text: str) -> str:
    """The list for ``text`` (without the markers): its ``##`` and ``###`` headings, but for
    the list's own ("Contents")."""
    start, end = text.find(BEGIN), text.find(END)
    if start >= 0 and end > start:
        text = text[:start] + text[end + len(END):]
    seen: dict[str, int] = {}
    lines = []
    for level, title in _headings(text):
        link = anchor(title, seen)
        if title == "Contents":
            continue  # the list's own heading
        if level == 2:
            lines.append(f"- [{title}](#{link})")
        elif level == 3:
            lines.append(f"  - [{title}](#{link})")
    return "\n".join(lines)


def rewrite(path: Path = BENCHMARKS) -> bool:
    """Write the list into ``path`` between its markers; True when it changed. Raises
    ``ValueError`` when the file has no markers (where the list goes is the author's call)."""
    text = path.read_text(encoding="utf-8")
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise ValueError(f"{path}: no {BEGIN!r} ... {END!r} markers for the contents list")
    new = f"{text[:start]}{BEGIN}\n{contents(text)}\n{text[end:]}"
    if new == text:
        return False
    path.write_text(new, encoding="utf-8")
    return True


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else BENCHMARKS
    print(f"{target}: {'contents written' if rewrite(target) else 'contents up to date'}")

"""The documentation ships what it cites: the behaviour reference exists with the sections the
code cites, nothing cites the unshipped upstream document, and the README's pictures exist and
stay small."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BEHAVIOUR = ROOT / "docs" / "behaviour.md"
CITATION = re.compile(r"docs/behaviour\.md §(\d+)(?:\.(\d+))?")


def shipped_files() -> list[Path]:
    files = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    for folder, pattern in (("vosapp", "*.py"), ("notebooks", "*.py"), ("tests", "*.py")):
        files += sorted((ROOT / folder).rglob(pattern))
    return files


def test_every_cited_section_exists() -> None:
    headings = BEHAVIOUR.read_text(encoding="utf-8")
    sections = set(re.findall(r"^## (\d+)\. ", headings, re.MULTILINE))
    subsections = set(re.findall(r"^### (\d+\.\d+) ", headings, re.MULTILINE))
    cited = 0
    for path in shipped_files():
        for major, minor in CITATION.findall(path.read_text(encoding="utf-8")):
            cited += 1
            assert major in sections, f"{path.relative_to(ROOT)} cites §{major}"
            if minor:
                assert f"{major}.{minor}" in subsections, \
                    f"{path.relative_to(ROOT)} cites §{major}.{minor}"
    assert cited > 50


@pytest.mark.parametrize("folder", ["vosapp", "notebooks", "docs"])
def test_nothing_cites_the_unshipped_spec(folder: str) -> None:
    for path in sorted((ROOT / folder).rglob("*")):
        if path.suffix in (".py", ".md", ".ipynb", ".toml"):
            assert "SPEC §" not in path.read_text(encoding="utf-8"), path


def test_readme_pictures_exist_and_are_small() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    pictures = re.findall(r"!\[[^\]]*\]\((docs/img/[^)]+\.png)\)", readme)
    assert len(pictures) >= 3
    for picture in pictures:
        path = ROOT / picture
        assert path.is_file(), f"{picture} missing: run make docs"
        assert path.stat().st_size < 200_000, f"{picture} is over 200 KB"


def test_make_bench_runs_scripts_that_exist() -> None:
    """`make bench` lists its entry points by name: each must be a file under bench/, and
    every bench/*.py or *.sh is either listed or named as a helper in the Makefile."""
    makefile = (ROOT / "Makefile").read_text()
    listed = {}
    for kind in ("PY", "SH"):
        match = re.search(rf"^BENCH_{kind} = (.*)$", makefile, re.MULTILINE)
        assert match, f"BENCH_{kind} missing from the Makefile"
        listed.update({f"{name}.{kind.lower()}": name for name in match.group(1).split()})
    for name in listed:
        assert (ROOT / "bench" / name).is_file(), f"make bench runs bench/{name}: no such file"
    for path in [*(ROOT / "bench").glob("*.py"), *(ROOT / "bench").glob("*.sh")]:
        assert path.name in listed or path.name in makefile, (
            f"bench/{path.name} is neither run by make bench nor named as a helper")


def test_benchmarks_contents_list_matches_the_headings() -> None:
    """docs/benchmarks.md is long: its contents list is how one finds a section, so a heading
    added, renamed or removed without `make docs` fails here."""
    from vosapp.lab.docs_contents import BEGIN, BENCHMARKS, END, contents

    text = BENCHMARKS.read_text(encoding="utf-8")
    assert BEGIN in text and END in text, "docs/benchmarks.md lost its contents markers"
    written = text[text.index(BEGIN) + len(BEGIN):text.index(END)].strip("\n")
    assert written == contents(text), "docs/benchmarks.md's contents list is stale: make docs"
    # every entry links to a heading that exists, under the anchor GitHub gives it
    assert written.count("\n- [") >= 5 and written.count("\n  - [") >= 30


def test_benchmarks_anchors_follow_github() -> None:
    from vosapp.lab.docs_contents import anchor, contents

    seen: dict[str, int] = {}
    assert anchor("Registrar cuts of the twelfth round, and the switch layer compiled as an "
                  "experiment (issue #14 part 3)", seen) == (
        "registrar-cuts-of-the-twelfth-round-and-the-switch-layer-compiled-as-an-experiment-"
        "issue-14-part-3")
    assert anchor("(1) Two-way PCMA ↔ G.729 transcoding on one core", seen) == \
        "1-two-way-pcma--g729-transcoding-on-one-core"
    assert anchor("(1) Two-way PCMA ↔ G.729 transcoding on one core", seen) == \
        "1-two-way-pcma--g729-transcoding-on-one-core-1"
    assert anchor("Calls end to end through `vosapp serve`", {}) == \
        "calls-end-to-end-through-vosapp-serve"
    # a "#" line inside a code block is not a heading
    assert contents("## A\n```\n## not a heading\n```\n### B\n") == "- [A](#a)\n  - [B](#b)"


def test_benchmarks_citations_name_sections_that_exist() -> None:
    """Code, tests and docs cite a measurement by the benchmarks file's name followed by a
    section title in double quotes: each such title must still be part of a heading there."""
    headings = re.findall(r"^#+ +(.+)$", (ROOT / "docs" / "benchmarks.md").read_text(
        encoding="utf-8"), re.MULTILINE)
    citation = re.compile(r'benchmarks\.md[,:]?\s+(?:section\s+)?"([^"]+)"')
    cited = 0
    for path in shipped_files():
        # a citation may wrap onto the next line of a comment or docstring
        text = re.sub(r"\s*\n\s*(?:#:?|//|\*)?\s*", " ", path.read_text(encoding="utf-8"))
        for title in citation.findall(text):
            cited += 1
            assert any(title in heading for heading in headings), \
                f"{path.relative_to(ROOT)} cites docs/benchmarks.md {title!r}"
    assert cited >= 10

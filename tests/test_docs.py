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

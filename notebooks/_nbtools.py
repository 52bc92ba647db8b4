"""Shared by the notebook generators (``_build.py``, ``_build_media.py``): cell helpers and
the writer that gives every generated notebook the ``vosapp`` kernel and stable cell ids."""

from __future__ import annotations

import textwrap
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
Cell = tuple[str, str]


def md(text: str) -> Cell:
    """A markdown cell (dedented)."""
    return ("markdown", textwrap.dedent(text).strip())


def code(text: str) -> Cell:
    """A code cell (dedented)."""
    return ("code", textwrap.dedent(text).strip())


def write(name: str, cells: list[Cell]) -> Path:
    """Write ``cells`` as notebook ``name`` next to this script, with stable cell ids."""
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "vosapp", "display_name": "vosapp",
                                       "language": "python"}
    notebook.metadata["language_info"] = {"name": "python"}
    for index, (kind, source) in enumerate(cells):
        cell = (nbformat.v4.new_markdown_cell(source) if kind == "markdown"
                else nbformat.v4.new_code_cell(source))
        cell["id"] = f"{name[:2]}-{index:02d}"  # stable ids: regenerating gives small diffs
        notebook.cells.append(cell)
    nbformat.validate(notebook)
    target = HERE / name
    nbformat.write(notebook, target)
    return target

"""The notebooks' sources: ``notebooks/NN-name.py`` (jupytext percent format) is what a person
edits and ruff checks; ``notebooks/NN-name.ipynb`` is written from it, without outputs.

``python -m vosapp.lab.notebook_sources`` (``make notebooks``) rewrites every ``.ipynb`` from
its ``.py``; ``--check`` lists the pairs that differ and the notebooks that carry outputs, as
``tests/test_notebook_sources.py`` does. In JupyterLab the jupytext extension keeps the pair in
step on save (``notebooks/jupytext.toml``); run ``make notebooks`` before committing to drop
the outputs a saved ``.ipynb`` picked up.
"""

from __future__ import annotations

import sys
from pathlib import Path

import jupytext
import nbformat
from nbformat import NotebookNode

__all__ = ["NOTEBOOKS_DIR", "notebook_from_source", "problems", "sources", "write_notebook"]

NOTEBOOKS_DIR = Path(__file__).resolve().parents[2] / "notebooks"
KERNELSPEC = {"name": "vosapp", "display_name": "vosapp", "language": "python"}


def sources(directory: Path = NOTEBOOKS_DIR) -> list[Path]:
    """The notebook sources in ``directory`` (``NN-name.py``)."""
    return sorted(p for p in directory.glob("[0-9][0-9]-*.py"))


def notebook_from_source(source: Path) -> NotebookNode:
    """The notebook ``source`` describes: the vosapp kernel, stable cell ids, no outputs."""
    notebook = jupytext.read(source, fmt="py:percent")
    notebook.metadata = nbformat.from_dict({"kernelspec": KERNELSPEC,
                                            "language_info": {"name": "python"}})
    for index, cell in enumerate(notebook.cells):
        cell.metadata = nbformat.from_dict({})
        cell.id = f"{source.name[:2]}-{index:02d}"  # stable ids: small diffs on regeneration
    nbformat.validate(notebook)
    return notebook


def write_notebook(source: Path) -> Path:
    """Write ``source``'s ``.ipynb`` next to it; return its path."""
    target = source.with_suffix(".ipynb")
    nbformat.write(notebook_from_source(source), target)
    return target


def _outputs(notebook: NotebookNode) -> list[int]:
    return [index for index, cell in enumerate(notebook.cells) if cell.cell_type == "code"
            and (cell.get("outputs") or cell.get("execution_count") is not None)]


def problems(directory: Path = NOTEBOOKS_DIR) -> list[str]:
    """What is wrong with the pairs in ``directory``: missing, out of step, or with outputs."""
    found = []
    pairs = {p.stem for p in sources(directory)}
    for orphan in sorted(p for p in directory.glob("*.ipynb") if p.stem not in pairs):
        found.append(f"{orphan.name}: no {orphan.stem}.py source next to it")
    for source in sources(directory):
        target = source.with_suffix(".ipynb")
        if not target.exists():
            found.append(f"{source.name}: {target.name} missing (run make notebooks)")
            continue
        committed = nbformat.read(target, as_version=4)
        expected = notebook_from_source(source)
        if ([(c.cell_type, c.source) for c in committed.cells]
                != [(c.cell_type, c.source) for c in expected.cells]):
            found.append(f"{target.name} differs from {source.name} (run make notebooks)")
        if with_outputs := _outputs(committed):
            found.append(f"{target.name}: outputs in cells {with_outputs} (run make notebooks)")
    return found


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args == ["--check"]:
        found = problems()
        print("\n".join(found) or "notebooks: every pair in step, no outputs")
        return 1 if found else 0
    for source in sources():
        print("wrote", write_notebook(source).relative_to(NOTEBOOKS_DIR.parent))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

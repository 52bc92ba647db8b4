"""Notebook-facing tools: audio quality, ladder diagrams, plots.

Import the submodules you need (``from vosapp.lab import quality``, ``from vosapp.lab.ladder
import build_ladder``); this package itself imports nothing heavy, so ``import vosapp.lab``
stays cheap in a CLI or a test that never plots.
"""

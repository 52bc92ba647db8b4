"""The notebooks in a real browser: JupyterLab (started here, free port, token) driven by
Playwright with Debian's Chromium (no browser download). For each notebook: open it, Run >
Run All Cells, wait for the kernel to go idle, then check what a person would see — no
traceback, every widget rendered, every plotly figure drawn. In 01 an out-of-range value typed
into the parameter editor shows the registry's message under the field; in 07 the live
ladder carries the calls' media events and the refused call shows its Warning.

On failure a full-page screenshot and the JupyterLab log are kept in the test's temporary
directory, whose path the failure message prints.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from vosapp.params import REGISTRY, ParameterError

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]
NOTEBOOKS = ["00-start-here.ipynb", "01-parameters.ipynb", "07-calls.ipynb"]
PANEL = ".jp-NotebookPanel:not(.lm-mod-hidden)"  # the notebook on screen
RUN_LIMIT_MS = 150_000  # a whole notebook, kernel start included (generous: shared CPUs)

pytestmark = [pytest.mark.browser, pytest.mark.timeout(600)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Lab:
    url: str
    token: str
    log: Path
    workdir: Path


@pytest.fixture(scope="module")
def jupyterlab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """JupyterLab on a copy of the notebooks (autosave must not write outputs into the
    repository), a fresh profile, cells rendered without windowing (all in the DOM)."""
    jupyter = Path(sys.executable).with_name("jupyter")
    if not jupyter.exists():
        pytest.fail(f"{jupyter} missing: JupyterLab is not installed (make setup)")
    workdir = tmp_path_factory.mktemp("browser")
    notebooks = workdir / "notebooks"
    notebooks.mkdir()
    for name in NOTEBOOKS:
        shutil.copy(ROOT / "notebooks" / name, notebooks / name)
    settings = workdir / "settings" / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True)
    (settings / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    token, port = secrets.token_hex(16), free_port()
    env = dict(os.environ, HOME=str(workdir), JUPYTER_TOKEN=token,
               JUPYTER_RUNTIME_DIR=str(workdir / "runtime"),
               JUPYTER_CONFIG_DIR=str(workdir / "jupyter-config"),
               JUPYTERLAB_SETTINGS_DIR=str(workdir / "settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(workdir / "workspaces"),
               IPYTHONDIR=str(workdir / "ipython"),
               VOSAPP_CONFIG=str(ROOT / "data" / "lab.toml"),
               VOSAPP_DATA_DIR=str(workdir / "data"))  # no make-lab switch: in-kernel ones
    argv = [str(jupyter), "lab", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
            f"--notebook-dir={notebooks}"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        argv.append("--allow-root")
    log = workdir / "jupyterlab.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not start; log: {log}\n{log.read_text()}")
                time.sleep(0.3)
        yield Lab(url, token, log, workdir)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


@pytest.fixture(scope="module")
def browser(jupyterlab: Lab) -> Iterator[object]:
    sync_api = pytest.importorskip("playwright.sync_api")
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} missing (Debian package chromium, scripts/sysdeps.sh)")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                              args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: object, jupyterlab: Lab, request: pytest.FixtureRequest) -> Iterator[object]:
    """A fresh page; when the test fails, a full-page screenshot is saved and named in the
    failure (with the JupyterLab log)."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    try:
        yield page
    finally:
        context.close()


@contextmanager
def screenshot_on_failure(page: object, lab: Lab, name: str) -> Iterator[None]:
    try:
        yield
    except BaseException as exc:
        # outside pytest's basetemp, which other pytest runs on the machine rotate away
        keep = Path(tempfile.mkdtemp(prefix=f"vosapp-browser-{name}-"))
        page.screenshot(path=str(keep / "page.png"), full_page=True)
        shutil.copy(lab.log, keep / "jupyterlab.log")
        exc.add_note(f"screenshot and JupyterLab log kept in {keep}")
        raise


def wait_for_kernel(lab: Lab, name: str) -> None:
    """Until the server has a ``vosapp`` kernel for notebook ``name``, idle."""
    deadline = time.monotonic() + RUN_LIMIT_MS / 1000
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"{lab.url}/api/sessions?token={lab.token}",
                                    timeout=5) as response:
            sessions = json.load(response)
        if any(s["path"].endswith(name) and s["kernel"]["name"] == "vosapp"
               and s["kernel"]["execution_state"] == "idle" for s in sessions):
            return
        time.sleep(0.3)
    raise AssertionError(f"no idle vosapp kernel for {name}: {sessions}")


def run_all_cells(page: object, lab: Lab, name: str) -> None:
    """Open ``name``, wait for its kernel, Run > Run All Cells, wait until every code cell
    has run and the kernel is idle again."""
    page.goto(f"{lab.url}/lab/tree/{name}?reset&token={lab.token}")  # reset: no other tabs
    # the notebook's own kernel (vosapp) started and idle: Run All before that does nothing
    wait_for_kernel(lab, name)
    page.get_by_text("vosapp (.venv) | Idle").wait_for(timeout=RUN_LIMIT_MS)
    idle = f"{PANEL} .jp-Notebook-ExecutionIndicator[data-status='idle']"
    page.wait_for_selector(idle, timeout=RUN_LIMIT_MS)
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
    page.wait_for_function(
        """(panel) => {
            const prompts = [...document.querySelectorAll(panel + ' .jp-CodeCell .jp-InputPrompt')];
            const failed = [...document.querySelectorAll(panel + ' .jp-OutputArea-output')]
                .some(o => o.textContent.includes('Traceback'));  // Run All stops there
            return failed || (prompts.length > 0
                && prompts.every(p => /^\\[\\d+\\]:$/.test(p.textContent.trim())));
        }""", arg=PANEL, timeout=RUN_LIMIT_MS)
    page.wait_for_selector(idle, timeout=RUN_LIMIT_MS)


def assert_clean_outputs(page: object) -> None:
    """No traceback, no widget that failed to render, every plotly figure drawn."""
    panel = page.locator(PANEL)
    stderr = panel.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
    tracebacks = [text for text in stderr.all_inner_texts() if "Traceback" in text]
    assert tracebacks == [], tracebacks[0][-3000:]
    assert "Error displaying widget" not in panel.inner_text()
    plotly = panel.locator(
        ".jp-OutputArea-output[data-mime-type='application/vnd.plotly.v1+json']")
    for figure in plotly.all():
        assert figure.locator(".main-svg").count() > 0, "a plotly figure was not drawn"


def test_start_here_runs_clean(page: object, jupyterlab: Lab) -> None:
    with screenshot_on_failure(page, jupyterlab, "00-start-here"):
        run_all_cells(page, jupyterlab, "00-start-here.ipynb")
        assert_clean_outputs(page)
        text = page.locator(PANEL).inner_text()
        assert "lab-1001-secret" in text  # the softphone settings table
        assert "No lab switch running" in text  # this test runs no make-lab switch


def test_parameters_notebook_and_the_editor_shows_the_registry_error(
        page: object, jupyterlab: Lab) -> None:
    name = "SS_SIP_AUTHENTICATION_TIMEOUT"
    with pytest.raises(ParameterError) as expected:
        REGISTRY[name].coerce(0)
    with screenshot_on_failure(page, jupyterlab, "01-parameters"):
        run_all_cells(page, jupyterlab, "01-parameters.ipynb")
        assert_clean_outputs(page)
        panel = page.locator(PANEL)
        assert panel.locator(".jupyter-widgets").count() > 0
        # the first editor's row for the parameter: its number field, typed into as a person
        row = panel.locator(".widget-hbox",
                            has=page.locator("b", has_text=re.compile(f"^{name}$"))).first
        field = row.locator("input").first
        field.fill("0")
        field.press("Enter")
        panel.get_by_text(str(expected.value), exact=True).first.wait_for(timeout=20_000)


def test_calls_notebook_runs_clean_with_its_ladder_and_figures(
        page: object, jupyterlab: Lab) -> None:
    with screenshot_on_failure(page, jupyterlab, "07-calls"):
        run_all_cells(page, jupyterlab, "07-calls.ipynb")
        assert_clean_outputs(page)
        panel = page.locator(PANEL)
        # three static figures (quality table, spectrograms, loss curve) and the live
        # ladder, a FigureWidget: four plotly plots drawn
        plots = panel.locator(".js-plotly-plot")
        assert plots.count() >= 4, f"{plots.count()} plotly plots"
        assert all(plot.locator(".main-svg").count() > 0 for plot in plots.all())
        text = panel.inner_text()
        assert "RTP out G729" in text and "RFC 2833 in, PT 96" in text  # media on the ladder
        assert "Allow codec conversion is off" in text  # the 488's Warning

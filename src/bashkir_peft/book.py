"""Assemble and build the Jupyter Book of a grid.

``bashkir-peft book GRID.yaml`` (and :func:`build_book`):

1. executes ``notebooks/05_report.ipynb`` with papermill (parameters: the grid and its runs
   folder) into ``book/generated/05_report.ipynb`` -- a failing cell fails the command;
2. copies the executed data-preparation notebook and the executed notebooks of every
   *finished* run from ``runs/<grid>/`` into ``book/generated/``, with one index page per run;
3. writes the method chapter's figures into ``book/generated/figures/``;
4. writes ``book/generated/_toc.yml``: the committed ``book/_toc.yml`` with the generated
   pages added as sections;
5. runs ``jupyter-book build`` strictly (``-W --keep-going``, full rebuild, notebooks rendered
   as executed, MathJax served from the book's own ``_static``) into a fresh folder that
   replaces ``book/_build/html/`` only on success (open ``book/_build/html/index.html``); a
   failed build removes the previous site, which would show older results.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from bashkir_peft.atomic import write_text_atomic
from bashkir_peft.errors import ConfigError
from bashkir_peft.grid.stages import STAGES, default_notebooks_dir, execute
from bashkir_peft.report.build import ReportParams, _abs
from bashkir_peft.report.runs import RunRecord, discover_runs
from bashkir_peft.report.teaching_figures import write_teaching_figures
from bashkir_peft.settings import REPO_ROOT
from bashkir_peft.yamlio import StrictModel, read_yaml

REPORT_NOTEBOOK = default_notebooks_dir() / STAGES["report"].notebook
RUNS_PAGE = "generated/runs/index"
DATA_PAGE = "data"


class BookError(RuntimeError):
    """The book did not build (a notebook failed to execute, or Sphinx reported a warning)."""


class BookParams(StrictModel):
    """Parameters of the book build.

    Attributes:
        grid: grid YAML (``params/grids/NAME.yaml``) or grid name.
        runs_dir: the grid's runs folder (default from the grid, ``runs/<name>``).
        book_dir: the book sources (``_config.yml``, ``_toc.yml``, pages).
        report_timeout_s: per-cell timeout when executing the report notebook.
        build: run ``jupyter-book build`` after assembling (False: assemble only).
    """

    grid: str = "params/grids/cpu-demo.yaml"
    runs_dir: str | None = None
    book_dir: str = "book"
    report_timeout_s: int = 600
    build: bool = True


def execute_report(grid: str, runs_dir: Path, out: Path, timeout_s: int = 600) -> Path:
    """Execute the report notebook with papermill into ``out``.

    Raises:
        BookError: a cell failed (the message names the error).
    """
    from papermill import PapermillExecutionError

    try:
        execute(REPORT_NOTEBOOK, out, {"grid": grid, "runs_dir": str(runs_dir)}, REPO_ROOT, timeout_s)
    except PapermillExecutionError as err:
        raise BookError(f"{REPORT_NOTEBOOK.name} failed to execute: {err.ename}: {err.evalue} "
                        f"(executed copy with the traceback: {out})") from None
    return out


def _source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def copy_notebook(src: Path, dst: Path, title: str) -> None:
    """Copy an executed notebook with ``# title`` as its page title.

    The notebook's own H1 (if its first markdown cell starts with one) becomes an italic
    subtitle: every run has notebooks of the same name, and the title says which run it is;
    a page without a title would be a Sphinx warning, and the strict build fails on warnings.
    """
    nb = json.loads(src.read_text(encoding="utf-8"))
    cells = nb.setdefault("cells", [])
    first = next((c for c in cells if c.get("cell_type") == "markdown"), None)
    text = _source(first).lstrip() if first else ""
    if text.startswith("# "):
        own, _, rest = text.partition("\n")
        first["source"] = f"# {title}\n\n*{own[2:].strip()}*\n{rest}"
    else:
        cell = {"cell_type": "markdown", "metadata": {}, "source": f"# {title}"}
        if (nb.get("nbformat", 4), nb.get("nbformat_minor", 0)) >= (4, 5):
            cell["id"] = "bashkir-peft-title"
        cells.insert(0, cell)
    write_text_atomic(dst, json.dumps(nb, ensure_ascii=False))


def _run_title(run: RunRecord) -> str:
    return f"{run.model} · {run.method_label}" + (f" · seed {run.seed}" if run.seed is not None else "")


NOTEBOOK_TITLES = {"01": "Data preparation", "02": "Training", "03": "Evaluation", "04": "Generation",
                   "06": "Downstream"}


def _nb_title(path: Path, run: RunRecord | None = None) -> str:
    t = NOTEBOOK_TITLES.get(path.name[:2], path.stem.replace("_", " "))
    return f"{t}: {_run_title(run)}" if run else t


def _table(header: str, values: dict) -> str:
    rows = "\n".join(f"| `{k}` | `{v}` |" for k, v in values.items() if v is not None and not isinstance(v, (dict, list)))
    return f"| {header} | value |\n|---|---|\n{rows}\n"


def _run_page(run: RunRecord) -> str:
    """A run's index page: its axes (cell record) and training parameters (training record)."""
    page = (f"# {_run_title(run)}\n\nRun id `{run.run_id}`; folder `{run.path}`.\n\n"
            + _table("axis", run.cell.params.model_dump()))
    if run.train is not None:
        page += "\n" + _table("training parameter", dict(sorted(run.train.params.items())))
    return page


def assemble_runs(runs: list[RunRecord], gen: Path) -> list[dict]:
    """Pages of the finished runs: ``generated/runs/<run_id>/index.md`` + its notebooks.

    Returns:
        The toc sections (one per run, with the run's notebooks as sub-sections).
    """
    sections = []
    finished = [r for r in runs if r.status == "finished"]
    lines = ["# Runs\n", "The executed notebooks of every finished run of the grid, as papermill left them "
             "(nothing re-executed for the book). Failed runs are listed in the results chapter.\n",
             "| run | model | method | seed |", "|---|---|---|---|"]
    for run in finished:
        d = gen / "runs" / run.run_id
        subs = []
        for nb in run.notebooks():
            copy_notebook(nb, d / nb.name, _nb_title(nb, run))
            subs.append({"file": f"generated/runs/{run.run_id}/{nb.stem}"})
        write_text_atomic(d / "index.md", _run_page(run))
        entry = {"file": f"generated/runs/{run.run_id}/index"}
        if subs:
            entry["sections"] = subs
        sections.append(entry)
        lines.append(f"| [{run.run_id}]({run.run_id}/index.md) | {run.model} | {run.method_label} | "
                     f"{'' if run.seed is None else run.seed} |")
    if not finished:
        lines.append("| (no finished run yet) | | | |")
    write_text_atomic(gen / "runs" / "index.md", "\n".join(lines) + "\n")
    return sections


def assemble_data(runs_dir: Path, gen: Path) -> list[dict]:
    """The executed data-preparation notebook of the grid, if any.

    Returns:
        The toc sections (empty without a data-preparation notebook).
    """
    sections = []
    nbs = sorted((p for p in runs_dir.rglob("01_data_prep*.ipynb")
                  if not any(part.startswith(".") for part in p.relative_to(runs_dir).parts)),
                 key=lambda p: (len(p.relative_to(runs_dir).parts), str(p)))
    if nbs:
        copy_notebook(nbs[0], gen / "data" / "01_data_prep.ipynb", "Data preparation (executed)")
        sections.append({"file": "generated/data/01_data_prep"})
    return sections


def write_toc(book_dir: Path, gen: Path, extra: dict[str, list[dict]]) -> Path:
    """``generated/_toc.yml`` = ``book/_toc.yml`` with ``extra[file]`` added as the sections of
    the entry of that ``file``."""
    toc = read_yaml(book_dir / "_toc.yml")

    def walk(node):
        if isinstance(node, dict):
            if node.get("file") in extra and extra[node["file"]]:
                node["sections"] = list(node.get("sections", [])) + extra[node["file"]]
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(toc)
    out = gen / "_toc.yml"
    write_text_atomic(out, "# Generated by `bashkir-peft book` from book/_toc.yml: do not edit.\n"
                       + yaml.safe_dump(toc, sort_keys=False, allow_unicode=True))
    return out


def site_dir(book_dir: Path) -> Path:
    """The built site: ``book_dir/_build/html``."""
    return book_dir / "_build" / "html"


def jupyter_book_build(book_dir: Path, toc: Path) -> Path:
    """Strict full build (``-W --keep-going --all``) into a fresh folder that replaces the site
    only when the build succeeded, so the site never keeps pages of an earlier build (runs no
    longer in the grid).

    Returns:
        ``book_dir/_build/html/index.html``.

    Raises:
        BookError: jupyter-book exited non-zero (the warnings/errors are in the message).
    """
    exe = Path(sys.executable).parent / "jupyter-book"
    staging = book_dir / "_build" / f".staging-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    cmd = [str(exe) if exe.exists() else "jupyter-book", "build", str(book_dir), "--toc", str(toc),
           "--path-output", str(staging), "--all", "-W", "--keep-going"]
    env = {**os.environ, "PYDEVD_DISABLE_FILE_VALIDATION": "1"}
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            out = (proc.stdout + proc.stderr).splitlines()
            problems = [ln for ln in out if "WARNING" in ln or "ERROR" in ln] or out[-20:]
            raise BookError("jupyter-book build failed (strict: warnings are errors):\n" + "\n".join(problems[:40]))
        site = site_dir(book_dir)
        shutil.rmtree(site, ignore_errors=True)
        os.replace(staging / "_build" / "html", site)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return site / "index.html"


def copy_sources(dst: str | Path, book_dir: str | Path = REPO_ROOT / "book") -> Path:
    """Copy the book's sources (not ``_build`` nor ``generated``) to ``dst``, e.g. to build a
    book from test runs without touching the checkout's ``book/``. Returns ``dst``."""
    shutil.copytree(book_dir, dst, ignore=shutil.ignore_patterns("_build", "generated"))
    return Path(dst)


def build_book(params: BookParams) -> Path:
    """Assemble ``book/generated/`` from a grid's runs and build the book.

    Returns:
        The built ``index.html`` (or the generated toc when ``params.build`` is False).

    Raises:
        ConfigError: bad grid argument, no runs folder (DataError) or no ``book/_toc.yml``.
        BookError: the report notebook failed, or the strict build reported a warning; the
            previous site (``_build/html``), which would show older results, is removed then.
    """
    _, runs_dir = ReportParams(grid=params.grid, runs_dir=params.runs_dir).grid_runs  # validated before heavy work
    book_dir = _abs(params.book_dir)
    if not (book_dir / "_toc.yml").is_file():
        raise ConfigError(f"{book_dir}: no _toc.yml (book_dir must be the book's source folder)")
    runs = discover_runs(runs_dir)
    gen = book_dir / "generated"
    if gen.exists():
        shutil.rmtree(gen)
    gen.mkdir(parents=True)
    try:
        execute_report(params.grid, runs_dir, gen / "05_report.ipynb", params.report_timeout_s)
        write_teaching_figures(gen / "figures")
        extra = {RUNS_PAGE: assemble_runs(runs, gen), DATA_PAGE: assemble_data(runs_dir, gen)}
        toc = write_toc(book_dir, gen, extra)
        if not params.build:
            return toc
        return jupyter_book_build(book_dir, toc)
    except BookError as err:
        site = site_dir(book_dir)
        if params.build and site.exists():
            shutil.rmtree(site)
            raise BookError(f"{err}\n(the previous site {site} showed older results and was removed)") from None
        raise

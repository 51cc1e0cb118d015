"""Assemble and build the Jupyter Book of a grid.

``bashkir-peft book GRID.yaml`` (and :func:`build_book`):

1. executes ``notebooks/05_report.ipynb`` with papermill (parameters: the grid and its runs
   folder) into ``book/generated/05_report.ipynb`` -- a failing cell fails the command;
   writes ``book/generated/built_from.md``, the introduction's paragraph on which grid built
   this copy of the book;
2. copies the executed data-preparation notebook and the executed notebooks of every
   *finished* run from ``runs/<grid>/`` into ``book/generated/``, with one index page per run,
   and writes the data chapter's page on the grid's adapted tokenizers (once a run of one finished);
3. writes the method chapter's figures into ``book/generated/figures/``, and copies the
   executed lessons (``make lessons``: ``<runs root>/lessons/``) into
   ``book/generated/lessons/`` with an index page (launch links from ``repository.url`` in
   ``_config.yml``, when set);
4. writes ``book/generated/_toc.yml``: the committed ``book/_toc.yml`` with the generated
   pages added as sections;
5. runs ``jupyter-book build`` strictly (``-W --keep-going``, full rebuild, notebooks rendered
   as executed, MathJax served from the book's own ``_static``) into a fresh folder that
   replaces ``book/_build/html/`` only on success (open ``book/_build/html/index.html``); a
   failed build removes the previous site, which would show older results.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from bashkir_peft.atomic import write_text_atomic
from bashkir_peft.config.book import BookParams
from bashkir_peft.config.grid import report_dirs, study_design
from bashkir_peft.config.report import ReportParams
from bashkir_peft.errors import ConfigError
from bashkir_peft.executor import default_notebooks_dir, execute
from bashkir_peft.lessons import lesson_notebooks, lessons_out_dir
from bashkir_peft.names import ADAPTER_METHODS
from bashkir_peft.pagepaths import machine_folders, scrub, scrub_notebook
from bashkir_peft.report.bundle import bundle_archives, extract_bundles
from bashkir_peft.report.runs import RunRecord, discover_runs, index_gaps, with_arms
from bashkir_peft.report.teaching_figures import write_teaching_figures
from bashkir_peft.report.tokenizers import adapted_tokenizers_page, retokenization_table
from bashkir_peft.report.views import grid_note
from bashkir_peft.settings import REPO_ROOT, resolve_path, runs_root
from bashkir_peft.stages import STAGES
from bashkir_peft.yamlio import read_yaml

REPORT_NOTEBOOK = default_notebooks_dir() / STAGES["report"].notebook
RUNS_PAGE = "generated/runs/index"
DATA_PAGE = "data"
LESSONS_PAGE = "generated/lessons/index"


class BookError(RuntimeError):
    """The book did not build (a notebook failed to execute, or Sphinx reported a warning)."""


def execute_report(grid: str, runs_dir: Path, out: Path, timeout_s: int = 600) -> Path:
    """Execute the report notebook with papermill into ``out``, its parameters shown once
    (folded) above the findings.

    Raises:
        BookError: a cell failed (the message names the error).
    """
    from papermill import PapermillExecutionError

    try:
        execute(REPORT_NOTEBOOK, out, {"grid": grid, "runs_dir": str(runs_dir)}, REPO_ROOT, timeout_s)
    except PapermillExecutionError as err:
        raise BookError(f"{REPORT_NOTEBOOK.name} failed to execute: {err.ename}: {err.evalue} "
                        f"(executed copy with the traceback: {out})") from None
    nb = json.loads(out.read_text(encoding="utf-8"))
    _parameters_once(nb)
    write_text_atomic(out, json.dumps(nb, ensure_ascii=False))
    return out


def _source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def _parameters_once(nb: dict) -> list[dict]:
    """Leave out the cell of default parameters where papermill injected values below it, and
    fold the injected cell's source (the page shows what ran, not how it was called).
    Returns the notebook's cells (changed in place)."""
    cells = nb.setdefault("cells", [])
    tags = [set(c.get("metadata", {}).get("tags", [])) for c in cells]
    if any("injected-parameters" in t for t in tags):
        cells[:] = [c for c, t in zip(cells, tags) if "parameters" not in t]
        for c in cells:
            own = c.setdefault("metadata", {}).setdefault("tags", [])
            if "injected-parameters" in own and "hide-input" not in own:
                own.append("hide-input")
    return cells


def copy_notebook(src: Path, dst: Path, title: str) -> None:
    """Copy an executed notebook with ``# title`` as its page title.

    The notebook's own H1 (if its first markdown cell starts with one) becomes an italic
    subtitle: every run has notebooks of the same name, and the title says which run it is;
    a page without a title would be a Sphinx warning, and the strict build fails on warnings.
    Parameters are shown once: where papermill injected values, the cell of defaults above
    them is left out.
    """
    nb = json.loads(src.read_text(encoding="utf-8"))
    cells = _parameters_once(nb)
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
    """``<stage>: <run>``; an evaluation is titled by its protocol (papermill's parameters)."""
    t = NOTEBOOK_TITLES.get(path.name[:2], path.stem.replace("_", " "))
    if path.name.startswith("03"):
        meta = json.loads(path.read_text(encoding="utf-8")).get("metadata", {}).get("papermill", {})
        protocol = (meta.get("parameters") or {}).get("protocol")
        t += f" ({protocol} protocol)" if protocol else ""
    return f"{t}: {_run_title(run)}" if run else t


def _table(header: str, values: dict) -> str:
    rows = "\n".join(f"| `{k}` | `{v}` |" for k, v in values.items() if v is not None and not isinstance(v, (dict, list)))
    return f"| {header} | value |\n|---|---|\n{rows}\n"


# Training parameters shown first on a run page (all of them follow, folded); LoRA's only
# for the methods that have adapters.
KEY_TRAIN_PARAMS = ("max_steps", "train_bytes", "block_size", "per_device_train_batch_size", "gradient_accumulation_steps",
                    "lr_scheduler_type", "warmup_ratio", "weight_decay", "seed")
LORA_PARAMS = ("lora_r", "lora_alpha", "lora_dropout", "target_modules")


def _results_lines(run: RunRecord) -> list[str]:
    if run.eval is None:
        return ["No evaluation record."]
    lines = ["| evaluation | documents | bits per byte | bits per word | token perplexity |", "|---|---|---|---|---|"]
    for key, entry in sorted(run.eval.evaluations.items()):
        m = entry.metrics
        bits_per_word = m.nll / (math.log(2) * m.words) if m.words else float("nan")
        lines.append(f"| {entry.protocol} protocol, {entry.split} | {m.documents} | {m.bits_per_byte:.3f} | "
                     f"{bits_per_word:.1f} | {m.perplexity:,.1f} |")
    return lines


def _cost_lines(run: RunRecord) -> list[str]:
    t = run.train
    if t is None or t.cost is None:
        return ["No training (zero-shot)." if run.method == "base" else "No finished training record."]
    speed = f" ({t.tokens_per_s:,.0f} tokens/s)" if t.tokens_per_s else ""
    seen = t.text_seen
    text = "" if seen is None else f" ({seen / 1000:,.1f} kB of training text)"
    lines = [f"- {t.global_step} steps, {t.tokens_seen:,} tokens seen{text}, {t.cost.wall_time_s / 60:.1f} minutes{speed}",
             f"- trained {t.trainable_params / 1e6:.2f} M of {t.total_params / 1e6:.1f} M parameters "
             f"({100 * (t.trainable_share or 0):.2f} %)",
             f"- peak memory {t.cost.peak_rss_mib:,.0f} MiB (process)"
             + (f", {t.cost.peak_gpu_mib:,.0f} MiB (GPU)" if t.cost.peak_gpu_mib else "")]
    return lines


def _run_page(run: RunRecord) -> str:
    """A run's index page: its results and cost first, then the training parameters that
    matter for its method (the learning rate actually used included), then all of them."""
    lines = [f"# {_run_title(run)}", "", f"Run id `{run.run_id}` (its folder in the grid's runs folder).", "",
             "## Results", "", *_results_lines(run), "",
             "Bits per byte and bits per word compare across tokenizers; token perplexity does not.", "",
             "## Cost", "", *_cost_lines(run), ""]
    t = run.train
    if t is not None:
        recorded = t.params.model_dump(exclude_unset=True)  # train_bytes: only when set
        key = {"learning rate (used)": t.params.learning_rate, "optimizer": t.optimizer,
               "compute dtype": t.compute_dtype}
        names = KEY_TRAIN_PARAMS + (LORA_PARAMS if run.method in ADAPTER_METHODS else ())
        key.update({k: recorded[k] for k in names if k in recorded})
        if run.method in ADAPTER_METHODS and t.target_modules:
            key["target_modules"] = ", ".join(t.target_modules)  # as used (the registry's when not given)
        lines += ["## Training parameters that matter for this method", "", _table("parameter", key),
                  ":::{admonition} All training parameters", ":class: dropdown", "",
                  _table("training parameter", dict(sorted(recorded.items()))), ":::", ""]
    return "\n".join(lines)


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


def assemble_data(runs_dir: Path, gen: Path, runs: list[RunRecord] = ()) -> list[dict]:
    """The executed data-preparation notebook of the grid, if any, and the page on its adapted
    tokenizers once a run of one has finished (``generated/data/adapted_tokenizers.md``,
    :func:`~bashkir_peft.report.tokenizers.adapted_tokenizers_page`: they are built by training,
    after the data card was written).

    Args:
        runs_dir: the grid's runs folder.
        gen: the book's ``generated/`` folder.
        runs: the grid's runs (:func:`~bashkir_peft.report.runs.discover_runs`).

    Returns:
        The toc sections (empty without a data-preparation notebook or an adapted tokenizer).
    """
    sections = []
    nbs = sorted((p for p in runs_dir.rglob("01_data_prep*.ipynb")
                  if not any(part.startswith(".") for part in p.relative_to(runs_dir).parts)),
                 key=lambda p: (len(p.relative_to(runs_dir).parts), str(p)))
    if nbs:
        copy_notebook(nbs[0], gen / "data" / "01_data_prep.ipynb", "Data preparation (executed)")
        sections.append({"file": "generated/data/01_data_prep"})
    page = adapted_tokenizers_page(retokenization_table(list(runs)))
    if page:
        write_text_atomic(gen / "data" / "adapted_tokenizers.md", page)
        sections.append({"file": "generated/data/adapted_tokenizers"})
    return sections


REPOSITORY_ENV = "BASHKIR_PEFT_REPOSITORY_URL"
"""The repository's public URL when ``_config.yml`` leaves ``repository.url`` empty: the
publishing workflow sets it (``https://github.com/<owner>/<name>``), so the published
lessons carry launch links without an owner written into the sources."""


def launch_links(repository: dict, notebook: str) -> str:
    """Markdown links that open ``notebook`` (a path in the repository) in Binder and Colab.

    Args:
        repository: ``_config.yml``'s ``repository`` mapping (``url`` of a GitHub
            repository, ``branch``); without a ``url`` no links.

    Returns:
        ``"[Binder](...) · [Colab](...)"`` or ``""``.
    """
    url = (repository or {}).get("url", "").rstrip("/")
    if not url.startswith("https://github.com/"):
        return ""
    slug, branch = url.removeprefix("https://github.com/"), repository.get("branch") or "main"
    return (f"[Binder](https://mybinder.org/v2/gh/{slug}/{branch}?labpath={notebook}) · "
            f"[Colab](https://colab.research.google.com/github/{slug}/blob/{branch}/{notebook})")


def _lesson_title(nb: Path) -> str:
    cells = json.loads(nb.read_text(encoding="utf-8")).get("cells", [])
    first = next((_source(c) for c in cells if c.get("cell_type") == "markdown"), "# " + nb.stem)
    return first.lstrip().partition("\n")[0].removeprefix("# ").strip()


def _with_launch_line(src: Path, dst: Path, line: str) -> None:
    """Copy an executed lesson with ``line`` (where to open it) as a markdown cell below its
    first cell (its title)."""
    nb = json.loads(src.read_text(encoding="utf-8"))
    cell = {"cell_type": "markdown", "metadata": {}, "source": line}
    if (nb.get("nbformat", 4), nb.get("nbformat_minor", 0)) >= (4, 5):
        cell["id"] = "bashkir-peft-launch"
    nb.setdefault("cells", []).insert(1, cell)
    write_text_atomic(dst, json.dumps(nb, ensure_ascii=False))


def assemble_lessons(lessons_dir: Path, book_dir: Path, gen: Path) -> list[dict]:
    """The lessons part: ``generated/lessons/index.md`` and the executed lessons found in
    ``lessons_dir`` (copied as executed, with a line saying where to open them; a lesson not
    executed there is listed, not shown).

    Each lesson is named by its path in the repository and, where the repository's public URL
    is known (``repository.url`` in ``_config.yml``, else ``$BASHKIR_PEFT_REPOSITORY_URL``),
    with its Binder and Colab launch links (:func:`launch_links`).

    Returns:
        The toc sections (one per executed lesson).
    """
    config = yaml.safe_load((book_dir / "_config.yml").read_text(encoding="utf-8")) or {}
    repository = dict(config.get("repository") or {})
    if not repository.get("url") and os.environ.get(REPOSITORY_ENV):
        repository["url"] = os.environ[REPOSITORY_ENV]
    lines = ["# Lessons\n",
             "Short notebooks that teach one idea each, on Bashkir, on a laptop CPU in at most five "
             "minutes; each ends with an exercise and a hidden solution. The [teacher's page](../../teaching.md) "
             "says which to use in a class and how students run them.\n",
             "| lesson | in this book | open it |", "|---|---|---|"]
    sections = []
    for nb in lesson_notebooks():
        executed = lessons_dir / nb.name
        title = _lesson_title(nb)
        path = f"lessons/{nb.name}"
        links = " · ".join(x for x in (launch_links(repository, path), f"`{path}`") if x)
        if executed.is_file():
            _with_launch_line(executed, gen / "lessons" / nb.name, f"*Open this lesson:* {links}")
            sections.append({"file": f"generated/lessons/{nb.stem}"})
            lines.append(f"| {title} | [executed]({nb.name}) | {links} |")
        else:
            lines.append(f"| {title} | not executed for this copy (`make lessons`) | {links} |")
    write_text_atomic(gen / "lessons" / "index.md", "\n".join(lines) + "\n")
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


STAGING_PREFIX = ".staging-"
"""Prefix of a build's staging folder under ``_build/``, followed by the building process's id."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def remove_orphaned_staging(book_dir: Path) -> list[str]:
    """Remove the staging folders of builds whose process is gone (killed: nothing cleaned
    them). Returns their names."""
    gone = []
    for d in (Path(book_dir) / "_build").glob(f"{STAGING_PREFIX}*"):
        pid = d.name[len(STAGING_PREFIX):]
        if d.is_dir() and pid.isdigit() and not _pid_alive(int(pid)):
            shutil.rmtree(d, ignore_errors=True)
            gone.append(d.name)
    return gone


def jupyter_book_build(book_dir: Path, toc: Path) -> Path:
    """Strict full build (``-W --keep-going --all``) into a fresh folder that replaces the site
    only when the build succeeded, so the site never keeps pages of an earlier build (runs no
    longer in the grid). Staging folders of killed builds are removed first
    (:func:`remove_orphaned_staging`).

    Returns:
        ``book_dir/_build/html/index.html``.

    Raises:
        BookError: jupyter-book exited non-zero (the warnings/errors are in the message).
    """
    exe = Path(sys.executable).parent / "jupyter-book"
    remove_orphaned_staging(book_dir)
    staging = book_dir / "_build" / f"{STAGING_PREFIX}{os.getpid()}"
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


def extract_from_bundle(params: BookParams) -> BookParams:
    """Extract ``params.from_bundle`` (an archive, or a folder of one grid's bundles: their
    union) and return the parameters that build from it.

    The grid's folder is ``params.runs_dir``, default ``<runs root>/from-bundle/<grid>``. Where
    the grid file's study names a learning-rate sweep (``study.learning_rate_sweep``) and the
    source is a folder of bundles (``results/<grid>/``) with a folder of the sweep's bundles
    beside it (``results/<sweep>/``), those are extracted beside the grid's folder
    (``<grid folder>/../<sweep>``), where the report reads the sweep
    (:func:`~bashkir_peft.report.cost.sweep_runs_dir`); without that folder the book has no
    sweep, as a study whose sweep never ran.

    Raises:
        ConfigError: the bundles are of another grid (the sweep's, of another than the sweep);
        DataError: a bad bundle, bundles that do not make one grid, or a destination that holds
            something other than an extracted bundle (e.g. a trained sweep; see
            :func:`~bashkir_peft.report.bundle.extract_bundles`).
    """
    name, _, _ = report_dirs(ReportParams(grid=params.grid))
    dest = resolve_path(params.runs_dir) if params.runs_dir else runs_root() / "from-bundle" / name
    source = resolve_path(params.from_bundle)
    _extract(source, dest, name)
    design = study_design(params.grid)
    sweep = design.learning_rate_sweep if design is not None else None
    if sweep is not None and source.is_dir() and (source.parent / sweep).is_dir():
        _extract(source.parent / sweep, dest.parent / sweep, sweep)
    return params.model_copy(update={"runs_dir": str(dest), "from_bundle": None})


def _extract(source: Path, dest: Path, name: str) -> None:
    """Extract the bundles of ``source`` (:func:`~bashkir_peft.report.bundle.bundle_archives`)
    into ``dest``; ConfigError unless they are of grid ``name``."""
    bundled = extract_bundles(bundle_archives(source), dest)
    if bundled != name:
        raise ConfigError(f"{source}: a bundle of grid {bundled!r}, not {name!r}")


def scrub_generated(gen: Path, folders: list[tuple[str, str]]) -> None:
    """Replace the folders of this machine in every generated page and notebook (parameters
    papermill injected, printed parameters, run pages) by names a reader can use
    (:func:`~bashkir_peft.pagepaths.scrub`); the runs folder keeps its records as written."""
    for path in sorted(gen.rglob("*")):
        if path.suffix == ".md" and path.is_file():
            text = path.read_text(encoding="utf-8")
            if scrub(text, folders) != text:
                write_text_atomic(path, scrub(text, folders))
        elif path.suffix == ".ipynb" and path.is_file():
            nb = json.loads(path.read_text(encoding="utf-8"))
            write_text_atomic(path, json.dumps(scrub_notebook(nb, folders), ensure_ascii=False))


BUILT_FROM = "built_from.md"
"""The generated paragraph the introduction includes: which grid built this copy of the book."""


def built_from(grid: str, runs: list[RunRecord], gaps: list[dict] = ()) -> str:
    """The introduction's paragraph on this copy of the book: the grid that built it, how many
    of its cells finished (of its runs and its index's cells without a readable run, ``gaps``:
    :func:`~bashkir_peft.report.runs.index_gaps`), and what kind of grid it is
    (:func:`~bashkir_peft.report.views.grid_note`)."""
    name, _, _ = report_dirs(ReportParams(grid=grid))
    done = sum(r.status == "finished" for r in runs)
    return (f"**This copy of the book** was built from the grid `{name}` ({done} of {len(runs) + len(gaps)} runs "
            "finished); "
            f"its results chapter opens with what they found.\n\n{grid_note(grid)}\n")


def build_book(params: BookParams) -> Path:
    """Assemble ``book/generated/`` from a grid's runs and build the book.

    Returns:
        The built ``index.html`` (or the generated toc when ``params.build`` is False).

    Raises:
        ConfigError: bad grid argument, no runs folder (DataError), no ``book/_toc.yml``,
            or a bad results bundle.
        BookError: the report notebook failed, or the strict build reported a warning; the
            previous site (``_build/html``), which would show older results, is removed then.
    """
    if params.from_bundle:
        params = extract_from_bundle(params)
    _, runs_dir, _ = report_dirs(ReportParams(grid=params.grid, runs_dir=params.runs_dir))  # validated before heavy work
    book_dir = resolve_path(params.book_dir)
    if not (book_dir / "_toc.yml").is_file():
        raise ConfigError(f"{book_dir}: no _toc.yml (book_dir must be the book's source folder)")
    design = study_design(params.grid)
    runs = discover_runs(runs_dir)
    runs = with_arms(runs, design.label_arms) if design is not None else runs
    gen = book_dir / "generated"
    if gen.exists():
        shutil.rmtree(gen)
    gen.mkdir(parents=True)
    try:
        execute_report(params.grid, runs_dir, gen / "05_report.ipynb", params.report_timeout_s)
        write_text_atomic(gen / BUILT_FROM, built_from(params.grid, runs, index_gaps(runs_dir)))
        write_teaching_figures(gen / "figures")
        (gen / "lessons").mkdir()
        lessons_dir = resolve_path(params.lessons_dir) if params.lessons_dir else lessons_out_dir()
        extra = {RUNS_PAGE: assemble_runs(runs, gen), DATA_PAGE: assemble_data(runs_dir, gen, runs),
                 LESSONS_PAGE: assemble_lessons(lessons_dir, book_dir, gen)}
        toc = write_toc(book_dir, gen, extra)
        scrub_generated(gen, machine_folders(runs_dir))
        if not params.build:
            return toc
        return jupyter_book_build(book_dir, toc)
    except Exception as err:  # a failed build, and also a kernel that died: no site of older results stays
        site = site_dir(book_dir)
        if params.build and site.exists():
            shutil.rmtree(site)
            if isinstance(err, BookError):
                raise BookError(f"{err}\n(the previous site {site} showed older results and was removed)") from None
        raise

"""Run a grid: data prep once, then train -> evaluate -> generate -> downstream for every cell.

Layout (``runs/<grid>/``)::

    data/                   data-prep output (train/validation/test.parquet, manifest.json)
    01_data_prep.ipynb      the executed data-prep notebook
    data_prep.json          data-prep status: corpus, settings, fingerprint (or the error)
    <run_id>/               one folder per cell:
        grid_cell.json      the runner's record: status, axes, parameters, identity, stages,
                            error (stage, notebook cell, exception) of a failed cell
        notebooks/          the executed notebooks 02_train, 03_evaluate, 04_generate, 06_downstream
        train.json, final/, checkpoints/, eval.json, generate.json ...  (the stages' own)
    grid.json               index of the grid's current cells and their status
    .locks/                 one lock file per cell (and one for data prep)
    .replaced/              run folders moved aside by --force (nothing is deleted)

Behaviour: a finished cell is skipped (unless ``force``); an interrupted cell resumes
(finished stages are not rerun; the training notebook resumes from its checkpoint in
the same output folder); a cell whose lock another process holds is left to it; a
failing cell is recorded with the failing notebook cell's error and the others go on.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from bashkir_peft import settings
from bashkir_peft.cellstate import (
    CellState,
    cell_state,
    check_files,
    is_locked,
    left_out_on_purpose,
    lock_path,
    scan,
    stamp,
)
from bashkir_peft.config.grid import Cell, Grid, expand, select
from bashkir_peft.data.corpus import HUB_PREFIX
from bashkir_peft.data.folder import read_manifest
from bashkir_peft.errors import ConfigError, DataError
from bashkir_peft.executor import check_kernel, default_notebooks_dir, execute, notebook_parameters
from bashkir_peft.grid.estimate import cells_on_this_cpu, estimate_grid
from bashkir_peft.grid.inputs import check_inputs
from bashkir_peft.grid.locks import try_lock
from bashkir_peft.grid.plan import plan_grid
from bashkir_peft.grid.progress import StepWatcher
from bashkir_peft.grid.runids import identity, make_run_id, params_hash
from bashkir_peft.grid.stages import RUN_DIR, Unit, build_parameters
from bashkir_peft.grid.values import write_values
from bashkir_peft.models.loading import resolve_model
from bashkir_peft.records import (
    CellRecord,
    DataPrepRecord,
    Failure,
    GridFiles,
    GridIndex,
    IndexData,
    RecordError,
    RunFiles,
    read_record,
    read_record_if_any,
    write_record,
)
from bashkir_peft.settings import REPO_ROOT
from bashkir_peft.stages import CELL_STAGES, STAGE_SECTIONS, STAGES
from bashkir_peft.yamlio import PASSES

LOCK_WAIT_S = 2.0
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class StageFailed(Exception):
    """Data preparation failed: no cell can run (the message holds the notebook's error)."""


def grid_dir(grid: Grid | str, runs_root: str | Path | None = None) -> Path:
    """``<runs_root>/<grid name>``: where a grid's data, runs and index live."""
    name = grid if isinstance(grid, str) else grid.name
    return Path(runs_root or settings.runs_root()) / name


def _external_passes(entry: dict, where: str) -> list[dict[str, Any]]:
    """The evaluation passes of one entry of a grid's ``external_sets``: ``{"external": set}``
    under the stage's protocol, or, where the entry lists ``protocols`` (a grid key, not a
    field of the set), one pass per protocol (``{"external": set, "protocol": p}``; e.g.
    FLORES-200 under ``rolling`` and ``goldfish``). Raises :class:`ConfigError` for a
    ``protocols`` that is not a non-empty list of names."""
    entry = dict(entry)
    protocols = entry.pop("protocols", None)
    if protocols is None:
        return [{"external": entry}]
    if not isinstance(protocols, list) or not protocols or not all(isinstance(p, str) for p in protocols):
        raise ConfigError(f"{where}: external set {entry.get('name')!r}: protocols must be a non-empty list of "
                          f"protocol names (rolling, paper, goldfish)")
    return [{"external": entry, "protocol": p} for p in protocols]


def resolve_corpus(corpus: str | None, hint: str | None = None) -> str:
    """Check the required corpus setting: a local file/folder (made absolute) or ``hub:ID``.

    Raises:
        ConfigError: not given (no fallback), or a local path that does not exist.
    """
    if not corpus or not str(corpus).strip():
        example = f" (this grid suggests {hint})" if hint else ""
        raise ConfigError("the corpus is required: --corpus PATH (a .jsonl/.jsonl.gz/.parquet file or folder) "
                          f"or --corpus hub:OWNER/NAME{example}; make demo CORPUS=...")
    corpus = str(corpus).strip()
    if corpus.startswith(HUB_PREFIX):
        if not re.fullmatch(r"[\w.-]+/[\w.-]+", corpus[len(HUB_PREFIX):]):
            raise ConfigError(f"--corpus {corpus}: expected hub:OWNER/NAME")
        return corpus
    path = Path(corpus).expanduser()
    if not path.exists():
        raise ConfigError(f"--corpus {corpus}: no such file or folder (for a Hub dataset write hub:OWNER/NAME)")
    return str(path.resolve())


def corpus_identity(corpus: str) -> object:
    """What identifies the corpus's content cheaply: the Hub id, or the local files'
    names, sizes and modification times (a changed file means new data prep)."""
    if corpus.startswith(HUB_PREFIX):
        return corpus
    path = Path(corpus)
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return [corpus, [(str(p.relative_to(path.parent)), p.stat().st_size, p.stat().st_mtime_ns) for p in files]]


def notebook_error(err: BaseException, stage: str, notebook: Path) -> Failure:
    """A failure as the cell and data-prep records store it: one-line ``error`` plus details.

    For papermill's ``PapermillExecutionError`` the details are the failing notebook
    cell (index, execution count), the exception name and value, and the traceback's tail.
    """
    from papermill.exceptions import PapermillExecutionError

    out: dict[str, Any] = {"stage": stage, "notebook": str(notebook)}
    if isinstance(err, PapermillExecutionError):
        tb = [_ANSI.sub("", line) for line in (err.traceback or [])]
        out.update(cell_index=err.cell_index, exec_count=err.exec_count, ename=err.ename,
                   evalue=_ANSI.sub("", str(err.evalue)), traceback="\n".join(tb)[-4000:])
    else:
        out.update(ename=type(err).__name__, evalue=str(err))
    first = str(out["evalue"]).strip().splitlines()[0] if str(out["evalue"]).strip() else ""
    out["error"] = f"{stage}: {out['ename']}: {first}".rstrip(": ")
    return Failure(**out)


@dataclass
class Planned:
    """A cell with everything needed to run it."""

    cell: Cell
    revision: str
    run_id: str | None = None
    run_dir: Path | None = None
    units: list[Unit] | None = None
    """Its notebook executions (:meth:`GridRun.units`), validated once when planned."""


@dataclass
class CellResult:
    """Outcome of one cell in this invocation.

    ``status``: finished (ran now), skipped (finished before), failed, locked (another
    process holds it), pending (dry run).
    """

    planned: Planned
    status: str
    wall_time_s: float = 0.0
    error: str | None = None


@dataclass
class GridRun:
    """Everything a grid invocation needs (validated up front by :func:`plan`)."""

    grid: Grid
    corpus: str | None
    root: Path
    notebooks: Path
    declared: dict[str, dict] = field(default_factory=dict)
    cells: list[Planned] = field(default_factory=list)
    fingerprint: str | None = None

    @property
    def data_dir(self) -> Path:
        return self.root / GridFiles.DATA

    def notebook(self, stage: str) -> Path:
        return self.notebooks / STAGES[stage].notebook

    def runner_values(self, stage: str, p: Planned) -> dict[str, Any]:
        """Paths and axes a stage notebook receives (left out where None or undeclared).

        Training gets the model, method, rank and seed and writes into the run folder.
        Evaluation and generation of a trained cell get the run folder (``run_dir``); of a
        ``base`` cell, the base ``model`` (never both); both write into the run folder.
        """
        c = p.cell
        run_dir = str(p.run_dir) if p.run_dir else RUN_DIR
        of_run = c.trains and stage != "train"
        return {
            "model": None if of_run else c.model,
            "method": c.method if stage == "train" else None,
            "lora_r": c.lora_r if stage == "train" else None,
            "seed": c.seed,
            "data_dir": str(self.data_dir),
            "output_dir": run_dir,
            "run_dir": run_dir if of_run else None,
        }

    def stage_passes(self, p: Planned, stage: str) -> tuple[dict[str, Any], list[dict[str, Any]] | None]:
        """A stage's settings of cell ``p`` without its pass lists, and its passes: ``None``
        for a stage that runs once, else one settings mapping per pass (the ``passes`` of the
        grid, then ``{"external": set}`` per entry of the evaluation's ``external_sets``, one
        per protocol where the entry lists ``protocols``: :func:`_external_passes`).
        Raises :class:`ConfigError` for a malformed list."""
        settings = dict(p.cell.params.get(stage, {}))
        passes = settings.pop("passes", None)
        where = f"{self.grid.path or self.grid.name}: cell {p.cell.slug}: {stage}"
        if passes is not None and (not isinstance(passes, list) or not passes
                                   or not all(isinstance(x, dict) for x in passes)):
            raise ConfigError(f"{where}: passes must be a non-empty list of settings mappings")
        external = settings.pop("external_sets", None) if stage == "evaluate" else None
        if external is not None:
            if not isinstance(external, list) or not all(isinstance(x, dict) for x in external):
                raise ConfigError(f"{where}: external_sets must be a list of external set mappings "
                                  "(name, path, format ...)")
            passes = (passes or [{}]) + [q for x in external for q in _external_passes(x, where)]
        return settings, passes

    def units(self, p: Planned) -> list[Unit]:
        """The notebook executions of a cell (:class:`~bashkir_peft.grid.stages.Unit`), validated
        once: the first call builds and keeps them on ``p``. A stage with
        ``passes`` (e.g. evaluation under two protocols) runs once per pass (unit
        ``evaluate.1``, ``evaluate.2``...), each pass's settings layered on the stage's.
        The evaluation's ``external_sets`` (named external test sets,
        :class:`~bashkir_peft.config.external.ExternalSet`) add one pass per set after them,
        each scoring its set (``external``) under the stage's settings (:meth:`stage_passes`)."""
        if p.units is not None:
            return p.units
        out = []
        for stage in p.cell.stages:
            settings, passes = self.stage_passes(p, stage)
            where = f"{self.grid.path or self.grid.name}: cell {p.cell.slug}: {stage}"
            for i, extra in enumerate(passes or [{}]):
                unit = stage if passes is None else f"{stage}.{i + 1}"
                parameters, params = build_parameters(
                    STAGES[stage], self.declared[stage], self.runner_values(stage, p), {**settings, **extra},
                    f"{where}{'' if passes is None else f' pass {i + 1}'}")
                out.append(Unit(unit, stage, parameters, params))
        p.units = out
        return out

    def data_parameters(self) -> dict[str, Any]:
        """Parameters of the data-prep notebook: the corpus (``hub:ID`` also sets
        ``corpus_kind: hub``), the grid's data folder and the grid's data settings."""
        where = f"{self.grid.path or self.grid.name}: data"
        corpus = self.corpus or "<corpus>"
        hub = corpus.startswith(HUB_PREFIX)
        runner = {"corpus": corpus, "corpus_kind": "hub" if hub else None,
                  "output_dir": str(self.data_dir)}
        return build_parameters(STAGES["data"], self.declared["data"], runner, dict(self.grid.spec.data), where)[0]


def plan(grid: Grid, corpus: str | None, *, runs_root: str | Path | None = None,
         notebooks_dir: str | Path | None = None, only: dict[str, set[str]] | None = None,
         tier: str | None = None, need_corpus: bool = True) -> GridRun:
    """Validate everything before any work: corpus, kernel, notebooks and every cell's
    parameters, model names; with ``need_corpus`` (a run), every input file a stage will read
    (:func:`~bashkir_peft.grid.inputs.check_inputs`). Returns the plan (run ids follow once
    the data is known).

    Raises:
        ConfigError: the corpus is missing, a notebook or the kernel is missing, a grid
            setting is not a notebook parameter, a cell's parameters are invalid, a model
            name is unknown, ``tier`` is not one of the grid's ``tiers``, ``only`` (within the
            tier) selects nothing, or a stage's input file is missing or malformed.
    """
    if tier is not None and tier not in grid.spec.tiers:
        known = ", ".join(sorted(grid.spec.tiers)) or "none"
        raise ConfigError(f"--tier {tier}: grid {grid.name!r} has no such tier (its tiers: {known})")
    hint = grid.spec.corpus_hint
    corpus = resolve_corpus(corpus, hint) if need_corpus or corpus else None
    run = GridRun(grid, corpus, grid_dir(grid, runs_root), Path(notebooks_dir or default_notebooks_dir()))
    check_kernel()
    for stage in STAGE_SECTIONS:
        run.declared[stage] = notebook_parameters(run.notebook(stage))
    run.data_parameters()
    cells = expand(grid)
    only = only or {}
    cells = select(cells, {k: v for k, v in only.items() if k != "run_id"})
    if tier is not None:
        cells = [c for c in cells if grid.spec.tiers[tier].matches(c)]
    revisions: dict[str, str] = {}
    for c in cells:
        if c.model not in revisions:
            revisions[c.model] = resolve_model(c.model).revision
        p = Planned(c, revisions[c.model])
        run.units(p)
        run.cells.append(p)
    run.fingerprint = current_fingerprint(run)
    assign_run_ids(run)
    if "run_id" in only:
        run.cells = [p for p in run.cells if p.run_id in only["run_id"]]
    if not run.cells:
        within = f" in tier {tier!r}" if tier is not None else ""
        raise ConfigError(f"--only {only}: no cell of grid {grid.name!r}{within} matches")
    if need_corpus:  # a run (or its dry run): every file a stage will read, read now
        check_inputs((f"{grid.path or grid.name}: cell {p.cell.slug}", u) for p in run.cells for u in run.units(p))
    return run


def _data_key(run: GridRun) -> str:
    """What decides whether the prepared data is current: the corpus's identity and the data
    settings (not the data folder's path: a grid folder copied or moved keeps its data)."""
    params = {k: v for k, v in run.data_parameters().items() if k != "output_dir"}
    return params_hash({"corpus": corpus_identity(run.corpus), "params": params})


def _data_record(run: GridRun) -> DataPrepRecord | None:
    """``data_prep.json`` (``None`` where absent or not a valid record: prepared again)."""
    try:
        return read_record_if_any(run.root / GridFiles.DATA_RECORD, DataPrepRecord)
    except RecordError:
        return None


def current_fingerprint(run: GridRun) -> str | None:
    """The fingerprint of the prepared data if it is current (same corpus and settings)."""
    rec = _data_record(run)
    if rec is None or rec.status != "finished":
        return None
    if run.corpus is not None and rec.key != _data_key(run):
        return None
    return rec.fingerprint


def data_problem(run: GridRun, checksums: bool = False) -> str | None:
    """Why the data that ``data_prep.json`` records as finished cannot be used as it is (its
    folder, manifest or files missing or altered), as one line; ``None`` when it can, or
    when there is no finished data record.

    Args:
        run: the plan.
        checksums: compare the files by SHA-256 (else size and modification time).
    """
    rec = _data_record(run)
    if rec is None or rec.status != "finished":
        return None
    try:
        manifest = read_manifest(run.data_dir)
    except DataError as err:
        return str(err)
    if manifest.fingerprint != rec.fingerprint:
        return f"{run.data_dir}: the manifest's fingerprint is not the one data_prep.json recorded"
    return check_files(run.data_dir, rec.files or {}, checksums)


def assign_run_ids(run: GridRun) -> None:
    """Set each planned cell's run id and folder from the current data fingerprint
    (``None`` while the data is not prepared)."""
    for p in run.cells:
        if run.fingerprint is None:
            p.run_id, p.run_dir = None, None
        else:
            c = p.cell
            p.run_id = make_run_id(c.slug, c.axes(), c.params, run.fingerprint, p.revision)
            p.run_dir = run.root / p.run_id


def prepare_data(run: GridRun, log=print) -> str:
    """Run the data-prep notebook once per grid (skipped when current and its files are as
    data preparation wrote them; prepared again when they are missing or altered, and the new
    fingerprint decides which cells stay valid). Waits while another process prepares the
    same grid's data.

    A new attempt writes beside the last good one (``data_prep.attempt.json`` and
    ``.01_data_prep.attempt.ipynb``); ``data_prep.json`` and ``01_data_prep.ipynb`` are
    replaced only when it succeeds (the data folder itself is replaced only by a complete
    preparation, see :func:`bashkir_peft.data.prepare.prepare`).

    Returns:
        The data fingerprint.

    Raises:
        StageFailed: the data-prep notebook failed (its error is in ``data_prep.attempt.json``).
    """
    with try_lock(run.root / GridFiles.LOCKS / "data.lock", timeout=0) as held:
        if not held:
            log(f"waiting for another process preparing {run.data_dir}")
    with try_lock(run.root / GridFiles.LOCKS / "data.lock", timeout=-1):
        fp = current_fingerprint(run)
        problem = data_problem(run) if fp else None
        if fp and not problem:
            return fp
        if problem:
            log(f"preparing the data again: {problem}")
        params = run.data_parameters()
        out = run.root / STAGES["data"].notebook
        attempt_nb = out.with_name(f".{out.stem}.attempt.ipynb")  # hidden: the book never shows it
        record = {"corpus": run.corpus, "key": _data_key(run), "params": params,
                  "notebook": str(out), "data_dir": str(run.data_dir)}
        attempt = run.root / GridFiles.DATA_ATTEMPT
        write_record(attempt, DataPrepRecord(**record, status="running"))
        start = time.perf_counter()
        try:
            execute(run.notebook("data"), attempt_nb, params, REPO_ROOT)
            fp = read_manifest(run.data_dir).fingerprint  # DataError if incomplete
        except Exception as err:  # noqa: BLE001 - recorded, then reported
            failure = notebook_error(err, "data", attempt_nb)
            write_record(attempt, DataPrepRecord(**{**record, "notebook": str(attempt_nb)}, status="failed",
                                                 failure=failure))
            raise StageFailed(failure.error) from None
        os.replace(attempt_nb, out)
        write_record(run.root / GridFiles.DATA_RECORD, DataPrepRecord(
            **record, status="finished", fingerprint=fp, wall_time_s=time.perf_counter() - start,
            files=stamp(run.data_dir, scan(run.data_dir, skip=()))))
        attempt.unlink()
        return fp


def executions(units: list[Unit], with_passes: set[str]) -> list[list[Unit]]:
    """The notebook executions of a cell's pending ``units``, in order: the consecutive passes
    of a stage whose notebook takes :data:`~bashkir_peft.yamlio.PASSES` (``with_passes``)
    together, as one execution (one kernel start, the model loaded once); every other unit
    alone. A stage without passes is a unit named as the stage and always runs alone."""
    out: list[list[Unit]] = []
    for u in units:
        together = u.name != u.stage and u.stage in with_passes
        if together and out and out[-1][0].stage == u.stage and out[-1][0].name != u.stage:
            out[-1].append(u)
        else:
            out.append([u])
    return out


def _stage_record_failure(p: Planned, stage: str, unit: str) -> str | None:
    """The failure a stage's record reports after its notebook ran (``None`` if finished).

    Raises:
        RecordError: the stage wrote no record, or one that does not match the contract.
    """
    name, kind = STAGES[stage].record
    rec = read_record(p.run_dir / name, kind)
    if rec.status == "failed":
        return f"{unit}: {getattr(rec, 'reason', None) or 'failed (no reason recorded)'}"
    return None


def _move_aside(run: GridRun, p: Planned, names: list[str] | None = None) -> None:
    """Move the run folder (or only ``names`` in it) to ``.replaced/<run_id>-<time>/``."""
    if not p.run_dir.exists():
        return
    stamp_ = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    dest = run.root / GridFiles.REPLACED / f"{p.run_id}-{stamp_}"
    if names is None:
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(p.run_dir), str(dest))
        return
    for name in names:
        if (p.run_dir / name).exists():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(p.run_dir / name), str(dest / name))


def _expected_identity(run: GridRun, p: Planned) -> dict:
    return identity(p.cell.axes(), p.cell.params, run.fingerprint, p.revision)


def _stages_to_keep(run: GridRun, p: Planned, rec: CellRecord, state: CellState) -> dict:
    """The finished stage units of an interrupted, failed or corrupt cell that need not run again.

    A corrupt cell keeps every stage but those in ``state.redo`` (none where the corrupt file
    cannot be traced to a stage) and, where training is redone, every later stage (they read
    its model: results of the earlier weights are kept only while retraining reproduces them
    bit for bit, as on CPU but not on GPU); everything else in its folder but the cell record
    and the executed notebooks (the redone stages' files, checkpoints, partial outputs) is
    moved to ``.replaced/`` first, so the rerun starts from nothing of theirs.
    """
    done = {u: v for u, v in rec.stages.items() if v.status == "finished"}
    if state.status != "corrupt":
        return done
    redo = set(CELL_STAGES) if "train" in state.redo else set(state.redo)
    keep = {u: v for u, v in done.items() if redo and u.split(".")[0] not in redo}
    kept = {n.split("/")[0] for v in keep.values() for n in (v.files or {})}
    _move_aside(run, p, sorted(d.name for d in p.run_dir.iterdir()
                               if d.name not in kept | {RunFiles.CELL, RunFiles.NOTEBOOKS}))
    return keep


def run_cell(run: GridRun, p: Planned, *, force: bool = False, on_stage=None) -> CellResult:
    """Run one cell's stages under its lock (see the module docstring).

    The cell's state (:func:`bashkir_peft.cellstate.cell_state`) decides: ``finished`` is
    skipped; ``interrupted`` resumes after its last finished stage; ``corrupt`` reruns only
    the stages whose record or files are wrong; ``stale`` and ``failed`` run again (a stale
    folder is moved to ``.replaced/`` first). After each stage its manifest (the files it
    wrote, with sizes, times and SHA-256) goes into the cell record.

    Args:
        run: the plan, with run ids assigned (after data prep).
        p: the cell.
        force: rerun a finished cell (its folder is moved to ``.replaced/`` first).
        on_stage: called with ``(p, unit)`` before each notebook execution (progress).

    Returns:
        The :class:`CellResult`; a failure is recorded in ``grid_cell.json``, never raised.
    """
    # a short wait, so another process's status probe (is_locked) is never taken for a holder
    with try_lock(lock_path(run.root, p.run_id), timeout=LOCK_WAIT_S) as held:
        if not held:
            return CellResult(p, "locked")
        rec_path = p.run_dir / RunFiles.CELL
        state = cell_state(run.root, p.run_id, identity=_expected_identity(run, p))
        if state.status == "finished" and not force:
            return CellResult(p, "skipped")
        rec = None
        if force or state.status == "stale":
            _move_aside(run, p)
        elif state.status in ("running", "interrupted", "failed", "corrupt"):  # running: our own lock
            try:
                rec = read_record(rec_path, CellRecord)
            except RecordError:  # the cell record itself: nothing tells what was done
                _move_aside(run, p)
        c = p.cell
        stages_done = {u: v.model_dump(exclude_unset=True)
                       for u, v in (_stages_to_keep(run, p, rec, state) if rec else {}).items()}
        record = {
            "status": "running", "run_id": p.run_id, "grid": run.grid.name,
            "grid_file": str(run.grid.path) if run.grid.path else None,
            "params": c.axes(),
            "identity": _expected_identity(run, p),
            "sources": run.grid.sources,
            "data_dir": str(run.data_dir), "corpus": run.corpus,
            "stages": dict(stages_done), "error": None,
        }
        write_record(rec_path, CellRecord(**record))
        start = time.perf_counter()
        pending = [u.placed(str(p.run_dir)) for u in run.units(p) if u.name not in stages_done]
        with_passes = {s for s, names in run.declared.items() if PASSES in names}
        for group in executions(pending, with_passes):
            first, stage = group[0], group[0].stage
            together = first.name != stage and stage in with_passes  # passes: one execution, one notebook
            unit = stage if together else first.name
            if on_stage:
                on_stage(p, unit)
            name = STAGES[stage].notebook
            if unit != stage:
                name = name.replace(".ipynb", f".{unit.split('.')[1]}.ipynb")
            out = p.run_dir / RunFiles.NOTEBOOKS / name
            params = {PASSES: [u.parameters for u in group]} if together else first.parameters
            t0 = time.perf_counter()
            for u in group:
                record["stages"][u.name] = {"status": "running", "notebook": str(out), "parameters": u.parameters}
            write_record(rec_path, CellRecord(**record))
            before = scan(p.run_dir)
            try:
                execute(run.notebook(stage), out, params, REPO_ROOT)
                failure = _stage_record_failure(p, stage, unit)
            except Exception as err:  # noqa: BLE001 - a failed cell must not stop the grid
                info = notebook_error(err, unit, out)
                failure, record["failure"] = info.error, info
            for i, u in enumerate(group):  # one execution: its wall time on its first unit
                record["stages"][u.name].update(status="failed" if failure else "finished",
                                                wall_time_s=time.perf_counter() - t0 if i == 0 else None)
            if failure:
                record.update(status="failed", error=failure, wall_time_s=time.perf_counter() - start)
                write_record(rec_path, CellRecord(**record))
                return CellResult(p, "failed", record["wall_time_s"], failure)
            _record_manifest(p.run_dir, record["stages"], first.name, before)
            write_record(rec_path, CellRecord(**record))
        record.update(status="finished", wall_time_s=time.perf_counter() - start)
        write_record(rec_path, CellRecord(**record))
        return CellResult(p, "finished", record["wall_time_s"])


def _record_manifest(run_dir: Path, stages: dict[str, dict], unit: str, before: dict) -> None:
    """Set ``stages[unit]["files"]`` to the files the unit wrote (new or changed since
    ``before``); a file it rewrote or removed leaves the manifests of earlier units."""
    after = scan(run_dir)
    changed = {n for n, v in after.items() if before.get(n) != v}
    gone = set(before) - set(after)
    for other in stages.values():
        files = other.get("files")
        if files:
            other["files"] = {n: f for n, f in files.items() if n not in changed | gone}
    stages[unit]["files"] = stamp(run_dir, changed)


def grid_cell_state(run: GridRun, p: Planned, checksums: bool = False) -> CellState:
    """:func:`bashkir_peft.cellstate.cell_state` of a planned cell (its identity checked)."""
    if p.run_id is None:
        return CellState("not started")
    return cell_state(run.root, p.run_id, identity=_expected_identity(run, p), checksums=checksums,
                      left_out=left_out_on_purpose(run.root))  # a folder extracted from a results bundle lacks weights


def stale_runs(run: GridRun) -> list[str]:
    """Run folders of the grid that are none of its current cells (older parameters or data)."""
    current = {p.run_id for p in plan_all(run)}
    return sorted(d.name for d in run.root.iterdir()
                  if (d / RunFiles.CELL).is_file() and d.name not in current) if run.root.is_dir() else []


def write_index(run: GridRun) -> Path:
    """Write ``runs/<grid>/grid.json``: the grid's current cells (all of them, not only
    this invocation's), their run folders and status, read back from disk."""
    cells = []
    for p in plan_all(run):
        st = grid_cell_state(run, p)
        cells.append({**p.cell.axes(), "run_id": p.run_id, "run_dir": str(p.run_dir) if p.run_dir else None,
                      "status": st.status, "error": st.error, "wall_time_s": st.wall_time_s})
    data = _data_record(run)
    data_state = IndexData(status=data.status, fingerprint=data.fingerprint, notebook=data.notebook,
                           data_dir=data.data_dir, error=data.failure.error if data.failure else None) if data else None
    return write_record(run.root / GridFiles.INDEX, GridIndex(
        grid=run.grid.name, grid_file=str(run.grid.path) if run.grid.path else None,
        description=run.grid.spec.description, corpus=run.corpus, data=data_state, cells=cells))


def plan_all(run: GridRun) -> list[Planned]:
    """Every cell of the grid (ignoring --only), with run ids."""
    known = {p.cell: p for p in run.cells}
    out = []
    for c in expand(run.grid):
        p = known.get(c) or Planned(c, resolve_model(c.model).revision)
        if p.run_id is None and run.fingerprint:
            p.run_id = make_run_id(c.slug, c.axes(), c.params, run.fingerprint, p.revision)
            p.run_dir = run.root / p.run_id
        out.append(p)
    return out


def results_table(results: list[CellResult]) -> str:
    """The final table: one row per cell (run id, status, minutes, error)."""
    rows = [("run_id", "status", "time", "error")]
    for r in results:
        rid = r.planned.run_id or f"{r.planned.cell.slug}-<pending data>"
        err = (r.error or "")[:100]
        rows.append((rid, r.status, f"{r.wall_time_s / 60:.1f} min" if r.wall_time_s else "-", err))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(row[:3], widths)) + "  " + row[3]
                     for row in rows).rstrip()


def _held_then_finished(run: GridRun, r: CellResult) -> CellResult:
    """A cell another process held when its turn came, and finished (and let go) since, is
    ``skipped`` (finished by that process), not ``locked``; any other result as it is."""
    if r.status != "locked" or is_locked(lock_path(run.root, r.planned.run_id)):
        return r
    if grid_cell_state(run, r.planned).status != "finished":
        return r
    return CellResult(r.planned, "skipped", error="finished by another grid process")


def run_grid(run: GridRun, *, force: bool = False, dry_run: bool = False, progress: bool = True,
             out: TextIO | None = None) -> list[CellResult]:
    """Execute (or, with ``dry_run``, list) a planned grid; print the summary table.

    Returns:
        One :class:`CellResult` per selected cell.

    Raises:
        StageFailed: data preparation failed.
        ConfigError: a cell cannot fit the visible GPU (:func:`bashkir_peft.grid.plan.plan_grid`).
    """
    from tqdm.auto import tqdm

    out = out or sys.stdout
    if dry_run:
        results = [CellResult(p, grid_cell_state(run, p).status if p.run_id else "pending") for p in run.cells]
        for r in results:
            c = r.planned.cell
            print(f"{r.planned.run_id or c.slug + '-<pending data>'}  model={c.model} method={c.method} "
                  f"lora_r={c.lora_r} seed={c.seed}{' label=' + c.label if c.label else ''}  [{r.status}]", file=out)
        if run.fingerprint is None:
            print("data not prepared yet: run ids follow from the data fingerprint after data prep", file=out)
        write_values(run, out)
        plan_grid(run, out)
        # a GPU grid without CUDA: no CPU probe (minutes at 7B shapes) for cells not pinned to the CPU
        on_cpu, skipped = cells_on_this_cpu(run, [r.planned for r in results if r.status != "finished"])
        if skipped:
            print(skipped, file=out)
        if on_cpu or not skipped:
            print(estimate_grid(run, on_cpu).describe(), file=out)
        print(f"{len(results)} cells (dry run: nothing executed)", file=out)
        return results
    plan_grid(run)  # refuses a cell that cannot fit the GPU before any download or training
    bar = tqdm(total=len(run.cells), desc=f"grid {run.grid.name}", unit="cell", disable=not progress,
               file=sys.stderr)
    bar.set_postfix_str("data prep")
    run.fingerprint = prepare_data(run, log=bar.write)
    assign_run_ids(run)
    expected = estimate_grid(run, [p for p in run.cells if grid_cell_state(run, p).status != "finished"])
    bar.write(expected.describe())
    started = time.perf_counter()
    results = []
    for p in run.cells:
        with StepWatcher(p.run_dir / RunFiles.PROGRESS, bar.set_postfix_str) as watch:
            res = run_cell(run, p, force=force, on_stage=lambda p, s: watch.stage(f"{p.cell.slug}: {s}"))
        results.append(res)
        if res.status == "failed":
            bar.write(f"FAILED {p.run_id}: {res.error}")
        write_index(run)
        bar.update(1)
    bar.close()
    results = [_held_then_finished(run, r) for r in results]
    print(results_table(results), file=out)
    counts = {s: sum(r.status == s for r in results) for s in ("finished", "skipped", "failed", "locked")}
    print(", ".join(f"{n} {s}" for s, n in counts.items() if n) + f"  (runs in {run.root})", file=out)
    print(f"wall time of the cells: {(time.perf_counter() - started) / 60:.1f} min (expected ~"
          f"{(expected.seconds - expected.book_seconds) / 60:.0f} min; the book is built after)", file=out)
    return results

"""Read the run folders of a grid (``runs/<grid>/<run_id>/``) into one record per run.

A run folder holds what each stage wrote (see the team contract):

- ``train.json``    the training record (absent for a zero-shot ``base`` run),
- ``eval.json``     the evaluation record, plus a per-document Parquet table,
- ``generate.json`` the generation record, plus a generations Parquet table,
- any other ``*.json`` (e.g. the grid runner's own status record) and the executed
  notebooks ``*.ipynb``.

The reader is tolerant: a missing stage is simply absent, unknown keys are ignored, and
the metric blocks are found wherever they sit in a record (a dict holding ``perplexity``,
``bits_per_byte`` or ``word_perplexity``). A run is ``failed`` if any record says so
(with its reason), ``finished`` when it has evaluation metrics and no failure, and
``incomplete`` otherwise.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import pandas as pd

from bashkir_peft.errors import DataError

STAGES = ("train", "eval", "generate")
# The grid runner's record of a cell (bashkir_peft.grid.runner.CELL_RECORD): its ``params`` are
# the cell's axes (model, method, lora_r, seed), its status and error are authoritative.
CELL_RECORD = "grid_cell"
METRICS = ("perplexity", "bits_per_byte", "word_perplexity")
PROTOCOLS = ("paper", "rolling")
SPLITS = ("test", "validation", "train")
LANGUAGES = ("bak", "rus", "eng", "other")
# Parameters a results table is indexed by (the field's standard names).
PARAM_KEYS = ("model", "method", "lora_r", "lora_alpha", "seed", "block_size", "target_modules", "data_dir")
ERROR_KEYS = ("error", "reason", "exception", "message", "traceback")
# Aliases of the per-document columns (evaluation's Parquet), first match wins.
DOC_COLUMNS = {
    "doc_id": ("doc_id", "id", "document_id", "document"),
    "nll": ("nll", "nll_sum", "sum_nll", "loglik_nll", "neg_log_likelihood"),
    "tokens": ("tokens", "n_tokens", "num_tokens", "scored_tokens"),
    "bytes": ("bytes", "n_bytes", "num_bytes", "utf8_bytes"),
    "words": ("words", "n_words", "num_words"),
}


@dataclass
class RunRecord:
    """Everything the report needs from one run folder.

    Attributes:
        run_id: the folder name.
        path: the run folder.
        records: ``{"train"|"eval"|"generate"|<other json stem>: dict}`` as read.
        params: merged parameters (training record first, then evaluation, generation, others).
        status: ``finished`` | ``failed`` | ``incomplete``.
        error: the failure reason (``None`` unless failed).
        failed_stage: which record reported the failure.
    """

    run_id: str
    path: Path
    records: dict[str, dict] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    status: str = "incomplete"
    error: str | None = None
    failed_stage: str | None = None

    @property
    def model(self) -> str:
        return str(self.params.get("model", "?"))

    @property
    def method(self) -> str:
        return str(self.params.get("method", "?"))

    @property
    def lora_r(self) -> int | None:
        r = self.params.get("lora_r")
        return int(r) if _is_number(r) and self.method in ("lora", "qlora") else None

    @property
    def method_label(self) -> str:
        """``full``, ``base``, ``lora r=8``, ``qlora r=16``..."""
        return f"{self.method} r={self.lora_r}" if self.lora_r is not None else self.method

    def notebooks(self) -> list[Path]:
        """Executed notebooks kept in the run folder (sorted by name)."""
        return sorted(p for p in self.path.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)


def _is_number(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(float(x))


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        # A half-written record is the stage's failure, not the report's.
        return {"status": "failed", "reason": f"unreadable record {path.name}: {err}"}
    return data if isinstance(data, dict) else {"value": data}


def _params_of(record: dict) -> dict:
    """The parameters a record carries (``params``/``parameters``/``cell`` or top level)."""
    out: dict[str, Any] = {}
    for key in ("params", "parameters", "resolved_params", "cell"):
        if isinstance(record.get(key), dict):
            for k, v in record[key].items():
                if v is not None:
                    out.setdefault(k, v)
    for k in PARAM_KEYS:
        if record.get(k) is not None and not isinstance(record[k], dict):
            out.setdefault(k, record[k])
    # The model name: the training record's provenance dict, when params hold a path.
    model = record.get("model")
    if isinstance(model, dict) and model.get("name"):
        out.setdefault("model_name", model["name"])
    return out


def _error_of(record: dict) -> str | None:
    for k in ERROR_KEYS:
        v = record.get(k)
        if isinstance(v, str) and v.strip():
            return v.strip()
        if isinstance(v, dict):
            inner = _error_of(v)
            if inner:
                return inner
    return None


def _failed_stage(cell: dict) -> str | None:
    failure = cell.get("failure")
    if isinstance(failure, dict) and failure.get("stage"):
        return str(failure["stage"])
    for stage, info in (cell.get("stages") or {}).items():
        if isinstance(info, dict) and info.get("status") == "failed":
            return str(stage)
    return CELL_RECORD


def read_run(path: str | Path) -> RunRecord:
    """Read one run folder.

    Args:
        path: ``runs/<grid>/<run_id>``.

    Returns:
        The :class:`RunRecord` (status ``incomplete`` if nothing was recorded yet).
    """
    path = Path(path)
    run = RunRecord(run_id=path.name, path=path)
    names = [f"{CELL_RECORD}.json"] + [f"{s}.json" for s in STAGES] + sorted(
        p.name for p in path.glob("*.json")
        if p.stem not in (*STAGES, CELL_RECORD) and not p.name.startswith("."))
    for name in names:
        p = path / name
        if p.is_file():
            run.records[p.stem] = _read_json(p)
    for stage, rec in run.records.items():
        for k, v in _params_of(rec).items():
            # A training seed comes from the cell or the training record only (evaluation and
            # generation have seeds of their own, e.g. for decoding).
            if k == "seed" and stage not in (CELL_RECORD, "train"):
                continue
            run.params.setdefault(k, v)
    # The model is the cell's (or training's) registry name or Hub id; where a record names
    # only a local folder, the provenance name stands in for it.
    model = run.params.get("model")
    if not isinstance(model, str) or Path(model).is_absolute():
        run.params["model"] = run.params.get("model_name") or (Path(model).name if model else "?")
    for stage, rec in run.records.items():
        if str(rec.get("status", "")).lower() in ("failed", "error"):
            run.status = "failed"
            run.failed_stage = _failed_stage(rec) if stage == CELL_RECORD else stage
            run.error = _error_of(rec) or "failed (no reason recorded)"
            break
    cell = run.records.get(CELL_RECORD)
    cell_done = cell is None or str(cell.get("status", "")).lower() == "finished"
    if run.status != "failed" and cell_done and "eval" in run.records \
            and any(True for _ in metric_blocks(run.records["eval"])):
        run.status = "finished"
    return run


def current_run_ids(runs_dir: Path) -> set[str] | None:
    """Run ids of the grid's current cells, from the runner's index ``grid.json``.

    After a change of parameters or data, folders of older run ids stay on disk (finished
    results are never deleted); only the cells the index lists belong to the grid now.

    Returns:
        The set of run ids, or ``None`` where there is no index (a folder of runs not made
        by the grid runner: every run folder counts).
    """
    path = runs_dir / "grid.json"
    index = _read_json(path) if path.is_file() else {}
    if "cells" not in index:
        return None
    return {c["run_id"] for c in index["cells"] if c.get("run_id")}


def discover_runs(runs_dir: str | Path) -> list[RunRecord]:
    """Read the run folders under ``runs_dir`` (folders holding at least one record); where
    the grid runner's index ``grid.json`` exists, only the runs of its current cells.

    Raises:
        DataError: ``runs_dir`` does not exist.
    """
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        raise DataError(f"{runs_dir}: no runs folder (run the grid first: bashkir-peft grid run GRID.yaml)")
    current = current_run_ids(runs_dir)
    runs = []
    for d in sorted(p for p in runs_dir.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))):
        if current is not None and d.name not in current:
            continue
        if any((d / f"{s}.json").is_file() for s in (*STAGES, CELL_RECORD)):
            run = read_run(d)
            if run.records:
                runs.append(run)
    return runs


def metric_blocks(record: dict, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], dict]]:
    """Yield ``(path, block)`` for every dict in ``record`` that holds a metric of :data:`METRICS`."""
    if isinstance(record, dict):
        if any(_is_number(record.get(m)) for m in METRICS):
            yield path, record
        for k, v in record.items():
            if isinstance(v, (dict, list)):
                yield from metric_blocks(v, path + (str(k),))
    elif isinstance(record, list):
        for i, v in enumerate(record):
            if isinstance(v, (dict, list)):
                yield from metric_blocks(v, path + (str(i),))


def _context(path: tuple[str, ...], block: dict, defaults: dict) -> dict:
    protocol = block.get("protocol") or next((p for p in path if p in PROTOCOLS), None) \
        or defaults.get("protocol")
    split = block.get("split") or next((p for p in path if p in SPLITS), None) or defaults.get("split")
    source = block.get("source")
    if source is None:
        for i, p in enumerate(path[:-1]):
            if p in ("by_source", "per_source", "sources", "source"):
                source = path[i + 1]
    return {"protocol": protocol or "?", "split": split or "test", "source": source or "all"}


def eval_metrics(run: RunRecord) -> pd.DataFrame:
    """Tidy metric rows of one run's evaluation record.

    Returns:
        Columns ``protocol, split, source, perplexity, bits_per_byte, word_perplexity``
        (one row per protocol x split x source; empty if the run has no evaluation).
    """
    rec = run.records.get("eval")
    rows = []
    if rec:
        defaults = {k: run.params.get(k) for k in ("protocol", "split")}
        seen = set()
        for path, block in metric_blocks(rec):
            ctx = _context(path, block, defaults)
            key = tuple(ctx.values())
            if key in seen:
                continue
            seen.add(key)
            rows.append({**ctx, **{m: float(block[m]) if _is_number(block.get(m)) else math.nan
                                   for m in METRICS}})
    return pd.DataFrame(rows, columns=["protocol", "split", "source", *METRICS])


def find_value(record: object, names: tuple[str, ...]) -> object:
    """The first value under any key in ``names``, searching ``record`` depth-first
    (top level first). ``None`` if absent."""
    if isinstance(record, dict):
        for n in names:
            if n in record and record[n] is not None and not isinstance(record[n], (dict, list)):
                return record[n]
        for v in record.values():
            if isinstance(v, (dict, list)):
                found = find_value(v, names)
                if found is not None:
                    return found
    elif isinstance(record, list):
        for v in record:
            found = find_value(v, names)
            if found is not None:
                return found
    return None


def per_document(run: RunRecord) -> pd.DataFrame | None:
    """The evaluation's per-document sums, with columns renamed to
    ``doc_id, nll, tokens, bytes, words`` (+ ``protocol``, ``split``, ``source`` if present).

    Returns:
        The table, or ``None`` if the run has no per-document Parquet.
    """
    candidates = [p for p in sorted(run.path.glob("*.parquet"))
                  if "gen" not in p.name.lower() and not p.name.startswith(".")]
    named = [p for p in candidates if any(w in p.name.lower() for w in ("doc", "eval"))]
    for p in named + [c for c in candidates if c not in named]:
        try:
            df = pd.read_parquet(p)
        except (OSError, ValueError):
            continue
        cols = {}
        for canon, aliases in DOC_COLUMNS.items():
            hit = next((a for a in aliases if a in df.columns), None)
            if hit:
                cols[hit] = canon
        if {"nll", "bytes"} <= set(cols.values()):
            out = df.rename(columns=cols)
            if "doc_id" not in out.columns:
                out["doc_id"] = range(len(out))
            out["doc_id"] = out["doc_id"].astype(str)
            return out
    return None

"""The learning-forgetting frontier (report/frontier.py): each trained run of a grid and of its
learning-rate sweep against the zero-shot run on the same FLORES-200 sentences (Goldfish
protocol), the Pareto flags, the runs left out and why, the means over seeds, and the figure."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bashkir_peft.config.design import Comparison, StudyDesign
from bashkir_peft.config.report import ReportParams
from bashkir_peft.records import EVAL_DOCUMENT_COLUMNS, CellRecord, RunFiles, TrainRecord, read_record, write_record
from bashkir_peft.report.context import ReportContext
from bashkir_peft.report.frontier import (
    FRONTIER_SETS,
    SWEEP,
    frontier_left_out,
    frontier_sentences,
    frontier_summary,
    frontier_table,
    pareto_front,
)
from bashkir_peft.report.runs import discover_runs
from bashkir_peft.report.views import format_frontier
from report_synth import documents, write_run

BASE = {"bashkir": 3.0, "english": 1.0, "russian": 1.5, "tatar": 2.8}
"""Bits per byte of the zero-shot model on each side."""


def _run(root: Path, run_id: str, method: str, seed: int | None, bpb: dict[str, float], *, lora_r: int | None = None,
         lr: float = 1e-4, label: str | None = None, ids=range(20)) -> Path:
    """A finished run scored on the FLORES sides of ``bpb`` (side -> bits per byte, exactly:
    nll = bpb x ln 2 x bytes per sentence) under the Goldfish protocol, on sentences ``ids``."""
    rng = np.random.default_rng(len(run_id))
    d = write_run(root, run_id, "tiny-gpt2", method, lora_r, seed, 2.0, documents(rng, 4), rng, generate=False)
    nbytes = rng.integers(50, 200, size=len(ids))
    rows = [pd.DataFrame({"protocol": "goldfish", "split": FRONTIER_SETS[side], "id": [str(i) for i in ids],
                          "source": "x", "nll": b * math.log(2) * nbytes, "tokens": 10, "bytes": nbytes, "words": 3,
                          "separator_nll": 0.0, "separator_tokens": 0}) for side, b in bpb.items()]
    path = d / RunFiles.EVAL_DOCUMENTS
    pd.concat([pd.read_parquet(path), *rows], ignore_index=True)[list(EVAL_DOCUMENT_COLUMNS)].to_parquet(path)
    if method != "base":
        train = read_record(d / RunFiles.TRAIN, TrainRecord)
        params = train.params.model_copy(update={"learning_rate": lr})
        write_record(d / RunFiles.TRAIN, train.model_copy(update={"params": params}))
    if label:
        cell = read_record(d / RunFiles.CELL, CellRecord)
        write_record(d / RunFiles.CELL, cell.model_copy(update={"params": cell.params.model_copy(
            update={"label": label})}))
    return d


def _shifted(gain: float, english: float, russian: float = 0.0, tatar: float = 0.0) -> dict[str, float]:
    """A run's bits per byte: ``gain`` below the base on Bashkir, the losses above it elsewhere."""
    return {"bashkir": BASE["bashkir"] - gain, "english": BASE["english"] + english,
            "russian": BASE["russian"] + russian, "tatar": BASE["tatar"] + tatar}


def test_gains_and_losses_are_differences_to_the_base_on_the_same_sentences(tmp_path):
    study, sweep = tmp_path / "cpu-study", tmp_path / "cpu-study-lr"
    _run(study, "base", "base", None, BASE)
    _run(study, "full-42", "full", 42, _shifted(0.5, 0.2, -0.1, -0.05), lr=2e-4)
    # the sweep has its own base on other sentences (40, not 20): its runs on those use it ...
    _run(sweep, "base", "base", None, {k: v + 0.25 for k, v in BASE.items()}, ids=range(40))
    _run(sweep, "lora-lr1", "lora", 1, {k: v + 0.25 for k, v in _shifted(0.3, 0.1).items()}, lora_r=8, lr=5e-3,
         label="lr5e-3", ids=range(40))
    # ... and a sweep run on the study's sentences is compared with the study's base
    _run(sweep, "lora-lr2", "lora", 1, _shifted(0.4, 0.15, 0.05), lora_r=8, lr=1e-2, label="lr1e-2")
    grids = {"study": discover_runs(study), SWEEP: discover_runs(sweep)}
    table = frontier_table(grids).set_index("run_id")
    assert table.loc["full-42", ["bashkir_gain", "english_loss", "russian_loss", "tatar_change"]].tolist() == \
        pytest.approx([0.5, 0.2, -0.1, -0.05])
    assert table.loc["lora-lr1", ["bashkir_gain", "english_loss", "russian_loss"]].tolist() == pytest.approx([0.3, 0.1, 0])
    assert table.loc["lora-lr2", ["bashkir_gain", "english_loss", "russian_loss"]].tolist() == \
        pytest.approx([0.4, 0.15, 0.05])
    assert table["base_grid"].to_dict() == {"full-42": "study", "lora-lr1": SWEEP, "lora-lr2": "study"}
    assert table["grid"].to_dict() == {"full-42": "study", "lora-lr1": SWEEP, "lora-lr2": SWEEP}
    assert table.loc["lora-lr2", "learning_rate"] == 1e-2 and table.loc["lora-lr2", "label"] == "lr1e-2"
    assert table.loc["full-42", "sentences"] == "bak 20, eng 20, rus 20, tat 20"
    assert frontier_left_out(grids).empty


def test_pareto_flags_on_a_constructed_set():
    # (gain, loss): B dominates C (more gain, less loss), A dominates E; A, B, D are on the front
    gain = np.array([0.5, 0.3, 0.2, 0.6, 0.4])
    loss = np.array([0.2, 0.1, 0.15, 0.5, 0.3])
    assert pareto_front(gain, loss).tolist() == [True, True, False, True, False]
    # a tie in one measure dominates nothing: both stay
    assert pareto_front(np.array([0.5, 0.5]), np.array([0.1, 0.2])).tolist() == [True, True]


def test_pareto_flags_per_loss_language_and_seed_means(tmp_path):
    points = {"a": (0.5, 0.2, 0.3), "b": (0.3, 0.1, 0.4), "c": (0.2, 0.15, 0.0), "d": (0.6, 0.5, 0.5),
              "e": (0.4, 0.3, 0.1)}
    _run(tmp_path, "base", "base", None, BASE)
    for i, (name, (g, e, r)) in enumerate(points.items()):
        _run(tmp_path, name, "lora", 42, _shifted(g, e, r), lora_r=8, lr=10.0 ** -(i + 1))
    table = frontier_table({"study": discover_runs(tmp_path)}).set_index("run_id")
    assert table["pareto_english"].to_dict() == {"a": True, "b": True, "c": False, "d": True, "e": False}
    # Russian: c loses nothing, e loses 0.1 and gains more than c; a gains more than b and e and loses less than d
    assert table["pareto_russian"].to_dict() == {"a": True, "b": False, "c": True, "d": True, "e": True}


def test_summary_is_the_mean_over_seeds(tmp_path):
    _run(tmp_path, "base", "base", None, BASE)
    _run(tmp_path, "full-1", "full", 1, _shifted(0.4, 0.2))
    _run(tmp_path, "full-2", "full", 2, _shifted(0.6, 0.4))
    _run(tmp_path, "lora-1", "lora", 1, _shifted(0.2, -0.05), lora_r=8, lr=5e-3)
    summary = frontier_summary(frontier_table({"study": discover_runs(tmp_path)})).set_index("method_label")
    assert summary.loc["full", "n"] == 2 and summary.loc["full", "bashkir_gain"] == pytest.approx(0.5)
    assert summary.loc["full", "english_loss"] == pytest.approx(0.3) and summary.loc["lora r=8", "n"] == 1
    assert summary["pareto_english"].all()  # lora learns less and forgets less: both on the front
    text = " ".join(frontier_sentences(summary.reset_index()))
    assert "the English front holds 2 (full at 0.0001; lora r=8 at 0.005), the Russian front holds 2 (" in text
    assert "2 arms and rates of the grid, each the mean over its seeds" in text
    assert "The largest Bashkir gain, +0.500, is that of full at 0.0001, at an English loss of +0.300" in text
    assert "the largest gain without English loss, +0.200, is that of lora r=8 at 0.005." in text


def test_a_run_missing_a_side_or_a_base_is_left_out_with_the_reason(tmp_path):
    _run(tmp_path, "base", "base", None, BASE)
    _run(tmp_path, "full-42", "full", 42, _shifted(0.5, 0.2))
    _run(tmp_path, "no-tatar", "full", 123, {k: v for k, v in _shifted(0.5, 0.2).items() if k != "tatar"})
    _run(tmp_path, "other-ids", "full", 2024, _shifted(0.5, 0.2), ids=range(5, 25))
    grids = {"study": discover_runs(tmp_path)}
    table = frontier_table(grids)
    assert table["run_id"].tolist() == ["full-42"]
    shown = format_frontier(frontier_summary(table))  # what the book shows: no NaN, no "nan"
    assert not shown.isna().any().any() and "nan" not in shown.to_string().lower()
    assert shown.iloc[0][["label", "Bashkir gain", "English loss", "on the front"]].tolist() == \
        ["–", "+0.500", "+0.200", "English, Russian"]
    why = frontier_left_out(grids).set_index("run_id")["reason"].to_dict()
    assert why == {"no-tatar": "not scored on flores-tat under the goldfish protocol",
                   "other-ids": "no zero-shot run of the model scored the same sentences (set names and document ids)"}


def test_registry_reads_the_sweep_beside_the_grid_and_draws_the_figure(tmp_path):
    from bashkir_peft.report.registry import FIGURES, TABLES

    study, sweep = tmp_path / "cpu-study", tmp_path / "cpu-study-lr"
    _run(study, "base", "base", None, BASE)
    _run(study, "full-42", "full", 42, _shifted(0.5, 0.2, 0.1))
    _run(sweep, "lora-1", "lora", 1, _shifted(0.3, 0.05, 0.02), lora_r=8, lr=5e-3, label="lr5e-3")
    design = StudyDesign(primary=Comparison(a="lora r=8", b="full", split="test", question="?"), budget="36 kB",
                         learning_rate_sweep="cpu-study-lr")
    context = ReportContext(params=ReportParams(grid="cpu-study"), runs_dir=study, runs=discover_runs(study), gaps=[],
                            design=design, data_dir=None)
    for name in ("frontier", "frontier_left_out", "frontier_summary"):
        context = context.with_table(name, next(t for t in TABLES if t.name == name).build(context))
    assert sorted(context.tables["frontier"]["grid"]) == ["study", SWEEP]
    draw = next(f for f in FIGURES if f.name == "frontier").draw
    png = draw(context, tmp_path / "frontier.png")
    assert png is not None and png.read_bytes().startswith(b"\x89PNG")
    empty = context.with_table("frontier", context.tables["frontier"].iloc[:0])
    assert draw(empty, tmp_path / "none.png") is None

"""The report of a grid: every run record under ``runs/<grid>/`` aggregated into tidy tables
(CSV + Parquet) and seaborn figures (PNG) under ``runs/<grid>/report/``.

Use::

    from bashkir_peft.config.report import ReportParams
    from bashkir_peft.report.build import build_report
    result = build_report(ReportParams(grid="params/grids/cpu-demo.yaml"))
    result.tables["summary"], result.figures["metrics_by_method"]

or ``bashkir-peft report GRID.yaml`` (``notebooks/05_report.ipynb`` calls the same function).
Failed and unfinished runs are left out of every result table and listed in ``failures``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from bashkir_peft.atomic import atomic_path, write_parquet_atomic
from bashkir_peft.config.design import StudyDesign
from bashkir_peft.config.grid import report_dirs, resolve_grid, study_design
from bashkir_peft.config.report import ReportParams
from bashkir_peft.names import method_sort_key
from bashkir_peft.records import GridFiles
from bashkir_peft.report import figures as fig
from bashkir_peft.report import study
from bashkir_peft.report import tables as rt
from bashkir_peft.report.runs import RunRecord, discover_runs, index_gaps
from bashkir_peft.settings import REPO_ROOT, resolve_path
from bashkir_peft.yamlio import read_yaml


def write_table(df: pd.DataFrame, stem: Path) -> tuple[Path, Path]:
    """Write ``df`` as ``stem.csv`` and ``stem.parquet``, each atomically (temp + rename)."""
    csv, parquet = stem.with_suffix(".csv"), stem.with_suffix(".parquet")
    with atomic_path(csv) as tmp:
        df.to_csv(tmp, index=False)
    write_parquet_atomic(df.astype({c: "string" for c in df.columns if df[c].dtype == object}), parquet)
    return csv, parquet


@dataclass
class ReportResult:
    """What :func:`build_report` produced.

    Attributes:
        grid: grid name.
        runs_dir, out_dir: folders read and written.
        runs: the run records read.
        protocol: the headline protocol used.
        tables: name -> DataFrame (also written as ``out_dir/tables/<name>.csv|.parquet``).
        figures: name -> PNG path (only figures that had data).
    """

    grid: str
    runs_dir: Path
    out_dir: Path
    runs: list[RunRecord]
    protocol: str | None
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    figures: dict[str, Path] = field(default_factory=dict)
    design: StudyDesign | None = None

    @property
    def headline(self) -> pd.DataFrame:
        """The headline table: the headline protocol and split, mean ± std over seeds."""
        s = self.tables["summary"]
        return s[(s["protocol"] == self.protocol)] if len(s) else s


def _data_dir(params: ReportParams, runs: list[RunRecord], runs_dir: Path) -> Path | None:
    """``data_dir``, else the runs' recorded data folder, else ``<runs_dir>/data`` (a grid
    moved or extracted from a results bundle), else None."""
    if params.data_dir:
        return resolve_path(params.data_dir)
    recorded = next((resolve_path(r.cell.data_dir) for r in runs if resolve_path(r.cell.data_dir).is_dir()), None)
    local = runs_dir / GridFiles.DATA
    return recorded or (local if local.is_dir() else None)


def build_report(params: ReportParams) -> ReportResult:
    """Aggregate every run record of a grid into tables and figures.

    Args:
        params: :class:`ReportParams`.

    Returns:
        :class:`ReportResult`. Tables: ``runs`` (all runs, with status), ``metrics`` (tidy,
        finished runs), ``summary`` (mean/std/n over seeds), ``differences`` (paired
        bootstrap CIs of bits per byte between methods on the same model), ``quality_cost``,
        ``fertility``, ``generation`` and ``generation_summary``, ``paper`` (the paper's
        quoted numbers beside ours), ``failures`` (every cell of the grid's index that is
        not finished: failed, incomplete, not started, corrupt, stale, with why),
        ``forgetting`` and ``forgetting_summary`` (Bashkir gained, English and Russian
        forgotten, on the SIB-200 external sets),
        ``downstream`` (SIB-200 Bashkir classification with intervals, baselines first),
        ``parity`` (tokenizer fertility and parity premium), ``comparisons`` (the grid's
        ``study`` comparisons, or every pair of methods, and forgetting against the base
        model, with intervals: :mod:`bashkir_peft.report.study`), ``downstream_comparisons``
        (accuracy differences with intervals over seeds and sentences), ``learning_curves``
        (validation bits per byte by bytes of training text), ``disk`` (per run folder) and,
        for a study with a learning-rate sweep, ``sweep`` (read from the sweep's runs folder).

    Raises:
        ConfigError: no runs folder or no run record in it (DataError), bad grid file, a
            record that does not match the contract (RecordError: one line naming the file
            and the field).
    """
    name, runs_dir, out_dir = report_dirs(params)
    runs = discover_runs(runs_dir)
    rt.require_runs(runs, runs_dir)
    t: dict[str, pd.DataFrame] = {}
    t["runs"] = rt.runs_table(runs)
    t["metrics"] = rt.metrics_table(runs)
    t["summary"] = rt.summary_table(t["metrics"])
    protocol = rt.headline_protocol(t["metrics"], params.protocol)
    t["differences"] = rt.differences_table(runs, protocol=protocol, split=params.split,
                                            n_resamples=params.n_resamples, confidence=params.confidence,
                                            seed=params.seed)
    t["quality_cost"] = rt.quality_cost_table(t["runs"], t["metrics"], protocol, params.split)
    data_dir = _data_dir(params, runs, runs_dir)
    t["fertility"] = rt.fertility_table(runs, t["quality_cost"], data_dir, protocol, params.split)
    t["generation"] = rt.generation_table(runs)
    t["generation_summary"] = rt.generation_summary(
        t["generation"], rt.generation_intervals(runs, n_resamples=params.n_resamples,
                                                 confidence=params.confidence, seed=params.seed))
    t["paper"] = rt.paper_table(t["summary"], rt.data_modes(runs))
    t["failures"] = rt.failures_table(runs, index_gaps(runs_dir))
    t["forgetting"] = rt.forgetting_table(runs)
    t["forgetting_summary"] = rt.forgetting_summary(t["forgetting"])
    t["downstream"] = rt.downstream_table(runs)
    t["parity"] = rt.parity_table(data_dir)
    design = study_design(params.grid)
    t["comparisons"] = study.comparisons_table(runs, design, protocol=protocol, n_resamples=params.n_resamples,
                                               confidence=params.confidence, seed=params.seed,
                                               known={params.split: t["differences"]})
    t["downstream_comparisons"] = study.downstream_comparisons(runs, design, n_resamples=params.n_resamples,
                                                               confidence=params.confidence, seed=params.seed)
    t["learning_curves"] = study.learning_curves(runs)
    t["disk"] = study.disk_usage(runs)
    sweep_dir = study.sweep_runs_dir(runs_dir, design)
    if sweep_dir is not None:
        t["sweep"] = study.sweep_table(discover_runs(sweep_dir))
    for k, df in t.items():
        for col in ("lora_r", "seed", "n", "ours_n", "n_documents"):
            if col in df.columns:
                df[col] = pd.array(df[col].astype("Float64").round(), dtype="Int64")
        write_table(df, out_dir / "tables" / k)
    figs_dir = out_dir / "figures"
    made = {
        "metrics_by_method": fig.metrics_by_method(t["metrics"], figs_dir / "metrics_by_method.png",
                                                   protocol, params.split),
        "differences": fig.differences(t["differences"], figs_dir / "differences.png"),
        "params_vs_bpb": fig.params_vs_bpb(t["quality_cost"], figs_dir / "params_vs_bpb.png"),
        "cost_vs_quality": fig.cost_vs_quality(t["quality_cost"], figs_dir / "cost_vs_quality.png"),
        "fertility_vs_bpb": fig.fertility_vs_bpb(t["fertility"], figs_dir / "fertility_vs_bpb.png"),
        "generation_language": fig.generation_language(t["generation_summary"],
                                                       figs_dir / "generation_language.png"),
        "gained_vs_forgotten": fig.gained_vs_forgotten(t["forgetting"], figs_dir / "gained_vs_forgotten.png"),
        "learning_curves": fig.learning_curves(t["learning_curves"], figs_dir / "learning_curves.png"),
        "study_comparisons": fig.study_comparisons(t["comparisons"], t["downstream_comparisons"],
                                                   figs_dir / "study_comparisons.png"),
        "learning_rate_sweep": (fig.learning_rate_sweep(t["sweep"], figs_dir / "learning_rate_sweep.png")
                                if "sweep" in t else None),
    }
    return ReportResult(grid=name, runs_dir=runs_dir, out_dir=out_dir, runs=runs, protocol=protocol,
                        tables=t, figures={k: v for k, v in made.items() if v is not None}, design=design)


def format_headline(summary: pd.DataFrame) -> pd.DataFrame:
    """The summary as a reader's table: ``mean ± std`` strings, n, one row per model x method."""
    if summary.empty:
        return summary
    out = summary[["model", "method_label", "protocol", "split", "n"]].copy()

    def fmt(x: float, digits: int) -> str:
        return f"{x:.{digits}f}" if abs(x) < 1e5 else f"{x:.3e}"

    for m in ("perplexity", "bits_per_byte", "word_perplexity"):
        digits = 4 if m == "bits_per_byte" else 2
        out[m] = [fmt(a, digits) + ("" if pd.isna(b) else f" ± {fmt(b, digits)}")
                  for a, b in zip(summary[f"{m}_mean"], summary[f"{m}_std"])]
    return out.rename(columns={"method_label": "method"})


def per_run_table(result: ReportResult) -> pd.DataFrame:
    """One row per finished cell: its keys, headline metrics, trainable parameters and cost."""
    q = result.tables["quality_cost"]
    if q.empty:
        return q
    cols = ["run_id", "model", "method_label", "seed", "perplexity", "bits_per_byte", "word_perplexity",
            "trainable_params", "wall_time_s", "peak_memory_mib", "tokens_per_s"]
    out = q[[c for c in cols if c in q.columns]].rename(columns={"method_label": "method"})
    order = [(m, method_sort_key(lab), -1 if pd.isna(sd) else int(sd))
             for m, lab, sd in zip(out["model"], out["method"], out["seed"])]
    return out.iloc[sorted(range(len(out)), key=order.__getitem__)].reset_index(drop=True)


def format_paper(paper: pd.DataFrame) -> pd.DataFrame:
    """The paper table for reading: the quoted value's column is headed "quoted from the paper",
    ours as ``mean ± std`` with the number of seeds and the data mode that produced it."""
    if paper.empty:
        return paper
    ours = [("–" if pd.isna(m) else f"{m:.2f}" + ("" if pd.isna(s) else f" ± {s:.2f}"))
            for m, s in zip(paper["ours_mean"], paper["ours_std"])]
    return pd.DataFrame({"model": paper["model"], "method": paper["method"], "metric": paper["metric"],
                         "quoted from the paper": [f"{v:g}" for v in paper["paper"]], "ours: method": paper["ours_method"],
                         "ours: mean ± std": ours, "ours: seeds": paper["ours_n"],
                         "ours: data mode": paper["ours_data_mode"].fillna("–")})


def format_downstream(downstream: pd.DataFrame) -> pd.DataFrame:
    """The downstream table for reading: one row per model x method x seed x classifier,
    ``accuracy`` and ``macro_f1`` as ``value [low, high]`` (95 % bootstrap interval)."""
    if downstream.empty:
        return downstream
    out = downstream[["model", "method_label", "seed", "approach", "setting", "n"]].copy()
    for m in ("accuracy", "macro_f1"):
        out[m] = [f"{v:.3f} [{lo:.3f}, {hi:.3f}]" for v, lo, hi in
                  zip(downstream[m], downstream[f"{m}_low"], downstream[f"{m}_high"])]
    return out.rename(columns={"method_label": "method"})


GENERATION_COLUMNS = ("model", "method_label", "n", "n_prompts", "share_bak", "share_rus", "share_eng",
                      "share_other", "code_switch_rate", "non_bashkir_word_share", "crosscheck_agreement",
                      "distinct_1", "distinct_2", "repeated_ngram_rate", "mean_words")


def generation_view(gen_summary: pd.DataFrame) -> pd.DataFrame:
    """The generation summary's columns a reader compares (those present), method renamed; a
    rate with an interval reads ``estimate [low, high]`` (95 % over prompts within seeds)."""
    cols = [c for c in GENERATION_COLUMNS if c in gen_summary.columns]
    out = gen_summary[cols].copy()
    for c in cols:
        if f"{c}_low" in gen_summary.columns:
            out[c] = [("–" if pd.isna(v) else f"{v:.2f}") + ("" if pd.isna(lo) else f" [{lo:.2f}, {hi:.2f}]")
                      for v, lo, hi in zip(gen_summary[c], gen_summary[f"{c}_low"], gen_summary[f"{c}_high"])]
    return out.rename(columns={"method_label": "method"})


def grid_note(grid: str) -> str:
    """A note on what the grid's numbers mean (from the grid file's ``description``, and a
    warning that any grid other than ``paper`` demonstrates the pipeline only)."""
    name, _ = resolve_grid(grid)
    desc = ""
    p = Path(grid) if Path(grid).exists() else REPO_ROOT / grid
    if p.suffix in (".yaml", ".yml") and p.is_file():
        data = read_yaml(p)
        if isinstance(data, dict) and isinstance(data.get("description"), str):
            desc = data["description"].strip() + "\n\n"
    if name != "paper" and p.is_file() and study_design(str(p)) is not None:
        desc += (f"**The `{name}` grid is a study at small scale, not a reproduction of the paper's numbers**: "
                 "its findings hold for its model, budget and corpus (the results chapter states them).")
    elif name != "paper":
        desc += (f"**The `{name}` grid is a demonstration of the pipeline, not a reproduction of the "
                 "paper's numbers**: small models, few training steps, a local corpus.")
    return desc


def show_table(df: pd.DataFrame, table_id: str, *, digits: int = 4):
    """An HTML table with a stable ``id`` (the book's tests and links find it by id).

    Returns:
        ``IPython.display.HTML`` (a one-line note instead when ``df`` is empty).
    """
    from IPython.display import HTML

    if df.empty:
        return HTML(f'<p id="{table_id}"><em>(no rows)</em></p>')
    df = df.copy()
    for col in df.columns:
        if not pd.api.types.is_float_dtype(df[col]):
            df[col] = df[col].astype(object).where(df[col].notna(), "–")
    return HTML(df.to_html(table_id=table_id, index=False, na_rep="–", float_format=lambda x: f"{x:.{digits}g}",
                           classes="dataframe", border=0))


def show_figure(result: ReportResult, name: str):
    """The figure ``name`` as an embedded PNG, or a note when the grid had no data for it."""
    from IPython.display import Image, Markdown

    path = result.figures.get(name)
    if path is None:
        return Markdown(f"*(no data for the figure `{name}` in this grid)*")
    return Image(filename=str(path))

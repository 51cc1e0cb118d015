"""The report's one table registry, and its figures: every table and figure a report has, in
the order they are built, each with the function that builds it from a
:class:`~bashkir_peft.report.context.ReportContext` (lm-evaluation-harness's registry, for a
report).

A table's name is its key in :attr:`~bashkir_peft.report.build.ReportResult.tables` and the
stem of its files (``<out_dir>/tables/<name>.csv|.parquet``); the book and notebook 05 read
them by these names. A builder reads only the tables listed before it (``context.tables``) and
returns ``None`` where the grid has no such table (``sweep``: a study without a learning-rate
sweep). A figure is written as ``<out_dir>/figures/<name>.png``; its builder returns ``None``
where the grid has no data for it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from bashkir_peft.records import DataFiles, GridFiles
from bashkir_peft.report import comparisons, cost, downstream, failures, forgetting, generation, lm, paper, tokenizers
from bashkir_peft.report import figures as fig
from bashkir_peft.report.context import ReportContext
from bashkir_peft.report.curves import curve_gaps, curve_summary
from bashkir_peft.report.external_sets import external_sets_table
from bashkir_peft.report.floors import floor_reference, floors_table
from bashkir_peft.report.frontier import STUDY, SWEEP, frontier_left_out, frontier_summary, frontier_table
from bashkir_peft.report.published import published_table
from bashkir_peft.report.runs import discover_runs
from bashkir_peft.report.spectrum import spectrum_table
from bashkir_peft.report.words import words_table


def _counts_the_corpus(name: str, build: Callable[[ReportContext], pd.DataFrame]) -> Callable[[ReportContext], pd.DataFrame]:
    """A table counted from the training split's text (the n-gram floors, the lexicon of the
    words table): where the split is not in the data folder (a folder extracted from a results
    bundle, which leaves corpus text out), the table the grid's own report wrote before
    (``runs/<grid>/report/tables/<name>.csv``, carried by the bundle), else ``build``."""

    def table(c: ReportContext) -> pd.DataFrame:
        if c.data_dir is None or not (c.data_dir / DataFiles.split("train")).is_file():
            earlier = c.runs_dir / GridFiles.REPORT / "tables" / f"{name}.csv"
            if earlier.is_file():
                return pd.read_csv(earlier)
        return build(c)

    return table


@dataclass(frozen=True)
class ReportTable:
    """One table of the report.

    Attributes:
        name: its key in ``ReportResult.tables`` and the stem of its files.
        build: context -> the table (``None``: the grid has no such table).
        description: what one row is, in a line.
    """

    name: str
    build: Callable[[ReportContext], pd.DataFrame | None]
    description: str


@dataclass(frozen=True)
class ReportFigure:
    """One figure of the report.

    Attributes:
        name: its key in ``ReportResult.figures`` and the stem of its PNG file.
        draw: (context with every table, PNG path) -> the path written (``None``: no data).
        description: what it shows, in a line.
    """

    name: str
    draw: Callable[[ReportContext, Path], Path | None]
    description: str


def _headline_floors(c: ReportContext) -> pd.DataFrame:
    """The n-gram floors on the headline protocol and split, as reference rows
    (:func:`~bashkir_peft.report.floors.floor_reference`) for the figures of bits per byte."""
    return floor_reference(c.tables.get("floors"), [(c.protocol, c.params.split)])


def _sweep_runs(c: ReportContext) -> pd.DataFrame | None:
    """The learning-rate sweep's runs, read from the sweep's runs folder (``None``: no sweep)."""
    sweep_dir = cost.sweep_runs_dir(c.runs_dir, c.design)
    return None if sweep_dir is None else cost.sweep_runs_table(discover_runs(sweep_dir))


def _frontier_grids(c: ReportContext) -> dict[str, list]:
    """The runs the frontier reads: the grid's, and its learning-rate sweep's where it has one."""
    sweep_dir = cost.sweep_runs_dir(c.runs_dir, c.design)
    return {STUDY: c.runs, **({} if sweep_dir is None else {SWEEP: discover_runs(sweep_dir)})}


TABLES: tuple[ReportTable, ...] = (
    ReportTable("runs", lambda c: cost.runs_table(c.runs),
                "every run: keys, status, error, trainable parameters, training cost"),
    ReportTable("metrics", lambda c: lm.metrics_table(c.runs),
                "finished run x protocol x split x source: perplexity, bits per byte, word perplexity"),
    ReportTable("summary", lambda c: lm.summary_table(c.tables["metrics"]),
                "model x method x protocol x split: mean, std and n over seeds"),
    ReportTable("differences", lambda c: lm.differences_table(c.runs, protocol=c.protocol, split=c.params.split,
                                                              **c.bootstrap),
                "model x pair of methods: bits-per-byte difference with an interval over seeds and documents"),
    ReportTable("quality_cost", lambda c: cost.quality_cost_table(c.tables["runs"], c.tables["metrics"],
                                                                  c.protocol, c.params.split),
                "finished run: headline metrics beside training cost"),
    ReportTable("fertility", lambda c: tokenizers.fertility_table(c.runs, c.tables["quality_cost"], c.data_dir,
                                                                  c.protocol, c.params.split),
                "model x method: tokenizer fertility beside bits per byte"),
    ReportTable("generation", lambda c: generation.generation_table(c.runs),
                "finished run with generations (and the reference text): language and diversity measures"),
    ReportTable("generation_summary",
                lambda c: generation.generation_summary(c.tables["generation"],
                                                        generation.generation_intervals(c.runs, **c.bootstrap)),
                "model x method: generation measures over seeds, language rates with intervals over prompts"),
    ReportTable("words", _counts_the_corpus("words", lambda c: words_table(c.runs, c.data_dir)),
                "run with generations, reference text, Russian text: in-lexicon rate and copy rate"),
    ReportTable("paper", lambda c: paper.paper_table(c.tables["summary"], paper.data_modes(c.runs)),
                "quoted number of the paper x matching cell of ours, with its data mode"),
    ReportTable("failures", lambda c: failures.failures_table(c.runs, c.gaps),
                "cell left out of the results: failed, incomplete, not started, corrupt, stale, with why"),
    ReportTable("forgetting", lambda c: forgetting.forgetting_table(c.runs),
                "trained run: Bashkir gained, English and Russian forgotten on SIB-200, against the base model"),
    ReportTable("forgetting_summary", lambda c: forgetting.forgetting_summary(c.tables["forgetting"]),
                "model x method: gained and forgotten, mean and std over seeds"),
    ReportTable("external_sets", lambda c: external_sets_table(c.runs),
                "external test set as scored: the subset's rule, documents, composition by category"),
    ReportTable("floors", _counts_the_corpus("floors", lambda c: floors_table(c.runs, c.data_dir)),
                "n-gram floor x protocol x split: bits per byte (and per sentence) of models of the training split"),
    ReportTable("published", lambda c: published_table(c.runs, c.tables["floors"]),
                "run, then published model: FLORES-200 bits per sentence under the Goldfish protocol"),
    ReportTable("downstream", lambda c: downstream.downstream_table(c.runs),
                "run x classifier (baselines once, first): SIB-200 Bashkir accuracy and macro-F1 with intervals"),
    ReportTable("parity", lambda c: tokenizers.parity_table(c.data_dir),
                "model: tokenizer fertility and parity premium on parallel text"),
    ReportTable("retokenization", lambda c: tokenizers.retokenization_table(c.runs),
                "model x adapted tokenizer x held-out side: share of tokens cut differently, new rows, unchanged"),
    ReportTable("speed", lambda c: tokenizers.speed_table(c.runs, c.protocol, c.params.split),
                "run with generations: tokens per word of the test text, generation words and tokens per second"),
    ReportTable("comparisons",
                lambda c: comparisons.comparisons_table(c.runs, c.design, protocol=c.protocol, **c.bootstrap,
                                                        known={c.params.split: c.tables["differences"]}),
                "the study's comparisons (or every pair) and forgetting: difference with an interval and flag"),
    ReportTable("downstream_comparisons", lambda c: downstream.downstream_comparisons(c.runs, c.design, **c.bootstrap),
                "measure x pair of methods: accuracy difference with an interval over seeds and sentences"),
    ReportTable("learning_curves", lambda c: cost.learning_curves_table(c.runs),
                "validation point of a trained run: bits per byte by bytes of training text seen"),
    ReportTable("disk", lambda c: cost.disk_usage(c.runs),
                "run: MiB kept (final model or adapter, checkpoints, the rest)"),
    ReportTable("spectrum", lambda c: spectrum_table(c.runs),
                "model x matrix type: rank holding 90 % of full fine-tuning's weight change, beside the LoRA ranks"),
    ReportTable("sweep_runs", _sweep_runs,
                "run of the study's learning-rate sweep: final validation bits per byte"),
    ReportTable("sweep", lambda c: cost.sweep_table(c.tables["sweep_runs"]) if "sweep_runs" in c.tables else None,
                "model x method x rate of the sweep: mean and SD over seeds, the chosen rate, at the edge or not"),
    ReportTable("frontier", lambda c: frontier_table(_frontier_grids(c)),
                "trained run of the grid and its sweep: FLORES-200 Bashkir gain, English, Russian loss, Pareto flags"),
    ReportTable("frontier_left_out", lambda c: frontier_left_out(_frontier_grids(c)),
                "trained run left out of the frontier, and why"),
    ReportTable("frontier_summary", lambda c: frontier_summary(c.tables["frontier"]),
                "grid x model x method x rate: the frontier's measures, mean over seeds, Pareto flags"),
    ReportTable("learning_curves_summary",
                lambda c: curve_summary(c.tables["learning_curves"], c.params.confidence),
                "model x arm x evaluation point: validation bits per byte, mean over seeds with a t-interval"),
    ReportTable("learning_curves_gaps",
                lambda c: curve_gaps(c.tables["learning_curves"], c.design.primary.b if c.design else None,
                                     c.params.confidence),
                "model x arm x evaluation point: gap to the reference arm with a Welch interval"),
)
"""Every table of a report, in the order they are built."""

FIGURES: tuple[ReportFigure, ...] = (
    ReportFigure("metrics_by_method",
                 lambda c, p: fig.metrics_by_method(c.tables["metrics"], p, c.protocol, c.params.split,
                                                    _headline_floors(c)),
                 "headline metrics by model and method, one point per seed; the n-gram floors as lines"),
    ReportFigure("differences", lambda c, p: fig.differences(c.tables["differences"], p),
                 "bits-per-byte differences between methods with their intervals"),
    ReportFigure("params_vs_bpb", lambda c, p: fig.params_vs_bpb(c.tables["quality_cost"], p, _headline_floors(c)),
                 "trainable parameters against bits per byte"),
    ReportFigure("cost_vs_quality", lambda c, p: fig.cost_vs_quality(c.tables["quality_cost"], p, _headline_floors(c)),
                 "training cost against bits per byte"),
    ReportFigure("fertility_vs_bpb", lambda c, p: fig.fertility_vs_bpb(c.tables["fertility"], p, _headline_floors(c)),
                 "tokenizer fertility against bits per byte"),
    ReportFigure("generation_language", lambda c, p: fig.generation_language(c.tables["generation_summary"], p),
                 "language shares of the generated text and the code-switch rate"),
    ReportFigure("gained_vs_forgotten", lambda c, p: fig.gained_vs_forgotten(c.tables["forgetting"], p),
                 "Bashkir gained against English and Russian forgotten, one point per run and language"),
    ReportFigure("learning_curves",
                 lambda c, p: fig.learning_curves(c.tables["learning_curves_summary"], c.tables["learning_curves_gaps"], p),
                 "validation bits per byte by training text seen: means over seeds with intervals, gaps to a reference"),
    ReportFigure("study_comparisons",
                 lambda c, p: fig.study_comparisons(c.tables["comparisons"], c.tables["downstream_comparisons"], p),
                 "forest plots of the study's comparisons and downstream differences"),
    ReportFigure("learning_rate_sweep",
                 lambda c, p: (fig.learning_rate_sweep(c.tables["sweep"], c.tables["sweep_runs"], p)
                               if "sweep" in c.tables else None),
                 "final validation bits per byte by learning rate: each seed, the mean, the chosen rate circled"),
    ReportFigure("frontier", lambda c, p: fig.frontier(c.tables["frontier"], p),
                 "Bashkir gain against English and Russian loss, one point per run, the Pareto front"),
)
"""Every figure of a report, in the order they are drawn (after every table is built)."""

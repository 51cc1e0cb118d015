"""What a grid found, in sentences: the study's design, its comparisons with intervals and
verdicts, forgetting, the language of the generations, the downstream task, the learning rates,
the scope of the evaluation, the state of every cell and the disk use.

Every sentence is built from the report's tables and the runs' typed records, never typed by
hand; an interval from fewer than :data:`~bashkir_peft.report.bootstrap.MIN_SEEDS` seeds or
:data:`~bashkir_peft.report.comparisons.MIN_DOCUMENTS` documents is flagged and not
interpreted (:func:`~bashkir_peft.report.comparisons.interval_flag`).
"""

from __future__ import annotations

import math

import pandas as pd

from bashkir_peft.config.design import StudyDesign
from bashkir_peft.names import REFERENCE_LABEL
from bashkir_peft.report.build import ReportResult
from bashkir_peft.report.comparisons import DESIGN_ROLES, FORGETTING_ROLE, MIN_DOCUMENTS, TRANSFER_ROLE
from bashkir_peft.report.downstream import ZERO_SHOT, downstream_results
from bashkir_peft.report.forgetting import FORGETTING_SPLITS, TRANSFER_SPLITS
from bashkir_peft.report.power import pooled_sd, seeds_for_power, welch_power
from bashkir_peft.report.runs import RunRecord

SPLIT_WORDS = {"test": "the corpus's test split", "sib200-bak": "the Bashkir side of SIB-200",
               "sib200-eng": "the English side of SIB-200", "sib200-rus": "the Russian side of SIB-200"}
"""How a sentence names an evaluated split (any other split by its name)."""

FIRST_EDITION_EFFECT = 0.065
"""Bits per byte: the CPU study's first-edition primary difference (LoRA r = 8 − full
fine-tuning on SIB-200 Bashkir, three seeds; benchmarks/RESULTS.md, "The CPU study"), the effect
whose detection the power sentence (:func:`_power_sentence`) is about."""

GENERATION_TARGET = 0.9
"""The study's target share of the generated text's letters that are in sentences the
project's identifier labels Bashkir: a letter share, which Bashkir-looking text without real
words also reaches (the words table, :mod:`bashkir_peft.report.words`, says whether they are words)."""


def _interval(row) -> str:
    """``difference [low, high]`` in bits per byte; "(no interval)" where the bootstrap gave
    none (its reason is the row's flag), never a printed NaN."""
    if pd.isna(row["ci_low"]) or pd.isna(row["ci_high"]):
        return f"{row['difference']:+.3f} bits per byte (no interval)"
    return f"{row['difference']:+.3f} bits per byte [{row['ci_low']:+.3f}, {row['ci_high']:+.3f}]"


def _flagged(row) -> bool:
    return isinstance(row["flag"], str) and bool(row["flag"])


def _verdict(row, better: str = "better") -> str:
    if _flagged(row):
        return f"flagged ({row['flag']}): not interpreted"
    if row["ci_high"] < 0:
        return f"{row['a']} is {better} than {row['b']}: the interval excludes 0"
    if row["ci_low"] > 0:
        return f"{row['b']} is {better} than {row['a']}: the interval excludes 0"
    return "the interval includes 0: no difference is shown at this budget"


def _p(p: float) -> str:
    return f"= {p:.3g}" if p >= 0.001 else "< 0.001"


def _holm(row) -> str:
    """``; Holm-adjusted p = x`` where the row has a Holm-adjusted p-value, else nothing."""
    p = row.get("p_holm", math.nan)
    return "" if p is None or pd.isna(p) else f"; Holm-adjusted p {_p(p)}"


def _exploratory(row) -> str:
    """What a row other than the primary comparison is: exploratory, with its family's
    Holm-adjusted p-value (:mod:`bashkir_peft.report.multiplicity`)."""
    p = row.get("p_holm", math.nan)
    adjusted = "" if p is None or pd.isna(p) else f", Holm-adjusted p {_p(p)} within the {row['family']} family"
    return f" (exploratory{adjusted})"


def _comparison_sentences(comp: pd.DataFrame, confidence: float) -> list[str]:
    """One sentence per comparison of the study (or pair), then one per forgetting split and
    one per transfer split."""
    out, unsure = [], []
    for _, r in comp[~comp["role"].isin([FORGETTING_ROLE, TRANSFER_ROLE])].iterrows():
        where = SPLIT_WORDS.get(r["split"], r["split"])
        if _flagged(r) and r["role"] != "primary":  # the primary keeps its own sentence, flagged or not
            unsure.append(r)
            continue
        head = f"**{r['role'].capitalize()}.** {r['question']} " if r["question"] and r["role"] in DESIGN_ROLES else (
            f"**{r['role'].capitalize()}.** ")
        exploratory = "" if r["role"] == "primary" else _exploratory(r)
        out.append(f"{head}On {where} ({r['n_documents']} documents, {r['n_seeds_a']} x {r['n_seeds_b']} seeds), "
                   f"{r['a']} − {r['b']} = {_interval(r)} ({confidence:.0%} interval over seeds and documents): "
                   f"{_verdict(r)}{exploratory}.")
    if unsure:
        flags = sorted({part.strip() for r in unsure for part in str(r["flag"]).split(";")})
        out.append(f"**What cannot yet be said** ({'; '.join(flags)}): "
                   + "; ".join(f"{r['a']} − {r['b']} on {SPLIT_WORDS.get(r['split'], r['split'])} = "
                               f"{r['difference']:+.3f} bits per byte" for r in unsure)
                   + ". These differences are shown in the tables for the record, not interpreted.")
    for role, splits, worse, better in ((FORGETTING_ROLE, FORGETTING_SPLITS, "forgotten", "improved"),
                                        (TRANSFER_ROLE, TRANSFER_SPLITS, "worse", "transfer")):
        rows_of = comp[comp["role"] == role]
        for split, language in splits.items():
            rows = rows_of[rows_of["split"].isin([split, f"{split} (goldfish)"])]
            if rows.empty:
                continue
            parts = [f"{r['a']} {_interval(r)}" + (" (not interpreted)" if _flagged(r) else
                                                     f" ({worse}{_holm(r)})" if r["ci_low"] > 0 else
                                                     f" ({better}{_holm(r)})" if r["ci_high"] < 0 else
                                                     f" (no change shown{_holm(r)})")
                     for _, r in rows.iterrows()]
            out.append(f"**{role.capitalize()}, {language}** (exploratory). Against the base model on the same "
                       f"{rows['n_documents'].iloc[0]} {language.split(' (')[0]} sentences (> 0: worse than before): "
                       + "; ".join(parts) + ".")
    return out


def _generation_sentence(gen_summary: pd.DataFrame, target: float = GENERATION_TARGET) -> str | None:
    """The method with the most Bashkir generations against ``target``, and the others."""
    g = gen_summary[gen_summary["method_label"] != REFERENCE_LABEL] if len(gen_summary) else gen_summary
    if g.empty or "share_bak" not in g.columns:
        return None
    best = g.loc[g["share_bak"].idxmax()]
    lo, hi = best.get("share_bak_low", math.nan), best.get("share_bak_high", math.nan)
    interval = "" if pd.isna(lo) else f" [{lo:.1%}, {hi:.1%}]"
    agree = best.get("crosscheck_agreement", math.nan)
    agreement = "" if pd.isna(agree) else (f"; fastText lid.176 labels {agree:.0%} of its long sentences the same "
                                            "way as the project's identifier")
    reached = ("reaches" if (not pd.isna(lo) and lo >= target) else
               "reaches, but its interval reaches below," if best["share_bak"] >= target else "does not reach")
    return (f"**Generations.** The most Bashkir generations are {best['method_label']}'s: {best['share_bak']:.1%}"
            f"{interval} of the generated text (letters of sentences labelled Bashkir by the project's identifier; "
            f"{int(best.get('n_prompts', best.get('n_continuations', 0)) or 0)} continuations over its seeds)"
            f"{agreement}; it {reached} the study's target of {target:.0%} of letters in Bashkir-labelled sentences "
            "(a letter share: it does not tell real words from Bashkir-looking ones; the words table does)."
            + ("" if len(g) < 2 else " The others: " + "; ".join(
                f"{r['method_label']} {r['share_bak']:.1%}"
                + ("" if pd.isna(r.get("share_bak_low", math.nan)) else
                   f" [{r['share_bak_low']:.1%}, {r['share_bak_high']:.1%}]")
                for _, r in g.drop(index=best.name).iterrows()) + "."))


def _downstream_sentence(runs: list[RunRecord], comparisons: pd.DataFrame | None,
                         design: StudyDesign | None) -> str | None:
    """Zero-shot accuracy by method (:data:`~bashkir_peft.report.downstream.ZERO_SHOT`, chosen
    by the results' typed fields), the character TF-IDF baseline, and the primary pair's
    differences; ``None`` without a zero-shot result."""
    results = downstream_results(runs)
    zero = [(keys["method_label"], r) for keys, r in results if ZERO_SHOT.selects(r)]
    if not zero:
        return None
    means = pd.Series([r.accuracy for _, r in zero]).groupby([label for label, _ in zero], sort=False).mean()
    tfidf = next((r.accuracy for _, r in results if r.approach == "char_tfidf"), None)
    n = zero[0][1].n
    pair = [] if comparisons is None or design is None else [
        f"{r['measure']}, {r['a']} − {r['b']}: {100 * r['difference']:+.0f} points "
        f"[{100 * r['ci_low']:+.0f}, {100 * r['ci_high']:+.0f}]"
        for _, r in comparisons[(comparisons["a"] == design.primary.a)
                                & (comparisons["b"] == design.primary.b)].iterrows()]
    return ("**Topic classification (SIB-200, zero-shot).** Accuracy, mean over seeds: "
            + ", ".join(f"{k} {v:.0%}" for k, v in means.items())
            + (f"; a character TF-IDF classifier {tfidf:.0%}" if tfidf is not None else "")
            + (f". The primary pair: {'; '.join(pair)}" if pair else "")
            + f". On {n} test sentences" + (f" (< {MIN_DOCUMENTS}): flagged, not interpreted." if n < MIN_DOCUMENTS
                                            else "."))


def _sweep_sentence(sweep: pd.DataFrame, runs: list[RunRecord]) -> str | None:
    """The sweep's choice per model and method label (mean over seeds), whether it lies at the
    edge of the rates tried, and whether the study's trained runs of that label used it."""
    chosen = sweep[sweep["chosen"].astype(bool)] if len(sweep) else sweep
    if chosen.empty:
        return None
    used: dict[tuple[str, str], set[float]] = {}
    for run in runs:
        if run.train is not None and run.status == "finished":
            used.setdefault((run.model, run.method_label), set()).add(run.train.params.learning_rate)
    parts = []
    for _, r in chosen.iterrows():
        arm = sweep[(sweep["model"] == r["model"]) & (sweep["method_label"] == r["method_label"])]
        tried = ", ".join(f"{x:g}" for x in arm["learning_rate"])
        seeds = "-".join(f"{n}" for n in sorted({arm["n_seeds"].min(), arm["n_seeds"].max()}))
        sd = "" if pd.isna(r["bits_per_byte_sd"]) else f" ± {r['bits_per_byte_sd']:.3f} SD"
        lowest, highest = r["learning_rate"] == arm["learning_rate"].min(), r["learning_rate"] == arm["learning_rate"].max()
        side = "below and above" if lowest and highest else "below" if lowest else "above"
        edge = "" if not r["at_edge"] else f"; **at the edge of the rates tried: the grid should extend one step {side}**"
        rates = used.get((r["model"], r["method_label"]), set())
        check = ("" if not rates else "; the study's runs use it" if rates == {r["learning_rate"]}
                 else "; **the study's runs use " + ", ".join(f"{x:g}" for x in sorted(rates)) + " instead**")
        parts.append(f"{r['method_label']} {r['learning_rate']:g} (of {tried}; validation "
                     f"{r['bits_per_byte']:.3f}{sd} bits per byte, mean of {seeds} seed"
                     f"{'' if seeds == '1' else 's'} per rate{edge}{check})")
    return ("**Learning rates.** Chosen on validation by the sweep (the lowest mean over seeds): "
            + "; ".join(parts) + ".")


def _power_sentence(result: ReportResult, design: StudyDesign, alpha: float = 0.05) -> str | None:
    """The power of the primary comparison at its seeds (:func:`~bashkir_peft.report.power.welch_power`)
    to detect :data:`FIRST_EDITION_EFFECT` and a difference of the observed size, with the
    between-seed SD pooled from the runs' per-seed bits per byte on the primary's split (the
    headline protocol, all sources); ``None`` without a primary row or with fewer than 2 seeds
    in an arm."""
    comp = result.tables["comparisons"]
    rows = comp[comp["role"] == "primary"] if len(comp) else comp
    metrics = result.tables["metrics"]
    if rows.empty or metrics.empty:
        return None
    r = rows.iloc[0]
    m = metrics[(metrics["model"] == r["model"]) & (metrics["split"] == design.primary.split)
                & (metrics["protocol"] == result.protocol) & (metrics["source"] == "all")]
    a, b = (m[m["method_label"] == label]["bits_per_byte"].to_numpy(float) for label in (r["a"], r["b"]))
    if len(a) < 2 or len(b) < 2:
        return None
    sd = pooled_sd(a, b)
    if not sd > 0:
        return None
    power = [welch_power(d, sd, len(a), len(b), alpha) for d in (FIRST_EDITION_EFFECT, r["difference"])]
    return (f"**Power of the primary.** At {len(a)} x {len(b)} seeds and the runs' between-seed SD "
            f"({sd:.3f} bits per byte, pooled), a two-sided t test at {alpha:.0%} detects a true difference of "
            f"{FIRST_EDITION_EFFECT} bits per byte (the first edition's) with power {power[0]:.2f}, and one of the "
            f"observed size ({abs(r['difference']):.3f}) with power {power[1]:.2f}; power 0.8 for "
            f"{FIRST_EDITION_EFFECT} needs {seeds_for_power(FIRST_EDITION_EFFECT, sd, 0.8, alpha)} seeds per arm "
            "(noncentral t, Welch-Satterthwaite; seed variance only, the sentences' adds to it).")


def _scope_sentence(runs: list[RunRecord], comp: pd.DataFrame) -> str | None:
    """How much text each trained run saw, and how many documents each split's comparisons use."""
    seen, split_bytes = [], None
    for run in runs:
        t = run.train
        if t is None or t.status != "finished" or t.text_seen is None:
            continue
        seen.append(t.text_seen)
        split_bytes = t.data.train.bytes if t.data.train is not None else None
    parts = []
    if seen:
        share = f" ({sum(seen) / len(seen) / split_bytes:.1%} of the training split)" if split_bytes else ""
        lo, hi = f"{min(seen) / 1000:.1f}", f"{max(seen) / 1000:.1f}"
        parts.append(f"Each trained run saw {lo if lo == hi else f'{lo}-{hi}'} kB of training text{share}")
    if len(comp):
        docs = comp.groupby("split")["n_documents"].max()
        parts.append("the comparisons use " + ", ".join(f"{n} documents of {SPLIT_WORDS.get(k, k)}"
                                                       for k, n in docs.items()))
    return ("**Scope.** " + "; ".join(parts) + ".") if parts else None


def _cells_sentence(runs: pd.DataFrame, failures: pd.DataFrame | None) -> str:
    """The grid's cells by state: the runs read, and the index's cells without a readable run
    (not started, e.g. the parts of a study not run yet; corrupt; stale), from the failures
    table (:func:`~bashkir_peft.report.failures.failures_table`)."""
    gaps = failures[~failures["run_id"].isin(runs["run_id"])] if failures is not None and len(failures) else None
    states = pd.concat([runs["status"], gaps["status"]]) if gaps is not None else runs["status"]
    counts = ", ".join(f"{n} {s}" for s, n in states.value_counts().items())
    more = (" A cell not started is a part of the grid not run yet (a tier, `grid run GRID --tier NAME`) or "
            "the rest of a stopped `grid run`: what needs it is missing here, not failed."
            if (states == "not started").any() else "")
    return f"**Cells.** {len(states)} cells: {counts}.{more}"


def findings(result: ReportResult, design: StudyDesign | None, confidence: float = 0.95) -> list[str]:
    """The findings box of a report, in sentences built from its tables.

    Args:
        result: a :class:`~bashkir_peft.report.build.ReportResult` with the tables
            ``comparisons``, ``generation_summary``, ``runs``, ``sweep``, ``disk`` and
            ``downstream_comparisons``, and its runs (the downstream results are read from
            their typed records).
        design: the grid's study block (``None``: a grid without one).
        confidence: of the intervals.

    Returns:
        Markdown paragraphs: for a demonstration grid (no study block; not ``paper``) first
        that it is one; the budget, the comparisons (primary first, then its power:
        :func:`_power_sentence`) with their intervals and verdicts (every row but the primary
        one exploratory, with its Holm-adjusted p-value), forgetting, generation against the 90 % letter-share target, the
        downstream task, the learning rates, the state of every cell, the evaluation scope
        and the disk use.
    """
    t = result.tables
    out = []
    if design is None and result.grid != "paper":
        out.append("**A demonstration of the pipeline, not a study.** This grid fixed no comparison before its "
                   "runs and is sized to show what the pipeline computes and records: none of its numbers is a "
                   "finding. The CPU study's book states findings with their intervals (built from its committed "
                   "results: `make study-book`).")
    elif design is not None:
        out.append(f"**Design, named before the runs.** Budget: {design.budget}. Primary comparison: "
                   f"{design.primary.a} against {design.primary.b} on {SPLIT_WORDS.get(design.primary.split)}.")
    comparisons = _comparison_sentences(t["comparisons"], confidence)
    power = _power_sentence(result, design) if design is not None else None
    primary = 1 if comparisons and comparisons[0].startswith("**Primary.**") else 0
    out += comparisons[:primary] + ([power] if power else []) + comparisons[primary:]
    sentences = [_generation_sentence(t["generation_summary"]),
                 _downstream_sentence(result.runs, t.get("downstream_comparisons"), design),
                 _sweep_sentence(t["sweep"], result.runs) if "sweep" in t else None,
                 _scope_sentence(result.runs, t["comparisons"])]
    out += [s for s in sentences if s]
    out.append(_cells_sentence(t["runs"], t.get("failures")))
    disk = t.get("disk")
    if disk is not None and len(disk):
        out.append(f"**Disk.** The runs keep {disk['total_mib'].sum() / 1024:.1f} GiB: final models and adapters "
                   f"{disk['final_mib'].sum() / 1024:.1f} GiB, checkpoints for resuming "
                   f"{disk['checkpoints_mib'].sum() / 1024:.1f} GiB.")
    return out

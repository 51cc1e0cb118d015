"""What a study grid found: its named comparisons with intervals, forgetting against the base
model, the learning curves, the learning-rate sweep, disk use, and the findings in sentences.

A grid's ``study`` block (:class:`~bashkir_peft.design.StudyDesign`) names its comparisons
before it runs; :func:`comparisons_table` measures them (and, for a grid without the block,
every pair of methods on the test split), :func:`findings` says what they show. Every
sentence is built from the tables, never typed by hand; an interval from fewer than
:data:`MIN_SEEDS` seeds or :data:`MIN_DOCUMENTS` documents is flagged and not interpreted
(the book issue's rule).
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from bashkir_peft.config.design import Comparison, StudyDesign
from bashkir_peft.names import label_parts, method_sort_key
from bashkir_peft.records import RunFiles
from bashkir_peft.report.bootstrap import MIN_SEEDS
from bashkir_peft.report.runs import RunRecord
from bashkir_peft.report.tables import difference_row, differences_table
from bashkir_peft.train.budget import text_seen

MIN_DOCUMENTS = 30
"""Fewer documents than this: an interval is shown but not interpreted."""

FORGETTING_SPLITS = {"sib200-eng": "English", "sib200-rus": "Russian"}
"""External sets (by name) on which a trained method's change against the base model is forgetting."""

SPLIT_WORDS = {"test": "the corpus's test split", "sib200-bak": "the Bashkir side of SIB-200",
               "sib200-eng": "the English side of SIB-200", "sib200-rus": "the Russian side of SIB-200"}

CURVE_COLUMNS = ["run_id", "model", "method_label", "seed", "learning_rate", "step", "train_bytes_seen",
                 "eval_loss", "bits_per_byte"]


def learning_curves(runs: list[RunRecord]) -> pd.DataFrame:
    """Validation bits per byte against bytes of training text seen, for every trained run.

    Returns:
        One row per validation point of a run's ``train.json`` (:data:`CURVE_COLUMNS`;
        ``bits_per_byte`` and ``train_bytes_seen`` NaN for records written before the byte
        budget existed).
    """
    rows = []
    for run in runs:
        if run.train is None or run.train.losses is None:
            continue
        for point in run.train.losses.eval:
            rows.append({"run_id": run.run_id, "model": run.model, "method_label": run.method_label,
                         "seed": run.seed, "learning_rate": run.train.learning_rate, "step": point["step"],
                         "train_bytes_seen": point.get("train_bytes_seen"), "eval_loss": point["eval_loss"],
                         "bits_per_byte": point.get("bits_per_byte")})
    out = pd.DataFrame(rows, columns=CURVE_COLUMNS)
    for col in ("train_bytes_seen", "bits_per_byte"):
        out[col] = out[col].astype(float)
    return out


def sweep_table(runs: list[RunRecord]) -> pd.DataFrame:
    """The learning-rate sweep: every finished run's final validation bits per byte, and per
    model and method the rate with the lowest one (``chosen``).

    Returns:
        Columns ``model, method_label, learning_rate, steps, tokens_seen, train_bytes_seen,
        bits_per_byte, chosen``, sorted by model, method and rate.
    """
    rows = []
    for run in runs:
        t = run.train
        if t is None or t.status != "finished" or t.final_eval is None:
            continue
        seen = text_seen(t.budget, t.global_step)
        rows.append({"model": run.model, "method_label": run.method_label, "learning_rate": t.learning_rate,
                     "steps": t.global_step, "tokens_seen": t.tokens_seen,
                     "train_bytes_seen": None if seen is None else round(seen),
                     "bits_per_byte": t.final_eval.bits_per_byte})
    cols = ["model", "method_label", "learning_rate", "steps", "tokens_seen", "train_bytes_seen", "bits_per_byte",
            "chosen"]
    out = pd.DataFrame(rows, columns=cols[:-1])
    if out.empty:
        return pd.DataFrame(columns=cols)
    out["bits_per_byte"] = out["bits_per_byte"].astype(float)
    best = out.groupby(["model", "method_label"])["bits_per_byte"].transform("min")
    out["chosen"] = out["bits_per_byte"] == best
    order = sorted(range(len(out)), key=lambda i: (out["model"].iloc[i], method_sort_key(out["method_label"].iloc[i]),
                                                   out["learning_rate"].iloc[i]))
    return out.iloc[order].reset_index(drop=True)


def _flag(row: dict) -> str | None:
    """Why an interval is not to be interpreted (``None``: it may be)."""
    why = []
    if pd.isna(row.get("ci_low")):
        why.append("no interval")
    if row["n_documents"] < MIN_DOCUMENTS:
        why.append(f"{row['n_documents']} documents (< {MIN_DOCUMENTS})")
    seeds = [n for n, label in ((row["n_seeds_a"], row["a"]), (row["n_seeds_b"], row["b"])) if label != "base"]
    if any(n < MIN_SEEDS for n in seeds):
        why.append(f"fewer than {MIN_SEEDS} seeds")
    return "; ".join(why) or None


def _oriented(diffs: pd.DataFrame, a: str, b: str) -> dict | None:
    """The row of ``diffs`` for A − B (a B − A row negated, its interval swapped), or ``None``."""
    for sign, (x, y) in ((1.0, (a, b)), (-1.0, (b, a))):
        hit = diffs[(diffs["method_a"] == x) & (diffs["method_b"] == y)]
        if len(hit):
            r = hit.iloc[0]
            lo, hi = sign * r["ci_low"], sign * r["ci_high"]
            return {"bpb_a": r["bpb_a"] if sign > 0 else r["bpb_b"], "bpb_b": r["bpb_b"] if sign > 0 else r["bpb_a"],
                    "difference": sign * r["difference"], "ci_low": min(lo, hi), "ci_high": max(lo, hi),
                    "n_documents": int(r["n_documents"]),
                    "n_seeds_a": int(r["n_seeds_a"] if sign > 0 else r["n_seeds_b"]),
                    "n_seeds_b": int(r["n_seeds_b"] if sign > 0 else r["n_seeds_a"])}
    return None


COMPARISON_COLUMNS = ["role", "question", "model", "a", "b", "split", "bpb_a", "bpb_b", "difference", "ci_low",
                      "ci_high", "n_documents", "n_seeds_a", "n_seeds_b", "flag"]


def comparisons_table(runs: list[RunRecord], design: StudyDesign | None, *, protocol: str | None,
                      n_resamples: int = 2000, confidence: float = 0.95, seed: int = 0,
                      known: dict[str, pd.DataFrame] | None = None) -> pd.DataFrame:
    """The study's comparisons and the forgetting of every trained method, with intervals.

    Rows, each a difference A − B in bits per byte on the documents every run of both scored
    (:func:`~bashkir_peft.report.tables.differences_table`: interval over seeds and
    documents; negative = A better):
    - ``primary`` and ``secondary``: the study's comparisons on their split, each also on the
      corpus's test split when that is another split (role ``... (test split)``); without a
      ``study`` block, every pair of methods on the test split (role ``pair``);
    - ``forgetting``: every trained method against ``base`` on each external set of
      :data:`FORGETTING_SPLITS` that was scored (> 0: forgotten).

    Args:
        known: split -> its :func:`~bashkir_peft.report.tables.differences_table` already
            computed with the same protocol and bootstrap settings (the report's headline
            split), not computed again.

    Returns:
        :data:`COMPARISON_COLUMNS`; ``flag`` says why a row's interval is not interpreted.
    """
    cache: dict[str, pd.DataFrame] = dict(known or {})

    def diffs(split: str) -> pd.DataFrame:
        if split not in cache:
            cache[split] = differences_table(runs, protocol=protocol, split=split, n_resamples=n_resamples,
                                             confidence=confidence, seed=seed)
        return cache[split]

    wanted: list[tuple[str, Comparison]] = []
    if design is not None:
        for role, c in [("primary", design.primary), *(("secondary", c) for c in design.secondary)]:
            wanted.append((role, c))
            if c.split != "test":
                wanted.append((f"{role} (test split)", c.model_copy(update={"split": "test"})))
    else:
        for _, r in diffs("test").iterrows():
            wanted.append(("pair", Comparison(a=r["method_a"], b=r["method_b"], split="test", question="")))
    trained = sorted({r.method_label for r in runs if r.status == "finished" and r.method != "base"},
                     key=method_sort_key)
    for split in FORGETTING_SPLITS:
        for label in trained:
            wanted.append(("forgetting", Comparison(a=label, b="base", split=split, question="")))
    rows = []
    for role, c in wanted:
        d = diffs(c.split)
        for model in sorted(set(d["model"])):
            row = _oriented(d[d["model"] == model], c.a, c.b)
            if row is None:
                continue
            row = {"role": role, "question": c.question, "model": model, "a": c.a, "b": c.b, "split": c.split,
                   **row}
            row["flag"] = _flag(row)
            rows.append(row)
    return pd.DataFrame(rows, columns=COMPARISON_COLUMNS)


DOWNSTREAM_MEASURES = {"zero-shot accuracy": ("in_context", "0-shot, acc"),
                       "probe accuracy (layer chosen on dev)": ("probe", "(best on dev)")}
"""Downstream measures compared between methods: name -> (approach, setting or its ending)."""


def _correct(run: RunRecord) -> dict[str, pd.Series]:
    """Per downstream measure, 1.0/0.0 per test sentence (indexed by id) of a finished run."""
    path = run.path / RunFiles.DOWNSTREAM_PREDICTIONS
    if run.status != "finished" or not path.is_file():
        return {}
    pred = pd.read_parquet(path)
    out = {}
    for name, (approach, setting) in DOWNSTREAM_MEASURES.items():
        rows = pred[(pred["approach"] == approach) & pred["setting"].str.endswith(setting)]
        if len(rows):
            out[name] = (rows["prediction"] == rows["category"]).astype(float).set_axis(rows["index_id"])
    return out


def downstream_comparisons(runs: list[RunRecord], design: StudyDesign | None, *, n_resamples: int = 2000,
                           confidence: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """Accuracy differences A − B on the downstream task (SIB-200 topics), for the study's
    comparisons and every trained method against ``base``, with an interval over seeds and
    test sentences: the bits-per-byte differences' paired row
    (:func:`~bashkir_peft.report.tables.difference_row`, hierarchical bootstrap) with each
    sentence's correctness (x ln 2) as its "NLL" and one "byte" per sentence, so the statistic
    is the difference of the mean accuracies.

    Returns:
        Columns ``measure, model, a, b, accuracy_a, accuracy_b, difference, ci_low, ci_high,
        n_documents, n_seeds_a, n_seeds_b, flag`` (> 0: A classifies better).
    """
    per: dict[tuple[str, str, str], list[pd.DataFrame]] = {}
    for run in runs:
        for name, correct in _correct(run).items():
            as_sums = pd.DataFrame({"nll": correct * math.log(2), "bytes": 1.0})
            per.setdefault((name, run.model, run.method_label), []).append(as_sums)
    pairs = [(c.a, c.b) for c in ([design.primary, *design.secondary] if design else [])]
    trained = sorted({lab for _, _, lab in per if lab != "base"}, key=method_sort_key)
    pairs += [(lab, "base") for lab in trained if (lab, "base") not in pairs]
    rows = []
    for name in DOWNSTREAM_MEASURES:
        for model in sorted({m for n, m, _ in per if n == name}):
            for a, b in pairs:
                sa, sb = per.get((name, model, a)), per.get((name, model, b))
                if not sa or not sb:
                    continue
                d = difference_row(sa, sb, a, b, n_resamples=n_resamples, confidence=confidence, seed=seed)
                if d is None:
                    continue
                row = {"measure": name, "model": model, "a": a, "b": b, "accuracy_a": d["bpb_a"],
                       "accuracy_b": d["bpb_b"], **{k: d[k] for k in ("difference", "ci_low", "ci_high",
                                                                      "n_documents", "n_seeds_a", "n_seeds_b")}}
                row["flag"] = _flag(row)
                rows.append(row)
    return pd.DataFrame(rows, columns=["measure", "model", "a", "b", "accuracy_a", "accuracy_b", "difference",
                                       "ci_low", "ci_high", "n_documents", "n_seeds_a", "n_seeds_b", "flag"])


def disk_usage(runs: list[RunRecord]) -> pd.DataFrame:
    """Bytes every run keeps, from the file manifests its stages recorded in its cell record
    (so a results bundle, which leaves the weights out, reports the same): the final model or
    adapter, the checkpoints kept for resuming, and the rest the stages recorded (records,
    per-document tables, an adapted tokenizer; executed notebooks are not in the manifests).

    Returns:
        Columns ``run_id, method_label, final_mib, checkpoints_mib, other_mib, total_mib``.
    """
    rows = []
    for run in runs:
        size = {"final": 0, "checkpoints": 0, "other": 0}
        for stage in run.cell.stages.values():
            for name, stamp in (stage.files or {}).items():
                top = name.split("/")[0]
                size[top if top in (RunFiles.FINAL, RunFiles.CHECKPOINTS) else "other"] += stamp.bytes
        rows.append({"run_id": run.run_id, "method_label": run.method_label, "final_mib": size["final"] / 2**20,
                     "checkpoints_mib": size["checkpoints"] / 2**20, "other_mib": size["other"] / 2**20,
                     "total_mib": sum(size.values()) / 2**20})
    return pd.DataFrame(rows, columns=["run_id", "method_label", "final_mib", "checkpoints_mib", "other_mib",
                                       "total_mib"])


def _interval(row) -> str:
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


def _comparison_sentences(comp: pd.DataFrame, confidence: float) -> list[str]:
    out = []
    for _, r in comp[~comp["role"].isin(["forgetting"])].iterrows():
        where = SPLIT_WORDS.get(r["split"], r["split"])
        head = f"**{r['role'].capitalize()}.** {r['question']} " if r["question"] and "(" not in r["role"] else (
            f"**{r['role'].capitalize()}.** ")
        out.append(f"{head}On {where} ({r['n_documents']} documents, {r['n_seeds_a']} x {r['n_seeds_b']} seeds), "
                   f"{r['a']} − {r['b']} = {_interval(r)} ({confidence:.0%} interval over seeds and documents): "
                   f"{_verdict(r)}.")
    forget = comp[comp["role"] == "forgetting"]
    for split, language in FORGETTING_SPLITS.items():
        rows = forget[forget["split"] == split]
        if rows.empty:
            continue
        parts = [f"{r['a']} {_interval(r)}" + (f" (flagged: {r['flag']})" if _flagged(r) else
                                                 " (forgotten)" if r["ci_low"] > 0 else
                                                 " (improved)" if r["ci_high"] < 0 else " (no change shown)")
                 for _, r in rows.iterrows()]
        out.append(f"**Forgetting, {language}.** Against the base model on the same {rows['n_documents'].iloc[0]} "
                   f"{language} sentences (> 0: worse than before): " + "; ".join(parts) + ".")
    return out


def _generation_sentence(gen_summary: pd.DataFrame, target: float = 0.9) -> str | None:
    g = gen_summary[gen_summary["method_label"] != "reference text"] if len(gen_summary) else gen_summary
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
            f"{agreement}; it {reached} the study's target of {target:.0%}."
            + ("" if len(g) < 2 else " The others: " + "; ".join(
                f"{r['method_label']} {r['share_bak']:.1%}"
                + ("" if pd.isna(r.get("share_bak_low", math.nan)) else
                   f" [{r['share_bak_low']:.1%}, {r['share_bak_high']:.1%}]")
                for _, r in g.drop(index=best.name).iterrows()) + "."))


def _sweep_sentence(sweep: pd.DataFrame, runs: list[RunRecord]) -> str | None:
    """The sweep's choice per method, and whether the study's trained runs used it."""
    chosen = sweep[sweep["chosen"].astype(bool)] if len(sweep) else sweep
    if chosen.empty:
        return None
    used: dict[str, set[float]] = {}
    for run in runs:
        if run.train is not None and run.status == "finished":
            used.setdefault(label_parts(run.method_label)[0], set()).add(run.train.learning_rate)
    parts = []
    for _, r in chosen.iterrows():
        tried = ", ".join(f"{x:g}" for x in sweep[sweep["method_label"] == r["method_label"]]["learning_rate"])
        rates = used.get(label_parts(r["method_label"])[0], set())
        check = ("" if not rates else "; the study's runs use it" if rates == {r["learning_rate"]}
                 else "; **the study's runs use " + ", ".join(f"{x:g}" for x in sorted(rates)) + " instead**")
        parts.append(f"{r['method_label']} {r['learning_rate']:g} (of {tried}; validation "
                     f"{r['bits_per_byte']:.3f} bits per byte{check})")
    return ("**Learning rates.** Chosen on validation by the sweep (one seed, half the budget): "
            + "; ".join(parts) + ".")


def _scope_sentence(runs: list[RunRecord], comp: pd.DataFrame) -> str | None:
    """How much text each trained run saw, and how many documents each split's comparisons use."""
    seen, split_bytes = [], None
    for run in runs:
        t = run.train
        if t is None or t.status != "finished" or text_seen(t.budget, t.global_step) is None:
            continue
        seen.append(text_seen(t.budget, t.global_step))
        split_bytes = (t.data.get("train") or {}).get("bytes")
    parts = []
    if seen:
        share = f" ({sum(seen) / len(seen) / split_bytes:.1%} of the training split)" if split_bytes else ""
        parts.append(f"Each trained run saw {min(seen) / 1000:.1f}-{max(seen) / 1000:.1f} kB of training text{share}")
    if len(comp):
        docs = comp.groupby("split")["n_documents"].max()
        parts.append("the comparisons use " + ", ".join(f"{n} documents of {SPLIT_WORDS.get(k, k)}"
                                                       for k, n in docs.items()))
    return ("**Scope.** " + "; ".join(parts) + ".") if parts else None


def findings(result, design: StudyDesign | None, confidence: float = 0.95) -> list[str]:
    """The findings box of a report, in sentences built from its tables.

    Args:
        result: a :class:`~bashkir_peft.report.build.ReportResult` with the tables
            ``comparisons``, ``generation_summary``, ``runs``, ``sweep``, ``disk`` and ``downstream``.
        design: the grid's study block (``None``: a grid without one).
        confidence: of the intervals.

    Returns:
        Markdown paragraphs: the budget, the comparisons (primary first) with their
        intervals and verdicts, forgetting, generation against the 90 % target, the
        downstream task, the learning rates, the state of every cell, the evaluation scope
        and the disk use.
    """
    t = result.tables
    out = []
    if design is not None:
        out.append(f"**Design, named before the runs.** Budget: {design.budget}. Primary comparison: "
                   f"{design.primary.a} against {design.primary.b} on {SPLIT_WORDS.get(design.primary.split)}.")
    out += _comparison_sentences(t["comparisons"], confidence)
    gen = _generation_sentence(t["generation_summary"])
    if gen:
        out.append(gen)
    ds = t["downstream"]
    if len(ds):
        zs = ds[(ds["approach"] == "in_context") & ds["setting"].str.endswith(", acc")]
        if len(zs):
            means = zs.groupby("method_label", sort=False)["accuracy"].mean()
            base = ds[ds["approach"] == "char_tfidf"]["accuracy"]
            n = int(zs["n"].iloc[0])
            dc = t.get("downstream_comparisons")
            pair = [] if dc is None or design is None else [
                f"{r['measure']}, {r['a']} − {r['b']}: {100 * r['difference']:+.0f} points "
                f"[{100 * r['ci_low']:+.0f}, {100 * r['ci_high']:+.0f}]"
                for _, r in dc[(dc["a"] == design.primary.a) & (dc["b"] == design.primary.b)].iterrows()]
            out.append("**Topic classification (SIB-200, zero-shot).** Accuracy, mean over seeds: "
                       + ", ".join(f"{k} {v:.0%}" for k, v in means.items())
                       + (f"; a character TF-IDF classifier {base.iloc[0]:.0%}" if len(base) else "")
                       + (f". The primary pair: {'; '.join(pair)}" if pair else "")
                       + f". On {n} test sentences" + (f" (< {MIN_DOCUMENTS}): flagged, not interpreted." if n < MIN_DOCUMENTS
                                                       else "."))
    sweep = t.get("sweep")
    if sweep is not None:
        s = _sweep_sentence(sweep, result.runs)
        if s:
            out.append(s)
    scope = _scope_sentence(result.runs, t["comparisons"])
    if scope:
        out.append(scope)
    states = t["runs"]["status"].value_counts()
    out.append(f"**Cells.** {len(t['runs'])} cells: " + ", ".join(f"{n} {s}" for s, n in states.items()) + ".")
    disk = t.get("disk")
    if disk is not None and len(disk):
        out.append(f"**Disk.** The runs keep {disk['total_mib'].sum() / 1024:.1f} GiB: final models and adapters "
                   f"{disk['final_mib'].sum() / 1024:.1f} GiB, checkpoints for resuming "
                   f"{disk['checkpoints_mib'].sum() / 1024:.1f} GiB.")
    return out


def sweep_runs_dir(runs_dir: Path, design: StudyDesign | None) -> Path | None:
    """The runs folder of the study's learning-rate sweep (beside the grid's), if it has one."""
    if design is None or design.learning_rate_sweep is None:
        return None
    path = Path(runs_dir).parent / design.learning_rate_sweep
    return path if path.is_dir() else None

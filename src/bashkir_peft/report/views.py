"""The report for a reader: the result tables formatted for reading (``mean ± std``, intervals
in brackets, fixed decimals), HTML tables with stable ids for the book, the figures, and the note
on what a grid's numbers mean. Used by notebook 05 and the book; nothing here computes a result.
"""

from __future__ import annotations

import math

import pandas as pd

from bashkir_peft.config.grid import grid_file, resolve_grid
from bashkir_peft.names import BASE_TOKENIZER, label_tokenizer, method_sort_key
from bashkir_peft.report.build import ReportResult
from bashkir_peft.report.floors import floor_reference
from bashkir_peft.report.frontier import FRONTIER_MEASURES, LOSS_SIDES

ADAPTED_MARK = "†"
"""Marks a token perplexity on a tokenizer other than the model's own (an adapted tokenizer):
it counts other tokens, so it does not compare with the rows without the mark."""


def format_headline(summary: pd.DataFrame, floors: pd.DataFrame | None = None) -> pd.DataFrame:
    """The summary as a reader's table: bits per byte first (the one measure that compares
    across tokenizers), fixed decimals, one row per model x method x protocol x split, then
    the n-gram floors on the same protocols and splits.

    Args:
        summary: :func:`~bashkir_peft.report.lm.summary_table` (or the headline rows of it).
        floors: :func:`~bashkir_peft.report.floors.floors_table` (``None``: no floor rows).

    Returns:
        ``model, method, protocol, split, n, bits per byte, token perplexity, word perplexity
        (log10)``: bits per byte as ``mean ± std`` with 3 decimals (std left out for one seed),
        token perplexity with 1 decimal and :data:`ADAPTED_MARK` where the tokenizer is an
        adapted one (:func:`~bashkir_peft.names.label_tokenizer`), the word perplexity as the log10 of its mean
        over seeds with 2 decimals (word perplexities of small models reach 1e13 and more).
        Below the runs, a reference row per floor of each (protocol, split) of the summary
        (:func:`~bashkir_peft.report.floors.floor_reference`; method ``floor: ...``, ``n``
        ``–``, bits per byte only: an n-gram has no token or word perplexity of the model's).
    """
    if summary.empty:
        return summary
    out = summary[["model", "method_label", "protocol", "split", "n"]].copy()
    out["bits per byte"] = [f"{a:.3f}" + ("" if pd.isna(b) else f" ± {b:.3f}")
                            for a, b in zip(summary["bits_per_byte_mean"], summary["bits_per_byte_std"])]
    out["token perplexity"] = [f"{a:,.1f}" + (ADAPTED_MARK if label_tokenizer(label) != BASE_TOKENIZER else "")
                               for a, label in zip(summary["perplexity_mean"], summary["method_label"])]
    out["word perplexity (log10)"] = [f"{math.log10(a):.2f}" if a > 0 else "–" for a in summary["word_perplexity_mean"]]
    ref = floor_reference(floors, zip(summary["protocol"], summary["split"]))
    if len(ref):
        rows = pd.DataFrame({"model": ref["model"].replace("", "–"), "method_label": ref["method_label"],
                             "protocol": ref["protocol"], "split": ref["split"], "n": "–",
                             "bits per byte": [f"{v:.3f}" for v in ref["bits_per_byte"]],
                             "token perplexity": "–", "word perplexity (log10)": "–"})
        out = pd.concat([out.astype({"n": object}), rows], ignore_index=True)
    return out.rename(columns={"method_label": "method"})


def per_run_table(result: ReportResult) -> pd.DataFrame:
    """One row per finished cell: its keys, headline metrics, trainable parameters and cost.

    Args:
        result: a report (its ``quality_cost`` table).

    Returns:
        ``run_id, model, method, seed, perplexity, bits_per_byte, word_perplexity,
        trainable_params, wall_time_s, peak_memory_mib, tokens_per_s`` (those present), sorted by
        model, method and seed; then a reference row per n-gram floor on the same protocol and
        split (``result.tables["floors"]``, :func:`~bashkir_peft.report.floors.floor_reference`:
        no run id, method ``floor: ...``, bits per byte only).
    """
    q = result.tables["quality_cost"]
    if q.empty:
        return q
    cols = ["run_id", "model", "method_label", "seed", "perplexity", "bits_per_byte", "word_perplexity",
            "trainable_params", "wall_time_s", "peak_memory_mib", "tokens_per_s"]
    out = q[[c for c in cols if c in q.columns]].rename(columns={"method_label": "method"})
    order = [(m, method_sort_key(lab), -1 if pd.isna(sd) else int(sd))
             for m, lab, sd in zip(out["model"], out["method"], out["seed"])]
    out = out.iloc[sorted(range(len(out)), key=order.__getitem__)].reset_index(drop=True)
    ref = floor_reference(result.tables.get("floors"), set(zip(q["protocol"], q["split"])))
    if ref.empty:
        return out
    ref = ref.assign(run_id="", model=ref["model"].replace("", "–")).rename(columns={"method_label": "method"})
    return pd.concat([out, ref[["run_id", "model", "method", "bits_per_byte"]]], ignore_index=True)


def format_paper(paper: pd.DataFrame) -> pd.DataFrame:
    """The paper table for reading: the quoted value's column is headed "quoted from the paper",
    ours as ``mean ± std`` with the number of seeds and the data mode that produced it.

    Args:
        paper: :func:`~bashkir_peft.report.paper.paper_table`.

    Returns:
        ``model, method, metric, quoted from the paper, ours: method, ours: mean ± std,
        ours: seeds, ours: data mode`` (``–`` where the grid has no such cell).
    """
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
    ``accuracy`` and ``macro_f1`` as ``value [low, high]`` (95 % bootstrap interval).

    Args:
        downstream: :func:`~bashkir_peft.report.downstream.downstream_table`.

    Returns:
        ``model, method, seed, approach, setting, n, accuracy, macro_f1``.
    """
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
"""The generation summary's columns a reader compares, in order (:func:`generation_view`)."""


def generation_view(gen_summary: pd.DataFrame) -> pd.DataFrame:
    """The generation summary's columns a reader compares (those present), method renamed; a
    rate with an interval reads ``estimate [low, high]`` (95 % over prompts within seeds).

    Args:
        gen_summary: :func:`~bashkir_peft.report.generation.generation_summary`.

    Returns:
        The columns of :data:`GENERATION_COLUMNS` it has (``method_label`` as ``method``).
    """
    cols = [c for c in GENERATION_COLUMNS if c in gen_summary.columns]
    out = gen_summary[cols].copy()
    for c in cols:
        if f"{c}_low" in gen_summary.columns:
            out[c] = [("–" if pd.isna(v) else f"{v:.2f}") + ("" if pd.isna(lo) else f" [{lo:.2f}, {hi:.2f}]")
                      for v, lo, hi in zip(gen_summary[c], gen_summary[f"{c}_low"], gen_summary[f"{c}_high"])]
    return out.rename(columns={"method_label": "method"})


def grid_note(grid: str) -> str:
    """A note on what the grid's numbers mean (from the grid file's ``description``, and a
    warning that any grid other than ``paper`` demonstrates the pipeline only).

    Args:
        grid: a grid YAML path or a grid name.

    Returns:
        Markdown: the description, then a study grid's or a demonstration grid's warning
        (empty for ``paper`` without a description).

    Raises:
        ConfigError: an invalid grid file or grid name.
    """
    loaded = grid_file(grid)
    name = loaded.name if loaded is not None else resolve_grid(grid)[0]
    desc = loaded.spec.description.strip() + "\n\n" if loaded is not None and loaded.spec.description else ""
    if name != "paper" and loaded is not None and loaded.spec.study is not None:
        desc += (f"**The `{name}` grid is a study at small scale, not a reproduction of the paper's numbers**: "
                 "its findings hold for its model, budget and corpus (the results chapter states them).")
    elif name != "paper":
        desc += (f"**The `{name}` grid is a demonstration of the pipeline, not a reproduction of the "
                 "paper's numbers**: small models, few training steps, a local corpus.")
    return desc


def show_table(df: pd.DataFrame, table_id: str, *, digits: int = 4):
    """An HTML table with a stable ``id`` (the book's tests and links find it by id).

    Args:
        df: the table (missing values shown as ``–``).
        table_id: the HTML ``id``.
        digits: significant digits of float columns.

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
    """The figure ``name`` as an embedded PNG, or a note when the grid had no data for it.

    Args:
        result: a report.
        name: a figure of :data:`~bashkir_peft.report.registry.FIGURES`.

    Returns:
        ``IPython.display.Image``, or ``IPython.display.Markdown`` (the note).
    """
    from IPython.display import Image, Markdown

    path = result.figures.get(name)
    if path is None:
        return Markdown(f"*(no data for the figure `{name}` in this grid)*")
    return Image(filename=str(path))


def format_frontier(summary: pd.DataFrame) -> pd.DataFrame:
    """The frontier's means over seeds for reading: fixed decimals, the fronts an arm is on.

    Args:
        summary: :func:`~bashkir_peft.report.frontier.frontier_summary`.

    Returns:
        ``model, grid, method, label, learning rate, seeds, Bashkir gain, English loss, Russian
        loss, Tatar change, on the front`` (bits per byte with 3 decimals and a sign; ``on the
        front``: the loss languages whose Pareto front holds the arm, ``–`` for none); no NaN.
    """
    if summary.empty:
        return summary
    out = pd.DataFrame({"model": summary["model"], "grid": summary["grid"], "method": summary["method_label"],
                        "label": summary["label"].fillna("").replace("", "–"),
                        "learning rate": [f"{x:g}" for x in summary["learning_rate"]], "seeds": summary["n"]})
    for col, name in FRONTIER_MEASURES.items():
        out[name] = [f"{x:+.3f}" for x in summary[col]]
    out["on the front"] = [", ".join(s.capitalize() for s in LOSS_SIDES if r[f"pareto_{s}"]) or "–"
                           for _, r in summary.iterrows()]
    return out

"""Seaborn figures of the report, each written as a PNG (atomically) from a tidy table.

Every function returns the path written, or ``None`` when its table has nothing to plot
(e.g. no training runs in a zero-shot-only grid), so the report never fails on a figure.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bashkir_peft.atomic import atomic_path
from bashkir_peft.names import label_parts, method_sort_key
from bashkir_peft.report.frontier import STUDY, SWEEP

METRIC_LABELS = {"perplexity": "token perplexity", "bits_per_byte": "bits per byte",
                 "word_perplexity": "word perplexity"}


def pyplot():
    """``(matplotlib.pyplot, seaborn)`` with the non-interactive Agg backend (figures are
    written to files, never shown in a window)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    return plt, sns


def _save(fig, path: Path) -> Path:
    plt, _ = pyplot()
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=110, bbox_inches="tight")
    finally:
        plt.close(fig)
    return path


def _legend_outside(ax) -> None:
    """Move the legend out of the axes and call the hue "method" (not the column name)."""
    _, sns = pyplot()
    leg = ax.get_legend()
    if leg is None:
        return
    for text in [*leg.get_texts(), leg.get_title()]:
        if text.get_text() == "method_label":
            text.set_text("method")
    sns.move_legend(ax, "upper left", bbox_to_anchor=(1, 1))


def _order(labels) -> list[str]:
    return sorted(set(labels), key=method_sort_key)


METHOD_COLORS = {"reference": "tab:olive", "base": "tab:gray", "full": "tab:blue", "lora": "tab:green",
                 "qlora": "tab:orange"}


def _by_method(labels) -> dict[str, list[str]]:
    by_method: dict[str, list[str]] = {}
    for lab in _order(labels):
        by_method.setdefault(label_parts(lab)[0], []).append(lab)
    return by_method


def method_palette(labels) -> dict[str, tuple]:
    """One colour per method label, the same in every figure: a hue per method (full blue,
    LoRA green, QLoRA orange, base grey), from a darker to a lighter shade of it in method
    order (rank, then placement, tokenizer and arm); pair it with :func:`method_markers` so
    that labels of one method stay apart where shades are close."""
    from matplotlib.colors import to_rgb

    out = {}
    for method, labs in _by_method(labels).items():
        base = to_rgb(METHOD_COLORS.get(method, "tab:purple"))
        for i, lab in enumerate(labs):
            t = -0.4 + 0.9 * i / (len(labs) - 1) if len(labs) > 1 else 0.0  # < 0 darker, > 0 lighter
            out[lab] = tuple(c * (1 + t) if t < 0 else c + (1 - c) * t for c in base)
    return out


LABEL_MARKERS = ("o", "s", "D", "^", "v", "P", "X", "*")
"""Markers of the method labels of one method, in method order (:func:`method_markers`)."""


def method_markers(labels) -> dict[str, str]:
    """One marker per method label: the k-th label of a method (in method order) gets the k-th
    of :data:`LABEL_MARKERS` (cycling), so two shades of one hue never share a marker."""
    return {lab: LABEL_MARKERS[i % len(LABEL_MARKERS)]
            for labs in _by_method(labels).values() for i, lab in enumerate(labs)}


FLOOR_STYLES = {"floor: byte": ":", "floor: token bigram": "--"}
"""Line style of each floor's reference line (by the start of its label), drawn in black; a
bigram over an adapted tokenizer's tokens (``tok=`` in its label) dash-dotted."""


def floor_lines(ax, floors: pd.DataFrame | None, models: list[str] | None = None, legend: bool = True) -> None:
    """Reference lines at the n-gram floors' bits per byte (y) on an axis whose y is bits per
    byte: black, dotted for the byte model, dashed for a token bigram, each in the legend.

    Args:
        ax: the axis.
        floors: :func:`~bashkir_peft.report.floors.floor_reference` rows of the figure's one
            protocol and split (``None`` or empty: nothing drawn).
        models: the x categories of a bar chart by model (a bigram's line then spans its own
            model's bars only, the byte floor every bar); ``None``: every line spans the axis
            (a bigram is labelled with its model).
        legend: add the lines to the axis's legend (appended to the one it has, else a new one).
    """
    if floors is None or floors.empty:
        return
    lines = []
    for _, r in floors.iterrows():
        style = "-." if "tok=" in r["method_label"] else \
            next(v for k, v in FLOOR_STYLES.items() if r["method_label"].startswith(k))
        label = r["method_label"] + (f" ({r['model']})" if r["model"] and models is None else "")
        if models is not None and r["model"] in models:
            i = models.index(r["model"])
            lines.append(ax.hlines(r["bits_per_byte"], i - 0.45, i + 0.45, colors="black", linestyles=style, lw=1.2,
                                   label=label))
        elif models is None or not r["model"]:
            lines.append(ax.axhline(r["bits_per_byte"], color="black", ls=style, lw=1.2, label=label))
    if not legend or not lines:
        return
    old = ax.get_legend()
    handles = [*(old.legend_handles if old else []), *lines]
    labels = [*(t.get_text() for t in (old.texts if old else [])), *(ln.get_label() for ln in lines)]
    ax.legend(handles, labels, title=old.get_title().get_text() if old else None, fontsize="small")


def metrics_by_method(metrics: pd.DataFrame, path: Path, protocol: str | None, split: str = "test",
                      floors: pd.DataFrame | None = None) -> Path | None:
    """Bars: mean of each metric by model x method (error bar: std over seeds; dots: seeds);
    on bits per byte, the n-gram ``floors`` of the same protocol and split as black lines
    (:func:`floor_lines`)."""
    plt, sns = pyplot()
    m = metrics[(metrics["protocol"] == protocol) & (metrics["split"] == split) & (metrics["source"] == "all")] \
        if len(metrics) else metrics
    if m.empty:
        return None
    order = _order(m["method_label"])
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for ax, metric in zip(axes, METRIC_LABELS):
        sns.barplot(m, x="model", y=metric, hue="method_label", hue_order=order, errorbar="sd",
                    palette=method_palette(order), ax=ax, alpha=0.9, legend=ax is axes[-1])
        sns.stripplot(m, x="model", y=metric, hue="method_label", hue_order=order, dodge=True,
                      palette="dark:black", size=3, ax=ax, legend=False)
        ax.set_title(f"{METRIC_LABELS[metric]} ({protocol}, {split})")
        ax.set_ylabel(METRIC_LABELS[metric] + " (lower is better)")
        if metric != "bits_per_byte":
            ax.set_yscale("log")
        else:
            floor_lines(ax, floors, [t.get_text() for t in ax.get_xticklabels()])
        ax.tick_params(axis="x", rotation=20)
    if axes[-1].get_legend():
        sns.move_legend(axes[-1], "upper left", bbox_to_anchor=(1, 1), title="method")
    return _save(fig, path)


def differences(diff: pd.DataFrame, path: Path) -> Path | None:
    """Forest plot: bits-per-byte difference (A - B) with its interval over seeds and
    documents, per model and pair; pairs without an interval (too few seeds) are left out."""
    plt, _ = pyplot()
    diff = diff.dropna(subset=["ci_low", "ci_high"])
    if diff.empty:
        return None
    d = diff.assign(pair=diff["model"] + ": " + diff["method_a"] + " − " + diff["method_b"])
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(d) + 1.2))
    y = range(len(d))
    ax.errorbar(d["difference"], list(y), xerr=[d["difference"] - d["ci_low"], d["ci_high"] - d["difference"]],
                fmt="o", capsize=3, color="tab:blue")
    ax.axvline(0, color="grey", lw=1, ls="--")
    ax.set_yticks(list(y), d["pair"])
    ax.invert_yaxis()
    conf = int(round(100 * float(d["confidence"].iloc[0])))
    ax.set_xlabel(f"difference in bits per byte (A − B), {conf} % interval (seeds, documents); < 0: A better")
    return _save(fig, path)


def _scatter_vs_bpb(df: pd.DataFrame, x: str, xlabel: str, path: Path, log_x: bool = False,
                    floors: pd.DataFrame | None = None) -> Path:
    """One scatter of ``x`` against bits per byte, coloured by method, marked by model; the
    n-gram ``floors`` as black lines (:func:`floor_lines`)."""
    plt, sns = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    sns.scatterplot(df, x=x, y="bits_per_byte", hue="method_label",
                    hue_order=_order(df["method_label"]), palette=method_palette(df["method_label"]),
                    style="model", s=70, ax=ax)
    floor_lines(ax, floors)
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("bits per byte (lower is better)")
    _legend_outside(ax)
    return _save(fig, path)


def params_vs_bpb(quality: pd.DataFrame, path: Path, floors: pd.DataFrame | None = None) -> Path | None:
    """Scatter: trainable parameters (log scale) vs bits per byte (trained runs only), with the
    n-gram ``floors`` of the same protocol and split as reference lines."""
    q = quality[quality["trainable_params"] > 0] if len(quality) else quality
    if q.empty:
        return None
    return _scatter_vs_bpb(q, "trainable_params", "trainable parameters (log scale)", path, log_x=True, floors=floors)


def cost_vs_quality(quality: pd.DataFrame, path: Path, floors: pd.DataFrame | None = None) -> Path | None:
    """Scatters against bits per byte: training wall time, peak memory, tokens/s and tokens seen
    (tokens count per tokenizer: a run with an adapted tokenizer, ``tok=...`` in its method
    label, sees more text per token); the n-gram ``floors`` of the same protocol and split as
    reference lines in each."""
    plt, sns = pyplot()
    q = quality.dropna(subset=["wall_time_s"]) if len(quality) else quality
    if q.empty:
        return None
    fig, axes = plt.subplots(1, 4, figsize=(18, 4))
    order = _order(q["method_label"])
    for ax, (col, label) in zip(axes, [("wall_time_s", "training wall time (s)"),
                                       ("peak_memory_mib", "peak memory (MiB)"),
                                       ("tokens_per_s", "training tokens / s"),
                                       ("tokens_seen", "training tokens seen")]):
        sns.scatterplot(q, x=col, y="bits_per_byte", hue="method_label", hue_order=order, style="model",
                        palette=method_palette(order), s=60, ax=ax, legend=ax is axes[-1])
        floor_lines(ax, floors, legend=ax is axes[-1])
        ax.set_xlabel(label)
        ax.set_ylabel("bits per byte (lower is better)")
    _legend_outside(axes[-1])
    return _save(fig, path)


def fertility_vs_bpb(fert: pd.DataFrame, path: Path, floors: pd.DataFrame | None = None) -> Path | None:
    """Scatter: tokenizer fertility (tokens per word) vs bits per byte, by model and method,
    with the n-gram ``floors`` of the same protocol and split as reference lines."""
    f = fert.dropna(subset=["fertility", "bits_per_byte"]) if len(fert) else fert
    if f.empty:
        return None
    return _scatter_vs_bpb(f, "fertility", "fertility (tokens per whitespace word)", path, floors=floors)


def generation_language(gen_summary: pd.DataFrame, path: Path) -> Path | None:
    """Stacked bars of the language shares of the generated text (letters of the sentences
    labelled with each language), and the code-switch rate."""
    plt, sns = pyplot()
    share_cols = [c for c in ("share_bak", "share_rus", "share_eng", "share_other") if c in gen_summary.columns]
    if gen_summary.empty or not share_cols:
        return None
    g = gen_summary.copy()
    g["cell"] = g["model"] + "\n" + g["method_label"]
    g = g.iloc[sorted(range(len(g)), key=lambda i: (g["model"].iloc[i], method_sort_key(g["method_label"].iloc[i])))]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(14, 4), gridspec_kw={"wspace": 0.45})
    bottom = None
    palette = dict(zip(share_cols, sns.color_palette("Set2", len(share_cols))))
    for col in share_cols:
        vals = g[col].fillna(0).to_numpy()
        ax1.bar(g["cell"], vals, bottom=bottom, label=col.removeprefix("share_"), color=palette[col])
        bottom = vals if bottom is None else bottom + vals
    ax1.set_ylabel("share of generated letters, by sentence language")
    ax1.set_ylim(0, 1)
    ax1.legend(title="language", bbox_to_anchor=(1, 1), loc="upper left")
    ax1.tick_params(axis="x", rotation=30)
    if "code_switch_rate" in g.columns:
        pal = method_palette(g["method_label"])
        ax2.bar(g["cell"], g["code_switch_rate"].fillna(0), color=[pal[lab] for lab in g["method_label"]])
    ax2.set_ylabel("code-switch rate (share of continuations)")
    ax2.set_ylim(0, 1)
    ax2.tick_params(axis="x", rotation=30)
    return _save(fig, path)


def gained_vs_forgotten(forgetting: pd.DataFrame, path: Path) -> Path | None:
    """Scatter, one point per trained run and language: the Bashkir bits-per-byte gain
    (x; base − run on SIB-200 Bashkir) against the English (circles) and Russian (squares)
    bits-per-byte loss (y; run − base on the same sentences), coloured by method. Up: forgot
    more; right: learnt more Bashkir."""
    plt, _ = pyplot()
    f = forgetting.dropna(subset=["bashkir_gain"]) if len(forgetting) else forgetting
    if f.empty or f[["english_loss", "russian_loss"]].isna().all().all():
        return None
    palette = method_palette(f["method_label"])
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for side, marker in (("english", "o"), ("russian", "s")):
        for lab in _order(f["method_label"]):
            g = f[f["method_label"] == lab]
            ax.scatter(g["bashkir_gain"], g[f"{side}_loss"], marker=marker, s=55, color=palette[lab],
                       edgecolor="black", linewidth=0.5, label=f"{lab}, {side}")
    ax.axhline(0, color="grey", lw=1, ls="--")
    ax.axvline(0, color="grey", lw=1, ls="--")
    ax.set_xlabel("Bashkir gained: bits per byte, base − run (SIB-200 bak)")
    ax.set_ylabel("forgotten: bits per byte, run − base (SIB-200 eng, rus)")
    ax.legend(bbox_to_anchor=(1, 1), loc="upper left", title="method, language")
    return _save(fig, path)


def _clip_top(ax, values: pd.Series, floor_top: float | None = None) -> None:
    """Cap the y axis of ``ax`` where a few points (a collapsed run, a first evaluation far
    above the rest) would flatten every other curve: at Tukey's far-out fence of ``values``,
    Q3 + 3 x IQR (Tukey 1977, "Exploratory Data Analysis"), at least ``floor_top``, and only
    when a value lies above it; the count of points above the cap is written in the axes' upper
    right corner."""
    q1, q3 = (float(values.quantile(q)) for q in (0.25, 0.75))
    top = q3 + 3 * max(q3 - q1, 0.01)
    top = max(top, floor_top) if floor_top is not None else top
    if float(values.max()) <= top:
        return
    lo = float(values.min())
    ax.set_ylim(lo - 0.05 * (top - lo), top)
    above = int((values > top).sum())
    ax.text(0.98, 0.97, f"{above} point(s) above {top:.2f}, off the axis", transform=ax.transAxes,
            ha="right", va="top", fontsize=10, color="dimgrey")


def learning_curves(summary: pd.DataFrame, gaps: pd.DataFrame, path: Path) -> Path | None:
    """Learning curves over seeds (:mod:`bashkir_peft.report.curves`), two panels stacked
    (readable on a narrow screen), both against kilobytes of training text seen (one scale for
    every tokenizer): top, each arm's mean validation bits per byte over its seeds with a band of
    its 95 % t-interval (no band for one seed; the legend gives n); below, each arm's gap to the
    reference arm of its budget at the same evaluation point (< 0: ahead of it; the y label
    names every reference, e.g. ``full / full @long``) with Welch's 95 % interval,
    so a ranking that holds as the budget grows reads as gaps that keep their sign. Colour and
    marker by method label (:func:`method_palette`, :func:`method_markers`), line style by arm
    within a label (e.g. a sweep's rates); each y axis capped above far-out points
    (:func:`_clip_top`, which counts what it leaves off)."""
    plt, _ = pyplot()
    if summary.empty:
        return None
    s = summary.assign(kb=summary["train_bytes_seen"] / 1000)
    arms = list(dict.fromkeys(s["arm"]))
    label_of = {arm: s.loc[s["arm"] == arm, "method_label"].iloc[0] for arm in arms}
    palette, markers = method_palette(s["method_label"]), method_markers(s["method_label"])
    nth = {arm: sum(label_of[a] == label_of[arm] for a in arms[:i]) % 4 for i, arm in enumerate(arms)}
    styles = {arm: ("-", "--", ":", "-.")[k] for arm, k in nth.items()}  # arms of one label told apart

    def draw(ax, frame: pd.DataFrame, y: str, label: bool) -> None:
        for (model, arm), g in frame.groupby(["model", "arm"], sort=False):
            name = f"{arm} (n={int(g['n'].max())})" + (f", {model}" if s["model"].nunique() > 1 else "")
            ax.plot(g["kb"], g[y], marker=markers[label_of[arm]], color=palette[label_of[arm]], ls=styles[arm],
                    mec="black", mew=0.5, label=name if label else None)
            band = g.dropna(subset=["ci_low", "ci_high"])
            if len(band):
                ax.fill_between(band["kb"], band["ci_low"], band["ci_high"], color=palette[label_of[arm]], alpha=0.15)

    with plt.rc_context({"font.size": 12}):
        fig, axes = plt.subplots(2, 1, figsize=(6.4, 9.6), sharex=True, gridspec_kw={"height_ratios": [3, 2]})
        draw(axes[0], s, "mean", label=True)
        _clip_top(axes[0], s["mean"])
        axes[0].set_ylabel("validation bits per byte\n(lower is better)")
        axes[0].set_title("mean over seeds, 95 % t-interval band", fontsize=12)
        if len(gaps):
            refs = list(dict.fromkeys(gaps["reference"]))
            g = gaps.assign(kb=gaps["train_bytes_seen"] / 1000)
            draw(axes[1], g, "difference", label=False)
            _clip_top(axes[1], g["difference"], floor_top=0.05)
            axes[1].axhline(0, color=palette.get(label_of.get(refs[0], ""), "grey"), lw=1.5, ls="--")
            axes[1].set_ylabel(f"gap to {' / '.join(refs)}:\nbits per byte (< 0: ahead)")
            axes[1].set_title("each arm minus the reference, Welch 95 % band", fontsize=12)
        else:
            axes[1].set_visible(False)
        axes[-1].set_xlabel("training text seen (kB, UTF-8)")
        axes[0].set_xlim(left=0)
        axes[0].xaxis.set_tick_params(labelbottom=True)
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=1 if len(labels) <= 8 else 2,
                   frameon=False, title="arm (seeds)", fontsize=10 if len(labels) > 8 else 12)
        fig.tight_layout()
    return _save(fig, path)


def learning_rate_sweep(sweep: pd.DataFrame, sweep_runs: pd.DataFrame, path: Path) -> Path | None:
    """Final validation bits per byte (y) against the peak learning rate (x, log scale) of the
    sweep: one small point per run (seed), a line through the mean over seeds of each method
    label (:func:`bashkir_peft.report.cost.sweep_table`), its chosen rate circled (a dashed
    circle: the choice is at the edge of the rates tried)."""
    plt, sns = pyplot()
    s = sweep.dropna(subset=["bits_per_byte"]) if len(sweep) else sweep
    if s.empty:
        return None
    r = sweep_runs.dropna(subset=["bits_per_byte"])
    order = _order(s["method_label"])
    palette = method_palette(s["method_label"])
    fig, ax = plt.subplots(figsize=(6.5, 4))
    sns.lineplot(s, x="learning_rate", y="bits_per_byte", hue="method_label", hue_order=order, marker="o",
                 palette=palette, ax=ax)
    sns.scatterplot(r, x="learning_rate", y="bits_per_byte", hue="method_label", hue_order=order, palette=palette,
                    s=18, alpha=0.6, legend=False, ax=ax)
    chosen = s[s["chosen"].astype(bool)]
    for edge, style in ((False, "solid"), (True, "dashed")):
        c = chosen[chosen["at_edge"].astype(bool) == edge]
        if len(c):
            ax.scatter(c["learning_rate"], c["bits_per_byte"], s=220, facecolors="none", edgecolors="black",
                       linewidth=1.2, linestyle=style, label="chosen, at the edge" if edge else "chosen")
    ax.set_xscale("log")
    ax.set_xlabel("peak learning rate (log scale)")
    ax.set_ylabel("validation bits per byte at the end (lower is better)")
    ax.legend(bbox_to_anchor=(1, 1), loc="upper left", title="method (line: mean over seeds)")
    return _save(fig, path)


def _forest(ax, rows: pd.DataFrame, labels: list[str], xlabel: str, scale: float = 1.0) -> None:
    """Differences with their intervals, one row each; flagged rows (not interpreted) hollow."""
    flagged = rows["flag"].map(lambda f: isinstance(f, str) and bool(f)).to_numpy()
    for i, (_, r) in enumerate(rows.iterrows()):
        d, lo, hi = (scale * r[k] for k in ("difference", "ci_low", "ci_high"))
        err = None if pd.isna(lo) else [[d - lo], [hi - d]]
        ax.errorbar([d], [i], xerr=err, fmt="o", capsize=3, color="grey" if flagged[i] else "tab:blue",
                    mfc="white" if flagged[i] else "tab:blue")
    ax.axvline(0, color="grey", lw=1, ls="--")
    ax.set_yticks(range(len(rows)), labels)
    ax.invert_yaxis()
    ax.set_xlabel(xlabel)


def study_comparisons(comp: pd.DataFrame, downstream: pd.DataFrame, path: Path) -> Path | None:
    """Forest plots of a study (:mod:`bashkir_peft.report.comparisons`), one panel per family
    so that each has an x scale of its own (forgetting reaches over a bit per byte, the
    comparisons of arms a tenth of that): the study's comparisons (bits per byte A − B; < 0: A
    better), forgetting and transfer against the base model (run − base; > 0: worse than
    before), and downstream accuracy differences (> 0: A better). Each with its interval over
    seeds and documents; hollow grey points are flagged (fewer than 3 seeds or 30 documents):
    shown, not interpreted."""
    plt, _ = pyplot()
    if comp.empty and downstream.empty:
        return None
    def pair(r) -> str:
        return f"{r['role']}: {r['a']} − {r['b']} ({r['split']})"

    kept = comp["family"] == "forgetting"
    panels = [p for p in ((comp[~kept], pair, "bits per byte, A − B (95 % interval; < 0: A better)", 1.0),
                          (comp[kept], pair, "bits per byte, run − base (95 % interval; > 0: worse than before)", 1.0),
                          (downstream, lambda r: f"{r['measure']}: {r['a']} − {r['b']}",
                           "accuracy, A − B (percentage points; > 0: A better)", 100.0)) if len(p[0])]
    fig, axes = plt.subplots(len(panels), 1, figsize=(10, 0.4 * sum(len(p[0]) for p in panels) + 1.5 * len(panels)),
                             squeeze=False, gridspec_kw={"height_ratios": [len(p[0]) + 2 for p in panels]})
    for ax, (rows, label, xlabel, scale) in zip(axes[:, 0], panels):
        _forest(ax, rows, [label(r) for _, r in rows.iterrows()], xlabel, scale=scale)
    fig.tight_layout()
    return _save(fig, path)


GRID_FILLED = {STUDY: True, SWEEP: False}
"""Whether a frontier point is filled, by its grid (the study: filled with its method's colour;
its learning-rate sweep: hollow, ringed in that colour)."""


def frontier(front: pd.DataFrame, path: Path) -> Path | None:
    """The learning-forgetting frontier (:func:`bashkir_peft.report.frontier.frontier_table`),
    two panels stacked (readable on a narrow screen): English loss, then Russian loss (x; bits
    per byte, run − base: > 0 forgotten) against the Bashkir gain (y; base − run: > 0 learnt),
    one point per run, coloured and marked by method label (:func:`method_palette`,
    :func:`method_markers`), filled for the study and hollow for its learning-rate sweep
    (:data:`GRID_FILLED`); the Pareto front of each panel (no run both gains more and loses
    less) as a step line through its points (Biderman et al. 2024, Fig. 1). Up and to the left
    is better."""
    plt, _ = pyplot()
    if front.empty:
        return None
    order = _order(front["method_label"])
    palette, markers = method_palette(order), method_markers(order)
    with plt.rc_context({"font.size": 12}):
        fig, axes = plt.subplots(2, 1, figsize=(6.4, 9.6), sharey=True)
        for ax, side in zip(axes, ("english", "russian")):
            for lab in order:
                for grid, filled in GRID_FILLED.items():
                    g = front[(front["method_label"] == lab) & (front["grid"] == grid)]
                    if len(g):
                        ax.scatter(g[f"{side}_loss"], g["bashkir_gain"], marker=markers[lab], s=70,
                                   facecolors=palette[lab] if filled else "none",
                                   edgecolors="black" if filled else palette[lab],
                                   linewidths=0.6 if filled else 1.8, zorder=3)
            pts = front[front[f"pareto_{side}"].astype(bool)].sort_values(f"{side}_loss")
            ax.step(pts[f"{side}_loss"], pts["bashkir_gain"], where="post", color="black", lw=1.2, zorder=2)
            ax.axvline(0, color="grey", lw=1, ls="--", zorder=1)
            ax.set_xlabel(f"{side.capitalize()} loss: bits per byte, run − base (> 0: forgotten)")
            ax.set_ylabel("Bashkir gain: bits per byte,\nbase − run (> 0: learnt)")
            ax.set_title(f"Bashkir learnt against {side.capitalize()} forgotten", fontsize=12)
        handles = [plt.Line2D([], [], ls="", marker=markers[lab], ms=9, mfc=palette[lab], mec="black", label=lab)
                   for lab in order]
        handles += [plt.Line2D([], [], ls="", marker="o", ms=9, mfc="grey" if filled else "none", mec="grey",
                               mew=0.6 if filled else 1.8, label=f"{g} ({'filled' if filled else 'hollow'})")
                    for g, filled in GRID_FILLED.items() if (front["grid"] == g).any()]
        handles.append(plt.Line2D([], [], color="black", lw=1.2, label="Pareto front"))
        fig.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=2, frameon=False)
        fig.tight_layout()
    return _save(fig, path)

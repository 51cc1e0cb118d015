"""Beside published models: bits per sentence under the Goldfish protocol on FLORES-200, ours
(the base model and every run) next to the numbers Goldfish published for other models.

The published numbers are **quoted, not computed here**: Goldfish (Chang et al. 2024,
"Goldfish: Monolingual Language Models for 350 Languages", arXiv 2408.10441; repository
tylerachang/goldfish, ``data/flores_logperplexities.tsv``), as the shared
``../shared/eval/flores200/README.md`` lists them. Which FLORES split they use is not stated in
the code or the tsv: ours are on devtest, and the table says "split unconfirmed". Ours are on
the sentences each run scored (``sentences``: evenly spaced over the 1,012, the grid's budget),
theirs on all of a split: the column says how many.

Reads the evaluation records only (``goldfish/<set>`` entries of sets read from a FLORES-200
devtest file); no sentence is read or written.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from bashkir_peft.names import BASE_TOKENIZER, method_sort_key
from bashkir_peft.report.runs import RunRecord

FLORES_SIDES = ("bak_Cyrl", "eng_Latn", "rus_Cyrl", "tat_Cyrl")
"""The FLORES-200 languages of the table, in its column order."""

GOLDFISH_SOURCE = ("Goldfish (Chang et al. 2024, arXiv 2408.10441), tylerachang/goldfish "
                   "data/flores_logperplexities.tsv; quoted; split unconfirmed")
"""Where every published number comes from."""

PUBLISHED_BITS_PER_SENTENCE: dict[str, tuple[float, float, float, float]] = {
    "Goldfish 5 MB (39M, monolingual)": (121.49, 118.98, 138.60, 122.96),
    "Goldfish 10 MB (monolingual)": (113.36, 110.93, 129.15, 116.40),
    "Goldfish 100 MB (125M, monolingual)": (87.62, 83.41, 90.89, 89.36),
    "Goldfish largest (bak 398 MB, others 1000 MB)": (79.24, 68.73, 73.59, 76.67),
    "unigram (Goldfish tokenizer)": (149.35, 134.29, 162.57, 146.56),
    "bigram, stupid backoff (Goldfish tokenizer)": (108.34, 103.16, 117.13, 107.20),
    "XGLM-4.5B": (259.93, 51.10, 58.22, 222.35),
    "XGLM-7.5B": (272.19, 50.39, 57.38, 227.31),
    "MaLA-500 (Llama-2-7B + LoRA, 534 languages)": (92.72, 48.43, 65.18, 88.82),
    "BLOOM-7.1B": (209.63, 50.56, 110.95, 192.83),
}
"""Mean bits per sentence (second halves) of :data:`FLORES_SIDES`, as quoted in the shared
README's table (:data:`GOLDFISH_SOURCE`)."""

PUBLISHED_COLUMNS = ["kind", "model", "label", "run_id", *FLORES_SIDES, "sentences", "truncated", "source"]
"""Columns of :func:`published_table`."""


def flores_side(resolved_path: str) -> str | None:
    """The FLORES-200 language of an external set's file (``.../bak_Cyrl.devtest.gz`` ->
    ``bak_Cyrl``), or ``None`` for a file that is not a devtest side of :data:`FLORES_SIDES`."""
    name = Path(resolved_path).name
    side = name.split(".")[0]
    return side if side in FLORES_SIDES and ".devtest" in name else None


def published_table(runs: list[RunRecord], floors: pd.DataFrame | None = None) -> pd.DataFrame:
    """Bits per sentence under the Goldfish protocol: ours beside the published table.

    Args:
        runs: all runs (finished ones with ``goldfish/<set>`` evaluations of FLORES-200
            devtest files are used).
        floors: the report's floors (:func:`bashkir_peft.report.floors.floors_table`): its
            ``goldfish`` rows on FLORES-200 sets become rows of kind ``floor`` (n-gram models
            of our training split, on the sentences our runs scored; one bigram row per
            tokenizer, an adapted one named in the label).

    Returns:
        Columns :data:`PUBLISHED_COLUMNS`: ``kind`` (``ours``, ``floor`` or ``published``), ``model``,
        ``label`` (our run label: method, rank, seed; the published model's description),
        ``run_id``, mean bits per sentence per FLORES side (sum of NLL / (ln 2 x sentences);
        NaN where not scored), ``sentences`` (ours: ``side n`` of what was scored; published:
        ``all of a split``), ``truncated`` (ours: sentences cut to 512 tokens, summed over the
        sides), ``source``. Our rows first (base models, then methods in their order), our
        floors, then the published ones, which are there even where no run was scored so (the scale
        stays in view).
    """
    ours = []
    for run in runs:
        if run.status != "finished" or run.eval is None:
            continue
        bits, counts, truncated = {}, {}, 0
        for entry in run.eval.evaluations.values():
            ext = entry.data.external
            side = flores_side(ext.resolved_path) if ext is not None else None
            if entry.protocol != "goldfish" or side is None:
                continue
            m = entry.metrics
            bits[side] = m.nll / (math.log(2) * m.documents) if m.documents else math.nan
            counts[side] = m.documents
            truncated += entry.truncated or 0
        if not bits:
            continue
        ours.append({"kind": "ours", "model": run.model, "label": run.method_label if run.method == "base" else
                     f"{run.method_label} s{run.seed}", "run_id": run.run_id,
                     **{s: bits.get(s, math.nan) for s in FLORES_SIDES},
                     "sentences": ", ".join(f"{s[:3]} {counts[s]}" for s in FLORES_SIDES if s in counts),
                     "truncated": truncated, "source": "ours: FLORES-200 devtest, evenly spaced sentences",
                     "_key": (run.model, method_sort_key(run.method_label), run.seed or 0)})
    ours.sort(key=lambda r: r.pop("_key"))
    sides = {}
    for run in runs:  # set name -> FLORES side, from the records
        for entry in (run.eval.evaluations.values() if run.status == "finished" and run.eval else ()):
            ext = entry.data.external
            if ext is not None and flores_side(ext.resolved_path):
                sides[ext.name] = flores_side(ext.resolved_path)
    g = floors[(floors["protocol"] == "goldfish") & floors["split"].isin(list(sides))] if floors is not None \
        and len(floors) else pd.DataFrame(columns=["floor", "model", "split", "bits_per_sentence", "documents"])
    # empty keys read back from a CSV are NaN (groupby would drop them); older tables have no tokenizer
    g = g.assign(model=g["model"].fillna(""), tokenizer=g["tokenizer"].fillna("") if "tokenizer" in g.columns else "")
    for (floor, model, axis), rows in g.groupby(["floor", "model", "tokenizer"], sort=False):
        by_side = {sides[r["split"]]: r for _, r in rows.iterrows()}
        label = floor if axis in ("", BASE_TOKENIZER) else f"{floor}, tokenizer {axis}"
        ours.append({"kind": "floor", "model": model or "-", "label": label, "run_id": "",
                     **{s: by_side[s]["bits_per_sentence"] if s in by_side else math.nan for s in FLORES_SIDES},
                     "sentences": ", ".join(f"{s[:3]} {by_side[s]['documents']}" for s in FLORES_SIDES if s in by_side),
                     "truncated": pd.NA, "source": f"ours: n-gram of the {rows['trained_on'].iloc[0]}"})
    published = [{"kind": "published", "model": model, "label": model, "run_id": "",
                  **dict(zip(FLORES_SIDES, values)), "sentences": "all of a split", "truncated": pd.NA,
                  "source": GOLDFISH_SOURCE}
                 for model, values in PUBLISHED_BITS_PER_SENTENCE.items()]
    return pd.DataFrame(ours + published, columns=PUBLISHED_COLUMNS)

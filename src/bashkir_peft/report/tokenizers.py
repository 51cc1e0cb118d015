"""Tokenizers: fertility (tokens per whitespace word) of each model's tokenizer beside its bits
per byte, and the parity premium on parallel text.

Both read the data folder's tokenizer table (``tokenizer_fertility.parquet``, written by
:func:`bashkir_peft.data.fertility.profile_split`); fertility falls back on the runs' own
per-document sums. Nothing here writes files.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from bashkir_peft.errors import ModelNotFoundError
from bashkir_peft.models.registry import get_entry
from bashkir_peft.names import BASE_TOKENIZER
from bashkir_peft.records import FERTILITY_COLUMNS, DataFiles, read_table
from bashkir_peft.report.runs import RunRecord, eval_documents, run_keys

FERTILITY_TABLE_COLUMNS = ["model", "method_label", "fertility", "fertility_source", "bits_per_byte", "perplexity"]
"""Columns of :func:`fertility_table`."""

PARITY_COLUMNS = ["model", "tokenizer", "fertility", "premium", "tokens_bak", "tokens_eng"]
"""Columns of :func:`parity_table` (those of the data folder's tokenizer table it shows)."""

RETOKENIZATION_COLUMNS = ["model", "tokenizer", "new_tokens", "init", "new_rows_warmup_steps", "new_rows_learning_rate",
                          "protected", "protected_documents", "merges_dropped",
                          "protected_unchanged", "train_fertility_base", "train_fertility_adapted", "side", "texts", "changed_share",
                          "new_row_share", "texts_unchanged", "runs"]
"""Columns of :func:`retokenization_table`."""

SPEED_COLUMNS = ["run_id", "model", "method", "method_label", "lora_r", "seed", "tokenizer", "test_tokens_per_word",
                 "generation_words_per_s", "generation_tokens_per_s", "generation_tokens_per_word",
                 "words_per_s_vs_base_tokenizer"]
"""Columns of :func:`speed_table`."""


def read_fertility(data_dir: Path) -> pd.DataFrame | None:
    """The data folder's tokenizer table (``tokenizer_fertility.parquet``).

    Args:
        data_dir: a prepared data folder.

    Returns:
        The table (columns include :data:`~bashkir_peft.records.FERTILITY_COLUMNS`), or ``None`` where the data
        stage profiled no tokenizer.

    Raises:
        RecordError: the table is unreadable or lacks (or mistypes) a column of
            :data:`~bashkir_peft.records.FERTILITY_COLUMNS`.
    """
    path = data_dir / DataFiles.FERTILITY
    return read_table(path, FERTILITY_COLUMNS) if path.is_file() else None


def _registry_tokenizer(model: str) -> str | None:
    """The offline tokenizer a registry model uses (``None`` for a Hub id or a local path)."""
    try:
        return get_entry(model).tokenizer
    except ModelNotFoundError:
        return None


def fertility_table(runs: list[RunRecord], quality: pd.DataFrame, data_dir: str | Path | None = None,
                    protocol: str | None = None, split: str = "test") -> pd.DataFrame:
    """Fertility (tokens per whitespace word) of each model's tokenizer beside its bits_per_byte.

    Fertility comes from the data folder's tokenizer table (:func:`read_fertility`) where it
    has the model's row (or a row of the model's registry tokenizer: tiny-gpt2 is profiled
    as gpt2), else from the evaluation's own per-document sums under ``protocol`` (scored
    tokens / whitespace words of the same documents); the column ``fertility_source`` says
    which. A run with an adapted tokenizer (grid axis ``tokenizer``) always takes its own
    evaluation sums: the data folder profiles the base tokenizers only.

    Args:
        runs: all runs (the finished ones are used).
        quality: :func:`~bashkir_peft.report.cost.quality_cost_table`.
        data_dir: the prepared data folder (``None``: evaluation sums only).
        protocol, split: the protocol and split of the evaluation sums.

    Returns:
        :data:`FERTILITY_TABLE_COLUMNS`: ``model, method_label, fertility, fertility_source,
        bits_per_byte, perplexity`` (mean over seeds).

    Raises:
        RecordError: a tokenizer table or a per-document table that does not match the contract.
    """
    cols = FERTILITY_TABLE_COLUMNS
    if quality.empty:
        return pd.DataFrame(columns=cols)
    prep = read_fertility(Path(data_dir)) if data_dir else None
    fert: dict[str, tuple[float, str]] = {}
    for model in ({r.model for r in runs if r.status == "finished"} if prep is not None else ()):
        name, rows = model, prep[prep["model"] == model]
        if rows.empty:
            name = _registry_tokenizer(model)
            rows = prep[prep["tokenizer"] == name]
        if len(rows):
            row = rows.iloc[0]
            fert[model] = (float(row["fertility"]), f"data prep ({name} tokenizer, {row['split']} split)")
    by_model: dict[str, list[float]] = {}
    adapted: dict[tuple[str, str], list[float]] = {}
    for run in runs:
        is_adapted = run.cell.params.tokenizer != BASE_TOKENIZER
        if run.status != "finished" or (run.model in fert and not is_adapted):
            continue
        docs = eval_documents(run)
        docs = docs[docs["split"] == split]  # not the external sets' rows (other languages)
        if protocol is not None and (docs["protocol"] == protocol).any():
            docs = docs[docs["protocol"] == protocol]
        if docs["words"].sum() > 0:
            (adapted.setdefault((run.model, run.method_label), []) if is_adapted else by_model.setdefault(run.model, [])).append(
                float(docs["tokens"].sum() / docs["words"].sum()))
    source = "evaluation sums (scored tokens / words)"
    for model, vals in by_model.items():
        fert[model] = (float(np.mean(vals)), source)
    g = quality.groupby(["model", "method_label"], as_index=False)[["bits_per_byte", "perplexity"]].mean()
    own = {key: (float(np.mean(vals)), source) for key, vals in adapted.items()}
    found = [own.get((model, label)) or fert.get(model, (math.nan, "not found")) for model, label in
             zip(g["model"], g["method_label"])]
    g["fertility"] = [f[0] for f in found]
    g["fertility_source"] = [f[1] for f in found]
    return g[cols]


def parity_table(data_dir: str | Path | None) -> pd.DataFrame:
    """Tokenizer fertility and parity premium per model (the data folder's tokenizer table).

    The premium is tokens of the Bashkir side over tokens of the English side of the same
    parallel sentences (Petrov et al. 2023, "Language Model Tokenizers Introduce Unfairness
    Between Languages"; 1 = parity), as the data stage measured it.

    Args:
        data_dir: the prepared data folder (``None``: an empty table).

    Returns:
        :data:`PARITY_COLUMNS`: ``model, tokenizer, fertility, premium, tokens_bak,
        tokens_eng``; empty where data preparation profiled no tokenizer or no parity.

    Raises:
        RecordError: a tokenizer table that does not match the contract.
    """
    prep = read_fertility(Path(data_dir)) if data_dir else None
    if prep is None or "premium" not in prep.columns:
        return pd.DataFrame(columns=PARITY_COLUMNS)
    return prep[PARITY_COLUMNS].reset_index(drop=True)


def retokenization_table(runs: list[RunRecord]) -> pd.DataFrame:
    """Re-tokenization of the held-out sides by every adapted tokenizer of the grid.

    One row per model x tokenizer setting (the grid's ``tokenizers`` name) x side (FLORES-200
    devtest and SIB-200 English, Russian, Tatar, Bashkir;
    :data:`bashkir_peft.data.retokenization.RETOKENIZATION_SIDES`), from the training records'
    ``vocab.retokenized`` (:func:`bashkir_peft.models.retokenization.segmentation_change`):
    ``changed_share`` (base tokens whose span the adapted tokenizer cuts differently),
    ``new_row_share`` (adapted tokens that are new rows), ``texts_unchanged`` (sentences cut
    exactly as before); beside the setting's K, how its new rows start (``init``; the warm-up
    of the new rows alone before training, ``new_rows_warmup_steps``, 0 for none, at
    ``new_rows_learning_rate``), its protected text (``protected``: the
    ``lang`` of each protected sample, or its file name where it names none; its documents,
    the merges protection dropped and the share of the documents cut as before), and the training split's fertility (tokens per word) under the base
    and the adapted tokenizer, the cost of protection in Bashkir fertility. A tokenizer is a
    function of the setting and the training split, so the runs (methods, seeds) of one
    setting share it: ``runs`` counts them, the values are the first run's.

    Args:
        runs: all runs (finished ones whose record carries re-tokenization are used).

    Returns:
        :data:`RETOKENIZATION_COLUMNS`; empty where no run adapted its tokenizer (or its
        record predates the measure).
    """
    rows: dict[tuple[str, str, str], dict] = {}
    for run in runs:
        vocab = run.train.vocab if run.train is not None else None
        if run.status != "finished" or vocab is None or not vocab.retokenized:
            continue
        for side, r in vocab.retokenized.items():
            key = (run.model, run.cell.params.tokenizer, side)
            if key in rows:
                rows[key]["runs"] += 1
                continue
            rows[key] = {"model": run.model, "tokenizer": run.cell.params.tokenizer, "new_tokens": vocab.new_tokens_added,
                         "init": vocab.init, "new_rows_warmup_steps": vocab.new_rows_warmup_steps or 0,
                         "new_rows_learning_rate": vocab.new_rows_learning_rate,
                         "protected": ", ".join(t.lang or Path(t.path).name for t in vocab.protect or ()),
                         "protected_documents": vocab.protection.documents if vocab.protection else 0,
                         "merges_dropped": vocab.protection.merges_dropped if vocab.protection else 0,
                         "protected_unchanged": vocab.protection.unchanged if vocab.protection else math.nan,
                         "train_fertility_base": vocab.train_before.fertility,
                         "train_fertility_adapted": vocab.train_after.fertility, "side": side, "texts": r.texts,
                         "changed_share": r.changed_share, "new_row_share": r.new_row_share,
                         "texts_unchanged": r.texts_unchanged, "runs": 1}
    return pd.DataFrame(list(rows.values()), columns=RETOKENIZATION_COLUMNS)


def adapted_tokenizers_page(table: pd.DataFrame) -> str:
    """The data chapter's page on the grid's adapted tokenizers (Markdown; ``""`` for an empty table).

    An adapted tokenizer is built by the training stage of its runs (:mod:`bashkir_peft.data.vocab`),
    after data preparation wrote the data card, so this page is the data card's sequel: per
    model x tokenizer setting, its new tokens, the protected text and what protecting it
    dropped, the fertility of the training split (tokens per whitespace word) under the base
    and the adapted tokenizer, and the re-tokenization of every held-out side (percentages of
    :func:`retokenization_table`'s shares). Shares only: no sentence of a side is shown.

    Args:
        table: :func:`retokenization_table`.

    Returns:
        The page, titled ``# Adapted tokenizers``, one section per model x setting.
    """
    if table.empty:
        return ""
    lines = ["# Adapted tokenizers", "",
             "Each adapted tokenizer of the grid (its `tokenizers` section) is built by the training stage of "
             "its runs: a byte-level BPE trained on the training split only, its first K new tokens appended "
             "to the base tokenizer (merges that fire on protected text dropped), so it is described here once "
             "one of its runs has finished. *Fertility*: tokens per whitespace word of the training split. "
             "*Re-tokenization* on held-out parallel text no adaptation saw (FLORES-200 devtest, SIB-200): "
             "the share of the base tokenizer's tokens that the adapted one cuts differently, the share of "
             "the adapted tokens that are new rows (initialised, never pre-trained), and the share of "
             "sentences cut exactly as before."]
    for (model, setting), rows in table.groupby(["model", "tokenizer"], sort=False):
        first = rows.iloc[0]
        protected = ("no protected text" if not first["protected_documents"] else
                     f"protected text: {first['protected']} ({first['protected_documents']:,} documents, "
                     f"{first['protected_unchanged']:.1%} of them cut as before; {first['merges_dropped']:,} new "
                     "merges dropped)")
        steps, rate = first["new_rows_warmup_steps"], first["new_rows_learning_rate"]
        warmup = (f"; before training, {steps} steps of the new rows alone" + (f" at {rate:g}" if pd.notna(rate) else "")
                  if steps else "")
        lines += ["", f"## `{model}` with `{setting}`", "",
                  f"{first['new_tokens']:,} new tokens (rows initialised: {first['init']}{warmup}); {protected}. "
                  "Bashkir fertility (training split): "
                  f"{first['train_fertility_base']:.2f} with the base tokenizer, "
                  f"{first['train_fertility_adapted']:.2f} adapted. Finished runs with it: {first['runs']}.", "",
                  "| side | sentences | tokens cut differently | adapted tokens that are new rows "
                  "| sentences cut as before |", "|---|---|---|---|---|"]
        lines += [f"| {r['side']} | {r['texts']:,} | {r['changed_share']:.1%} | {r['new_row_share']:.1%} "
                  f"| {r['texts_unchanged']:.1%} |" for r in rows.to_dict("records")]
    return "\n".join(lines) + "\n"


def speed_table(runs: list[RunRecord], protocol: str | None = None, split: str = "test") -> pd.DataFrame:
    """Speed as an outcome of the tokenizer: tokens per word of the test text, and how fast the
    run generates, in words and in tokens per second.

    ``test_tokens_per_word``: scored tokens / whitespace words of the evaluated ``split``
    under ``protocol`` (the evaluation's per-document sums); ``generation_words_per_s``:
    words generated (continuations x mean words) / time in ``generate``;
    ``generation_tokens_per_s`` and ``generation_tokens_per_word`` from the same run's new
    tokens; ``words_per_s_vs_base_tokenizer``: the run's words per second over the mean of the
    base-tokenizer runs of the same model and method (NaN without such runs). Wall times come
    from the machine the grid ran on: compare runs of one grid, on one machine.

    Args:
        runs: all runs (finished ones with a generation record are used).
        protocol, split: of the evaluation sums.

    Returns:
        :data:`SPEED_COLUMNS`, one row per run.
    """
    rows = []
    for run in runs:
        gen = run.generate
        if run.status != "finished" or gen is None:
            continue
        words = (gen.summary.mean_words or 0.0) * gen.summary.n
        time_s = gen.cost.generate_time_s
        tpw = math.nan
        if run.eval is not None:
            docs = eval_documents(run)
            docs = docs[docs["split"] == split]
            if protocol is not None and (docs["protocol"] == protocol).any():
                docs = docs[docs["protocol"] == protocol]
            if docs["words"].sum() > 0:
                tpw = float(docs["tokens"].sum() / docs["words"].sum())
        rows.append(run_keys(run) | {
            "tokenizer": run.cell.params.tokenizer, "test_tokens_per_word": tpw,
            "generation_words_per_s": words / time_s if time_s > 0 else math.nan,
            "generation_tokens_per_s": gen.cost.new_tokens / time_s if time_s > 0 else math.nan,
            "generation_tokens_per_word": gen.cost.new_tokens / words if words > 0 else math.nan})
    table = pd.DataFrame(rows, columns=SPEED_COLUMNS[:-1])
    base = table[table["tokenizer"] == BASE_TOKENIZER].groupby(["model", "method"])["generation_words_per_s"].mean()
    table["words_per_s_vs_base_tokenizer"] = [
        w / base.get((m, meth), math.nan) for m, meth, w in
        zip(table["model"], table["method"], table["generation_words_per_s"])]
    return table[SPEED_COLUMNS]

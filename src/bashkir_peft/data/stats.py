"""Statistics, figures and the data card of a prepared data folder (for the book).

Everything is read from the folder's ``manifest.json`` and ``doc_stats.parquet``
(written by :func:`bashkir_peft.data.prepare.prepare`); no text is re-read.
"""

from __future__ import annotations

from pathlib import Path

from bashkir_peft.data.folder import read_manifest
from bashkir_peft.data.splitting import SPLITS
from bashkir_peft.records import FERTILITY_COLUMNS, DataFiles, DataManifest, Drop, Overlap, read_table

#: the shared corpus' sources (../shared/corpus/README.md): origin and licence
SOURCE_INFO = {
    "nevmenandr": ("nevmenandr/bashkir-corpus @1e7d572d: news and literature from 8 web sources, "
                   "sentence-shuffled by the publisher", "GPL-3.0 repository; texts public domain or sentence-shuffled"),
    "aigizk": ("AigizK/bashkort-parallel-corpora @d48dcd6d, Bashkir side: news in original order, chunked", "Unlicense"),
    "commonvoice": ("mozilla/voice-web @cc100ac2, Bashkir sentence collector: sentences sorted alphabetically, chunked",
                    "CC0"),
    "stdbug": ("stdbug/rf-keyboard-corpora @5ec03a18, data/ba: literary paragraphs, random order, chunked", "CC BY 4.0"),
    "bashfolk": ("nevmenandr/bashfolk_edition @d1087b81: folklore archive, partly dialectal", "none stated"),
}
#: what the paper (arXiv 2605.04948) states about its corpus
PAPER_CORPUS = {"documents": 71_567, "tokens": "46.9M", "wikipedia_share": 0.59,
                "split": (57_254, 7_157, 7_156), "licence": "CC BY-SA 4.0",
                "hub_id": "BashkirNLPWorld/bashkir-web-corpus"}


def doc_stats(data_dir: str | Path):
    """Per kept document: id, split, source, shuffled, characters, bytes, words (DataFrame)."""
    import pandas as pd

    read_manifest(data_dir)
    return pd.read_parquet(Path(data_dir) / DataFiles.DOC_STATS)


def drops_table(manifest: DataManifest):
    """What each step removed: reason, level, documents, sentences, characters (DataFrame)."""
    import pandas as pd

    df = pd.DataFrame([d.model_dump() for d in manifest.drops], columns=list(Drop.model_fields))
    total = manifest.counts["characters_read"]
    df["share_of_characters"] = df["characters"] / total if total else float("nan")
    return df


def overlap_table(manifest):
    """The train/test n-gram overlap audit per test source (DataFrame; empty for a folder
    prepared before the audit): ``source, ngram, test_documents, test_ngrams,
    ngrams_in_train, share_in_train, documents_with_overlap``."""
    import pandas as pd

    return pd.DataFrame([o.model_dump() for o in manifest.overlap or []], columns=list(Overlap.model_fields))


def data_mode(manifest) -> str:
    """The data mode that produced a data folder: ``cleaned`` or ``paper`` (a manifest
    written before the mode existed is ``cleaned``, the only mode then; a pre-split
    folder of :func:`~bashkir_peft.data.folder.write_presplit_folder` is ``pre-split``)."""
    return "pre-split" if manifest.params is None else manifest.params.data_mode


def _mode_sentence(manifest) -> str:
    mode = data_mode(manifest)
    exact = manifest.params.drop_exact_duplicates if manifest.params is not None else None
    exact = (mode == "cleaned") if exact is None else exact
    if mode == "paper":
        return ("**Data mode: paper** - every document as read, as in the paper's split: no cleaning, no "
                "language or length filter, no near-duplicate removal; exact duplicates "
                + ("removed (counted below)." if exact else "kept."))
    return ("**Data mode: cleaned** - cleaned, Bashkir sentences only, short documents dropped; exact "
            + ("and near duplicates removed across the whole corpus before the split."
               if exact else "duplicates kept, near duplicates removed before the split."))


def _overlap_lines(manifest) -> list[str]:
    rows = manifest.overlap or []
    if not rows:
        return ["", "### Train/test overlap", "", "Not audited (the folder was prepared before the audit existed)."]
    n = rows[0].ngram
    lines = ["", "### Train/test overlap", "",
             f"Share of the test split's word {n}-grams (lower-cased words, repeats counted) that occur "
             "anywhere in the training split, per source (`bashkir_peft.data.overlap`). Document-level "
             "de-duplication misses sentences two documents share.", "",
             f"| source | test documents | test {n}-grams | in train | share | test documents with overlap |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        share = "n/a" if r.share_in_train is None else f"{r.share_in_train:.2%}"
        lines.append(f"| {r.source} | {r.test_documents:,} | {r.test_ngrams:,} | {r.ngrams_in_train:,} "
                     f"| {share} | {r.documents_with_overlap:,} |")
    return lines


def split_source_table(data_dir: str | Path):
    """Documents, characters, UTF-8 bytes and words per split and source, with totals."""
    import pandas as pd

    ds = doc_stats(data_dir)
    cols = ["characters", "bytes", "words"]
    by = ds.groupby(["split", "source"])[cols].sum()
    by.insert(0, "documents", ds.groupby(["split", "source"]).size())
    totals = ds.groupby("split")[cols].sum()
    totals.insert(0, "documents", ds.groupby("split").size())
    totals.index = pd.MultiIndex.from_tuples([(s, "(all)") for s in totals.index], names=["split", "source"])
    out = pd.concat([by, totals]).reset_index()
    order = {s: i for i, s in enumerate(SPLITS)}
    out["_o"] = out["split"].map(order)
    return out.sort_values(["_o", "source"]).drop(columns="_o").reset_index(drop=True)


def length_table(data_dir: str | Path):
    """Document length (characters) distribution per split: count, mean, quantiles."""
    ds = doc_stats(data_dir)
    return ds.groupby("split")["characters"].describe(percentiles=[0.1, 0.5, 0.9]).reindex(
        [s for s in SPLITS if s in set(ds["split"])])


def shuffled_share(data_dir: str | Path) -> float:
    """Share of kept characters that sit in sentence-shuffled documents (NaN if unknown)."""
    ds = doc_stats(data_dir)
    known = ds["shuffled"].notna()
    if not known.any():
        return float("nan")
    return float(ds.loc[known & ds["shuffled"].astype(bool), "characters"].sum() / ds.loc[known, "characters"].sum())


def length_figure(data_dir: str | Path):
    """Histogram of document lengths (characters, log scale) per split. Returns the figure."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    ds = doc_stats(data_dir)
    fig, ax = plt.subplots(figsize=(7, 3.5))
    sns.histplot(data=ds, x="characters", hue="split", hue_order=[s for s in SPLITS if s in set(ds["split"])],
                 log_scale=True, element="step", stat="density", common_norm=False, ax=ax)
    ax.set_xlabel("document length (characters, log scale)")
    ax.set_title("Kept documents by length")
    fig.tight_layout()
    return fig


def fertility_figure(table):
    """Bar charts of fertility (tokens/word) and bytes per token per model. Returns the figure."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    sns.barplot(data=table, y="model", x="fertility", ax=axes[0], color="tab:blue")
    axes[0].set_xlabel("tokens per word (fertility)")
    sns.barplot(data=table, y="model", x="bytes_per_token", ax=axes[1], color="tab:orange")
    axes[1].set_xlabel("UTF-8 bytes per token")
    axes[1].set_ylabel("")
    fig.suptitle("Tokenizers on the Bashkir test split")
    fig.tight_layout()
    return fig


def _source_family(source: str) -> str:
    return source.split(":", 1)[0]


def data_card(data_dir: str | Path) -> str:
    """The data card (Markdown): sources and licences, what each step removed, the split,
    and how this corpus differs from the paper's."""
    manifest = read_manifest(data_dir)
    ds = doc_stats(data_dir)
    c = manifest.counts
    fams = sorted({_source_family(s) for s in ds["source"]})
    lines = ["## Data card", "", f"**Corpus:** `{manifest.corpus.location}` ({manifest.corpus.kind}); "
             f"fingerprint `{manifest.fingerprint[:16]}`.", "", _mode_sentence(manifest), "",
             "### Sources and licences", "",
             "| source | documents kept | characters kept | origin | licence |", "|---|---|---|---|---|"]
    for fam in fams:
        sub = ds[ds["source"].map(_source_family) == fam]
        origin, licence = SOURCE_INFO.get(fam, ("(not described)", "(unknown: check the source)"))
        lines.append(f"| {fam} | {len(sub):,} | {int(sub['characters'].sum()):,} | {origin} | {licence} |")
    lines += ["", "### What each step removed", "", "| reason | level | documents | sentences | characters |",
              "|---|---|---|---|---|"]
    for d in manifest.drops:
        def f(v):
            return "" if v is None else f"{v:,}"
        lines.append(f"| {d.reason} | {d.level} | {f(d.documents)} | {f(d.sentences)} | {f(d.characters)} |")
    share = shuffled_share(data_dir)
    kept_chars = int(ds["characters"].sum())
    lines += ["", f"Read {c['documents_read']:,} documents ({c['characters_read']:,} characters); kept "
              f"{c['documents_kept']:,} documents ({kept_chars:,} characters): train {c['train']:,}, validation "
              f"{c['validation']:,}, test {c['test']:,} (document-level split, hashed from id and seed "
              f"{manifest.params.seed}).", *_overlap_lines(manifest),
              "", "### How it differs from the paper's corpus", "",
              f"- **Paper** (Arabov & Khaybullina, arXiv 2605.04948): {PAPER_CORPUS['documents']:,} documents, "
              f"{PAPER_CORPUS['tokens']} tokens, about {PAPER_CORPUS['wikipedia_share']:.0%} Wikipedia, split "
              f"{'/'.join(f'{n:,}' for n in PAPER_CORPUS['split'])} documents, {PAPER_CORPUS['licence']} "
              f"(Hub: `{PAPER_CORPUS['hub_id']}`).",
              (f"- **Ours**: {share:.0%} of the kept characters are in sentence-shuffled documents, so "
               "cross-sentence coherence is lost there; no Wikipedia; mostly news, literature and folklore."
               if share == share else "- **Ours**: the corpus records do not say which documents are sentence-shuffled."),
              "- Consequences: perplexities are not comparable with the paper's numbers (other text, other split); "
              "long-range context helps less on shuffled text, so block sizes beyond a sentence or two gain little.",
              ]
    return "\n".join(lines + tokenizer_lines(data_dir))


def tokenizer_lines(data_dir: str | Path) -> list[str]:
    """The data card's tokenizer section (Markdown lines): fertility on the test split and,
    where profiled, the parity premium on SIB-200 (:mod:`bashkir_peft.data.fertility`); none
    where data preparation profiled no tokenizer."""
    path = Path(data_dir) / DataFiles.FERTILITY
    if not path.is_file():
        return []
    table = read_table(path, FERTILITY_COLUMNS)
    parity = "premium" in table.columns
    lines = ["", "### Tokenizers", "", "Fertility: tokens per whitespace word of the test split."
             + (" Premium: tokens of the Bashkir side over tokens of the English side of the same SIB-200 "
                "sentences (Petrov et al. 2023; 1 = parity)." if parity else ""), "",
             "| model | tokenizer | fertility |" + (" premium |" if parity else ""),
             "|---|---|---|" + ("---|" if parity else "")]
    for row in table.to_dict("records"):
        lines.append(f"| {row['model']} | {row['tokenizer']} | {row['fertility']:.2f} |"
                     + (f" {row['premium']:.2f} |" if parity else ""))
    return lines

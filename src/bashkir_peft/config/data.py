"""Parameters of data preparation (notebook 01, :mod:`bashkir_peft.data.prepare`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from bashkir_peft.settings import resolve_path
from bashkir_peft.yamlio import StrictModel

DEFAULT_TOKENIZERS = ["distilgpt2", "gpt2", "gpt2-medium", "phi-2", "qwen2.5-7b", "deepseek-7b",
                      "mistral-7b", "smollm2-135m"]


class DataPrepParams(StrictModel):
    """Parameters of the data preparation (notebook ``01_data_prep``); defaults live here,
    each with its source (``json_schema_extra``).

    ``data_mode``: ``cleaned`` (the default) cleans, keeps Bashkir sentences, drops short
    documents, exact and near duplicates (the pipeline above); ``paper`` keeps every
    document exactly as read, as the paper's split (57,254 + 7,157 + 7,156 = 71,567, every
    document of its corpus) does: no cleaning, no language filter, no length filter, no
    near-duplicate removal (``min_chars``, ``langid_min_letters``, ``near_dup_threshold``,
    ``minhash_*`` unused). ``drop_exact_duplicates``: remove documents with the same words
    (:func:`bashkir_peft.text.dedup.normalized_hash`), counted in the drops table; ``None`` =
    the mode's own choice (cleaned: yes; paper: no, the paper describes no de-duplication).
    """

    corpus: str = Field("../shared/corpus/bashkir-demo.jsonl.gz",
                        description="a .jsonl/.jsonl.gz/.parquet file or folder, a folder of .txt, or hub:OWNER/NAME; "
                                    "relative paths from the repository root",
                        json_schema_extra={"source": "ours: the shared demo corpus, for a hand run (the grid runner "
                                                     "sets it from --corpus)"})
    corpus_kind: Literal["auto", "file", "folder", "hub"] = Field(
        "auto", json_schema_extra={"source": "ours: decided from the corpus setting"})
    hub_split: str = Field("full", json_schema_extra={
        "source": "the Hub corpus's one split holding every document (BashkirNLPWorld/bashkir-web-corpus)"})
    hub_revision: str | None = Field(None, json_schema_extra={"source": "ours: the default branch"})
    output_dir: str = Field("data/bashkir-demo", json_schema_extra={
        "source": "ours: a folder for a hand run (the grid runner sets <runs>/<grid>/data)"})
    data_mode: Literal["cleaned", "paper"] = Field("cleaned", json_schema_extra={
        "source": "ours: cleaned text for every comparison of our own; the paper mode reproduces the paper's "
                  "unfiltered split"})
    drop_exact_duplicates: bool | None = Field(None, json_schema_extra={
        "source": "ours: the data mode decides (cleaned: drop; paper: keep, the paper describes no de-duplication)"})
    train_fraction: float = Field(0.8, ge=0, le=1, json_schema_extra={
        "source": "paper: 57,254 of 71,567 documents (80 %)"})
    validation_fraction: float = Field(0.1, ge=0, le=1, json_schema_extra={
        "source": "paper: 7,157 of 71,567 documents (10 %)"})
    test_fraction: float = Field(0.1, ge=0, le=1, json_schema_extra={
        "source": "paper: 7,156 of 71,567 documents (10 %)"})
    seed: int = Field(42, json_schema_extra={
        "source": "ours: the paper's first training seed; its split cannot be rebuilt from its description"})
    min_chars: int = Field(200, ge=1, description="documents shorter than this after cleaning/filtering are dropped",
                           json_schema_extra={"source": "ours: about two sentences of prose; other thresholds not "
                                                        "measured (cleaned mode only)"})
    langid_min_letters: int = Field(20, ge=0, description="shorter ambiguous sentences follow their document",
                                    json_schema_extra={"source": "ours: below 20 letters the identifier has too "
                                                                 "little evidence (cleaned mode only)"})
    near_dup_threshold: float = Field(0.8, gt=0, le=1, description="Jaccard similarity of near-duplicates",
                                      json_schema_extra={"source": "Lee et al. 2022, Deduplicating Training Data "
                                                                   "Makes Language Models Better: Jaccard 0.8 "
                                                                   "(cleaned mode only)"})
    minhash_ngram: int = Field(5, ge=1, json_schema_extra={
        "source": "Lee et al. 2022: 5-word shingles (ours: taken inside sentences; cleaned mode only)"})
    minhash_num_perm: int = Field(128, ge=16, le=1024, json_schema_extra={
        "source": "datasketch MinHash default num_perm (cleaned mode only)"})
    overlap_ngram: int = Field(13, ge=1, json_schema_extra={
        "source": "GPT-3's train/test contamination check: 13-word n-grams (Brown et al. 2020, appendix C)"})
    tokenizers: list[str] = Field(default_factory=lambda: list(DEFAULT_TOKENIZERS), json_schema_extra={
        "source": "the paper's seven models and our CPU demo model"})
    fertility_max_chars: int = Field(2_000_000, ge=1000, description="test-split characters profiled per tokenizer",
                                     json_schema_extra={"source": "ours: enough for stable fertility, seconds per "
                                                                  "tokenizer"})
    parity_sib200: str | None = Field("../shared/eval/sib200", description="SIB-200 folder (one folder per "
                                      "language) for tokenizer parity, Bashkir over English; None: skip",
                                      json_schema_extra={"source": "the shared SIB-200 parallel text "
                                                                   "(../shared/eval/README.md); Petrov et al. 2023"})
    langid_sample: str | None = Field("../shared/corpus/langid-sample.jsonl", json_schema_extra={
        "source": "the shared labelled language sample (../shared/corpus/README.md)"})
    num_proc: int | None = Field(None, ge=1, description="worker processes; None = cores available",
                                 json_schema_extra={"source": "ours: every core available"})

    @model_validator(mode="after")
    def _fractions(self):
        total = self.train_fraction + self.validation_fraction + self.test_fraction
        if abs(total - 1.0) > 1e-9:
            raise ValueError(f"train/validation/test fractions must sum to 1, got {total:g}")
        return self

    @property
    def drops_exact_duplicates(self) -> bool:
        """Whether exact duplicates are removed (``drop_exact_duplicates``, else the mode's choice)."""
        if self.drop_exact_duplicates is not None:
            return self.drop_exact_duplicates
        return self.data_mode == "cleaned"


# --- per-document work (runs in worker processes) ---------------------------------

    @property
    def out_dir(self) -> Path:
        """The data folder (``output_dir`` from the repository root when relative)."""
        return resolve_path(self.output_dir)

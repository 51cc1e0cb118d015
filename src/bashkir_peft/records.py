"""The record contract: the file names of a run folder, a data folder and a grid folder,
and the typed record of every stage. Every writer builds these models; every reader parses
them (:func:`read_record`), so a missing or renamed field is one clear error naming the file
and the field, never a guess.

The folders a record names (``data_dir``, ``run_dir``, ``notebook``, ``resolved_path`` ...) are
absolute where the stages wrote them; in a results bundle they are named relative to the runs
root or the repository (``runs/<grid>/...``, ``./...``, ``../shared/...``, ``~/...``:
:func:`bashkir_peft.report.bundle.scrubbed_files`), in the same fields of the same schema. A
reader finds a run's files by its folder, never by a recorded path (a recorded ``data_dir`` only
where the grid folder has no ``data/``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, JsonValue, ValidationError, model_validator

from bashkir_peft.atomic import write_text_atomic
from bashkir_peft.config.data import DataPrepParams
from bashkir_peft.config.downstream import DownstreamParams
from bashkir_peft.config.evaluate import EvalParams
from bashkir_peft.config.external import ExternalSet
from bashkir_peft.config.generate import BudgetUnit, GenerateParams
from bashkir_peft.config.train import DEFAULT_LEARNING_RATE, TrainParams
from bashkir_peft.errors import DataError
from bashkir_peft.names import BASE_TOKENIZER, Method


class DataFiles:
    """Files of a data folder (``runs/<grid>/data/``), written by data preparation."""

    MANIFEST = "manifest.json"
    DOC_STATS = "doc_stats.parquet"
    FERTILITY = "tokenizer_fertility.parquet"

    @staticmethod
    def split(split: str) -> str:
        """``train.parquet``, ``validation.parquet``, ``test.parquet``."""
        return f"{split}.parquet"


class RunFiles:
    """Files of a run folder (``runs/<grid>/<run_id>/``)."""

    CELL = "grid_cell.json"
    TRAIN = "train.json"
    FINAL = "final"
    CHECKPOINTS = "checkpoints"
    EVAL = "eval.json"
    EVAL_DOCUMENTS = "eval_documents.parquet"
    EVAL_METRICS = "eval_metrics.csv"
    GENERATE = "generate.json"
    GENERATIONS = "generations.parquet"
    NOTEBOOKS = "notebooks"
    DOWNSTREAM = "downstream.json"
    DOWNSTREAM_PREDICTIONS = "downstream_predictions.parquet"
    DOWNSTREAM_METRICS = "downstream_metrics.csv"
    TOKENIZER = "tokenizer"
    PROGRESS = "progress.json"
    """Training's live position (``{"step", "max_steps", "epoch"}``), rewritten every step."""
    WEIGHT_SPECTRUM = "weight_spectrum.parquet"
    """A full fine-tuning run's weight change, one row per adapted matrix
    (:data:`WEIGHT_SPECTRUM_COLUMNS`; :mod:`bashkir_peft.models.spectrum`)."""


class GridFiles:
    """Files of a grid folder (``runs/<grid>/``), written by the grid runner."""

    DATA = "data"
    DATA_RECORD = "data_prep.json"
    DATA_ATTEMPT = "data_prep.attempt.json"
    """A data preparation under way or failed; ``data_prep.json`` is replaced only on success."""
    INDEX = "grid.json"
    LOCKS = ".locks"
    REPLACED = ".replaced"
    REPORT = "report"


# --------------------------------------------------------------------------- models

SCHEMA_VERSION = 2
"""Version of the record contract. Records written before the contract carry no
``schema_version`` (version 0); older versions are read through :func:`upgrade` (version 2:
every field typed, a record's ``params`` typed as its stage's parameter model)."""

Status = Literal["running", "finished", "failed"]
Json = dict[str, JsonValue]
"""A free-form JSON object: used only where a field must stay free-form (each use says why)."""
Language = Literal["bak", "rus", "eng", "other"]
LANGUAGES: tuple[Language, ...] = ("bak", "rus", "eng", "other")
METRICS = ("perplexity", "bits_per_byte", "word_perplexity")


class Part(BaseModel):
    """Base of every part of a record: unknown fields are errors."""

    model_config = ConfigDict(extra="forbid")


class Record(Part):
    """Base of every record: unknown fields are errors, the schema version is written."""

    schema_version: Literal[2] = SCHEMA_VERSION


# --------------------------------------------------------------------------- parts shared by records


class ModelInfo(Part):
    """The base model a record is about (:meth:`bashkir_peft.models.loading.ResolvedModel.record`):
    registry name (or folder / Hub id), where it was loaded from, its source (``registry``,
    ``local``, ``hub``, ``tiny``, ``gguf`` ...), its revision (a Hub commit, ``local:<hash>`` or
    ``unpinned``), the architecture, notes; the training record adds the registry's ``hub_id``."""

    name: str
    location: str
    source: str
    revision: str
    model_type: str | None
    notes: list[str]
    hub_id: str | None = None


class GitInfo(Part):
    """The checkout that ran (:func:`bashkir_peft.provenance.git_commit`; ``None``: not a git checkout)."""

    commit: str | None
    dirty: bool | None


class Hardware(Part):
    """The machine that ran (:func:`bashkir_peft.provenance.hardware_info`)."""

    platform: str
    python: str
    cpu: str | None
    cpu_cores_available: int
    memory_gib: float
    torch_threads: int
    cuda: str | None
    gpu: str | None


class Environment(Part):
    """Package versions (``None``: not installed), git commit and hardware of a run
    (:func:`bashkir_peft.provenance.environment_info`)."""

    packages: dict[str, str | None]
    git: GitInfo
    hardware: Hardware


class Placement(Part):
    """Where a stage ran (:meth:`bashkir_peft.models.device.Placement.record`): the torch device,
    how it was chosen, its name, the GPUs visible, notes; training adds its process count."""

    device: str
    how: str
    name: str
    visible_gpus: int
    notes: list[str]
    processes: int | None = None


class Cost(Part):
    """Wall time [s] and peak memory [MiB] of a block (:class:`bashkir_peft.provenance.ResourceMeter`;
    ``peak_gpu_mib`` ``None`` without CUDA)."""

    wall_time_s: float
    peak_rss_mib: float
    peak_gpu_mib: float | None


class FileStamp(Part):
    """One file of a stage's manifest: its size, modification time and SHA-256.

    ``written_bytes``: the size the run wrote, where a results bundle rewrote the file (its
    machine paths made relative, :mod:`bashkir_peft.report.bundle`) and ``bytes`` is the
    rewritten file's; unset otherwise. Disk figures read it, so a book rebuilt from a bundle
    reports the disk the runs used."""

    bytes: int
    mtime_ns: int
    sha256: str
    written_bytes: int | None = None


class CorpusFile(Part):
    """One file of a local corpus: its path relative to the corpus folder and its size."""

    path: str
    bytes: int


class CorpusInfo(Part):
    """Where the documents came from (:meth:`bashkir_peft.data.corpus.CorpusSource.describe`):
    a local file or folder with its files, or a Hub dataset with its split and revision."""

    kind: str
    location: str
    files: list[CorpusFile] | None = None
    split: str | None = None
    revision: str | None = None


class Drop(Part):
    """One row of data preparation's drops table: what was removed, at which level, how much."""

    reason: str
    level: Literal["document", "sentence", "fragment", "character"]
    documents: int | None
    sentences: int | None
    characters: int


class Overlap(Part):
    """Train/test word n-gram overlap of one test source (``all``: every test document;
    :func:`bashkir_peft.data.overlap.overlap_audit`)."""

    source: str
    ngram: int
    test_documents: int
    test_ngrams: int
    ngrams_in_train: int
    share_in_train: float | None
    documents_with_overlap: int


class Duplicate(Part):
    """A dropped duplicate document and the one kept in its place."""

    dropped: str
    kept: str
    reason: Literal["exact_duplicate", "near_duplicate"]


class SplitFile(Part):
    """One split file of a data folder: its rows, size and SHA-256 (the data's identity; the grid
    runner's :class:`FileStamp` adds the modification time)."""

    rows: int
    bytes: int
    sha256: str


class DataManifest(Record):
    """``data/manifest.json``: what data preparation wrote (written last: its presence with
    ``status: complete`` marks a complete data folder)."""

    status: Literal["complete"]
    fingerprint: str
    created: str
    params: DataPrepParams | None
    """``None``: a pre-split folder (:func:`bashkir_peft.data.folder.write_presplit_folder`), not
    prepared from a corpus."""
    corpus: CorpusInfo
    langid_version: str
    counts: dict[str, int]
    cleaning: dict[str, int]
    drops: list[Drop]
    near_duplicate_clusters: int
    overlap: list[Overlap] | None = None  # train/test n-gram overlap per source (None: prepared before the audit)
    duplicates: list[Duplicate]
    examples: dict[str, list[str]]
    files: dict[str, SplitFile]
    resources: Cost | None
    """``None``: a pre-split folder (nothing prepared, nothing measured)."""
    environment: Environment


class TrainLossPoint(Part):
    """A logged training loss (mean over the logging interval) and the learning rate at ``step``."""

    step: int
    loss: float
    learning_rate: float | None


class EvalLossPoint(Part):
    """A validation point: loss [nats/token], bits per byte, and the bytes of training text seen
    (``None`` without a byte budget's bytes per step)."""

    step: int
    eval_loss: float
    bits_per_byte: float | None = None  # None: written before validation counted bytes
    train_bytes_seen: int | None = None


class Losses(Part):
    """Training and validation losses by step (the learning curves)."""

    train: list[TrainLossPoint]
    eval: list[EvalLossPoint]


class FinalEval(Part):
    """Validation loss, perplexity and bits per byte at the last step."""

    eval_loss: float
    perplexity: float
    blocks: int
    bits_per_byte: float | None = None  # None: written before validation counted bytes


class SplitPacking(Part):
    """One split as training packed it (:func:`bashkir_peft.data.packing.packed_dataset`): documents,
    tokens, blocks of ``block_size``, tokens dropped at the end, the document framing and the
    split's UTF-8 bytes."""

    documents: int
    tokens: int
    blocks: int
    tokens_dropped: int
    framing: str
    bytes: int | None = None  # None: written before the byte budget


class TrainData(Part):
    """The data a run trained on: the data folder, its fingerprint and each split's packing."""

    dir: str
    fingerprint: str
    train: SplitPacking | None = None
    validation: SplitPacking | None = None


class Session(Part):
    """One training session (a start or a resume): when, from which checkpoint, its steps, tokens,
    throughput and cost (``process_costs``: each DDP process's; ``checkpoints_deleted``: what
    ``keep_checkpoints: false`` removed)."""

    started: str
    resumed_from: str | None = None
    skipped_incomplete_checkpoints: list[str] = []
    cost: Cost | None = None
    finished: str | None = None
    steps: int | None = None
    tokens: int | None = None
    tokens_per_s: float | None = None
    process_costs: list[Cost] | None = None
    checkpoints_deleted: list[str] | None = None


class Budget(Part):
    """Steps and evaluation interval as run (:func:`bashkir_peft.train.budget.resolve_budget`): a
    byte budget's resolution with the training split's bytes per token [bytes/token] and bytes
    per optimizer step; without one only ``max_steps`` and ``eval_steps``."""

    max_steps: int
    eval_steps: int
    bytes_per_token: float | None = None
    bytes_per_step: float | None = None
    train_bytes: int | None = None
    eval_every_bytes: int | None = None

    def text_seen(self, steps: int) -> float | None:
        """Bytes of training text seen after ``steps`` optimizer steps: ``steps x bytes_per_step``
        [bytes]; ``None`` without a byte budget's resolution."""
        return None if self.bytes_per_step is None else steps * self.bytes_per_step


class PrecisionInfo(Part):
    """A run's dtypes (:meth:`bashkir_peft.models.precision.Precision.record`)."""

    compute_dtype: str
    load_dtype: str
    master_dtype: str
    autocast: str | None
    pure: bool


class TokenizerProfile(Part):
    """A tokenizer on the training split (:func:`bashkir_peft.data.fertility.profile_texts`)."""

    fertility: float
    chars_per_token: float
    bytes_per_token: float


class Retokenization(Part):
    """Re-tokenization of one held-out side (:func:`bashkir_peft.models.retokenization.segmentation_change`)."""

    texts: int
    base_tokens: int
    adapted_tokens: int
    changed_share: float
    new_row_share: float
    texts_unchanged: float


class TextSample(Part):
    """A protected or replayed text file of a tokenizer adaptation (:class:`bashkir_peft.config.tokenizer.TextSample`)."""

    path: str
    lang: str | None


class Protection(Part):
    """What protecting text cost and kept: new merges dropped, protected documents, the share
    of them tokenized exactly as by the base tokenizer (1 by construction)."""

    merges_dropped: int
    documents: int
    unchanged: float


class NewRowWarmup(Part):
    """The warm-up of the new rows (:func:`bashkir_peft.train.new_rows.warm_up_new_rows`):
    steps, training tokens, learning rate, mean loss of the first and last step, seconds."""

    steps: int
    tokens: int
    learning_rate: float
    loss_first: float
    loss_last: float
    seconds: float


class ReplayMix(Part):
    """Replay mixed into training (:func:`bashkir_peft.data.retokenization.mix_replay`):
    documents and UTF-8 bytes replayed, their share of the training bytes."""

    documents: int
    bytes: int
    share: float


class FocusInit(Part):
    """What FOCUS initialised (:func:`bashkir_peft.models.focus.focus_init`): rows it set, rows
    left at the mean of their pieces (token absent from the training split), overlapping old
    tokens used, mean non-zero weights per row."""

    focus_rows: int
    focus_fallback_rows: int
    focus_overlapping: int
    focus_mean_support: float


class VocabAdaptation(Part):
    """A run's tokenizer adaptation (:mod:`bashkir_peft.data.vocab`): the setting (K =
    ``new_tokens``, ``bpe_vocab_size``, ``init``), what it produced, and what the new rows cost.

    ``token_rows_trainable_params``: trainable parameters in the new embedding (and untied
    head) rows; for LoRA/QLoRA through peft's ``trainable_token_indices`` (``peft_mechanism``),
    for full fine-tuning part of the whole model.

    Set only by later settings (issue 32): ``protect`` and ``protection`` (protected text and
    what keeping its segmentation cost), ``retokenized`` (re-tokenization of held-out sides by
    name), the new-row warm-up (``new_rows_warmup_steps``, ``warmup``), the new rows' own
    learning rate (``new_rows_learning_rate``; ``new_rows_group_params``: parameters in their
    optimizer group), replay (``replay``, ``replay_share``, ``replayed``), and what FOCUS
    initialised (``focus``).
    """

    new_tokens: int
    bpe_vocab_size: int
    init: str
    new_tokens_added: int
    base_vocab_size: int
    vocab_size: int
    tied: bool
    new_rows: int
    train_before: TokenizerProfile
    train_after: TokenizerProfile
    peft_mechanism: str | None
    token_rows_trainable_params: int
    protect: list[TextSample] | None = None
    protection: Protection | None = None
    retokenized: dict[str, Retokenization] | None = None
    new_rows_warmup_steps: int | None = None
    new_rows_learning_rate: float | None = None
    replay: list[TextSample] | None = None
    replay_share: float | None = None
    warmup: NewRowWarmup | None = None
    replayed: ReplayMix | None = None
    new_rows_group_params: int | None = None
    focus: FocusInit | None = None


class WeightSpectrumInfo(Part):
    """The weight-change spectrum a full fine-tuning run wrote at its end
    (:func:`bashkir_peft.models.spectrum.write_weight_spectrum`): its file in the run folder,
    the matrices it holds and the seconds it took (loading the base model and the SVDs)."""

    file: str
    matrices: int
    wall_time_s: float


class TrainRecord(Record):
    """``train.json``: one training run (written at start, updated as it goes).

    Fields set only when training ended (``model`` on, once the weights loaded) are absent
    from the file until then; a ``finished`` record has all of them.
    """

    status: Status
    reason: str | None
    params: TrainParams
    """The run's parameters, ``learning_rate`` resolved (:meth:`TrainParams.for_record`)."""
    optimizer: str
    compute_dtype: str
    data: TrainData
    started: str
    sessions: list[Session]
    model: ModelInfo | None = None
    target_modules: list[str] | None = None
    trainable_params: int | None = None
    total_params: int | None = None
    trainable_share: float | None = None
    environment: Environment | None = None
    global_step: int | None = None
    tokens_seen: int | None = None
    tokens_per_s: float | None = None
    cost: Cost | None = None
    losses: Losses | None = None
    final_eval: FinalEval | None = None
    finished: str | None = None
    vocab: VocabAdaptation | None = None
    budget: Budget | None = None
    device: Placement | None = None
    precision: PrecisionInfo | None = None
    weight_spectrum: WeightSpectrumInfo | None = None

    @property
    def text_seen(self) -> float | None:
        """Bytes of training text the run has seen (:meth:`Budget.text_seen` at ``global_step``);
        ``None`` without a budget's bytes per step or before any step."""
        if self.budget is None or self.global_step is None:
            return None
        return self.budget.text_seen(self.global_step)

    @model_validator(mode="after")
    def _finished_is_complete(self):
        if self.status == "finished":
            missing = [f for f in ("model", "trainable_params", "total_params", "global_step", "tokens_seen",
                                   "cost", "losses", "final_eval", "finished") if getattr(self, f) is None]
            if missing:
                raise ValueError(f"a finished training record needs {', '.join(missing)}")
        return self


class MetricBlock(Part):
    """Corpus-level sums and metrics of one protocol x split x source (``source == "all"``:
    every document).

    ``nll`` and ``tokens`` are those of the text's own tokens; ``separator_nll`` and
    ``separator_tokens`` those of the scored separators between packed documents (``paper``
    protocol; 0 under ``rolling``), which enter token perplexity only
    (:mod:`bashkir_peft.evaluate.metrics`). ``None``: a record written before separators were
    counted apart, whose ``nll`` includes them.
    """

    protocol: Literal["paper", "rolling", "goldfish"]
    split: str
    source: str
    documents: int
    nll: float
    tokens: int
    bytes: int
    words: int
    perplexity: float
    bits_per_byte: float
    word_perplexity: float
    separator_nll: float | None = None
    separator_tokens: int | None = None


class CleaningSettings(Part):
    """Data preparation's filters applied to an external set (``clean: true``)."""

    min_chars: int
    langid_min_letters: int


class ExternalInfo(ExternalSet):
    """An external test set as scored (:func:`bashkir_peft.data.external.load_external`): its
    parameters, the resolved path, documents read and scored, drops by reason, the cleaning
    settings (``None``: raw), the composition of what was scored (SIB-200: category ->
    documents, in file order; ``None``: a set without categories, or a record from before
    issue 27) and the SHA-256 of the scored texts."""

    resolved_path: str
    documents_read: int
    documents: int
    drops: dict[str, int]
    cleaning_settings: CleaningSettings | None
    composition: dict[str, int] | None = None
    fingerprint: str


class EvalData(Part):
    """What an evaluation scored: the data folder and its fingerprint (``None`` for an external
    set alone), the documents scored, and the external set (``None``: a split)."""

    data_dir: str | None
    fingerprint: str | None
    documents: int
    external: ExternalInfo | None


class EvalCost(Cost):
    """An evaluation's cost: :class:`Cost`, the torch threads and the scored tokens per second."""

    torch_threads: int
    tokens_per_s: float | None


class EvalEntry(Part):
    """One ``protocol/split`` (or ``protocol/<external set>``) evaluation in ``eval.json``;
    an external set's ``split`` is its name and ``data["external"]`` says what it is
    (:mod:`bashkir_peft.data.external`). ``truncated``: under the ``goldfish`` protocol, the
    sentences cut to its 512 tokens (``None``: another protocol, or a record before it)."""

    status: Literal["finished"]
    protocol: Literal["paper", "rolling", "goldfish"]
    split: str
    max_length: int | None
    stride: int | None
    block_size: int | None
    prefix_token: str | None
    dtype: str
    batch_size: int
    max_documents: int | None
    merged: bool
    merge_note: str | None
    metrics: MetricBlock
    by_source: dict[str, MetricBlock]
    truncated: int | None = None
    params: EvalParams
    method: Method
    model: ModelInfo | None
    run_dir: str | None
    data: EvalData
    train_data_fingerprint: str | None
    cost: EvalCost
    environment: Environment
    device: Placement | None = None


class EvalRecord(Record):
    """``eval.json``: every evaluation written into one output folder, keyed
    ``<protocol>/<split>``; the per-document sums are in ``eval_documents.parquet``."""

    stage: Literal["evaluate"]
    status: Literal["finished"]
    method: Method
    model: ModelInfo | None
    model_name: str | None
    run_dir: str | None
    evaluations: dict[str, EvalEntry]


EVAL_DOCUMENT_COLUMNS: dict[str, str] = {
    "protocol": "string", "split": "string", "id": "string", "source": "string",
    "nll": "float", "tokens": "integer", "bytes": "integer", "words": "integer",
    "separator_nll": "float", "separator_tokens": "integer",
}
"""Columns of ``eval_documents.parquet`` (one row per document x protocol x split) and
their kinds: the sums of :class:`MetricBlock`, per document."""

GENERATION_RATE_COLUMNS: dict[str, str] = {
    "n_letters": "integer", **{f"letters_{lang}": "integer" for lang in LANGUAGES},
    **{f"long_{lang}": "boolean" for lang in LANGUAGES},
}
"""Columns of ``generations.parquet`` (one row per prompt) that the report's rate intervals
read: letters of the sentences with each label, and whether a sentence of ``min_letters``+
letters has that label (:func:`bashkir_peft.text.codeswitch.analyze`; tables written before
issue 13 have no ``long_*``)."""

GENERATION_WORD_COLUMNS: dict[str, str] = {
    f"{side}{col}": "integer" for side in ("", "reference_")
    for col in ("lexicon_words", "in_lexicon_words", "word_8grams", "copied_8grams")}
"""Columns of ``generations.parquet`` (one row per prompt) with the word counts of the
continuation and (``reference_*``) of the reference continuation, against the lexicon of the
training split (:mod:`bashkir_peft.text.lexicon`): word forms, forms in the lexicon, word
8-grams, 8-grams found in the training split. Written by the generate stage where it had the
training split (:class:`GenerateRecord` ``lexicon``); tables written before issue 27 have none
(the report counts them itself)."""

FERTILITY_COLUMNS: dict[str, str] = {"model": "string", "tokenizer": "string", "split": "string",
                                     "fertility": "float"}
"""Columns of the data folder's ``tokenizer_fertility.parquet`` that readers use (one row per
profiled tokenizer; :func:`bashkir_peft.data.fertility.profile_split` writes more)."""


WEIGHT_SPECTRUM_COLUMNS: dict[str, str] = {
    "module": "string", "layer": "integer", "matrix": "string", "rows": "integer", "cols": "integer",
    "full_rank": "integer", "frobenius_norm": "float", "relative_norm": "float", "spectral_norm": "float",
    "stable_rank": "float", "rank_50": "integer", "rank_90": "integer", "rank_99": "integer",
}
"""Columns of ``weight_spectrum.parquet`` (one row per matrix LoRA would adapt, of a full
fine-tuning run) and their kinds: the singular values of the weight change
ΔW = W_finetuned − W_base summarised (:func:`bashkir_peft.models.spectrum.matrix_spectrum`)."""


def read_weight_spectrum(path: str | Path):
    """Read ``weight_spectrum.parquet``: :func:`read_table` with :data:`WEIGHT_SPECTRUM_COLUMNS`."""
    return read_table(path, WEIGHT_SPECTRUM_COLUMNS)


class LangidCrosscheck(Part):
    """Agreement of the project's identifier with an independent one on the long sentences of
    a set of texts (:func:`bashkir_peft.text.crosscheck.crosscheck`)."""

    identifier: str
    n_sentences: int
    agreement: float | None
    bak_agreement: float | None
    ours: dict[Language, float | None]
    fasttext: dict[Language, float | None]


class GenerationSummary(Part):
    """Run-level measures of a set of continuations (:func:`bashkir_peft.text.codeswitch.summarize`;
    ``None`` where a denominator is 0)."""

    n: int
    n_empty: int
    code_switch_rate: float | None
    non_bashkir_word_share: float | None
    language_shares: dict[Language, float | None]
    cyrillic_share: float | None
    latin_share: float | None
    other_letter_share: float | None
    bashkir_letter_share: float | None
    distinct_1: float | None
    distinct_2: float | None
    repeated_ngram_rate: float | None
    mean_words: float | None
    min_letters: int
    code_switch_languages: list[Language] = ["rus", "eng", "other"]
    """Labels of a long sentence that count as a switch; records without the field counted
    ``other`` too (before issue 13)."""
    switch_rates: dict[Language, float | None] | None = None
    """Share of non-empty continuations with a sentence of ``min_letters``+ letters per label."""
    crosscheck: LangidCrosscheck | None = None


class GeneratedRun(Part):
    """The run that generated (``base``: the base model, no run folder; a trained run: its folder,
    status, seed, rank, the fingerprint of its training data and its training parameters)."""

    method: Method
    run_dir: str | None
    status: Status | None = None
    seed: int | None = None
    lora_r: int | None = None
    data_fingerprint: str | None = None
    params: TrainParams | None = None


class PromptSource(Part):
    """Where the prompts came from: the data folder's test split (its fingerprint, its documents,
    whether it is the run's training data) or a prompts file (its SHA-256 and source)."""

    kind: Literal["test_split", "prompts_file"]
    path: str
    fingerprint: str
    test_documents: int | None = None
    matches_training_data: bool | None = None
    source: str | None = None
    data_dir: str | None = None


class Decoding(Part):
    """The decoding settings as run (:meth:`GenerateParams.decoding` plus the batching and seeding
    rules of :mod:`bashkir_peft.generate.run`; sampling knobs only when sampling)."""

    max_new_tokens: int
    do_sample: bool
    repetition_penalty: float
    budget: int
    budget_unit: BudgetUnit
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    seed: int
    batch_size: int
    padding_side: str
    seeding: str
    repetition_penalty_scope: str
    budget_rule: str


class GenerateCost(Cost):
    """Generation's cost: :class:`Cost`, time in ``generate`` [s], new tokens and their rate;
    ``words_per_s``: whitespace words of the continuations as kept (cut to the budget) per
    second of ``generate``, a rate that compares across tokenizers (``None`` in records
    written before it existed)."""

    generate_time_s: float
    new_tokens: int
    new_tokens_per_s: float | None
    words_per_s: float | None = None


class GenerationLexicon(Part):
    """The lexicon a generation's word counts were taken against (``generations.parquet``'s
    :data:`GENERATION_WORD_COLUMNS`), and the pooled rates: in-lexicon = forms in the lexicon /
    forms, copy = 8-grams found / 8-grams (``None``: no word, or no 8-gram)."""

    data_dir: str
    train_documents: int
    min_count: int
    n: int
    forms: int
    in_lexicon_rate: float | None
    copy_rate: float | None
    reference_in_lexicon_rate: float | None
    reference_copy_rate: float | None


class GenerateRecord(Record):
    """``generate.json``: one generation run; the continuations are in ``generations.parquet``."""

    status: Literal["finished"]
    label: str
    run: GeneratedRun
    model: ModelInfo | None
    data: PromptSource
    params: GenerateParams
    decoding: Decoding
    prefix_token: str
    summary: GenerationSummary
    reference_summary: GenerationSummary | None
    files: dict[str, str]
    cost: GenerateCost
    created_utc: str
    environment: Environment
    stops: dict[Literal["eos", "budget", "token_cap"], int] | None = None
    """Continuations by what ended them (records before issue 13: ``None``)."""
    device: Placement | None = None
    lexicon: GenerationLexicon | None = None
    """The word counts' lexicon and pooled rates (records before issue 27, or a generation
    without the training split: ``None``)."""


Approach = Literal["in_context", "probe", "majority", "char_tfidf"]


class DownstreamResult(Part):
    """One classifier's scores on the SIB-200 test sentences (intervals: percentile
    bootstrap over test sentences).

    ``approach``: ``in_context`` (label log-likelihood, ``k`` shots, ``score`` ``acc`` or
    ``acc_norm``), ``probe`` (logistic regression on hidden states of ``layer``; ``selection``
    says whether the layer was fixed or chosen on dev), ``majority`` or ``char_tfidf``
    (baselines; ``C`` chosen on dev for the probe and the TF-IDF classifier)."""

    approach: Approach
    setting: str
    k: int | None = None
    score: Literal["acc", "acc_norm"] | None = None
    layer: int | None = None
    selection: Literal["fixed", "best on dev"] | None = None
    C: float | None = None
    dev_accuracy: float | None = None
    accuracy: float
    accuracy_low: float
    accuracy_high: float
    macro_f1: float
    macro_f1_low: float
    macro_f1_high: float
    n: int


class Sib200Task(Part):
    """The SIB-200 task as run: the dataset, its folder, the topic labels and the sentences of each
    split used (``test_subset``: how a cut test set was chosen)."""

    dataset: str
    sib200_dir: str
    labels: list[str]
    train: int
    dev: int
    test: int
    test_subset: str | None


class PromptFormatInfo(Part):
    """The in-context prompt (:mod:`bashkir_peft.downstream.prompts`): template, label language and
    strings, shot counts and how shots are chosen, the input length, the delimiters."""

    template: str
    label_language: str
    label_strings: dict[str, str]
    k_shots: list[int]
    shots: str
    max_length: int
    target_delimiter: str
    fewshot_delimiter: str


class ProbeInfo(Part):
    """The linear probe's search: pooling, hidden states, the layers searched, the fixed and the
    best layer, the regularisation grid and the dev accuracy of each layer searched."""

    pooling: str
    hidden_states: int
    layers_searched: list[int]
    fixed_layer: int
    best_layer: int
    C_grid: list[float]
    dev_accuracy_by_layer: dict[int, float]


class DownstreamCost(Cost):
    """The downstream stage's cost: :class:`Cost`, the torch threads, and the seconds of the
    baselines, of the in-context classification per shot count and of the probe."""

    torch_threads: int | None = None
    baselines_s: float | None = None
    in_context_s: dict[int, float] = {}
    probe_s: float | None = None


class DownstreamRecord(Record):
    """``downstream.json``: SIB-200 Bashkir topic classification of one model or run; the
    per-sentence predictions are in ``downstream_predictions.parquet``, the scores also in
    ``downstream_metrics.csv``."""

    stage: Literal["downstream"]
    status: Literal["finished"]
    method: Method
    model: ModelInfo | None
    model_name: str | None
    run_dir: str | None
    task: Sib200Task
    prompt: PromptFormatInfo
    probe: ProbeInfo | None
    results: list[DownstreamResult]
    params: DownstreamParams
    cost: DownstreamCost
    environment: Environment


DOWNSTREAM_PREDICTION_COLUMNS: dict[str, str] = {
    "approach": "string", "setting": "string", "index_id": "integer", "category": "string",
    "prediction": "string",
}
"""Columns of ``downstream_predictions.parquet``: one row per test sentence x classifier."""


class CellAxes(Part):
    """A grid cell's axes (``lora_r`` only for adapters; ``tokenizer``: ``base`` or the name of
    a tokenizer adaptation, absent from records of before the axis)."""

    model: str
    method: Method
    lora_r: int | None
    seed: int | None
    label: str | None
    tokenizer: str = BASE_TOKENIZER


class StageState(Part):
    """One unit of a cell (``train``, ``evaluate.1``, ...); ``files``: the
    manifest of what it wrote in the run folder (path relative to it -> stamp), set when it
    finished (cells run before the manifest existed have none). Passes run in one notebook
    execution name the same ``notebook``; its wall time and files are on the first of them."""

    status: Status
    notebook: str
    parameters: Json
    """What papermill injected into the notebook, as injected (free-form on purpose: the names
    differ by stage, and the stage's own record holds them typed, as its ``params``)."""
    wall_time_s: float | None = None
    files: dict[str, FileStamp] | None = None


class Failure(Part):
    """A failed notebook: the failing cell and its exception (papermill's error)."""

    stage: str
    notebook: str
    ename: str
    evalue: str
    error: str
    cell_index: int | None = None
    exec_count: int | None = None
    traceback: str | None = None


class Identity(Part):
    """What a run id hashes (:func:`bashkir_peft.grid.runids.identity`): the cell's axes, the
    grid's settings of each of its stages, the data fingerprint and the base model's revision.

    ``axes`` and ``params`` stay free-form JSON on purpose: the run id is the hash of their
    canonical JSON exactly as the grid file gives them (unset settings absent), so a typed copy,
    with defaults filled in, would change every run id.
    """

    axes: Json
    params: dict[str, Json]
    data_fingerprint: str
    model_revision: str


class SourceNote(Part):
    """Where a value of a grid file comes from (the file's ``source`` and ``note``)."""

    source: str
    note: str | None = None


class CellRecord(Record):
    """``grid_cell.json``: the grid runner's record of one cell: its status, axes, identity
    (what the run id hashes), stages and, for a failed cell, the failure."""

    status: Status
    run_id: str
    grid: str
    grid_file: str | None
    params: CellAxes
    identity: Identity
    sources: dict[str, SourceNote]
    data_dir: str
    corpus: str | None
    stages: dict[str, StageState]
    error: str | None
    failure: Failure | None = None
    wall_time_s: float | None = None


class DataPrepRecord(Record):
    """``data_prep.json``: the grid runner's record of its data preparation."""

    status: Status
    corpus: str | None
    key: str
    params: Json
    """What papermill injected into the data notebook, as injected (free-form for the reason of
    :attr:`StageState.parameters`: the data manifest holds them typed, as its ``params``)."""
    notebook: str
    data_dir: str
    fingerprint: str | None = None
    wall_time_s: float | None = None
    failure: Failure | None = None
    files: dict[str, FileStamp] | None = None


class IndexCell(CellAxes):
    """One cell of ``grid.json``: its axes, folder and state on disk."""

    run_id: str | None
    run_dir: str | None
    status: Literal["not started", "running", "interrupted", "finished", "failed", "corrupt", "stale"]
    error: str | None
    wall_time_s: float | None = None


class IndexData(Part):
    """The grid's data preparation in its index: status, fingerprint, notebook, folder, error."""

    status: Status
    fingerprint: str | None
    notebook: str
    data_dir: str
    error: str | None


class GridIndex(Record):
    """``grid.json``: the grid's current cells (every cell of the grid file), their folders
    and status."""

    grid: str
    grid_file: str | None
    description: str | None
    corpus: str | None
    data: IndexData | None
    cells: list[IndexCell]


R = TypeVar("R", bound=Record)


# --------------------------------------------------------------------------- reading and writing


class RecordError(DataError):
    """A record that does not match the contract (the message names the file and the field)."""


def _upgrade_v0(kind: type[Record], data: dict) -> dict:
    """Version 0 (before the contract) -> 1: the same fields, plus ``schema_version``; the data
    manifest's own ``format_version: 1`` is replaced by it."""
    data = dict(data)
    if kind is DataManifest:
        if data.pop("format_version", None) != 1:
            raise ValueError("manifest without schema_version or format_version 1")
    return data | {"schema_version": 1}


def _upgrade_v1(kind: type[Record], data: dict) -> dict:
    """Version 1 -> 2 (every field typed): the training record's resolved ``learning_rate`` moves
    into its ``params`` (one copy); a generation record's training parameters get the learning
    rate their run resolved (:data:`~bashkir_peft.config.train.DEFAULT_LEARNING_RATE` for the
    method where none was set); the downstream cost's ``in_context_<k>_shot_s`` keys become
    ``in_context_s`` (shots -> seconds); an index without data preparation has ``data: None``; a pre-split data folder's manifest
    has ``params`` and ``resources`` ``None``."""
    data = dict(data)
    if kind is TrainRecord:
        rate = data.pop("learning_rate", None)
        if rate is None:
            raise ValueError("a version-1 training record without learning_rate")
        data["params"] = {**data.get("params", {}), "learning_rate": rate}
    elif kind is GenerateRecord:
        run = data.get("run") or {}
        params = run.get("params")
        if isinstance(params, dict) and params.get("learning_rate") is None:
            params = {**params, "learning_rate": DEFAULT_LEARNING_RATE[params.get("method")]}
            data["run"] = {**run, "params": params}
    elif kind is DownstreamRecord:
        cost = dict(data.get("cost") or {})
        shots = {m.group(1): cost.pop(key) for key in list(cost) if (m := re.fullmatch(r"in_context_(\d+)_shot_s", key))}
        data["cost"] = cost | ({"in_context_s": shots} if shots else {})
    elif kind is GridIndex and data.get("data") == {}:
        data["data"] = None
    elif kind is DataManifest and data.get("params") == {}:  # a pre-split folder
        data |= {"params": None, "resources": None}
    return data | {"schema_version": 2}


UPGRADES = {0: _upgrade_v0, 1: _upgrade_v1}
"""``version -> function(kind, data) -> data of version + 1``: how older records are read."""


def upgrade(kind: type[Record], data: dict, where: str = "record") -> dict:
    """Bring a record's raw data to :data:`SCHEMA_VERSION` through :data:`UPGRADES`.

    Raises:
        RecordError: a version newer than this code reads, or one no upgrade exists for.
    """
    version = data.get("schema_version", 0)
    if not isinstance(version, int) or isinstance(version, bool):
        raise RecordError(f"{where}: schema_version {version!r} is not an integer")
    if version > SCHEMA_VERSION:
        raise RecordError(f"{where}: schema_version {version!r} is newer than this code reads "
                          f"(up to {SCHEMA_VERSION}); update bashkir-peft")
    while version < SCHEMA_VERSION:
        if version not in UPGRADES:
            raise RecordError(f"{where}: schema_version {version} cannot be read (needs {SCHEMA_VERSION}); "
                              "rerun the stage that wrote it")
        try:
            data = UPGRADES[version](kind, data)
        except ValueError as err:
            raise RecordError(f"{where}: {err}") from None
        version = data["schema_version"]
    return data


def _first_error(err: ValidationError) -> str:
    e = err.errors()[0]
    field = ".".join(str(p) for p in e["loc"]) or "(top level)"
    kind = {"missing": "missing", "extra_forbidden": "unknown field"}.get(e["type"], e["msg"])
    more = f" (and {len(err.errors()) - 1} more)" if len(err.errors()) > 1 else ""
    return f"field {field!r}: {kind}{more}"


RECORDED = {"recorded": True}
"""Validation context of a record being read: parameter validators that look at the machine
(e.g. that an external set's path exists) do not apply to what a record says was run."""


def parse_record(kind: type[R], data: object, where: str) -> R:
    """Validate raw record data (upgraded from older versions) into ``kind``.

    Raises:
        RecordError: ``where: field 'a.b': missing`` (the first offending field).
    """
    if not isinstance(data, dict):
        raise RecordError(f"{where}: not a {kind.__name__} (a JSON object expected)")
    try:
        return kind.model_validate(upgrade(kind, data, where), context=RECORDED)
    except ValidationError as err:
        raise RecordError(f"{where}: not a valid {kind.__name__}: {_first_error(err)}") from None


def read_record(path: str | Path, kind: type[R]) -> R:
    """Read and validate one record file.

    Raises:
        RecordError: missing or unreadable file, invalid JSON, or a field that does not
            match (the message names the file and the field).
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RecordError(f"{path}: no such record") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise RecordError(f"{path}: unreadable record ({type(err).__name__}: {err})") from None
    return parse_record(kind, data, str(path))


def read_record_if_any(path: str | Path, kind: type[R]) -> R | None:
    """:func:`read_record`, or ``None`` where the file does not exist."""
    return read_record(path, kind) if Path(path).is_file() else None


def record_text(record: Record) -> str:
    """A record as the JSON text :func:`write_record` writes: indented UTF-8, fields never set
    left out (so a record being built shows only what is known so far)."""
    return json.dumps(record.model_dump(mode="json", exclude_unset=True) | {"schema_version": record.schema_version},
                      indent=2, ensure_ascii=False)


def write_record(path: str | Path, record: Record) -> Path:
    """Write a record atomically as JSON (:func:`record_text`).

    Returns:
        ``path``.
    """
    return write_text_atomic(path, record_text(record))


def read_table(path: str | Path, columns: dict[str, str]):
    """Read a Parquet table of the contract and check its columns.

    Args:
        path: the table.
        columns: column name -> kind (``string``, ``float``, ``integer`` or ``boolean``), e.g.
            :data:`EVAL_DOCUMENT_COLUMNS`; other columns are allowed.

    Returns:
        The table (pandas).

    Raises:
        RecordError: missing or unreadable file, or a missing or mistyped column (named).
    """
    import pandas as pd

    path = Path(path)
    try:
        df = pd.read_parquet(path)
    except FileNotFoundError:
        raise RecordError(f"{path}: no such table") from None
    except (OSError, ValueError) as err:
        raise RecordError(f"{path}: unreadable table ({type(err).__name__})") from None
    for col, kind in columns.items():
        if col not in df.columns:
            raise RecordError(f"{path}: column {col!r}: missing")
        ok = {"string": pd.api.types.is_string_dtype, "float": pd.api.types.is_float_dtype,
              "integer": pd.api.types.is_integer_dtype, "boolean": pd.api.types.is_bool_dtype}[kind](df[col])
        if not ok:
            raise RecordError(f"{path}: column {col!r}: expected {kind}, found {df[col].dtype}")
    return df


def read_eval_documents(path: str | Path):
    """Read ``eval_documents.parquet``: :func:`read_table` with :data:`EVAL_DOCUMENT_COLUMNS`."""
    return read_table(path, EVAL_DOCUMENT_COLUMNS)

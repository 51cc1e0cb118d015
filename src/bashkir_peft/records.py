"""The record contract: the file names of a run folder, a data folder and a grid folder,
and the typed record of every stage. Every writer builds these models; every reader parses
them (:func:`read_record`), so a missing or renamed field is one clear error naming the file
and the field, never a guess.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, JsonValue, ValidationError, model_validator

from bashkir_peft.atomic import write_json_atomic
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

SCHEMA_VERSION = 1
"""Version of the record contract. Records written before the contract carry no
``schema_version`` (version 0) and are read through :func:`upgrade`."""

Status = Literal["running", "finished", "failed"]
Json = dict[str, JsonValue]
Language = Literal["bak", "rus", "eng", "other"]
LANGUAGES: tuple[Language, ...] = ("bak", "rus", "eng", "other")
METRICS = ("perplexity", "bits_per_byte", "word_perplexity")


class Record(BaseModel):
    """Base of every record: unknown fields are errors, the schema version is written."""

    model_config = ConfigDict(extra="forbid")

    schema_version: Literal[1] = SCHEMA_VERSION


class DataManifest(Record):
    """``data/manifest.json``: what data preparation wrote (written last: its presence with
    ``status: complete`` marks a complete data folder)."""

    status: Literal["complete"]
    fingerprint: str
    created: str
    params: Json
    corpus: Json
    langid_version: str
    counts: dict[str, int]
    cleaning: dict[str, int]
    drops: list[Json]
    near_duplicate_clusters: int
    overlap: list[Json] | None = None  # train/test n-gram overlap per source (None: prepared before the audit)
    duplicates: list[dict[str, str]]
    examples: dict[str, list[str]]
    files: dict[str, Json]
    resources: Json
    environment: Json


class Losses(BaseModel):
    model_config = ConfigDict(extra="forbid")

    train: list[Json]
    eval: list[Json]


class FinalEval(BaseModel):
    model_config = ConfigDict(extra="forbid")

    eval_loss: float
    perplexity: float
    blocks: int
    bits_per_byte: float | None = None  # None: written before validation counted bytes


class TrainCost(BaseModel):
    model_config = ConfigDict(extra="forbid")

    wall_time_s: float
    peak_rss_mib: float
    peak_gpu_mib: float | None


class TokenizerProfile(BaseModel):
    """A tokenizer on the training split (:func:`bashkir_peft.data.fertility.profile_texts`)."""

    model_config = ConfigDict(extra="forbid")

    fertility: float
    chars_per_token: float
    bytes_per_token: float


class VocabAdaptation(BaseModel):
    """A run's tokenizer adaptation (:mod:`bashkir_peft.data.vocab`): the setting (K =
    ``new_tokens``, ``bpe_vocab_size``, ``init``), what it produced, and what the new rows cost.

    ``token_rows_trainable_params``: trainable parameters in the new embedding (and untied
    head) rows; for LoRA/QLoRA through peft's ``trainable_token_indices`` (``peft_mechanism``),
    for full fine-tuning part of the whole model.
    """

    model_config = ConfigDict(extra="forbid")

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


class TrainRecord(Record):
    """``train.json``: one training run (written at start, updated as it goes).

    Fields set only when training ended (``model`` on, once the weights loaded) are absent
    from the file until then; a ``finished`` record has all of them.
    """

    status: Status
    reason: str | None
    params: Json
    learning_rate: float
    optimizer: str
    compute_dtype: str
    data: Json
    started: str
    sessions: list[Json]
    model: Json | None = None
    target_modules: list[str] | None = None
    trainable_params: int | None = None
    total_params: int | None = None
    trainable_share: float | None = None
    environment: Json | None = None
    global_step: int | None = None
    tokens_seen: int | None = None
    tokens_per_s: float | None = None
    cost: TrainCost | None = None
    losses: Losses | None = None
    final_eval: FinalEval | None = None
    finished: str | None = None
    vocab: VocabAdaptation | None = None
    budget: Json | None = None
    """Steps and evaluation interval as run (:func:`bashkir_peft.train.budget.resolve_budget`):
    the byte budget's resolution, with the training split's bytes per token."""
    device: Json | None = None
    """Where it trained (:meth:`bashkir_peft.models.device.Placement.record`, with ``processes``)."""
    precision: Json | None = None
    """Its dtypes (:meth:`bashkir_peft.models.precision.Precision.record`)."""

    @model_validator(mode="after")
    def _finished_is_complete(self):
        if self.status == "finished":
            missing = [f for f in ("model", "trainable_params", "total_params", "global_step", "tokens_seen",
                                   "cost", "losses", "final_eval", "finished") if getattr(self, f) is None]
            if missing:
                raise ValueError(f"a finished training record needs {', '.join(missing)}")
        return self


class MetricBlock(BaseModel):
    """Corpus-level sums and metrics of one protocol x split x source (``source == "all"``:
    every document).

    ``nll`` and ``tokens`` are those of the text's own tokens; ``separator_nll`` and
    ``separator_tokens`` those of the scored separators between packed documents (``paper``
    protocol; 0 under ``rolling``), which enter token perplexity only
    (:mod:`bashkir_peft.evaluate.metrics`). ``None``: a record written before separators were
    counted apart, whose ``nll`` includes them.
    """

    model_config = ConfigDict(extra="forbid")

    protocol: Literal["paper", "rolling"]
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


class EvalEntry(BaseModel):
    """One ``protocol/split`` (or ``protocol/<external set>``) evaluation in ``eval.json``;
    an external set's ``split`` is its name and ``data["external"]`` says what it is
    (:mod:`bashkir_peft.data.external`)."""

    model_config = ConfigDict(extra="forbid")

    status: Literal["finished"]
    protocol: Literal["paper", "rolling"]
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
    params: Json
    method: str
    model: Json | None
    run_dir: str | None
    data: Json
    train_data_fingerprint: str | None
    cost: Json
    environment: Json
    device: Json | None = None
    """Where it ran (:meth:`bashkir_peft.models.device.Placement.record`)."""


class EvalRecord(Record):
    """``eval.json``: every evaluation written into one output folder, keyed
    ``<protocol>/<split>``; the per-document sums are in ``eval_documents.parquet``."""

    stage: Literal["evaluate"]
    status: Literal["finished"]
    method: str
    model: Json | None
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

FERTILITY_COLUMNS: dict[str, str] = {"model": "string", "tokenizer": "string", "split": "string",
                                     "fertility": "float"}
"""Columns of the data folder's ``tokenizer_fertility.parquet`` that readers use (one row per
profiled tokenizer; :func:`bashkir_peft.data.fertility.profile_split` writes more)."""


class LangidCrosscheck(BaseModel):
    """Agreement of the project's identifier with an independent one on the long sentences of
    a set of texts (:func:`bashkir_peft.text.crosscheck.crosscheck`)."""

    model_config = ConfigDict(extra="forbid")

    identifier: str
    n_sentences: int
    agreement: float | None
    bak_agreement: float | None
    ours: dict[Language, float | None]
    fasttext: dict[Language, float | None]


class GenerationSummary(BaseModel):
    """Run-level measures of a set of continuations (:func:`bashkir_peft.text.codeswitch.summarize`;
    ``None`` where a denominator is 0)."""

    model_config = ConfigDict(extra="forbid")

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


class GenerateRecord(Record):
    """``generate.json``: one generation run; the continuations are in ``generations.parquet``."""

    status: Literal["finished"]
    label: str
    run: Json
    model: Json | None
    data: Json
    params: Json
    decoding: Json
    prefix_token: str
    summary: GenerationSummary
    reference_summary: GenerationSummary | None
    files: dict[str, str]
    cost: Json
    created_utc: str
    environment: Json
    stops: dict[Literal["eos", "budget", "token_cap"], int] | None = None
    """Continuations by what ended them (records before issue 13: ``None``)."""

    device: Json | None = None
    """Where it ran (:meth:`bashkir_peft.models.device.Placement.record`)."""


Approach = Literal["in_context", "probe", "majority", "char_tfidf"]


class DownstreamResult(BaseModel):
    """One classifier's scores on the SIB-200 test sentences (intervals: percentile
    bootstrap over test sentences).

    ``approach``: ``in_context`` (label log-likelihood, ``k`` shots, ``score`` ``acc`` or
    ``acc_norm``), ``probe`` (logistic regression on hidden states of ``layer``; ``selection``
    says whether the layer was fixed or chosen on dev), ``majority`` or ``char_tfidf``
    (baselines; ``C`` chosen on dev for the probe and the TF-IDF classifier)."""

    model_config = ConfigDict(extra="forbid")

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


class DownstreamRecord(Record):
    """``downstream.json``: SIB-200 Bashkir topic classification of one model or run; the
    per-sentence predictions are in ``downstream_predictions.parquet``, the scores also in
    ``downstream_metrics.csv``."""

    stage: Literal["downstream"]
    status: Literal["finished"]
    method: str
    model: Json | None
    model_name: str | None
    run_dir: str | None
    task: Json
    prompt: Json
    probe: Json | None
    results: list[DownstreamResult]
    params: Json
    cost: Json
    environment: Json


DOWNSTREAM_PREDICTION_COLUMNS: dict[str, str] = {
    "approach": "string", "setting": "string", "index_id": "integer", "category": "string",
    "prediction": "string",
}
"""Columns of ``downstream_predictions.parquet``: one row per test sentence x classifier."""


class CellAxes(BaseModel):
    """A grid cell's axes (``lora_r`` only for adapters; ``tokenizer``: ``base`` or the name of
    a tokenizer adaptation, absent from records of before the axis)."""

    model_config = ConfigDict(extra="forbid")

    model: str
    method: Method
    lora_r: int | None
    seed: int | None
    label: str | None
    tokenizer: str = BASE_TOKENIZER


class FileStamp(BaseModel):
    """One file of a stage's manifest: its size, modification time and SHA-256."""

    model_config = ConfigDict(extra="forbid")

    bytes: int
    mtime_ns: int
    sha256: str


class StageState(BaseModel):
    """One notebook execution of a cell (``train``, ``evaluate.1``, ...); ``files``: the
    manifest of what it wrote in the run folder (path relative to it -> stamp), set when it
    finished (cells run before the manifest existed have none)."""

    model_config = ConfigDict(extra="forbid")

    status: Status
    notebook: str
    parameters: Json
    wall_time_s: float | None = None
    files: dict[str, FileStamp] | None = None


class Failure(BaseModel):
    """A failed notebook: the failing cell and its exception (papermill's error)."""

    model_config = ConfigDict(extra="forbid")

    stage: str
    notebook: str
    ename: str
    evalue: str
    error: str
    cell_index: int | None = None
    exec_count: int | None = None
    traceback: str | None = None


class CellRecord(Record):
    """``grid_cell.json``: the grid runner's record of one cell: its status, axes, identity
    (what the run id hashes), stages and, for a failed cell, the failure."""

    status: Status
    run_id: str
    grid: str
    grid_file: str | None
    params: CellAxes
    identity: Json
    sources: Json
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


class GridIndex(Record):
    """``grid.json``: the grid's current cells (every cell of the grid file), their folders
    and status."""

    grid: str
    grid_file: str | None
    description: str | None
    corpus: str | None
    data: Json
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


UPGRADES = {0: _upgrade_v0}
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


def parse_record(kind: type[R], data: object, where: str) -> R:
    """Validate raw record data (upgraded from older versions) into ``kind``.

    Raises:
        RecordError: ``where: field 'a.b': missing`` (the first offending field).
    """
    if not isinstance(data, dict):
        raise RecordError(f"{where}: not a {kind.__name__} (a JSON object expected)")
    try:
        return kind.model_validate(upgrade(kind, data, where))
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


def write_record(path: str | Path, record: Record) -> Path:
    """Write a record atomically as JSON (fields never set are left out, so a record being
    built shows only what is known so far).

    Returns:
        ``path``.
    """
    return write_json_atomic(path, record.model_dump(mode="json", exclude_unset=True)
                             | {"schema_version": record.schema_version})


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

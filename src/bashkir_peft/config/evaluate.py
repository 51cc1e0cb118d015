"""Parameters of an evaluation (notebook 03, :mod:`bashkir_peft.evaluate.run`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from bashkir_peft.config.external import ExternalSet
from bashkir_peft.settings import stage_out_dir
from bashkir_peft.yamlio import StrictModel


class EvalParams(StrictModel):
    """Parameters of notebook 03 (defaults here are the single source of defaults).

    Attributes:
        model: base model for a zero-shot baseline (registry name, local folder or Hub
            id). With ``run_dir`` it may name the run's base model (checked), nothing else.
        run_dir: a finished training run folder (``train.json`` + ``final/``); when set,
            the run is evaluated.
        data_dir: data prep output folder; default: the training record's ``data_dir``.
        split: ``test``, ``validation`` or ``train``.
        external: score this external test set instead of a split
            (:class:`~bashkir_peft.config.external.ExternalSet`: ``name``, ``path``,
            ``format``...; e.g. ``{"name": "sib200-eng", "path":
            "../shared/eval/sib200/eng_Latn", "format": "sib200"}``); ``max_documents``
            does not apply to it (it has its own).
        protocol: ``rolling`` (tokenizer-fair comparison), ``paper`` (packed blocks) or
            ``goldfish`` (bits on the second half of each sentence, at most 512 tokens, as
            the Goldfish paper scores FLORES-200: :mod:`bashkir_peft.evaluate.goldfish`).
        max_length: model input length of every rolling window (same for all models).
        stride: rolling: new tokens scored per window after the first (None = max_length,
            no overlap, as lm_eval); smaller = more context per scored token, slower.
        block_size: paper: block length; default: the training record's ``block_size``.
        batch_size: windows per forward pass.
        max_documents: score only the first N documents of the split (quick looks).
        output_dir: where results go; default ``run_dir``, or ``runs/base/<model>``.
        merge: merge LoRA adapters into the base before scoring (QLoRA: the NF4 base is
            dequantized to the compute dtype first); default: scored unmerged.
        dtype: compute dtype (None = the loader's default: float32 on CPU). bfloat16 is
            faster on GPUs and changes the numbers.
        chunk_tokens: positions per LM-head / log-softmax chunk (bounds logits memory).
        num_threads: torch threads (None = all available cores).
        device: ``cpu``, ``cuda`` or ``mps`` to pin the device; ``None`` = the accelerator
            when there is one (:mod:`bashkir_peft.models.device`).
    """

    model: str | None = Field(None, json_schema_extra={
        "source": "ours: none; the grid runner sets the base model of a zero-shot cell"})
    run_dir: str | None = Field(None, json_schema_extra={
        "source": "ours: none; the grid runner sets the run folder of a trained cell"})
    data_dir: str | None = Field(None, json_schema_extra={
        "source": "ours: the run's training data (the grid runner sets the grid's data folder)"})
    split: Literal["test", "validation", "train"] = Field("test", json_schema_extra={
        "source": "paper: test perplexity is what it reports"})
    external: ExternalSet | None = Field(None, json_schema_extra={
        "source": "ours: none; the grid runner sets each external test set of the grid"})
    protocol: Literal["rolling", "paper", "goldfish"] = Field("rolling", json_schema_extra={
        "source": "lm-evaluation-harness rolling log-likelihood (loglikelihood_rolling): tokenizer-fair"})
    max_length: int = Field(1024, ge=2, json_schema_extra={
        "source": "ours: GPT-2's context, the shortest of the paper's models, for every model alike"})
    stride: int | None = Field(None, ge=1, json_schema_extra={
        "source": "lm-evaluation-harness: disjoint windows (stride = max_length)"})
    block_size: int | None = Field(None, ge=2, json_schema_extra={
        "source": "ours: the run's training block_size (the paper scores blocks as it trained)"})
    batch_size: int = Field(8, ge=1, json_schema_extra={
        "source": "ours: not tuned; the per-document sums depend on it only through floating-point rounding"})
    max_documents: int | None = Field(None, ge=1, json_schema_extra={"source": "ours: every document of the split"})
    max_document_bytes: int | None = Field(None, ge=16, json_schema_extra={
        "source": "ours: whole documents (a budget cuts each corpus document to its first N UTF-8 bytes, "
                  "at a word boundary: more documents for the same text; external sets are scored whole)"})
    output_dir: str | None = Field(None, json_schema_extra={"source": "ours: run_dir, or runs/base/<model>"})
    merge: bool = Field(False, json_schema_extra={
        "source": "ours: score the adapter as trained (merging a QLoRA adapter dequantizes its base)"})
    dtype: Literal["float32", "bfloat16", "float16"] | None = Field(None, json_schema_extra={
        "source": "ours: a trained run is scored in its training dtype; a base model in the loader's default "
                  "(float32 on CPU, the registry's dtype on GPU: bf16 for the 7B models, float32 for the GPT-2 "
                  "family)"})
    chunk_tokens: int = Field(1024, ge=1, json_schema_extra={
        "source": "ours: bounds logits memory; the sums depend on it only through floating-point rounding"})
    num_threads: int | None = Field(None, ge=1, json_schema_extra={"source": "ours: every core available"})
    device: Literal["cpu", "cuda", "mps"] | None = Field(None, json_schema_extra={
        "source": "ours: the accelerator when there is one (bashkir_peft.models.device)"})

    @model_validator(mode="after")
    def _check(self) -> EvalParams:
        if self.model is None and self.run_dir is None:
            raise ValueError("give model (a base model, zero-shot) or run_dir (a training run)")
        if self.stride is not None and self.stride > self.max_length:
            raise ValueError(f"stride ({self.stride}) must be <= max_length ({self.max_length})")
        if self.run_dir is None and self.data_dir is None and self.external is None:
            raise ValueError("data_dir is required when evaluating a base model on a split of the prepared data")
        if self.run_dir is None and self.merge:
            raise ValueError("merge applies to trained adapters (run_dir), not to a base model")
        return self

    @property
    def scored(self) -> str:
        """What is scored, as tables name it: the split, or the external set's name."""
        return self.external.name if self.external is not None else self.split

    @property
    def out_dir(self) -> Path:
        """Where results go (:func:`~bashkir_peft.settings.stage_out_dir`)."""
        return stage_out_dir(self.output_dir, self.run_dir, self.model)

"""Parameters of the downstream stage (notebook 06, :mod:`bashkir_peft.downstream.run`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from bashkir_peft.settings import stage_out_dir
from bashkir_peft.yamlio import StrictModel

LabelLanguage = Literal["eng", "bak"]


class DownstreamParams(StrictModel):
    """Parameters of notebook 06 (defaults here are the single source of defaults).

    Attributes:
        model: a base model (registry name, local folder or Hub id); with ``run_dir`` it may
            name the run's base model (checked), nothing else.
        run_dir: a finished training run folder; when set, the run is measured.
        sib200_dir: the SIB-200 language folder (``train/dev/test.tsv``, ``labels.txt``),
            relative paths from the repository root.
        k_shots: shot counts of the in-context classification (shots: the first ``k`` train
            sentences); empty: no in-context classification.
        label_language: ``eng`` (``labels.txt``, English template) or ``bak`` (our Bashkir
            translations and template).
        max_length: model input length of an in-context prompt (longer prompts lose their
            leftmost tokens, as in lm-evaluation-harness); None: the model's context length.
        probe: run the linear probe.
        probe_layer: hidden-state index of the reported probe (0: embeddings; -1: last layer).
        probe_layers: hidden-state indices searched for the layer best on dev (None: all).
        max_train: use only the first N train sentences for the probe and the TF-IDF baseline.
        max_dev: use only the first N dev sentences to choose the probe's and the TF-IDF
            baseline's regularization and the probe's best layer.
        max_test: score only N test sentences, evenly spaced over the file (the file is sorted
            by category, so the subset keeps the class shares; quick looks, the CPU demo).
        batch_size: sequences per forward pass.
        n_resamples: bootstrap resamples of the intervals; confidence: their coverage.
        output_dir: where results go; default ``run_dir``, or ``runs/base/<model>``.
        num_threads: torch threads (None = all available cores).
    """

    model: str | None = Field(None, json_schema_extra={
        "source": "ours: none; the grid runner sets the base model of a zero-shot cell"})
    run_dir: str | None = Field(None, json_schema_extra={
        "source": "ours: none; the grid runner sets the run folder of a trained cell"})
    sib200_dir: str = Field("../shared/eval/sib200/bak_Cyrl", json_schema_extra={
        "source": "SIB-200 (Adelani et al. 2023), Bashkir side, as shipped in ../shared/eval"})
    k_shots: list[int] = Field(default_factory=lambda: [0, 5], json_schema_extra={
        "source": "ours: zero-shot and 5-shot, the shot counts of SIB-200's in-context baselines "
                  "(Adelani et al. 2023)"})
    label_language: LabelLanguage = Field("eng", json_schema_extra={
        "source": "SIB-200 labels.txt (English topic names)"})
    max_length: int | None = Field(None, ge=2, json_schema_extra={
        "source": "lm-evaluation-harness: the model's context length, longer prompts lose their leftmost tokens"})
    probe: bool = Field(True, json_schema_extra={
        "source": "ours: a linear probe reads what the hidden states encode, apart from prompting"})
    probe_layer: int = Field(-1, json_schema_extra={"source": "ours: the last hidden state"})
    probe_layers: list[int] | None = Field(None, json_schema_extra={
        "source": "ours: every hidden state, the best on dev reported beside the last"})
    max_train: int | None = Field(None, ge=2, json_schema_extra={"source": "SIB-200: all 701 train sentences"})
    max_dev: int | None = Field(None, ge=1, json_schema_extra={"source": "SIB-200: all 99 dev sentences"})
    max_test: int | None = Field(None, ge=1, json_schema_extra={"source": "SIB-200: all 204 test sentences"})
    batch_size: int = Field(8, ge=1, json_schema_extra={"source": "ours: fits a 2-core CPU and any GPU"})
    n_resamples: int = Field(1000, ge=100, json_schema_extra={
        "source": "ours: 1,000 percentile-bootstrap resamples (Efron and Tibshirani 1993 suggest >= 1,000 for intervals)"})
    confidence: float = Field(0.95, gt=0, lt=1, json_schema_extra={"source": "convention: 95 % intervals"})
    output_dir: str | None = Field(None, json_schema_extra={
        "source": "ours: run_dir, or runs/base/<model> (the grid runner sets the cell's folder)"})
    num_threads: int | None = Field(None, ge=1, json_schema_extra={
        "source": "ours: every core the process may use (os.sched_getaffinity)"})

    @model_validator(mode="after")
    def _check(self) -> DownstreamParams:
        if self.model is None and self.run_dir is None:
            raise ValueError("give model (a base model) or run_dir (a training run)")
        if any(k < 0 for k in self.k_shots) or len(set(self.k_shots)) != len(self.k_shots):
            raise ValueError(f"k_shots {self.k_shots}: distinct shot counts >= 0")
        return self

    @property
    def out_dir(self) -> Path:
        """Where results go (:func:`~bashkir_peft.settings.stage_out_dir`)."""
        return stage_out_dir(self.output_dir, self.run_dir, self.model)

"""Parameters of a training run (notebook 02, :mod:`bashkir_peft.train.run`): the single
source of their defaults and of each default's source.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, JsonValue, model_validator

from bashkir_peft.config.lora import check_lora_options
from bashkir_peft.config.tokenizer import TokenizerAdaptation
from bashkir_peft.yamlio import StrictModel

# Default learning rates, by method, with their sources:
# - full: 5e-5, the HF Trainer / run_clm.py default used for GPT-2-era fine-tuning.
# - lora, qlora: 2e-4, the QLoRA paper's rate for 7B-13B models (Dettmers et al. 2023,
#   appendix, hyperparameters table); adapters need a larger rate than full weights.
DEFAULT_LEARNING_RATE = {"full": 5e-5, "lora": 2e-4, "qlora": 2e-4}


_NOT_RECORDED_AT_DEFAULT = {"tokenizer": None, "train_bytes": None, "eval_every_bytes": None, "keep_checkpoints": True,
                            "lora_options": None, "lora_dropout_sampler": "torch"}
"""Settings a run's record leaves out while they have these values, so records written before
the settings existed still match their runs."""


class TrainParams(StrictModel):
    """Parameters of one training run (the ``parameters`` cell of notebooks/02_train.ipynb).

    Attributes (units in brackets):
        model: registry name, local folder or Hub id.
        method: ``full``, ``lora`` or ``qlora``.
        lora_r, lora_alpha, lora_dropout: LoRA rank, scaling numerator, adapter dropout
            (ignored by ``full``).
        lora_dropout_sampler: how LoRA dropout draws its masks: ``torch`` = peft's
            ``nn.Dropout`` (``aten::bernoulli_``, element by element on AMD CPUs); ``bulk`` =
            the same distribution from bulk random bits on the CPU
            (:mod:`bashkir_peft.models.dropout`; other random numbers than ``torch``).
        target_modules: LoRA target module names; ``None`` = the registry's for the model.
        lora_options: further keyword arguments of peft's ``LoraConfig`` (DoRA, rsLoRA, PiSSA /
            OLoRA / LoftQ initialisation, ``layers_to_transform`` ...), validated against peft
            (:mod:`bashkir_peft.config.lora`); ``None`` = plain LoRA.
        learning_rate: peak rate; ``None`` = per method (:data:`DEFAULT_LEARNING_RATE`).
        lr_scheduler_type: a transformers scheduler name.
        warmup_ratio: share of the optimizer steps spent warming up, in [0, 1).
        num_train_epochs: epochs over the packed training blocks (the paper's runs: 3).
        max_steps: optimizer steps; > 0 overrides ``num_train_epochs``.
        train_bytes: the training budget in UTF-8 bytes of training text [bytes]; sets the
            optimizer steps to ``ceil(train_bytes / bytes_per_step)`` with ``bytes_per_step`` =
            tokens per optimizer step x the training split's bytes per token under the run's
            tokenizer (:func:`resolve_budget`), so runs with different tokenizers see equal
            text; excludes ``max_steps``.
        eval_every_bytes: a validation evaluation every this many bytes of training text
            [bytes] (the nearest whole number of steps, at least 1); overrides ``eval_steps``.
        block_size: tokens per training block (the paper's released runs: 128).
        per_device_train_batch_size, per_device_eval_batch_size: blocks per batch.
        gradient_accumulation_steps: micro-batches per optimizer step.
        gradient_checkpointing: recompute activations in backward (non-reentrant).
        seed: seeds weights of new adapters, shuffling and dropout.
        eval_steps, save_steps, logging_steps: intervals [optimizer steps].
        save_total_limit: complete checkpoints kept.
        keep_checkpoints: ``False`` = delete the run's checkpoints once it has finished and its
            final model or adapter is saved (a finished run never resumes; the record's session
            lists what was deleted).
        max_train_documents: use only the first N training documents (``None`` = all).
        max_eval_documents: validation documents scored during training (first N).
        weight_decay, max_grad_norm: optimizer settings (Trainer defaults).
        optim: a transformers optimizer name; ``auto`` = paged_adamw_32bit for qlora on
            GPU (QLoRA paper), the Trainer's default otherwise.
        dtype: compute dtype; ``None`` = float32 off CUDA, bf16 for qlora on GPU, the
            registry's otherwise. A low-precision dtype is a compute dtype: trainable weights
            and optimizer states stay float32 (:mod:`bashkir_peft.models.precision`).
        pure_low_precision: train weights and optimizer states in ``dtype`` (no float32
            master copy, no autocast); full and lora only; the record says so.
        device: ``cpu``, ``cuda`` or ``mps`` to pin the device; ``None`` = the accelerator
            when there is one (:mod:`bashkir_peft.models.device`).
        processes: training processes (DDP under torchrun, one per GPU; gloo on the CPU);
            the global batch is ``processes x per_device_train_batch_size x
            gradient_accumulation_steps`` blocks.
        chunked_loss: compute the training and validation loss from the final hidden states,
            a chunk of positions at a time, through the model's own output layer, without
            full-vocabulary logits (:mod:`bashkir_peft.train.loss`; equal to the HF loss up to
            summation order); ``False`` = the HF path (``model(..., labels=...)``).
        report_to: where the Trainer streams its logs: ``none``, or a tracker the Trainer
            supports (``tensorboard``: offline event files in ``RUN_DIR/checkpoints/runs/``; ``wandb``,
            ``mlflow``, ...; the tracker's package must be installed).
        data_dir: the data-prep output folder.
        output_dir: the run folder (RUN_DIR).
        tokenizer: a tokenizer adaptation (K new Bashkir tokens, their initialization; see
            :mod:`bashkir_peft.data.vocab`); ``None`` = the base model's tokenizer.
    """

    model: str = Field("smollm2-135m", json_schema_extra={
        "source": "ours: the CPU demo model, for a hand run (the grid runner sets the cell's model)"})
    method: Literal["full", "lora", "qlora"] = Field("lora", json_schema_extra={
        "source": "ours: for a hand run (the grid runner sets the cell's method)"})
    lora_r: int = Field(8, gt=0, json_schema_extra={"source": "paper: r=8 is the rank it names (DeepSeek-7B LoRA r=8)"})
    lora_alpha: int = Field(16, gt=0, json_schema_extra={"source": "ours: alpha = 2r, a common LoRA choice"})
    lora_dropout: float = Field(0.05, ge=0, lt=1, json_schema_extra={
        "source": "QLoRA paper (Dettmers et al. 2023): dropout 0.05 for models up to 13B"})
    lora_dropout_sampler: Literal["torch", "bulk"] = Field("torch", json_schema_extra={
        "source": "ours: peft's nn.Dropout unless a grid asks for bulk masks (benchmarks/RESULTS.md, issue 28)"})
    target_modules: list[str] | None = Field(None, json_schema_extra={
        "source": "the registry's per-architecture table (params/models.yaml; QLoRA paper sec. 4: every linear layer)"})
    lora_options: dict[str, JsonValue] | None = Field(None, json_schema_extra={
        "source": "ours: plain LoRA (peft's LoraConfig defaults: Kaiming-uniform A, zero B, alpha / r scaling)"})
    learning_rate: float | None = Field(None, gt=0, json_schema_extra={
        "source": "per method (DEFAULT_LEARNING_RATE): full 5e-5 (transformers Trainer and run_clm default), "
                  "lora/qlora 2e-4 (QLoRA paper)"})
    lr_scheduler_type: Literal["linear", "cosine", "constant", "constant_with_warmup", "cosine_with_restarts",
                               "polynomial", "inverse_sqrt"] = Field(
        "linear", json_schema_extra={"source": "transformers TrainingArguments default"})
    warmup_ratio: float = Field(0.0, ge=0, lt=1, json_schema_extra={
        "source": "transformers TrainingArguments default (warmup_steps 0: no warm-up)"})
    num_train_epochs: float = Field(3.0, gt=0, json_schema_extra={
        "source": "paper's released full-FT runs: 3 epochs (not stated for LoRA/QLoRA)"})
    max_steps: int = Field(-1, json_schema_extra={"source": "transformers TrainingArguments default (epochs decide)"})
    train_bytes: int | None = Field(None, gt=0, json_schema_extra={
        "source": "ours: no byte budget (max_steps or num_train_epochs decide)"})
    eval_every_bytes: int | None = Field(None, gt=0, json_schema_extra={
        "source": "ours: no byte interval (eval_steps decides)"})
    block_size: int = Field(128, gt=1, json_schema_extra={
        "source": "paper's released full-FT runs: max_seq_len 128 (not stated for LoRA/QLoRA)"})
    per_device_train_batch_size: int = Field(8, gt=0, json_schema_extra={
        "source": "transformers TrainingArguments default"})
    per_device_eval_batch_size: int = Field(8, gt=0, json_schema_extra={
        "source": "transformers TrainingArguments default"})
    gradient_accumulation_steps: int = Field(1, gt=0, json_schema_extra={
        "source": "transformers TrainingArguments default"})
    gradient_checkpointing: bool = Field(False, json_schema_extra={
        "source": "transformers TrainingArguments default (grids turn it on for 7B models)"})
    seed: int = Field(42, json_schema_extra={
        "source": "paper: 42 is the first seed of its released runs (the grid runner sets the cell's seed)"})
    eval_steps: int = Field(200, gt=0, json_schema_extra={"source": "ours: a validation loss every 200 steps"})
    save_steps: int = Field(200, gt=0, json_schema_extra={"source": "ours: a checkpoint with every evaluation"})
    logging_steps: int = Field(10, gt=0, json_schema_extra={"source": "ours: enough points for the loss curves"})
    save_total_limit: int = Field(2, ge=1, json_schema_extra={
        "source": "ours: the last checkpoint and one before it, for resuming"})
    keep_checkpoints: bool = Field(True, json_schema_extra={
        "source": "ours: keep them (e.g. to continue training by hand)"})
    max_train_documents: int | None = Field(None, gt=0, json_schema_extra={"source": "ours: every training document"})
    max_eval_documents: int | None = Field(500, gt=0, json_schema_extra={
        "source": "ours: bounds the cost of validation during training"})
    weight_decay: float = Field(0.0, ge=0, json_schema_extra={
        "source": "transformers TrainingArguments default; the paper states none"})
    max_grad_norm: float = Field(1.0, gt=0, json_schema_extra={
        "source": "transformers TrainingArguments default; the paper states none"})
    optim: str = Field("auto", json_schema_extra={
        "source": "ours: paged_adamw_32bit for qlora on GPU (QLoRA paper), the Trainer default otherwise"})
    dtype: Literal["float32", "bfloat16", "float16"] | None = Field(None, json_schema_extra={
        "source": "ours: float32 on CPU, bf16 for qlora on GPU (QLoRA paper), the registry's dtype otherwise"})
    pure_low_precision: bool = Field(False, json_schema_extra={
        "source": "ours: float32 master weights (mixed precision, Micikevicius et al. 2018); pure low precision "
                  "only on request"})
    device: Literal["cpu", "cuda", "mps"] | None = Field(None, json_schema_extra={
        "source": "ours: the accelerator when there is one (bashkir_peft.models.device)"})
    processes: int = Field(1, ge=1, json_schema_extra={"source": "ours: one process; > 1 runs DDP under torchrun"})
    chunked_loss: bool = Field(True, json_schema_extra={
        "source": "ours: the same loss without four logits-sized tensors per step (benchmarks/RESULTS.md, "
                  "\"Training throughput\")"})
    report_to: str = Field("none", json_schema_extra={"source": "ours: no tracker unless asked"})
    data_dir: str = Field("data/prep", json_schema_extra={
        "source": "ours: for a hand run (the grid runner sets the grid's data folder)"})
    output_dir: str = Field("runs/dev/train", json_schema_extra={
        "source": "ours: for a hand run (the grid runner sets the cell's run folder)"})
    tokenizer: TokenizerAdaptation | None = Field(None, json_schema_extra={
        "source": "ours: the base model's tokenizer (the grid's tokenizer axis sets an adaptation)"})

    @model_validator(mode="after")
    def _check(self):
        if self.max_steps == 0 or self.max_steps < -1:
            raise ValueError("max_steps must be > 0, or -1 to train for num_train_epochs")
        if self.train_bytes is not None and self.max_steps != -1:
            raise ValueError("set train_bytes or max_steps, not both (train_bytes decides the steps)")
        if self.target_modules is not None and not self.target_modules:
            raise ValueError("target_modules must name at least one module, or be None for the registry's")
        if self.lora_options:
            if self.method == "full":
                raise ValueError("lora_options apply to lora and qlora, not full fine-tuning")
            check_lora_options(self.lora_options, self.method)
        return self

    @property
    def out_dir(self) -> Path:
        """The run folder (RUN_DIR)."""
        return Path(self.output_dir)

    def for_record(self) -> TrainParams:
        """The parameters as the training record stores them: ``learning_rate`` resolved
        (:attr:`resolved_learning_rate`), and the settings of :data:`_NOT_RECORDED_AT_DEFAULT`
        unset (left out of the written record) while at that value, so a record from before they
        existed still matches its run."""
        left_out = {k for k, v in _NOT_RECORDED_AT_DEFAULT.items() if getattr(self, k) == v}
        return TrainParams.model_validate(self.model_dump(exclude=left_out)
                                          | {"learning_rate": self.resolved_learning_rate})

    @property
    def resolved_learning_rate(self) -> float:
        return self.learning_rate if self.learning_rate is not None else DEFAULT_LEARNING_RATE[self.method]

"""A training cell's wall time on a GPU from an assumed throughput: an estimate, not a measurement.

``grid run --dry-run`` prints it for every training cell that may run on a GPU, and its sum
(:func:`bashkir_peft.grid.plan.plan_grid`), so a GPU grid (``paper.yaml``) can be costed on a
machine without one. For a cell of ``T`` training tokens:

    seconds = T x F / (u x peak)

- ``F``, training FLOPs per token: ``c x P`` (:func:`bashkir_peft.grid.plan.flops_per_token`;
  ``P`` the weights of the matrix products, ``c = 6`` for full fine-tuning and 4 for adapters;
  Kaplan et al. 2020, "Scaling Laws for Neural Language Models", sec. 2.1), plus ``2 x P`` under
  gradient checkpointing, which runs each layer's forward pass again during the backward pass
  (Chen et al. 2016, "Training Deep Nets with Sublinear Memory Cost"; Korthikanti et al. 2022,
  sec. 5: full recomputation costs one extra forward pass). The attention scores' own FLOPs
  (``2 x layers x block_size x hidden`` per token in the forward pass; Kaplan et al. 2020,
  table 1) are left out: at ``block_size`` 128 they are under 1 % of ``2 x P``.
- ``u x peak``: :data:`ASSUMED_GPU`, a stated fraction of an H100 SXM's bf16 dense tensor-core
  peak. This project has not measured a GPU's training throughput yet (benchmarks/RESULTS.md);
  once a finished run of the same model and method has, the plan's ``time`` uses that rate
  (:func:`bashkir_peft.grid.plan.plan_cell`).
- ``T``, the cell's training tokens (:func:`bashkir_peft.grid.plan.cell_train_tokens`): exact
  for ``max_steps``; for a byte budget (``train_bytes``), its steps at the bytes per token of the
  model's tokenizer on the prepared data (:func:`budget_tokens`); for epochs, ``epochs x blocks x
  block_size``, the training split's blocks from a finished run of the model, else from the
  prepared data (:func:`estimated_train_blocks`). Before data preparation they are unknown: the
  registry holds no bytes per token, and the corpus's text bytes are what data prep counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bashkir_peft.records import DataFiles
from bashkir_peft.train.budget import resolve_budget, tokens_per_step


@dataclass(frozen=True)
class ThroughputAssumption:
    """An assumed training throughput: a fraction of a GPU's peak, with where each number comes from.

    Attributes:
        gpu: the card's name.
        peak_flops: its dense bf16 tensor-core peak, FLOP/s.
        utilization: the assumed fraction of that peak a training step reaches (model FLOPs
            utilization, MFU), in (0, 1].
        source: where the peak comes from and why the fraction.
    """

    gpu: str
    peak_flops: float
    utilization: float
    source: str

    @property
    def flops(self) -> float:
        """The assumed sustained rate, FLOP/s: ``utilization x peak_flops``."""
        return self.utilization * self.peak_flops

    def describe(self) -> str:
        return (f"{self.utilization:.0%} of an {self.gpu}'s bf16 dense peak of {self.peak_flops / 1e12:.1f} TFLOP/s "
                f"= {self.flops / 1e12:.0f} TFLOP/s")


ASSUMED_GPU = ThroughputAssumption(
    gpu="H100 SXM",
    peak_flops=989.4e12,
    utilization=0.30,
    source=("peak: NVIDIA H100 Tensor Core GPU datasheet, BF16 tensor core 1,979 TFLOP/s 'with sparsity', "
            "half of it dense; 30 %: an assumption, not a measurement: large-scale pretraining reaches "
            "about 46-52 % (PaLM, Chowdhery et al. 2022, table 3; Megatron-LM, Narayanan et al. 2021, "
            "163 of 312 TFLOP/s per A100), fine-tuning at 4-8 x 128-token micro-batches with gradient "
            "checkpointing less; QLoRA's 4-bit dequantization and the GPT-2-sized models' kernel launches "
            "cost time no FLOP count sees, so their estimates are lower bounds"),
)
"""The GPU throughput the dry run's GPU time assumes (module docstring)."""


def train_flops_per_token(flops_per_token: float, method: str, gradient_checkpointing: bool) -> float:
    """FLOPs a training step spends per token, recomputation included.

    Args:
        flops_per_token: ``c x P`` (:func:`bashkir_peft.grid.plan.flops_per_token`).
        method: ``full``, ``lora`` or ``qlora`` (``c = 6`` for full, 4 otherwise).
        gradient_checkpointing: whether each layer's forward pass runs again in the backward
            pass (``+ 2 x P``; module docstring).

    Returns:
        ``(c + 2) / c x flops_per_token`` with checkpointing, else ``flops_per_token``.
    """
    c = 6 if method == "full" else 4
    return flops_per_token * (c + 2) / c if gradient_checkpointing else float(flops_per_token)


def gpu_train_seconds(tokens: int, flops_per_token: float, assumption: ThroughputAssumption = ASSUMED_GPU) -> float:
    """Seconds of training ``tokens`` at ``flops_per_token`` (:func:`train_flops_per_token`) and
    the assumed throughput: ``tokens x flops_per_token / assumption.flops``."""
    return tokens * flops_per_token / assumption.flops


def base_bytes_per_token(data_dir: str | Path, model: str) -> float | None:
    """Bytes per token of ``model``'s own tokenizer on the prepared data (the fertility
    table's row of the model, measured on the test split; ``None`` when the data folder has
    no table or the table no row of the model)."""
    import pandas as pd

    path = Path(data_dir) / DataFiles.FERTILITY
    if not path.is_file():
        return None
    table = pd.read_parquet(path, columns=["model", "bytes_per_token"])
    rows = table[table["model"] == model]
    return float(rows["bytes_per_token"].iloc[0]) if len(rows) else None


def budget_tokens(params, bytes_per_token: float | None) -> int | None:
    """Tokens of a run with a byte budget (``train_bytes``) at ``bytes_per_token`` (``None``
    while that is unknown): its steps (:func:`bashkir_peft.train.budget.resolve_budget`) times
    the tokens of one optimizer step."""
    if bytes_per_token is None:
        return None
    steps = resolve_budget(params, {"tokens": 1_000_000, "bytes": bytes_per_token * 1_000_000},
                           params.processes).max_steps
    return steps * tokens_per_step(params, params.processes)


def estimated_train_blocks(data_dir: str | Path, model: str, block_size: int) -> int | None:
    """The training split's packed blocks with ``model``'s tokenizer, estimated from the
    prepared data before any run tokenized it.

    ``(B / b + D) // block_size``: ``B`` the training split's UTF-8 bytes and ``D`` its
    documents (the data folder's ``doc_stats.parquet``), ``b`` the model's bytes per token
    (:func:`base_bytes_per_token`, measured on the test split), plus one end-of-text token per
    document, the leftover tail dropped (:mod:`bashkir_peft.data.packing`; a BOS before each
    document, where the tokenizer has one, is left out: under one token per document more).

    Returns:
        The block count, or ``None`` before data preparation (no statistics or fertility table).
    """
    import pandas as pd

    path = Path(data_dir) / DataFiles.DOC_STATS
    bpt = base_bytes_per_token(data_dir, model)
    if bpt is None or not path.is_file():
        return None
    stats = pd.read_parquet(path, columns=["split", "bytes"])
    train = stats[stats["split"] == "train"]
    return int((train["bytes"].sum() / bpt + len(train)) // block_size)


__all__ = ["ASSUMED_GPU", "ThroughputAssumption", "base_bytes_per_token", "budget_tokens", "estimated_train_blocks",
           "gpu_train_seconds", "train_flops_per_token"]

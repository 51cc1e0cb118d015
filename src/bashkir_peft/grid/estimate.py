"""A grid's expected wall time on this machine's CPU, printed before its cells start.

Speed probe: this machine's fp32 matrix-product rate G [FLOP/s] with the threads a stage
will use, at the model's matrix shapes (every weight matrix of its forward pass, the output
layer included, ``M = batch x block_size`` rows; :func:`matmul_shapes`), weighted by their
FLOPs (:func:`gemm_gflops`, about a second). Then, per cell not yet finished:

- training: ``tokens x c x P / (share[method] x G)`` (a byte budget, ``train_bytes``: its
  steps at the bytes per token of the model's own tokenizer on the prepared data, the data
  folder's fertility table; a cell with an adapted tokenizer at that figure times the adapted
  tokenizer's gain in bytes per token on the training split, :func:`adapted_tokenizer`, with
  its new rows in ``P``, its new-row warm-up steps at the adapters' cost, and the seconds
  building the tokenizer took here): a step costs about ``c = 6`` FLOPs per weight
  and token for full fine-tuning and ``c = 4`` for adapters (forward 2, backward 2 for the
  activations' gradients, plus 2 for the weights' own when they train; Kaplan et al. 2020,
  "Scaling Laws for Neural Language Models", sec. 2.1); ``P`` = the weights the matrix
  products use; ``share`` = the part of that bound our trainer reaches
  (:data:`TRAIN_SHARE_OF_BOUND`, measured by ``benchmarks/train_throughput.py``); plus its
  validation passes (:func:`validation_passes`, each the first ``max_eval_documents`` of the
  validation split, scored as below) and the stage's fixed seconds (notebook start, model
  load, packing, saving; :data:`REFERENCE_SECONDS`);
- an evaluation pass: the tokens of its forward passes (the documents or sentences it
  selects, tokenized by the cell's tokenizer, :func:`scored_tokens`) x ``2P`` FLOPs (a forward pass) at
  :data:`EVAL_SHARE_OF_BOUND` of ``G`` for its protocol, plus a notebook start and
  model load (:data:`NOTEBOOK_START_S`) unless it runs in the notebook execution of the pass
  before it (a stage whose notebook takes ``passes``: :func:`bashkir_peft.grid.runner.executions`);
- generation, the downstream stage and the book: their seconds on the reference machine
  (:data:`REFERENCE_SECONDS`; generation per prompt), times ``G_ref / G``.

The figure is an estimate for planning, compared with the real wall time at the end of
``grid run``; cells on a GPU are not estimated (the planner uses their measured throughput),
and the dry run of a grid sized for GPUs on a machine without CUDA skips the probe
(:func:`cells_on_this_cpu`).
"""

from __future__ import annotations

import functools
import os
import statistics
import time
from collections import Counter
from dataclasses import dataclass

from bashkir_peft.config.generate import GenerateParams
from bashkir_peft.config.tokenizer import TokenizerAdaptation
from bashkir_peft.data.folder import load_texts
from bashkir_peft.data.vocab import adapt_tokenizer
from bashkir_peft.errors import ConfigError
from bashkir_peft.evaluate.run import scored_documents
from bashkir_peft.grid.gputime import base_bytes_per_token, budget_tokens
from bashkir_peft.grid.plan import meta_model, planned_tokens, train_params
from bashkir_peft.models.device import choose_device
from bashkir_peft.models.loading import load_tokenizer, resolve_model
from bashkir_peft.train.budget import resolve_budget, tokens_per_step
from bashkir_peft.yamlio import PASSES

# Share of the GEMM bound our trainer reaches, SmolLM2-135M, batch 8 x block 128, fp32, 2
# threads (benchmarks/RESULTS.md, "Training throughput", the run of this commit).
TRAIN_SHARE_OF_BOUND = {"full": 0.71, "lora": 0.61, "qlora": 0.53}

# Share of the GEMM bound a forward pass of evaluation reaches, by protocol: SmolLM2-135M, fp32,
# 2 threads, the CPU study's runs of 2026-12-06 (its part 2; the probe read 176 GFLOP/s):
# rolling windows over the corpus's test documents and the SIB-200 sentences 387-468 tokens/s,
# FLORES-200 under the Goldfish protocol 519-569 tokens/s of whole sentences (its records count
# the scored second halves, half of those), at 2P = 0.269 GFLOP per token (benchmarks/RESULTS.md,
# "The CPU study, second edition": part 2).
EVAL_SHARE_OF_BOUND = {"rolling": 0.66, "paper": 0.66, "goldfish": 0.82}

# Seconds on the reference machine (its probe read REFERENCE_GFLOPS): the training stage beyond
# its steps and validation (notebook start, model load, packing the training split, saving;
# for full fine-tuning the weight spectrum too), measured in the CPU study's part 2 as the
# stage's wall time less its trainer's; generation per prompt (20 words, batches of 8) and the
# notebook start, from the same runs; the downstream stage (its demo cut) and "book" (the
# report and the book, once per grid) from the cpu-demo's run of 2026-12-02 (benchmarks/RESULTS.md,
# "make demo within its budget").
REFERENCE_GFLOPS = 127.0
REFERENCE_SECONDS = {
    "train": {"any": 36.0},
    "generate": {"base": 6.1, "full": 6.1, "lora": 6.6, "qlora": 9.0},
    "downstream": {"base": 45.0, "full": 39.0, "lora": 43.0, "qlora": 55.0},
    "book": {"any": 20.0},
}
NOTEBOOK_START_S = 9.0  # a notebook's kernel start and model load on the reference machine


def validation_passes(max_steps: int, eval_steps: int) -> int:
    """Validation passes of a training run: one every ``eval_steps`` optimizer steps and one at
    the last step unless it falls on one of those (:func:`bashkir_peft.train.run._final_eval`)."""
    return max_steps // eval_steps + (1 if max_steps % eval_steps else 0)


_SCORED: dict[tuple, int] = {}


@functools.cache
def _tokenizer(model: str):
    """``model``'s tokenizer, loaded once for every pass the estimate counts."""
    return load_tokenizer(resolve_model(model))


@dataclass(frozen=True)
class AdaptedTokenizer:
    """An adapted tokenizer as the estimate sees it (:func:`adapted_tokenizer`).

    Attributes:
        tokenizer: the adapted tokenizer, built as a training run builds it.
        bytes_per_token_gain: its bytes per token on the training split over the base
            tokenizer's (the run's steps at a byte budget shrink by this factor).
        new_rows: rows added to the embedding and the output layer.
        build_seconds: seconds building it took on this machine (each of its cells' training
            stage pays them again).
    """

    tokenizer: object
    bytes_per_token_gain: float
    new_rows: int
    build_seconds: float


@functools.cache
def _adapted(data_dir: str, model: str, setting_json: str) -> AdaptedTokenizer:
    t0 = time.perf_counter()
    tokenizer, added, info = adapt_tokenizer(data_dir, _tokenizer(model),
                                             TokenizerAdaptation.model_validate_json(setting_json), sides={})
    gain = info["train_after"]["bytes_per_token"] / info["train_before"]["bytes_per_token"]
    return AdaptedTokenizer(tokenizer, gain, len(added), time.perf_counter() - t0)


def adapted_tokenizer(data_dir, model: str, setting) -> AdaptedTokenizer:
    """The adapted tokenizer a cell's training will build, built here the same way
    (:func:`bashkir_peft.data.vocab.adapt_tokenizer` on the data folder's training split; the
    held-out sides' re-tokenization is not measured), once per data folder, model and tokenizer
    (the fields that shape it: K, the BPE's size, protected texts).

    Args:
        data_dir: the grid's prepared data folder.
        model: the base model's registry name or folder.
        setting: the cell's :class:`~bashkir_peft.config.tokenizer.TokenizerAdaptation`.

    Raises:
        DataError, ConfigError: as :func:`~bashkir_peft.data.vocab.adapt_tokenizer` (the run
            would fail the same way).
    """
    shaping = setting.model_copy(update={"init": "mean", "new_rows_warmup_steps": 0, "new_rows_learning_rate": None,
                                         "replay": [], "replay_share": 0.0})
    return _adapted(str(data_dir), model, shaping.model_dump_json())


def scored_tokens(params, data_dir, model: str, tokenizer=None) -> int:
    """Tokens of the forward passes of an evaluation pass: its documents or sentences, selected
    and cut as :func:`bashkir_peft.evaluate.run.scored_documents` does, tokenized whole (the
    Goldfish protocol scores second halves, but runs every sentence through the model whole);
    read and counted once per setting and tokenizer.

    Args:
        params: the pass's :class:`~bashkir_peft.config.evaluate.EvalParams`.
        data_dir: the grid's prepared data folder (a split's pass reads it).
        model: the model's registry name or folder.
        tokenizer: the cell's adapted tokenizer (:func:`adapted_tokenizer`); ``None`` =
            ``model``'s own.

    Raises:
        DataError, OSError: the split or the external set cannot be read;
        ModelNotFoundError: no tokenizer for ``model``.
    """
    key = (model, id(tokenizer), str(data_dir), params.split, params.max_documents, params.max_document_bytes,
           params.external.model_dump_json() if params.external else None)
    if key not in _SCORED:
        texts = scored_documents(params, data_dir, None)[0]
        tokenizer = tokenizer if tokenizer is not None else _tokenizer(model)
        _SCORED[key] = sum(len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"])
    return _SCORED[key]


def matmul_shapes(net) -> list[tuple[int, int, int]]:
    """``(in, out, count)`` of every distinct weight matrix a forward pass multiplies by: the
    ``Linear`` and ``Conv1D`` layers of ``net`` (a model, e.g. on the ``meta`` device), the
    output layer included whether or not it is tied to the input embedding."""
    shapes = Counter()
    for m in net.modules():
        kind = type(m).__name__
        if kind == "Linear":
            shapes[(m.in_features, m.out_features)] += 1
        elif kind == "Conv1D":  # GPT-2: weight (in, out)
            shapes[tuple(m.weight.shape)] += 1
    return [(k, n, c) for (k, n), c in sorted(shapes.items())]


def train_flops_per_token(method: str, n_params: int) -> float:
    """FLOPs of one training token: 6P for full fine-tuning, 4P for adapters (module docstring;
    Kaplan et al. 2020, sec. 2.1), ``n_params`` = P, the weights in the matrix products."""
    return (6 if method == "full" else 4) * n_params


def gemm_gflops(shapes: list[tuple[int, int, int]], rows: int, threads: int | None = None,
                reps: int = 5, trials: int = 3) -> tuple[float, int]:
    """fp32 matrix-product rate at a model's shapes.

    Args:
        shapes: ``(in, out, count)`` of its weight matrices (:func:`matmul_shapes`).
        rows: M, the tokens of one batch (batch x block_size).
        threads: torch threads (``None``: the CPUs this process may use).
        reps: timed repetitions per shape (after 2 untimed).
        trials: measurements of the whole set; their median is returned (one reading of a
            shared VM scatters by up to ~30 %).

    Returns:
        ``(GFLOP/s weighted by each shape's FLOPs, P = weights in the matrix products)``.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads or len(os.sched_getaffinity(0)))
    try:
        operands = [(torch.randn(rows, k), torch.randn(k, n), count) for k, n, count in shapes]
        flops = sum(count * 2.0 * rows * a.shape[1] * b.shape[1] for a, b, count in operands)
        rates = []
        for _ in range(trials):
            seconds = 0.0
            for a, b, count in operands:
                for _ in range(2):
                    a @ b
                t0 = time.perf_counter()
                for _ in range(reps):
                    a @ b
                seconds += count * (time.perf_counter() - t0) / reps
            rates.append(flops / seconds / 1e9)
    finally:
        torch.set_num_threads(before)
    return statistics.median(rates), sum(k * n * c for k, n, c in shapes)


@dataclass(frozen=True)
class GridEstimate:
    """Expected seconds of a grid's remaining work on this CPU, and how they were reached."""

    train_seconds: float
    other_seconds: float
    book_seconds: float
    gflops: dict[str, float]
    cells: int
    unknown: list[str]

    @property
    def seconds(self) -> float:
        """Everything: the cells' training, their other stages and the book."""
        return self.train_seconds + self.other_seconds + self.book_seconds

    def describe(self) -> str:
        speed = ", ".join(f"{m}: fp32 GEMM {g:.0f} GFLOP/s" for m, g in self.gflops.items())
        line = (f"expected wall time on this machine: ~{self.seconds / 60:.0f} min for {self.cells} cell(s) and the "
                f"book (training ~{self.train_seconds / 60:.0f} min, other stages ~{self.other_seconds / 60:.0f} min, "
                f"book ~{self.book_seconds / 60:.0f} min; "
                f"{speed or 'no CPU cell'}; bashkir_peft.grid.estimate)")
        if self.unknown:
            line += "; not estimated: " + ", ".join(self.unknown)
        return line


def cells_on_this_cpu(run, cells) -> tuple[list, str | None]:
    """The cells whose wall time a dry run estimates on this CPU, and one line about the others.

    Every cell, unless the grid is sized for GPUs (``hardware: gpu``,
    :class:`bashkir_peft.config.grid.GridSpec`) and torch sees no CUDA device: then only the cells
    a stage pins to the CPU (``device: cpu``). The others are not meant to train on this CPU, and
    the probe at a 7B model's matrix shapes takes minutes on a 2-core machine to time a training
    nobody would run here. A real ``grid run`` of such a grid on a CPU (e.g. its GPT-2 cells)
    still estimates every cell, since its cells then do run on this CPU.

    Args:
        run: a :class:`bashkir_peft.grid.runner.GridRun`.
        cells: its :class:`~bashkir_peft.grid.runner.Planned` cells still to compute.

    Returns:
        ``(cells to estimate, None)``, or ``(the pinned cells, the line that says why the rest
        get no CPU estimate)``.
    """
    import torch

    if run.grid.spec.hardware != "gpu" or torch.cuda.is_available():
        return list(cells), None
    pinned = [p for p in cells if any(u.parameters.get("device") == "cpu" for u in run.units(p))]
    skipped = len(cells) - len(pinned)
    if not skipped:
        return pinned, None
    return pinned, (f"no wall-time estimate on this machine for {skipped} cell(s): grid {run.grid.name!r} is sized for "
                    "GPUs (hardware: gpu) and torch sees no CUDA device here, so their CPU speed probe is skipped (the "
                    "GPU time estimate is above)")


def estimate_grid(run, cells) -> GridEstimate:
    """The expected wall time of ``cells`` (planned cells of ``run`` still to compute) and the book.

    Args:
        run: a :class:`bashkir_peft.grid.runner.GridRun`.
        cells: the :class:`~bashkir_peft.grid.runner.Planned` cells that will run.
    """
    gflops, shapes, probes, unknown, unprepared = {}, {}, {}, [], set()
    train_s = other_s = 0.0
    for p in cells:
        units = run.units(p)
        params = train_params(units)
        method = p.cell.method
        if params is not None and choose_device(params.device, params.method).device != "cpu":
            unknown.append(f"{p.cell.slug} (GPU)")
            continue
        key = (p.cell.model, (params.per_device_train_batch_size * params.block_size) if params else 1024)
        if key not in probes:
            try:
                if p.cell.model not in shapes:
                    shapes[p.cell.model] = matmul_shapes(meta_model(p.cell.model))
                probes[key] = gemm_gflops(shapes[p.cell.model], key[1])
            except (OSError, ValueError, ConfigError) as err:
                probes[key] = None
                unknown.append(f"{p.cell.slug} (no configuration of {p.cell.model}: {type(err).__name__})")
        if probes[key] is None:
            continue
        g, n_params = probes[key]
        gflops.setdefault(p.cell.model, g)
        scale = REFERENCE_GFLOPS / g
        bpt = base_bytes_per_token(run.data_dir, p.cell.model)
        adapted = None
        if params is not None and params.tokenizer is not None and bpt is not None:
            adapted = adapted_tokenizer(run.data_dir, p.cell.model, params.tokenizer)
            bpt *= adapted.bytes_per_token_gain
            n_params += adapted.new_rows * meta_model(p.cell.model).config.hidden_size  # the output layer's new rows
            train_s += adapted.build_seconds
        forward_s = 2 * n_params / (g * 1e9)  # seconds of one token's forward pass at the full GEMM rate
        with_passes = {s for s, names in run.declared.items() if PASSES in names}
        for i, u in enumerate(units):
            stage, settings = u.stage, u.parameters
            shared = (u.name != stage and stage in with_passes and i > 0 and units[i - 1].stage == stage)
            if stage in ("train", "evaluate") and bpt is None:
                unprepared.add(p.cell.slug)
                continue
            if stage == "train":
                tokens = planned_tokens(params, None)
                if tokens is None and params.train_bytes is not None:
                    tokens = budget_tokens(params, bpt)
                if tokens is None:
                    unknown.append(f"{p.cell.slug} training (epochs: its tokens are known once its tokenizer has "
                                   "read the training split)")
                    continue
                budget = resolve_budget(params, {"tokens": 1_000_000, "bytes": bpt * 1_000_000}, params.processes)
                val_tokens = sum(len(t.encode("utf-8")) for t in
                                 load_texts(run.data_dir, "validation", params.max_eval_documents)) / bpt
                train_s += tokens * train_flops_per_token(method, n_params) / (TRAIN_SHARE_OF_BOUND[method] * g * 1e9)
                if adapted is not None and params.tokenizer.new_rows_warmup_steps:  # only the new rows train
                    train_s += (params.tokenizer.new_rows_warmup_steps * tokens_per_step(params, params.processes)
                                * train_flops_per_token("lora", n_params) / (TRAIN_SHARE_OF_BOUND["lora"] * g * 1e9))
                train_s += (validation_passes(budget.max_steps, budget.eval_steps) * val_tokens * forward_s
                            / EVAL_SHARE_OF_BOUND["rolling"])
                train_s += REFERENCE_SECONDS["train"]["any"] * scale
            elif stage == "evaluate":
                tokens = scored_tokens(u.params, run.data_dir, p.cell.model, adapted.tokenizer if adapted else None)
                other_s += tokens * forward_s / EVAL_SHARE_OF_BOUND[u.params.protocol]
                other_s += 0.0 if shared else NOTEBOOK_START_S * scale
            else:
                seconds = REFERENCE_SECONDS.get(stage, {}).get(method, 30.0)
                if stage == "generate":
                    n_prompts = settings.get("n_prompts", GenerateParams.model_fields["n_prompts"].default)
                    seconds = NOTEBOOK_START_S + seconds * n_prompts
                other_s += seconds * scale
    if unprepared:
        unknown.append(f"training and evaluation of {len(unprepared)} cell(s) (their tokens are known once data prep "
                       "has measured the model's bytes per token: `grid run` prints the whole estimate after it)")
    book_s = REFERENCE_SECONDS["book"]["any"] * REFERENCE_GFLOPS / min(gflops.values()) if gflops else 0.0
    return GridEstimate(train_s, other_s, book_s, gflops, len(cells), unknown)


__all__ = ["estimate_grid", "cells_on_this_cpu", "gemm_gflops", "matmul_shapes", "train_flops_per_token", "GridEstimate",
           "TRAIN_SHARE_OF_BOUND", "EVAL_SHARE_OF_BOUND", "REFERENCE_SECONDS", "REFERENCE_GFLOPS", "NOTEBOOK_START_S",
           "scored_tokens", "validation_passes", "adapted_tokenizer", "AdaptedTokenizer"]

"""Planning before spending: each training cell's estimated peak GPU memory and time.

``grid run --dry-run`` prints, per cell, the estimate below; ``grid run`` (and the dry run)
refuses a grid with a cell that cannot fit the visible GPU, before data preparation, any
download or any training, with the numbers in the message.

Memory (bytes; :func:`estimate_memory`), from the model's configuration alone (the
architecture is built on the ``meta`` device: exact shapes, no weights):

- weights: every parameter in its load dtype (:mod:`bashkir_peft.models.precision`); QLoRA:
  the quantized layers' weights in NF4 (4 bits) plus their double-quantized block scales
  (one byte per 64 weights plus one float32 per 256 blocks; Dettmers et al. 2023, sec. 3,
  "Double Quantization"), the rest in float32 (``prepare_model_for_kbit_training``), plus
  the float32 adapters;
- gradients: one per trainable parameter, in the master dtype;
- optimizer states: AdamW's two moments per trainable parameter, float32 (1 byte each for
  the 8-bit optimizers; master dtype under pure low precision);
- activations: per transformer layer ``s*b*h*(34 + 5*a*s/h)`` bytes at 2-byte activations
  (Korthikanti et al. 2022, "Reducing Activation Recomputation in Large Transformer
  Models", sec. 4.1, eq. 1; s = block_size, b = per-device batch, h = hidden size,
  a = attention heads), scaled by the compute dtype's bytes / 2; with gradient
  checkpointing only each layer's input (``2*s*b*h``) plus one layer's full set; plus the
  float32 logits and their gradient (``2 * 4*b*s*V``).

Weights, gradients and optimizer states are exact for full fine-tuning and LoRA (tested
against a tiny model's tensors); activations are an estimate (a GPU test holds the total to
``torch.cuda.max_memory_allocated`` within 1.5x). Time: the cell's tokens / a throughput
measured by a finished run of the same model, method and device (none yet: unknown); until
then the compute a training token costs, ``c x P`` FLOPs (``c = 6`` for full fine-tuning, 4
for adapters; Kaplan et al. 2020, sec. 2.1; :mod:`bashkir_peft.grid.estimate`), and the time
that compute takes on a GPU at an assumed throughput, per cell and summed over the grid
(:mod:`bashkir_peft.grid.gputime`: an estimate, not a measurement).

Offline: a registry model's shapes come from the configuration the repository ships
(:mod:`bashkir_peft.models.configs`), never from the Hub. Every training cell also gets its
trainable parameters, their ratio to GPT-2-medium full fine-tuning (the paper's reference:
QLoRA on Mistral-7B and Phi-2 with "over 40 times fewer trainable parameters"), and its
memory on a bf16 GPU (:data:`PLANNED_GPU`) against the usual card sizes (:data:`GPU_SIZES`),
whether or not a GPU is visible.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from bashkir_peft.config.train import TrainParams
from bashkir_peft.errors import ConfigError
from bashkir_peft.grid.gputime import (
    ASSUMED_GPU,
    base_bytes_per_token,
    budget_tokens,
    estimated_train_blocks,
    gpu_train_seconds,
    train_flops_per_token,
)
from bashkir_peft.models.configs import offline_config
from bashkir_peft.models.device import Placement, choose_device
from bashkir_peft.models.loading import ResolvedModel, default_dtype, resolve_model
from bashkir_peft.models.lora import lora_parameter_count, target_layers
from bashkir_peft.models.precision import plan_precision
from bashkir_peft.models.registry import load_registry
from bashkir_peft.records import RecordError, RunFiles, TrainRecord, read_record_if_any

BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
GIB = 2**30

GPU_SIZES: tuple[tuple[str, int], ...] = (("80 GB", 80 * GIB), ("40 GB", 40 * GIB), ("24 GB", 24 * GIB))
"""The GPU memory sizes every training cell is planned against (A100/H100 80 GB, A100 40 GB,
24 GB cards such as the RTX 4090 or A10; nominal sizes in GiB: the CUDA total of a card is
at or a little below them)."""

PLANNED_GPU = Placement("cuda", 0, "planned", "a bf16 GPU (planned)", 1)
"""The device a cell is planned on when it would run on a GPU it does not see here: CUDA with
bfloat16 (Ampere or newer), one process."""

REFERENCE_MODEL = "gpt2-medium"
"""The paper's reference for trainable parameters: GPT-2-medium, fully fine-tuned."""


@dataclass(frozen=True)
class MemoryEstimate:
    """Estimated peak memory of one training process, in bytes (module docstring)."""

    weights: int
    gradients: int
    optimizer_states: int
    activations: int
    trainable: int = 0
    """Trainable parameters (a count, not bytes)."""

    @property
    def total(self) -> int:
        return self.weights + self.gradients + self.optimizer_states + self.activations

    def describe(self) -> str:
        return (f"~{self.total / GIB:.2f} GiB = weights {self.weights / GIB:.2f} + gradients "
                f"{self.gradients / GIB:.2f} + optimizer states {self.optimizer_states / GIB:.2f} + activations "
                f"{self.activations / GIB:.2f} GiB")


@lru_cache(maxsize=16)
def meta_model(model: str):
    """The model's architecture on the ``meta`` device (exact shapes, no weights; reads only
    its configuration: a registry model's from the repository
    (:func:`bashkir_peft.models.configs.offline_config`, no Hub), a local folder's, or a Hub
    id's ``config.json`` from the Hub). Built once per process (a 7B architecture takes
    seconds even on ``meta``) and shared: read its shapes, never modify it.

    Raises:
        OSError: no configuration (a registry model without its shipped ``config.json``, a Hub
            id with the Hub out of reach).
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    registry = load_registry()
    if model in registry.models:
        entry = registry.get(model)
        config, remote = offline_config(entry), entry.trust_remote_code
    else:
        resolved = resolve_model(model)
        kwargs = {"trust_remote_code": resolved.trust_remote_code}
        if resolved.source == "hub" and resolved.revision != "unpinned":
            kwargs["revision"] = resolved.revision
        config, remote = AutoConfig.from_pretrained(resolved.location, **kwargs), resolved.trust_remote_code
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(config, trust_remote_code=remote)


def _planning_model(model: str) -> ResolvedModel:
    """What the planner needs of a model (its registry entry) without provisioning, loading
    or asking the Hub for its commit."""
    registry = load_registry()
    if model in registry.models:
        entry = registry.get(model)
        return ResolvedModel(model, entry.hub_id or model, entry.source, entry.revision_label, entry)
    return resolve_model(model)


@lru_cache(maxsize=1)
def reference_trainable() -> int:
    """Trainable parameters of the paper's reference, :data:`REFERENCE_MODEL` fully fine-tuned:
    every parameter of its architecture (tied input and output embeddings counted once)."""
    return sum(p.numel() for p in meta_model(REFERENCE_MODEL).parameters())


def _quantized_layers(net) -> list:
    """The layers bitsandbytes quantizes: ``nn.Linear`` / ``Conv1D`` except the output head."""
    head = net.get_output_embeddings()
    return [m for m in net.modules() if type(m).__name__ in ("Linear", "Conv1D") and m is not head]


def _activations(config, params: TrainParams, compute_bytes: int) -> int:
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    h = getattr(text, "hidden_size", None) or text.n_embd
    a = getattr(text, "num_attention_heads", None) or text.n_head
    layers = getattr(text, "num_hidden_layers", None) or text.n_layer
    s, b, v = params.block_size, params.per_device_train_batch_size, text.vocab_size
    full_layer = s * b * h * (34 + 5 * a * s / h) * compute_bytes / 2
    stored = layers * 2 * s * b * h * compute_bytes / 2 + full_layer if params.gradient_checkpointing \
        else layers * full_layer
    return int(stored + 2 * 4 * b * s * v)


def estimate_memory(params: TrainParams, net=None, placement: Placement | None = None) -> MemoryEstimate:
    """Estimated peak memory of one training process of ``params`` (module docstring).

    Args:
        params: the training parameters.
        net: the model (default :func:`meta_model`); only shapes are read.
        placement: the device (default: the device rule for ``params.device``).

    Raises:
        ConfigError: a model, dtype or target module the training would refuse.
    """
    net = net if net is not None else meta_model(params.model)
    placement = placement or choose_device(params.device, params.method)
    resolved = _planning_model(params.model)
    dtype = params.dtype or default_dtype(resolved, params.method, placement)
    prec = plan_precision(params.method, dtype, placement, params.pure_low_precision)
    n_total = sum(p.numel() for p in net.parameters())
    if params.method == "full":
        trainable = n_total
        weights = n_total * BYTES[prec.load_dtype]
    else:
        targets = params.target_modules or (resolved.entry.target_modules if resolved.entry else None)
        if not targets:
            raise ConfigError(f"model {params.model!r} is not in the registry: set target_modules for {params.method}")
        if not target_layers(net, targets):
            raise ConfigError(f"target_modules {targets} match no module of {params.model}")
        trainable = lora_parameter_count(net, targets, params.lora_r, params.lora_options)
        adapters = trainable * BYTES[prec.master_dtype]
        if params.method == "lora":
            weights = n_total * BYTES[prec.load_dtype] + adapters
        else:
            n_q = sum(m.weight.numel() for m in _quantized_layers(net))
            scales = n_q // 64 + 4 * (n_q // (64 * 256))
            weights = n_q // 2 + scales + (n_total - n_q) * 4 + adapters
    grad_bytes = BYTES[prec.master_dtype]
    state_bytes = 1 if "8bit" in params.optim else BYTES[prec.master_dtype]
    compute = BYTES[prec.autocast or prec.load_dtype]
    return MemoryEstimate(weights, trainable * grad_bytes, 2 * trainable * state_bytes,
                          _activations(net.config, params, compute), trainable)


def planned_tokens(params: TrainParams, train_blocks: int | None) -> int | None:
    """Tokens a run trains on: ``max_steps x processes x batch x accumulation x block_size``, or
    ``num_train_epochs x train blocks x block_size`` (``None`` while the block count is unknown,
    and for a byte budget, ``train_bytes``, whose tokens depend on what the run's tokenizer
    makes of the training split)."""
    if params.train_bytes is not None:
        return None
    if params.max_steps > 0:
        return (params.max_steps * params.processes * params.per_device_train_batch_size
                * params.gradient_accumulation_steps * params.block_size)
    if train_blocks is None:
        return None
    return int(params.num_train_epochs * train_blocks * params.block_size)


def visible_gpu() -> tuple[str, int] | None:
    """``(name, total bytes)`` of the GPU a cell would use (``cuda:0``), or ``None`` without CUDA."""
    import torch

    if not torch.cuda.is_available():
        return None
    props = torch.cuda.get_device_properties(0)
    return props.name, int(props.total_memory)


def flops_per_token(net, method: str) -> int:
    """Training FLOPs per token: ``c x P``, ``P`` the weights of the model's matrix products
    (every ``Linear``/``Conv1D``, the output layer included), ``c = 6`` for full fine-tuning and
    4 for adapters (no gradient of the frozen weights; Kaplan et al. 2020, sec. 2.1)."""
    p = sum(m.weight.numel() for m in _quantized_layers(net)) + net.get_output_embeddings().weight.numel()
    return (6 if method == "full" else 4) * p


@dataclass(frozen=True)
class GpuPlan:
    """A training cell on a bf16 GPU (:data:`PLANNED_GPU`, or the visible one): its memory
    estimate, which of :data:`GPU_SIZES` it fits, its training FLOPs per token, and its time at
    the assumed throughput (:mod:`bashkir_peft.grid.gputime`).

    Attributes:
        memory: the memory estimate on the GPU.
        flops_per_token: ``c x P`` (:func:`flops_per_token`).
        step_flops_per_token: what a step spends per token, recomputation under gradient
            checkpointing included (:func:`bashkir_peft.grid.gputime.train_flops_per_token`).
        tokens: the cell's training tokens (``None``: unknown until data prep).
        tokens_how: how they are known (:func:`cell_train_tokens`).
    """

    memory: MemoryEstimate
    flops_per_token: int
    step_flops_per_token: float = 0.0
    tokens: int | None = None
    tokens_how: str = ""

    @property
    def seconds(self) -> float | None:
        """Training seconds at :data:`~bashkir_peft.grid.gputime.ASSUMED_GPU` (``None`` while the
        tokens are unknown)."""
        return None if self.tokens is None else gpu_train_seconds(self.tokens, self.step_flops_per_token)

    def describe(self) -> str:
        fits = ", ".join(f"{'fits' if self.memory.total <= size else 'does NOT fit'} {name}"
                         for name, size in GPU_SIZES)
        ratio = reference_trainable() / self.memory.trainable
        per_million = gpu_train_seconds(1_000_000, self.step_flops_per_token)
        when = (f"~{self.seconds / 3600:.2f} h for {self.tokens:,} tokens ({self.tokens_how})" if self.tokens is not None
                else f"unknown until data prep ({self.tokens_how})")
        return (f"  trainable parameters {self.memory.trainable:,} ({ratio:.1f}x fewer than {REFERENCE_MODEL} full "
                f"fine-tuning, {reference_trainable():,}); on a bf16 GPU ~{self.memory.total / GIB:.1f} GiB "
                f"({fits}); compute {self.flops_per_token:.3g} FLOP per training token\n"
                f"  GPU training time, an estimate from an assumed throughput (not a measurement): {when}; "
                f"{per_million:.1f} s per million tokens at {self.step_flops_per_token:.3g} FLOP per token and "
                f"{ASSUMED_GPU.describe()}")


@dataclass(frozen=True)
class CellPlan:
    """The plan of one training cell: memory, tokens, time, and whether it fits; ``gpu``: its
    plan on a bf16 GPU (``None`` for a cell pinned to the CPU, or whose model has no
    configuration)."""

    run_label: str
    memory: MemoryEstimate | None
    tokens: int | None
    seconds: float | None
    throughput_source: str
    fits: bool
    note: str
    gpu: GpuPlan | None = None

    def describe(self) -> str:
        mem = self.memory.describe() if self.memory else "unknown"
        if self.seconds is not None:
            when = f"time ~{self.seconds / 3600:.2f} h ({self.tokens:,} tokens at {self.throughput_source})"
        else:
            tok = f"{self.tokens:,} tokens" if self.tokens is not None else "tokens unknown until data prep"
            when = f"time unknown ({tok}; {self.throughput_source})"
        line = f"  plan: peak memory per process {mem}; {when}" + (f"; {self.note}" if self.note else "")
        return line + (f"\n{self.gpu.describe()}" if self.gpu else "")


def train_params(units) -> TrainParams | None:
    """The typed training parameters among a cell's units (``None``: the cell does not train)."""
    return next((u.params for u in units if u.stage == "train"), None)


def _measured(root: Path, params: TrainParams, device: str) -> tuple[float | None, int | None, str]:
    """A throughput and a train-block count measured by a finished run of the same model and
    method on the same kind of device in this grid's folder (an unreadable record is no
    evidence: the grid reports it as corrupt and reruns its stage)."""
    for path in sorted(root.glob(f"*/{RunFiles.TRAIN}")):
        try:
            rec = read_record_if_any(path, TrainRecord)
        except RecordError:
            continue
        if rec is None or rec.status != "finished" or not rec.tokens_per_s:
            continue
        same = (rec.params.model, rec.params.method, rec.params.block_size) == \
            (params.model, params.method, params.block_size)
        where = rec.device.name if rec.device is not None else "cpu"
        if same and where == device:
            blocks = rec.data.train.blocks if rec.data.train is not None else None
            return rec.tokens_per_s, blocks, f"{rec.tokens_per_s:,.0f} tokens/s measured by {path.parent.name}"
    return None, None, f"no finished {params.model}/{params.method} run on {device} yet to measure throughput"


def cell_train_tokens(params: TrainParams, train_blocks: int | None, data_dir: Path | None) -> tuple[int | None, str]:
    """A cell's training tokens for its GPU time, and how they are known
    (:mod:`bashkir_peft.grid.gputime`).

    Args:
        params: the cell's training parameters.
        train_blocks: the training split's blocks measured by a finished run of the same model
            (``None``: no such run yet).
        data_dir: the grid's data folder when it is prepared and current (``None``: not yet).

    Returns:
        ``(tokens, how)``: ``tokens`` exact for ``max_steps`` and for epochs over measured blocks;
        for a byte budget, at the base tokenizer's bytes per token on the prepared data; for
        epochs before any run, from the prepared data's bytes
        (:func:`~bashkir_peft.grid.gputime.estimated_train_blocks`; an adapted tokenizer, which
        packs more text into a token, is counted as its base: an upper bound); ``None`` until
        data prep, ``how`` then says why.
    """
    if params.train_bytes is not None:
        tokens = budget_tokens(params, base_bytes_per_token(data_dir, params.model) if data_dir else None)
        if tokens is None:
            return None, (f"a byte budget of {params.train_bytes:,} bytes: its tokens follow from the bytes per token "
                          "of the model's tokenizer on the prepared data")
        return tokens, "a byte budget at the bytes per token of the prepared data"
    if params.max_steps > 0:
        return planned_tokens(params, None), "max_steps"
    if train_blocks is not None:
        return planned_tokens(params, train_blocks), "epochs over the blocks a finished run measured"
    blocks = estimated_train_blocks(data_dir, params.model, params.block_size) if data_dir else None
    if blocks is None:
        return None, (f"{params.num_train_epochs:g} epochs: the training split's tokens are counted by data prep; the "
                      "registry holds no bytes per token")
    return planned_tokens(params, blocks), "epochs over the prepared data's bytes at its bytes per token"


def plan_cell(run, p, gpu: tuple[str, int] | None) -> CellPlan | None:
    """The plan of a planned grid cell (``None`` for a cell that does not train)."""
    params = train_params(run.units(p))
    if params is None:
        return None
    placement = choose_device(params.device, params.method)
    gpu_plan = None
    try:
        net = meta_model(params.model)
        memory = estimate_memory(params, net, placement=placement)
        if params.device != "cpu":
            on_gpu = memory if placement.device == "cuda" else estimate_memory(params, net, placement=PLANNED_GPU)
            gpu_plan = GpuPlan(on_gpu, flops_per_token(net, params.method))
    except OSError as err:  # a model outside the registry, with the Hub out of reach
        memory, unknown = None, f"memory unknown: no configuration of {params.model} ({type(err).__name__}: {err})"
    except ConfigError as err:  # the cell's training will fail with this error (recorded there)
        memory, unknown = None, f"memory unknown: {err}"
    rate, blocks, source = _measured(run.root, params, placement.name)
    tokens = planned_tokens(params, blocks)
    if gpu_plan is not None:
        # the data folder counts only when it is current (same corpus and settings as this grid's)
        gpu_tokens, how = cell_train_tokens(params, blocks, run.data_dir if run.fingerprint else None)
        gpu_plan = GpuPlan(gpu_plan.memory, gpu_plan.flops_per_token,
                           train_flops_per_token(gpu_plan.flops_per_token, params.method, params.gradient_checkpointing),
                           gpu_tokens, how)
    seconds = tokens / rate if rate and tokens is not None else None
    fits, note = True, "" if memory else unknown
    if gpu is not None and memory is not None:
        name, total = gpu
        fits = memory.total <= total
        note = f"{'fits' if fits else 'does NOT fit'} {name} ({total / GIB:.1f} GiB)"
    return CellPlan(p.cell.slug, memory, tokens, seconds, source, fits, note, gpu_plan)


def describe_gpu_total(plans: list[CellPlan]) -> str:
    """One line: the GPU training time of ``plans`` summed over the cells whose tokens are known,
    at the assumed throughput (:mod:`bashkir_peft.grid.gputime`), and how many are not known."""
    gpu = [plan.gpu for plan in plans if plan.gpu is not None]
    known = [g.seconds for g in gpu if g.seconds is not None]
    if not known:
        return (f"GPU training time of the {len(gpu)} training cell(s): unknown until data prep (the plan above gives "
                f"each cell's seconds per million tokens at {ASSUMED_GPU.describe()}, an assumed throughput)")
    line = (f"GPU training time of {len(known)} of {len(gpu)} training cell(s), an estimate from an assumed throughput "
            f"(not a measurement): ~{sum(known) / 3600:,.1f} GPU-hours at {ASSUMED_GPU.describe()}, training "
            "only (evaluation, generation and downstream not counted)")
    if len(known) < len(gpu):
        line += f"; {len(gpu) - len(known)} cell(s) unknown until data prep"
    return line + f" [{ASSUMED_GPU.source}]"


def plan_grid(run, out=None, gpu: tuple[str, int] | None = None) -> list[CellPlan]:
    """Plan every training cell of ``run`` (print each line to ``out`` when given) and refuse
    a grid with a cell that cannot fit the visible GPU.

    Args:
        run: a :class:`bashkir_peft.grid.runner.GridRun`.
        out: a text stream for one ``plan:`` line per training cell (``None``: silent).
        gpu: ``(name, bytes)`` of the device to fit (default: :func:`visible_gpu`).

    Raises:
        ConfigError: a cell's estimated peak memory exceeds the GPU (every such cell named,
            with its numbers).
    """
    gpu = gpu if gpu is not None else visible_gpu()
    plans, refused = [], []
    for p in run.cells:
        plan = plan_cell(run, p, gpu)
        if plan is None:
            continue
        plans.append(plan)
        if out is not None:
            print(f"{p.cell.slug}\n{plan.describe()}", file=out)
        if not plan.fits:
            refused.append(f"{plan.run_label}: {plan.memory.describe()}")
    if out is not None and any(plan.gpu for plan in plans):
        print(describe_gpu_total(plans), file=out)
    if refused:
        name, total = gpu
        raise ConfigError(f"{len(refused)} cell(s) cannot fit {name} ({total / GIB:.1f} GiB): " + "; ".join(refused)
                          + " (lower per_device_train_batch_size or block_size, turn on gradient_checkpointing, "
                            "or use qlora)")
    return plans

"""Fine-tune a causal LM on the prepared Bashkir data: full fine-tuning, LoRA or QLoRA.

One code path for CPU and GPU, on the HF ``Trainer``:

- ``full``: every weight trained, in the compute dtype.
- ``lora``: frozen full-precision base, LoRA adapters (Hu et al. 2021) on the registry's
  target modules (or ``target_modules``).
- ``qlora``: frozen 4-bit NF4 base with double quantization (Dettmers et al. 2023),
  compute dtype bf16 on GPU and float32 on CPU, ``prepare_model_for_kbit_training``,
  paged AdamW (32-bit) on GPU, LoRA adapters on top.

A run lives in ``output_dir`` (RUN_DIR): ``train.json`` (the record), ``final/`` (PEFT
adapter layout with a model card, or the full HF model folder; tokenizer included),
``checkpoints/`` and, for full fine-tuning, ``weight_spectrum.parquet`` (the singular-value
spectrum of every adapted matrix's change: :mod:`bashkir_peft.models.spectrum`). Started
again with the same parameters, an interrupted run resumes from its last complete checkpoint
(one taken at the end of its budget, ``max_steps`` or the byte budget's steps, goes straight
to the final evaluation and save: never a step more); a finished one returns its record
without recomputing.
"""

from __future__ import annotations

import errno
import json
import math
import os
import shutil
from datetime import datetime, timezone
from pathlib import Path

from bashkir_peft.atomic import follow_umask
from bashkir_peft.config.lora import changes_base_weights
from bashkir_peft.config.train import TrainParams
from bashkir_peft.data.folder import load_texts, read_manifest
from bashkir_peft.data.packing import packed_dataset
from bashkir_peft.data.retokenization import mix_replay, read_samples
from bashkir_peft.data.vocab import adapt_model
from bashkir_peft.errors import ConfigError
from bashkir_peft.models.device import Placement, choose_device, is_main_process, one_gpu_per_process, world_size
from bashkir_peft.models.loading import default_dtype, load_model, resolve_model
from bashkir_peft.models.lora import apply_lora, count_parameters
from bashkir_peft.models.precision import Precision, cast_trainable, plan_precision
from bashkir_peft.models.quant import prepare_qlora
from bashkir_peft.models.spectrum import final_model_spectrum, spectrum_modules
from bashkir_peft.models.vocab import save_token_rows_only, token_rows_cost, token_rows_for_peft
from bashkir_peft.names import ADAPTER_METHODS
from bashkir_peft.provenance import ResourceMeter, environment_info
from bashkir_peft.records import (
    Budget,
    RunFiles,
    TrainRecord,
    WeightSpectrumInfo,
    read_record_if_any,
    write_record,
)
from bashkir_peft.runtime import configure_threads
from bashkir_peft.train.budget import resolve_budget, tokens_per_step, validation_bits_per_byte
from bashkir_peft.train.checkpoints import last_complete_checkpoint, prune_checkpoints
from bashkir_peft.train.distributed import gather_costs, launch
from bashkir_peft.train.new_rows import new_rows_param_group, warm_up_new_rows
from bashkir_peft.yamlio import validate

INITIAL_ADAPTER = "initial-adapter"
"""Folder (in the run folder) of a PiSSA/OLoRA adapter before training: the final adapter is
saved as its difference, a plain LoRA adapter on the original base
(:func:`bashkir_peft.config.lora.changes_base_weights`)."""


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _context_length(resolved) -> int | None:
    if resolved.entry is not None:
        return resolved.entry.context_length
    cfg = Path(resolved.location) / "config.json"
    if cfg.is_file():
        c = json.loads(cfg.read_text(encoding="utf-8"))
        return c.get("max_position_embeddings") or c.get("n_positions")
    return None


def _target_modules(params: TrainParams, resolved) -> list[str]:
    if params.target_modules is not None:
        return list(params.target_modules)
    if resolved.entry is None:
        raise ConfigError(f"model {params.model!r} is not in the registry: set target_modules for {params.method}")
    return list(resolved.entry.target_modules)


def _optimizer(params: TrainParams, cuda: bool) -> str:
    if params.optim != "auto":
        return params.optim
    if params.method == "qlora" and cuda:
        return "paged_adamw_32bit"  # QLoRA paper: paged optimizers absorb memory spikes
    from transformers import TrainingArguments

    return TrainingArguments.__dataclass_fields__["optim"].default


def _model_card(record: TrainRecord) -> str:
    """The final folder's README (a Hugging Face model card) from the run's record."""
    p, m, ev = record.params, record.model, record.final_eval
    seen = record.text_seen
    lines = [
        "---",
        f"base_model: {m.hub_id or m.location}",
        *(["library_name: peft"] if p.method != "full" else []),
        "language: [ba]",
        f"tags: [bashkir, {p.method}, causal-lm]",
        "---",
        "",
        f"# {m.name} fine-tuned on Bashkir ({p.method})",
        "",
        f"- Base model: {m.name} (source {m.source}, revision {m.revision})",
        f"- Method: {p.method}" + (
            f", LoRA r={p.lora_r}, alpha={p.lora_alpha}, dropout={p.lora_dropout}, "
            f"target modules {', '.join(record.target_modules)}" if p.method != "full" else ""),
        *(["- Base weights: 4-bit NF4 with double quantization (bitsandbytes), compute dtype "
           f"{record.compute_dtype}"] if p.method == "qlora" else []),
        f"- Trainable parameters: {record.trainable_params:,} of {record.total_params:,} "
        f"({100 * record.trainable_share:.3f} %)",
        f"- Data fingerprint: {record.data.fingerprint}",
        f"- Training: {record.global_step} steps, {record.tokens_seen:,} tokens"
        + (f" ({seen:,.0f} bytes of text)" if seen is not None else "")
        + f", block_size {p.block_size}, learning rate {p.learning_rate}, seed {p.seed}",
        f"- Validation loss: {ev.eval_loss:.4f} (token perplexity {ev.perplexity:.3f}"
        + (f", {ev.bits_per_byte:.4f} bits per byte" if ev.bits_per_byte is not None else "")
        + f") on {record.data.validation.blocks} blocks",
        f"- Produced by bashkir-peft (git {record.environment.git.commit}); full record in ../train.json",
        "",
    ]
    return "\n".join(lines)


def _save_final(trainer, tokenizer, run_dir: Path, record: dict) -> Path:
    final = run_dir / RunFiles.FINAL
    tmp = run_dir / (RunFiles.FINAL + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    extra = {}  # an adapted vocabulary's adapter saves its token rows only (save_token_rows_only)
    initial = run_dir / INITIAL_ADAPTER
    if changes_base_weights(record["params"].lora_options):
        extra["path_initial_model_for_weight_conversion"] = str(initial)
    trainer.model.save_pretrained(tmp, **extra)
    tokenizer.save_pretrained(tmp)
    (tmp / "README.md").write_text(_model_card(TrainRecord.model_validate(record)), encoding="utf-8")
    follow_umask(tmp)
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
    return final


def _weight_spectrum(params: TrainParams, run_dir: Path) -> WeightSpectrumInfo | None:
    """The weight-change spectrum of a full fine-tuning run's saved final model
    (:func:`~bashkir_peft.models.spectrum.final_model_spectrum`, ``RUN_DIR/weight_spectrum.parquet``);
    ``None`` for an adapter run, or a model whose target modules are not known (outside the
    registry, no ``target_modules``)."""
    if params.method != "full":
        return None
    try:
        modules = spectrum_modules(params)
    except ConfigError:
        return None
    return final_model_spectrum(run_dir / RunFiles.FINAL, params.model, modules, run_dir / RunFiles.WEIGHT_SPECTRUM)


def _seen(budget: Budget | None, steps: int) -> float | None:
    return None if budget is None else budget.text_seen(steps)


def _losses(log_history: list[dict], record: dict) -> dict:
    """Training and validation losses by step; each validation point also in bits per byte
    (:func:`~bashkir_peft.train.budget.validation_bits_per_byte`) at ``train_bytes_seen``
    bytes of training text (step x the run's bytes per step)."""
    train = [{"step": h["step"], "loss": h["loss"], "learning_rate": h.get("learning_rate")}
             for h in log_history if "loss" in h]
    evals = [{"step": h["step"], "eval_loss": h["eval_loss"],
              "bits_per_byte": validation_bits_per_byte(h["eval_loss"], record["data"]["validation"]),
              "train_bytes_seen": None if (seen := _seen(record.get("budget"), h["step"])) is None else round(seen)}
             for h in log_history if "eval_loss" in h]
    return {"train": train, "eval": evals}


def _final_eval(trainer) -> dict:
    """The validation metrics at the last step: the Trainer's own end-of-training
    evaluation when it ran at that step, else a fresh evaluation."""
    last = [h for h in trainer.state.log_history if "eval_loss" in h]
    if last and last[-1]["step"] == trainer.state.global_step:
        return last[-1]
    return trainer.evaluate()


def _precheck(params: TrainParams, run_dir: Path):
    """Everything that can be checked before loading weights.

    Returns:
        ``(resolved model, data manifest, the run folder's training record or None)``.
    """
    existing = read_record_if_any(run_dir / RunFiles.TRAIN, TrainRecord)
    if existing is not None and existing.params != params.for_record():
        raise ConfigError(
            f"{run_dir} holds a run with other parameters; use another output_dir or delete it")
    if params.optim != "auto":
        from transformers.training_args import OptimizerNames

        names = [o.value for o in OptimizerNames]
        if params.optim not in names:
            raise ConfigError(f"optim {params.optim!r} is not a transformers optimizer; use auto or one of "
                              + ", ".join(n for n in names if "adamw" in n))
    adaptation = params.tokenizer
    if (adaptation is not None and params.method == "full" and adaptation.new_rows_learning_rate is not None
            and not adaptation.new_rows_warmup_steps):
        raise ConfigError("new_rows_learning_rate applies to the new-row warm-up and to adapter runs' new rows; "
                          "full fine-tuning trains them inside the whole embedding matrix: set "
                          "new_rows_warmup_steps or drop it")
    resolved = resolve_model(params.model)
    ctx = _context_length(resolved)
    if ctx is not None and params.block_size > ctx:
        raise ConfigError(f"block_size {params.block_size} exceeds {params.model}'s context length {ctx}")
    manifest = read_manifest(params.data_dir)
    return resolved, manifest, existing


def _start_record(params: TrainParams, manifest, existing: TrainRecord | None, optimizer: str, dtype: str,
                  placement: Placement, precision: Precision) -> dict:
    """The record of a (re)started run: parameters, resolved settings (device, precision),
    the sessions so far."""
    return {
        "device": placement.record(processes=world_size()),
        "precision": precision.record(),
        "status": "running",
        "reason": None,
        "params": params.for_record(),
        "optimizer": optimizer,
        "compute_dtype": dtype,
        "data": {"dir": str(Path(params.data_dir).resolve()), "fingerprint": manifest.fingerprint},
        "started": existing.started if existing else _now(),
        "sessions": [s.model_dump(exclude_unset=True) for s in existing.sessions] if existing else [],
    }


def _write(run_dir: Path, record: dict) -> TrainRecord:
    """Validate the record being built against :class:`TrainRecord` and write it atomically
    (the main process only, under DDP)."""
    typed = TrainRecord.model_validate(record)
    if is_main_process():
        write_record(run_dir / RunFiles.TRAIN, typed)
    return typed


def _prepare_model(params: TrainParams, resolved, placement: Placement, precision: Precision, record: dict):
    """Load the model and the packed data, wrap the model for the method (QLoRA preparation,
    LoRA adapters, trainable weights in the master dtype) and record what was built.
    Returns ``(model, tokenizer, train_ds, eval_ds)``."""
    loaded = load_model(params.model, params.method, dtype=precision.load_dtype, placement=placement)
    model, tokenizer = loaded.model, loaded.tokenizer
    new_ids = None
    if params.tokenizer is not None:
        tokenizer, new_ids, record["vocab"] = adapt_model(model, tokenizer, params.tokenizer, params.data_dir,
                                                           params.out_dir / RunFiles.TOKENIZER, params.seed)
    record["model"] = loaded.resolved.record() | {"hub_id": resolved.entry.hub_id if resolved.entry else None}
    train_texts = load_texts(params.data_dir, "train", params.max_train_documents)
    adaptation = params.tokenizer
    if new_ids is not None and adaptation.replay:
        train_texts, record["vocab"]["replayed"] = mix_replay(train_texts, read_samples(adaptation.replay),
                                                              adaptation.replay_share, params.seed)
    eval_texts = load_texts(params.data_dir, "validation", params.max_eval_documents)
    train_ds, train_stats = packed_dataset(train_texts, tokenizer, params.block_size, "train")
    eval_ds, eval_stats = packed_dataset(eval_texts, tokenizer, params.block_size, "validation")
    record["data"] |= {"train": train_stats | {"bytes": sum(len(t.encode("utf-8")) for t in train_texts)},
                       "validation": eval_stats | {"bytes": sum(len(t.encode("utf-8")) for t in eval_texts)}}
    if new_ids is not None and adaptation.new_rows_warmup_steps:
        record["vocab"]["warmup"] = warm_up_new_rows(
            model, new_ids, train_ds, adaptation.new_rows_warmup_steps,
            adaptation.new_rows_learning_rate or params.resolved_learning_rate, params.per_device_train_batch_size,
            params.seed)
    if params.method == "qlora":
        model = prepare_qlora(model, params.gradient_checkpointing)
    if params.method in ADAPTER_METHODS:
        record["target_modules"] = _target_modules(params, resolved)
        model = apply_lora(model, record["target_modules"], params.lora_r, params.lora_alpha, params.lora_dropout,
                           token_rows_for_peft(model, new_ids) if new_ids else None, params.lora_options,
                           params.lora_dropout_sampler)
        initial = params.out_dir / INITIAL_ADAPTER
        if changes_base_weights(params.lora_options) and is_main_process() \
                and not (initial / "adapter_config.json").is_file():
            model.save_pretrained(initial)  # the adapter before training: its final one is saved relative to it
        if new_ids:
            save_token_rows_only(model)  # checkpoints and final adapter: the new rows, not the resized matrices
    else:
        record["target_modules"] = None
    cast_trainable(model, precision.master_dtype)
    model.config.use_cache = False
    record |= count_parameters(model)
    if new_ids is not None:
        record["vocab"] |= token_rows_cost(model, len(new_ids))
    return model, tokenizer, train_ds, eval_ds


def _new_rows_own_rate(trainer, learning_rate: float, record: dict) -> None:
    """Give the new vocabulary rows of an adapter run their own learning rate: the Trainer's
    optimizer, once built (before its scheduler), has them moved into a group of their own
    (:func:`~bashkir_peft.train.new_rows.new_rows_param_group`)."""
    build = trainer.create_optimizer

    def create_optimizer(model=None):
        fresh = trainer.optimizer is None
        optimizer = build(model)
        if fresh:
            record["vocab"]["new_rows_group_params"] = new_rows_param_group(optimizer, trainer.model, learning_rate)
        return optimizer

    trainer.create_optimizer = create_optimizer


def _chunked_loss(params: TrainParams, model):
    """The run's ``compute_loss_func``: a :class:`~bashkir_peft.train.loss.ChunkedCausalLMLoss`,
    or ``None`` (the HF loss).

    Raises:
        ConfigError: ``chunked_loss`` on a model whose logits it cannot reproduce.
    """
    if not params.chunked_loss:
        return None
    from bashkir_peft.train.loss import ChunkedCausalLMLoss

    try:
        return ChunkedCausalLMLoss(model)
    except ValueError as err:
        raise ConfigError(f"{err}; set chunked_loss: false") from None


def _training_arguments(params: TrainParams, run_dir: Path, optimizer: str, placement: Placement,
                        precision: Precision):
    """The HF ``TrainingArguments`` of a run (checkpoints in ``RUN_DIR/checkpoints``; autocast
    from ``precision``; one GPU per process, never DataParallel)."""
    from transformers import TrainingArguments

    cpu = placement.device == "cpu"
    args = TrainingArguments(
        output_dir=str(run_dir / RunFiles.CHECKPOINTS),
        learning_rate=params.resolved_learning_rate,
        lr_scheduler_type=params.lr_scheduler_type,
        warmup_steps=params.warmup_ratio,  # a float in [0, 1) is a ratio of the total steps
        num_train_epochs=params.num_train_epochs,
        max_steps=params.max_steps,
        per_device_train_batch_size=params.per_device_train_batch_size,
        per_device_eval_batch_size=params.per_device_eval_batch_size,
        gradient_accumulation_steps=params.gradient_accumulation_steps,
        activation_checkpointing=params.gradient_checkpointing,
        activation_checkpointing_kwargs={"use_reentrant": False},
        eval_strategy="steps",
        eval_steps=params.eval_steps,
        save_strategy="steps",
        save_steps=params.save_steps,
        save_total_limit=None,  # pruned by CompleteCheckpoints, only after a newer one is complete
        logging_steps=params.logging_steps,
        logging_nan_inf_filter=False,  # a NaN must show, not be averaged away
        optim=optimizer,
        weight_decay=params.weight_decay,
        max_grad_norm=params.max_grad_norm,
        bf16=precision.autocast == "bfloat16",
        fp16=precision.autocast == "float16",
        seed=params.seed,
        data_seed=params.seed,
        report_to=params.report_to,
        disable_tqdm=True,
        prediction_loss_only=True,  # validation needs the loss only: never gather logits
        use_cpu=cpu,
        ddp_backend="gloo" if cpu and world_size() > 1 else None,
        dataloader_num_workers=0,
    )
    note = one_gpu_per_process(args)
    return args, note


def _account(params: TrainParams, record: dict, session: dict, trainer, timer, meter, step0: int,
             cuda: bool) -> None:
    """Record this session's steps, tokens and cost, and the run's totals over all sessions
    (a killed session counts with the cost it had written at its last log step or checkpoint).

    ``tokens_seen`` = optimizer steps x processes x per-device batch x accumulation x block_size;
    ``tokens_per_s`` = this session's trained tokens (all processes) / time spent in optimizer
    steps. Under DDP, ``cost`` holds the main process's wall time and the largest peak memory
    of any process; ``process_costs`` each process's.
    """
    step_tokens = tokens_per_step(params, world_size())
    session_tokens = (trainer.state.global_step - step0) * step_tokens
    costs = gather_costs(meter.result())
    session |= {
        "finished": _now(),
        "steps": trainer.state.global_step - step0,
        "tokens": session_tokens,
        "tokens_per_s": session_tokens / timer.total if timer.total else None,
        "cost": costs[0] | {"peak_rss_mib": max(c["peak_rss_mib"] for c in costs),
                            "peak_gpu_mib": max((c["peak_gpu_mib"] or 0 for c in costs), default=0) if cuda else None},
        **({"process_costs": costs} if len(costs) > 1 else {}),
    }
    costs = [s["cost"] for s in record["sessions"] if "cost" in s]
    record |= {
        "global_step": trainer.state.global_step,
        "tokens_seen": trainer.state.global_step * step_tokens,
        "tokens_per_s": session["tokens_per_s"],
        "cost": {
            "wall_time_s": sum(c["wall_time_s"] for c in costs),
            "peak_rss_mib": max(c["peak_rss_mib"] for c in costs),
            "peak_gpu_mib": max((c["peak_gpu_mib"] or 0 for c in costs), default=0) if cuda else None,
        },
        "losses": _losses(trainer.state.log_history, record),
    }


def _conclude(record: dict, final_eval: dict | None) -> None:
    """Status from the final validation loss: ``failed`` when it is not finite."""
    if final_eval is None:
        return
    loss = final_eval["eval_loss"]
    if not math.isfinite(loss):
        record |= {"status": "failed", "reason": f"non-finite validation loss ({loss})"}
    else:
        validation = record["data"]["validation"]
        record["final_eval"] = {"eval_loss": loss, "perplexity": math.exp(loss), "blocks": validation["blocks"],
                                "bits_per_byte": validation_bits_per_byte(loss, validation)}


def run_training(params: TrainParams | dict, callbacks: list | None = None) -> TrainRecord:
    """Train one run and write its record, final adapter/model and model card.

    Args:
        params: :class:`TrainParams` (or a dict validated into one).
        callbacks: extra ``transformers.TrainerCallback`` objects (progress, benchmarks); not
            passed on to the processes of a multi-process run (``processes > 1``).

    Returns:
        The :class:`~bashkir_peft.records.TrainRecord` written to ``RUN_DIR/train.json``:
        status ``finished``, or ``failed`` with a ``reason`` (a non-finite loss); losses
        (train and eval over steps), final_eval (eval_loss, perplexity = exp(eval_loss)),
        tokens_seen, tokens_per_s, cost and one entry per session (resumed_from, skipped
        incomplete checkpoints, cost) beside the parameters and provenance.

    Raises:
        ConfigError / DataError: bad parameters or data, raised before loading weights.
        Exception: any other error, after writing the record with status ``failed`` (a full
            disk that names no file, ``OSError`` 28, names the run folder).
    """
    if isinstance(params, dict):
        params = validate(TrainParams, params, "training parameters")
    run_dir = params.out_dir
    resolved, manifest, existing = _precheck(params, run_dir)
    if existing is not None and existing.status == "finished" and (run_dir / RunFiles.FINAL).is_dir():
        return existing

    if params.processes > 1 and world_size() == 1:
        return launch(params)

    import transformers
    from transformers import default_data_collator

    from bashkir_peft.train.callbacks import (
        CompleteCheckpoints,
        GuardedTrainer,
        NonFiniteLossError,
        OnProgress,
        ProgressFile,
        StepTimer,
    )

    if world_size() != params.processes:
        raise ConfigError(f"processes={params.processes} but this run was started with {world_size()} "
                          "process(es) (WORLD_SIZE)")
    configure_threads(max(1, len(os.sched_getaffinity(0)) // world_size()))
    placement = choose_device(params.device, params.method)
    cuda = placement.device == "cuda"
    if (params.lora_options or {}).get("init_lora_weights") == "loftq" and not cuda:
        raise ConfigError("lora_options: LoftQ initialisation needs CUDA (peft computes it on the GPU); "
                          f"this run is on {placement.device}")
    dtype = params.dtype or default_dtype(resolved, params.method, placement)
    precision = plan_precision(params.method, dtype, placement, params.pure_low_precision)
    record = _start_record(params, manifest, existing, _optimizer(params, cuda), dtype, placement, precision)
    session: dict = {"started": _now()}
    record["sessions"].append(session)
    try:
        transformers.set_seed(params.seed)
        model, tokenizer, train_ds, eval_ds = _prepare_model(params, resolved, placement, precision, record)
        record["budget"] = resolve_budget(params, record["data"]["train"], world_size())
        timer, meter = StepTimer(), ResourceMeter()
        steps = {"max_steps": record["budget"].max_steps, "eval_steps": record["budget"].eval_steps}
        args, note = _training_arguments(params.model_copy(update=steps), run_dir, record["optimizer"], placement,
                                         precision)
        if note:
            record["device"]["notes"].append(note)

        def attempt_so_far():  # this attempt's cost on disk as it goes: a killed attempt still counts
            session["cost"] = meter.result()
            _write(run_dir, record)

        trainer = GuardedTrainer(
            model=model, args=args,
            train_dataset=train_ds, eval_dataset=eval_ds, data_collator=default_data_collator,
            compute_loss_func=_chunked_loss(params, model),
            callbacks=[CompleteCheckpoints(params.save_total_limit), timer, OnProgress(attempt_so_far),
                       ProgressFile(run_dir / RunFiles.PROGRESS), *(callbacks or [])],
        )
        rows_lr = params.tokenizer.new_rows_learning_rate if params.tokenizer is not None else None
        if rows_lr is not None and params.method in ADAPTER_METHODS:
            _new_rows_own_rate(trainer, rows_lr, record)
        resume, skipped = last_complete_checkpoint(run_dir / RunFiles.CHECKPOINTS, max_step=steps["max_steps"])
        session |= {"resumed_from": resume.name if resume else None, "skipped_incomplete_checkpoints": skipped}
        record["environment"] = environment_info()
        _write(run_dir, record)

        step0 = 0
        with meter:
            try:
                if resume is not None:
                    step0 = json.loads((resume / "trainer_state.json").read_text())["global_step"]
                if resume is not None and step0 >= steps["max_steps"]:
                    trainer.restore(resume)  # the budget is spent: straight to the final evaluation and save
                else:
                    trainer.train(resume_from_checkpoint=str(resume) if resume else None)
                final_eval = _final_eval(trainer)
            except NonFiniteLossError as err:
                final_eval = None
                record |= {"status": "failed", "reason": str(err)}
        _account(params, record, session, trainer, timer, meter, step0, cuda)
        _conclude(record, final_eval)
        if record["status"] == "running":
            if is_main_process():
                _save_final(trainer, tokenizer, run_dir, record)
                if (spectrum := _weight_spectrum(params, run_dir)) is not None:
                    record["weight_spectrum"] = spectrum
                if not params.keep_checkpoints:
                    session["checkpoints_deleted"] = prune_checkpoints(run_dir / RunFiles.CHECKPOINTS, keep=0)
            record |= {"status": "finished", "finished": _now()}
        return _write(run_dir, record)
    except Exception as err:
        if isinstance(err, OSError) and err.filename is None and err.errno in (errno.ENOSPC, errno.EDQUOT):
            # a full disk inside torch or safetensors names no file: name the run folder
            err = OSError(err.errno, f"{err.strerror or err} (writing under {run_dir})")
        record |= {"status": "failed", "reason": f"{type(err).__name__}: {err}".splitlines()[0]}
        session.setdefault("finished", _now())
        try:
            _write(run_dir, record)
        except OSError:  # the disk is still full: the error below says what happened
            pass
        raise err


def check_finished(record: TrainRecord) -> TrainRecord:
    """Return ``record`` if its status is ``finished``.

    Raises:
        RuntimeError: the run failed (the message is the record's reason).
    """
    if record.status != "finished":
        raise RuntimeError(f"training {record.status}: {record.reason}")
    return record

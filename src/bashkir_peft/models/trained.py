"""Load a finished training run (its ``final/`` adapter or model).

The measuring stages load a run (or a base model) through
:func:`bashkir_peft.models.subject.load_subject`, which calls :func:`load_trained`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bashkir_peft.errors import ConfigError
from bashkir_peft.models.device import Placement, choose_device
from bashkir_peft.models.loading import load_model, resolve_model
from bashkir_peft.models.quant import keep_cpu_layout_trainable, merge_qlora
from bashkir_peft.models.vocab import merge_token_rows
from bashkir_peft.records import RunFiles, TrainRecord, read_record


@dataclass(frozen=True)
class TrainedModel:
    """A finished run's model, ready for scoring or generation.

    Attributes:
        model: the ``transformers`` model (a ``PeftModel`` unless merged or full), in eval mode.
        tokenizer: the tokenizer saved with the run.
        record: the run's training record.
        merge_note: how the adapter was merged into the base (``None``: not merged).
    """

    model: Any
    tokenizer: Any
    record: TrainRecord
    merge_note: str | None


def read_finished_run(run_dir: str | Path, model: str | None = None) -> TrainRecord:
    """The training record of a finished run, checked before any weights are loaded.

    Args:
        run_dir: the run folder (``train.json`` + ``final/``).
        model: the base model the caller expects (registry name, folder or Hub id), or ``None``.

    Raises:
        ConfigError: no training record (not a run folder), a run that did not finish (its
            reason named), no ``final/`` folder, or ``model`` not the run's base model;
            RecordError (a ConfigError): a record that does not match the contract.
    """
    run_dir = Path(run_dir)
    path = run_dir / RunFiles.TRAIN
    if not path.is_file():
        raise ConfigError(f"{run_dir}: no {RunFiles.TRAIN} (not a training run folder)")
    record = read_record(path, TrainRecord)
    if record.status != "finished":
        raise ConfigError(f"{run_dir}: training status is {record.status!r} "
                          f"({record.reason or 'no reason recorded'}); only finished runs are used")
    if not (run_dir / RunFiles.FINAL).is_dir():
        raise ConfigError(f"{run_dir}: no {RunFiles.FINAL}/ folder (the trained weights); rerun the training")
    trained = record.params.model
    if model is not None and str(model) != str(trained):
        raise ConfigError(f"model={model!r} but {run_dir} was trained from {trained!r}; "
                          "give only run_dir (or the matching model)")
    return record


def load_trained(run_dir: str | Path, merge: bool = False, placement: Placement | None = None) -> TrainedModel:
    """Load a finished training run for evaluation or generation.

    Args:
        run_dir: the run folder (with ``train.json`` and ``final/``).
        merge: for lora/qlora, merge the adapter into the base weights. For qlora the
            4-bit base is dequantized to float32 (the exact weights the adapter was trained
            against), merged in float32 and cast once to the compute dtype
            (:func:`bashkir_peft.models.quant.merge_qlora`), which ``merge_note`` says.
        placement: the device (default: the device rule,
            :func:`bashkir_peft.models.device.choose_device`).

    Returns:
        :class:`TrainedModel`.

    Raises:
        ConfigError: no finished run in ``run_dir`` (:func:`read_finished_run`), or the base
            model's revision differs from the one trained on.

    A run trained with an adapted tokenizer (:mod:`bashkir_peft.data.vocab`) saved it in
    ``final/``; the base model is grown to it before its adapter (which holds the new rows) loads.
    """
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    run_dir = Path(run_dir)
    record = read_finished_run(run_dir)
    final = run_dir / RunFiles.FINAL
    method, base_model, dtype = record.params.method, record.params.model, record.compute_dtype
    placement = placement or choose_device(None, method)
    if method == "full":
        model = AutoModelForCausalLM.from_pretrained(final, dtype=getattr(torch, dtype), use_safetensors=True)
        return TrainedModel(model.to(placement.torch_device).eval(), AutoTokenizer.from_pretrained(final), record,
                            None)

    resolved = resolve_model(base_model)
    trained_rev = record.model.revision
    if "unpinned" not in (trained_rev, resolved.revision) and trained_rev != resolved.revision:
        raise ConfigError(f"base model {base_model} is now revision {resolved.revision}, "
                          f"but the adapter was trained on {trained_rev}")
    base = load_model(base_model, method, dtype=dtype, placement=placement).model
    tokenizer = AutoTokenizer.from_pretrained(final)
    if len(tokenizer) > base.get_input_embeddings().weight.shape[0]:  # an adapted vocabulary (train.json "vocab"):
        base.resize_token_embeddings(len(tokenizer), mean_resizing=False)  # the adapter holds the new rows
    note = None
    if method == "qlora":
        from peft import prepare_model_for_kbit_training

        keep_cpu_layout_trainable(base)
        # the numerics the adapter was trained with: norms, embeddings and head upcast to float32
        base = prepare_model_for_kbit_training(base, use_gradient_checkpointing=False)
        if merge:
            note = (f"4-bit NF4 base dequantized to float32, adapter merged in float32, cast once to {dtype} "
                    "(full-precision model)")
            return TrainedModel(merge_qlora(base, final, dtype).eval(), tokenizer, record, note)
    model = PeftModel.from_pretrained(base, final)
    if merge:
        model = model.merge_and_unload()
        note = "adapter merged into the base weights"
    else:  # an adapted vocabulary's rows: copied in once, not on every forward call (same outputs)
        merge_token_rows(model)
    return TrainedModel(model.eval(), tokenizer, record, note)

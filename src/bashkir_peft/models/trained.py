"""Load a finished training run (its ``final/`` adapter or model) for evaluation and generation."""

from __future__ import annotations

import json
from pathlib import Path

from bashkir_peft.errors import ConfigError
from bashkir_peft.models.loading import load_model, resolve_model
from bashkir_peft.records import RunFiles



def _read_record(run_dir: Path) -> dict | None:
    path = run_dir / RunFiles.TRAIN
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        return None


def load_trained(run_dir: str | Path, merge: bool = False):
    """Load a finished training run for evaluation or generation.

    Args:
        run_dir: the run folder (with ``train.json`` and ``final/``).
        merge: for lora/qlora, merge the adapter into the base weights. For qlora the
            4-bit base is first dequantized to the compute dtype (the exact weights the
            adapter was trained against), then merged: a full-precision model, which the
            returned record says under ``merge``.

    Returns:
        ``(model, tokenizer, record)``; the model is in eval mode. ``record`` is the
        training record plus ``merge`` (``None``, or how the merge was done).

    Raises:
        ConfigError: no finished run in ``run_dir``, or the base model's revision differs
            from the one trained on.
    """
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer


    run_dir = Path(run_dir)
    record = _read_record(run_dir)
    final = run_dir / RunFiles.FINAL
    if record is None or record.get("status") != "finished" or not final.is_dir():
        raise ConfigError(f"{run_dir} holds no finished training run (train.json status must be finished)")
    method, base_model = record["params"]["method"], record["params"]["model"]
    dtype = record["compute_dtype"]
    record = dict(record, merge=None)
    if method == "full":
        model = AutoModelForCausalLM.from_pretrained(final, dtype=getattr(torch, dtype), use_safetensors=True)
        tokenizer = AutoTokenizer.from_pretrained(final)
        return model.eval(), tokenizer, record

    resolved = resolve_model(base_model)
    trained_rev = record["model"]["revision"]
    if "unpinned" not in (trained_rev, resolved.revision) and trained_rev != resolved.revision:
        raise ConfigError(f"base model {base_model} is now revision {resolved.revision}, "
                          f"but the adapter was trained on {trained_rev}")
    base, _ = load_model(base_model, method, dtype=dtype)
    tokenizer = AutoTokenizer.from_pretrained(final)
    if method == "qlora":
        from peft import prepare_model_for_kbit_training

        from bashkir_peft.models.quant import keep_cpu_layout_trainable

        keep_cpu_layout_trainable(base)
        # the numerics the adapter was trained with: norms, embeddings and head upcast to float32
        base = prepare_model_for_kbit_training(base, use_gradient_checkpointing=False)
        if merge:
            base = base.dequantize(dtype=getattr(torch, dtype))
            record["merge"] = f"4-bit NF4 base dequantized to {dtype}, then the adapter merged (full-precision model)"
    model = PeftModel.from_pretrained(base, final)
    if merge:
        model = model.merge_and_unload()
        record["merge"] = record["merge"] or "adapter merged into the base weights"
    return model.eval(), tokenizer, record

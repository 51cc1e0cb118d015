"""Attach LoRA adapters (peft) using the registry's per-architecture target modules.

LoRA: Hu et al., "LoRA: Low-Rank Adaptation of Large Language Models" (2021): a frozen
weight W (out x in) gets a trainable update (lora_alpha / lora_r) * B @ A with
A (lora_r x in), B (out x lora_r), B initialised to zero, so each wrapped layer adds
lora_r * (in + out) trainable parameters.
"""

from __future__ import annotations

from bashkir_peft.errors import ConfigError


def lora_config(target_modules: list[str], lora_r: int = 8, lora_alpha: int = 16, lora_dropout: float = 0.05,
                fan_in_fan_out: bool = False, trainable_token_indices: dict[str, list[int]] | None = None):
    """A peft ``LoraConfig`` for causal LM training.

    Args:
        target_modules: module name suffixes to wrap (registry ``target_modules``).
        lora_r: rank r (> 0).
        lora_alpha: scaling numerator; the update is scaled by lora_alpha / lora_r.
        lora_dropout: dropout on the LoRA input, in [0, 1).
        fan_in_fan_out: True for layers that store weights as (in, out), such as GPT-2's
            Conv1D (peft's LoraConfig docs).
        trainable_token_indices: embedding/head module name -> token ids whose rows train
            beside the adapters and are saved with them (peft's TrainableTokens; new
            vocabulary rows, :func:`bashkir_peft.models.vocab.token_rows_for_peft`).
    """
    from peft import LoraConfig

    if lora_r <= 0:
        raise ConfigError(f"lora_r must be > 0, got {lora_r}")
    return LoraConfig(
        r=lora_r,
        lora_alpha=lora_alpha,
        lora_dropout=lora_dropout,
        target_modules=list(target_modules),
        fan_in_fan_out=fan_in_fan_out,
        trainable_token_indices=trainable_token_indices,
        bias="none",
        task_type="CAUSAL_LM",
    )


def _matches(module_name: str, target: str) -> bool:
    """Whether ``target`` names the module, by name suffix (as peft matches target_modules)."""
    return module_name == target or module_name.endswith("." + target)


def check_target_modules(model, target_modules: list[str]) -> dict[str, int]:
    """Count the modules each target name matches (by name suffix, as peft does).

    Raises:
        ConfigError: a target name matches no module of the model (names the missing ones).
    """
    names = [n for n, _ in model.named_modules()]
    counts = {t: sum(1 for n in names if _matches(n, t)) for t in target_modules}
    missing = [t for t, c in counts.items() if c == 0]
    if missing:
        raise ConfigError(
            f"target_modules {missing} match no module of {type(model).__name__}; "
            "see params/models.yaml for this architecture's target_modules"
        )
    return counts


def target_layers(model, target_modules: list[str]) -> list:
    """The modules LoRA wraps: those whose name ends in a target name (peft's matching)."""
    return [m for n, m in model.named_modules() if any(_matches(n, t) for t in target_modules)]


def lora_parameter_count(model, target_modules: list[str], lora_r: int) -> int:
    """Trainable LoRA parameters: ``lora_r * (in + out)`` per wrapped layer (Hu et al. 2021).

    Works on a model on the meta device (shapes only). ``nn.Linear`` holds (out, in);
    GPT-2's ``Conv1D`` holds (in, out); either way the sum of the two dimensions counts.
    """
    return sum(lora_r * sum(m.weight.shape) for m in target_layers(model, target_modules))


def apply_lora(model, target_modules: list[str], lora_r: int = 8, lora_alpha: int = 16, lora_dropout: float = 0.05,
               trainable_token_indices: dict[str, list[int]] | None = None, dropout_sampler: str = "torch"):
    """Wrap ``model`` with LoRA adapters; only adapter weights (and the rows of
    ``trainable_token_indices``, see :func:`lora_config`) stay trainable.

    Args:
        dropout_sampler: ``torch`` = peft's ``nn.Dropout``; ``bulk`` = the same distribution
            with masks from bulk random bits on the CPU (:mod:`bashkir_peft.models.dropout`).

    Returns:
        A ``peft.PeftModel``.

    Raises:
        ConfigError: a target module matches nothing, or an unknown ``dropout_sampler``.
    """
    from peft import get_peft_model

    if dropout_sampler not in ("torch", "bulk"):
        raise ConfigError(f"dropout_sampler must be 'torch' or 'bulk', got {dropout_sampler!r}")
    check_target_modules(model, target_modules)
    conv1d = any(type(m).__name__ == "Conv1D" for m in target_layers(model, target_modules))  # weight (in, out)
    peft_model = get_peft_model(model, lora_config(target_modules, lora_r, lora_alpha, lora_dropout,
                                                   fan_in_fan_out=conv1d,
                                                   trainable_token_indices=trainable_token_indices))
    if dropout_sampler == "bulk":
        from bashkir_peft.models.dropout import use_bulk_dropout

        use_bulk_dropout(peft_model)
    return peft_model


def count_parameters(model) -> dict[str, float]:
    """``{"trainable_params", "total_params", "trainable_share"}`` of a model.

    For 4-bit layers bitsandbytes packs two weights per stored element; ``total_params``
    counts the logical (unpacked) weights so shares are comparable across methods.
    """
    trainable = total = 0
    for p in model.parameters():
        n = p.numel()
        if p.__class__.__name__ == "Params4bit":
            n = int(p.quant_state.shape.numel()) if getattr(p, "quant_state", None) is not None else n * 2
        total += n
        if p.requires_grad:
            trainable += n
    return {"trainable_params": trainable, "total_params": total, "trainable_share": trainable / total if total else 0.0}

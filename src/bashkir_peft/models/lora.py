"""Attach LoRA adapters (peft) using the registry's per-architecture target modules.

LoRA: Hu et al., "LoRA: Low-Rank Adaptation of Large Language Models" (2021): a frozen
weight W (out x in) gets a trainable update (lora_alpha / lora_r) * B @ A with
A (lora_r x in), B (out x lora_r), B initialised to zero, so each wrapped layer adds
lora_r * (in + out) trainable parameters.
"""

from __future__ import annotations

from bashkir_peft.errors import ConfigError


def lora_config(target_modules: list[str], lora_r: int = 8, lora_alpha: int = 16, lora_dropout: float = 0.05,
                fan_in_fan_out: bool = False, trainable_token_indices: dict[str, list[int]] | None = None,
                options: dict | None = None):
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
        options: further ``LoraConfig`` keyword arguments, the variant (checked by
            :func:`bashkir_peft.config.lora.check_lora_options`; ``loftq_config`` a mapping).
    """
    from peft import LoftQConfig, LoraConfig

    if lora_r <= 0:
        raise ConfigError(f"lora_r must be > 0, got {lora_r}")
    options = dict(options or {})
    if isinstance(options.get("loftq_config"), dict):
        options["loftq_config"] = LoftQConfig(**options["loftq_config"])
    return LoraConfig(
        r=lora_r,
        lora_alpha=lora_alpha,
        lora_dropout=lora_dropout,
        target_modules=list(target_modules),
        fan_in_fan_out=fan_in_fan_out,
        trainable_token_indices=trainable_token_indices,
        bias="none",
        task_type="CAUSAL_LM",
        **options,
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


def lora_parameter_count(model, target_modules: list[str], lora_r: int, options: dict | None = None) -> int:
    """Trainable LoRA parameters: ``lora_r * (in + out)`` per wrapped layer (Hu et al. 2021),
    plus, with ``use_dora``, DoRA's magnitude vector of ``out`` entries per layer (Liu et al.
    2024, eq. 5); with ``layers_to_transform`` only the layers peft selects (its own matching,
    ``peft.tuners.tuners_utils.check_target_module_exists``). ``rank_pattern`` is not counted
    (the grid's rank is ``lora_r``).

    Works on a model on the meta device (shapes only). ``nn.Linear`` holds (out, in);
    GPT-2's ``Conv1D`` holds (in, out); either way the sum of the two dimensions counts.
    """
    options = options or {}
    layers = target_layers(model, target_modules)
    if options.get("layers_to_transform") is not None:
        from peft.tuners.tuners_utils import check_target_module_exists

        config = lora_config(target_modules, lora_r, options={k: v for k, v in options.items()
                                                               if k in ("layers_to_transform", "layers_pattern")})
        layers = [m for n, m in model.named_modules() if m in layers and check_target_module_exists(config, n)]
    count = sum(lora_r * sum(m.weight.shape) for m in layers)
    if options.get("use_dora"):
        count += sum(m.weight.shape[1] if type(m).__name__ == "Conv1D" else m.weight.shape[0] for m in layers)
    return count


def apply_lora(model, target_modules: list[str], lora_r: int = 8, lora_alpha: int = 16, lora_dropout: float = 0.05,
               trainable_token_indices: dict[str, list[int]] | None = None, options: dict | None = None,
               dropout_sampler: str = "torch"):
    """Wrap ``model`` with LoRA adapters; only adapter weights (and the rows of
    ``trainable_token_indices``, see :func:`lora_config`) stay trainable.

    ``options`` (a LoRA variant, :mod:`bashkir_peft.config.lora`) go to peft's ``LoraConfig``
    as they are, except LoftQ on a 4-bit model (QLoRA): the adapters are made with peft's
    default initialisation, then ``peft.replace_lora_weights_loftq`` sets them from the
    quantization residual of the base weights (read from the model's safetensors file), once
    per ``loftq_config.loftq_iter`` (peft's LoftQ-for-QLoRA path; it computes on CUDA).
    ``dropout_sampler``: ``torch`` = peft's ``nn.Dropout``; ``bulk`` = the same distribution
    with masks from bulk random bits on the CPU (:mod:`bashkir_peft.models.dropout`).

    Returns:
        A ``peft.PeftModel``.

    Raises:
        ConfigError: a target module matches nothing; LoftQ without CUDA; an unknown ``dropout_sampler``.
    """
    from peft import get_peft_model

    if dropout_sampler not in ("torch", "bulk"):
        raise ConfigError(f"dropout_sampler must be 'torch' or 'bulk', got {dropout_sampler!r}")
    check_target_modules(model, target_modules)
    conv1d = any(type(m).__name__ == "Conv1D" for m in target_layers(model, target_modules))  # weight (in, out)
    options = dict(options or {})
    loftq = options.get("init_lora_weights") == "loftq" and any(
        type(m).__name__ == "Linear4bit" for m in model.modules())
    if loftq:
        import torch

        if not torch.cuda.is_available():
            raise ConfigError("lora_options: LoftQ initialisation needs CUDA (peft computes it on the GPU)")
        iterations = (options.pop("loftq_config", None) or {}).get("loftq_iter", 1)
        options.pop("init_lora_weights")
    net = get_peft_model(model, lora_config(target_modules, lora_r, lora_alpha, lora_dropout, fan_in_fan_out=conv1d,
                                           trainable_token_indices=trainable_token_indices, options=options))
    if loftq:
        from peft import replace_lora_weights_loftq

        for _ in range(iterations):
            replace_lora_weights_loftq(net)
    if dropout_sampler == "bulk":
        from bashkir_peft.models.dropout import use_bulk_dropout

        use_bulk_dropout(net)
    return net


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

"""LoRA variants as options (issue 30): a training run's ``lora_options`` are keyword arguments
of peft's ``LoraConfig``, validated against peft's own configuration, so DoRA, rsLoRA, the
PiSSA / OLoRA / orthogonal / LoftQ initialisations, ``layers_to_transform`` and the rest are
grid settings, not code per variant:

    train: {lora_options: {use_dora: true, use_rslora: true, init_lora_weights: pissa,
                           layers_to_transform: [0, 1]}}

What each key means is peft's documentation of ``LoraConfig`` (peft 0.21): ``use_dora`` (Liu
et al. 2024, "DoRA: Weight-Decomposed Low-Rank Adaptation"), ``use_rslora`` (scale
``lora_alpha / sqrt(r)``; Kalajdzievski 2023, "A Rank Stabilization Scaling Factor for
Fine-Tuning with LoRA"), ``init_lora_weights`` (``pissa``: Meng et al. 2024; ``olora``:
Büyükakyüz 2024; ``loftq`` with ``loftq_config``: Li et al. 2023, "LoftQ"), ``layers_to_transform``
(the layer indices that get adapters).

Keys this project sets from its own parameters (rank, alpha, dropout, target modules ...) are
refused here: they have their own ``TrainParams`` field.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import typing

OWN_KEYS: dict[str, str] = {
    "r": "lora_r", "lora_alpha": "lora_alpha", "lora_dropout": "lora_dropout", "target_modules": "target_modules",
    "fan_in_fan_out": "set from the layer type", "trainable_token_indices": "tokenizer (adapted vocabulary)",
    "bias": "fixed: none", "task_type": "fixed: CAUSAL_LM", "modules_to_save": "not supported",
    "peft_type": "fixed: LORA", "inference_mode": "set by peft", "base_model_name_or_path": "set by peft",
    "revision": "set by peft",
}
"""peft ``LoraConfig`` keys ``lora_options`` may not set, with the parameter that sets them."""

NEEDS_DATA_PASS = ("eva", "corda")
"""Initialisations computed from activations over training data (peft's
``initialize_lora_eva_weights`` / CorDA preprocessing), which this trainer does not run."""

_PISSA_NITER = re.compile(r"^pissa_niter_\d+$")


def _literal_values(annotation) -> tuple | None:
    """The allowed strings of a ``Literal`` inside an annotation (``None``: no Literal)."""
    if typing.get_origin(annotation) is typing.Literal:
        return typing.get_args(annotation)
    found = [v for a in typing.get_args(annotation) for v in (_literal_values(a) or ())]
    return tuple(found) or None


def check_lora_options(options: dict, method: str) -> dict:
    """Validate ``options`` against peft's ``LoraConfig`` (keys, literal values, and peft's own
    ``__post_init__`` checks) and this trainer's limits.

    Args:
        options: ``LoraConfig`` keyword arguments (JSON values; ``loftq_config`` a mapping of
            ``LoftQConfig`` fields).
        method: the run's method (``lora`` or ``qlora``; LoftQ is QLoRA's initialisation).

    Returns:
        ``options`` unchanged.

    Raises:
        ValueError: one line naming the key: unknown to peft (with the nearest name), one this
            project sets itself, a value peft rejects, a data-driven initialisation, LoftQ
            outside QLoRA.
    """
    from peft import LoftQConfig, LoraConfig

    fields = {f.name for f in dataclasses.fields(LoraConfig)}
    for key in options:
        if key in OWN_KEYS:
            raise ValueError(f"lora_options.{key}: set by this project ({OWN_KEYS[key]}), not in lora_options")
        if key not in fields:
            near = difflib.get_close_matches(key, sorted(fields), n=1)
            raise ValueError(f"lora_options.{key}: not a field of peft's LoraConfig"
                             + (f" (did you mean {near[0]!r}?)" if near else ""))
    hints = typing.get_type_hints(LoraConfig)
    for key, value in options.items():
        allowed = _literal_values(hints.get(key))
        if isinstance(value, str) and allowed is not None and value not in allowed \
                and not (key == "init_lora_weights" and _PISSA_NITER.match(value)):
            raise ValueError(f"lora_options.{key}: {value!r} is not one of peft's values {sorted(allowed)}")
    init = options.get("init_lora_weights")
    if init in NEEDS_DATA_PASS:
        raise ValueError(f"lora_options.init_lora_weights: {init!r} is computed from a pass over training data, "
                         "which this trainer does not run")
    if init == "loftq" and method != "qlora":
        raise ValueError("lora_options.init_lora_weights: 'loftq' is QLoRA's initialisation (method qlora)")
    kwargs = dict(options)
    if isinstance(kwargs.get("loftq_config"), dict):
        try:
            kwargs["loftq_config"] = LoftQConfig(**kwargs["loftq_config"])
        except TypeError as err:
            raise ValueError(f"lora_options.loftq_config: {err}") from None
    try:
        LoraConfig(r=8, target_modules=["q_proj"], task_type="CAUSAL_LM", **kwargs)
    except (TypeError, ValueError, ImportError) as err:
        raise ValueError(f"lora_options: peft's LoraConfig refuses {options}: {err}") from None
    return options


def changes_base_weights(options: dict | None) -> bool:
    """Whether the variant's initialisation rewrites the base weights (PiSSA, OLoRA: the base
    keeps ``W - B A``), so that its adapter is saved converted to a plain LoRA adapter of rank
    ``2r`` that applies to the original base model (peft's
    ``save_pretrained(..., path_initial_model_for_weight_conversion=...)``)."""
    init = (options or {}).get("init_lora_weights")
    return isinstance(init, str) and (init in ("pissa", "olora") or bool(_PISSA_NITER.match(init)))


def lora_variant_label(options: dict | None) -> str:
    """A short name of the variant for labels: the set options in key order, e.g.
    ``"use_dora, use_rslora, init_lora_weights=pissa"`` (``""`` for plain LoRA)."""
    if not options:
        return ""
    return ", ".join(k if v is True else f"{k}={v}" for k, v in options.items())

"""QLoRA preparation of a 4-bit (bitsandbytes NF4) model, and its full-precision twin.

QLoRA (Dettmers et al. 2023, sec. 3): frozen NF4 base weights with double quantization,
computed in a 16/32-bit compute dtype, LoRA adapters in full precision; the model is
prepared with ``peft.prepare_model_for_kbit_training`` (layer norms and other small
parameters upcast to float32, base frozen, input gradients for checkpointing).
"""

from __future__ import annotations

import copy


def _linear4bit_class():
    import bitsandbytes as bnb

    return bnb.nn.Linear4bit


def keep_cpu_layout_trainable(model) -> int:
    """Stop bitsandbytes from repacking 4-bit weights for CPU inference. Returns layers touched.

    Why (bitsandbytes 0.50, ``Linear4bit.forward``): on CPUs with AVX512-BF16, a forward
    pass in eval mode without gradients (the Trainer's evaluation) converts the weight, in
    place and permanently, to an inference-only packed layout with bfloat16 block scales.
    Training after that evaluation then runs the bf16 ``gemv_4bit`` kernel, which has no
    autograd: gradients no longer flow through the base layers to the adapters below them,
    and the dequantized weights differ (bf16 scales). The per-layer flag
    ``support_avx512bf16_for_cpu`` gates that conversion; turning it off keeps the one
    trainable layout at every point of a run. A no-op on GPU and on other CPUs.
    """
    n = 0
    for module in model.modules():
        if isinstance(module, _linear4bit_class()):
            module.support_avx512bf16_for_cpu = False
            n += 1
    return n


def prepare_qlora(model, gradient_checkpointing: bool = False):
    """Prepare a 4-bit model for LoRA training (k-bit preparation; before ``apply_lora``).

    Args:
        model: a model loaded with ``load_model(..., "qlora")``.
        gradient_checkpointing: enable activation checkpointing (non-reentrant, so LoRA
            weights get gradients without making the embeddings' output require grad).

    Returns:
        The same model, prepared in place.
    """
    from peft import prepare_model_for_kbit_training

    keep_cpu_layout_trainable(model)
    # Checkpointing itself is switched on by the Trainer (activation_checkpointing, non-reentrant),
    # so no input-grad hook is needed here; enabling it twice would only repeat that work.
    model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    if gradient_checkpointing:
        model.config.use_cache = False
    return model


def dequantized_copy(model):
    """A deep copy of ``model`` whose 4-bit layers are plain ``nn.Linear`` layers holding
    exactly the dequantized weights (``bitsandbytes.functional.dequantize_4bit``), in the
    layers' compute dtype. LoRA wrappers, adapters and everything else are copied as they are.

    Used as the full-precision reference in the gradient tests.
    """
    import bitsandbytes as bnb
    import torch

    twin = copy.deepcopy(model)
    linear4bit = _linear4bit_class()
    for parent in list(twin.modules()):
        for name, child in list(parent.named_children()):
            if not isinstance(child, linear4bit):
                continue
            w = child.weight
            dtype = child.compute_dtype or torch.float32
            weight = bnb.functional.dequantize_4bit(w.data, w.quant_state).to(dtype)
            layer = torch.nn.Linear(child.in_features, child.out_features, bias=child.bias is not None,
                                    device=weight.device, dtype=dtype)
            with torch.no_grad():
                layer.weight.copy_(weight)
                if child.bias is not None:
                    layer.bias.copy_(child.bias.to(dtype))
            layer.weight.requires_grad_(False)
            if child.bias is not None:
                layer.bias.requires_grad_(child.bias.requires_grad)
            layer.train(child.training)
            setattr(parent, name, layer)
    return twin


def merge_qlora(base, adapter_dir, dtype: str):
    """Merge a QLoRA adapter into its 4-bit base: dequantize to float32, merge, cast once.

    The NF4 base is dequantized to float32 (transformers' ``dequantize``; exact: NF4 code x
    block scale), the rest of the model (norms, embeddings and head, upcast by
    ``prepare_model_for_kbit_training``) is float32 as well, the float32 adapter update
    ``(lora_alpha / lora_r) B A`` is merged in float32, and the merged model is cast to
    ``dtype`` once. Merging in bf16 instead mixes bf16 and float32 layers and rounds away
    the part of the update below bf16's resolution (8 significant bits).

    Args:
        base: the 4-bit base model (``load_model(..., "qlora")``), prepared as in training.
        adapter_dir: the adapter folder (a run's ``final/``).
        dtype: dtype of the merged model (``float32``, ``bfloat16``, ``float16``).

    Returns:
        The merged ``transformers`` model (no LoRA layers), in ``dtype``.
    """
    import torch
    from peft import PeftModel

    base = base.dequantize(dtype=torch.float32).to(torch.float32)
    merged = PeftModel.from_pretrained(base, adapter_dir).merge_and_unload()
    return merged.to(getattr(torch, dtype))

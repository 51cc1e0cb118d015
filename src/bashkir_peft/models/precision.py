"""Mixed precision done one way for every method: fp32 master weights, low-precision compute.

A low-precision ``dtype`` (bfloat16, float16) is a *compute* dtype. What is stored and
updated stays in float32 unless the user asks for pure low-precision training:

- ``full``: weights (the master copy) and AdamW states in float32; forward and backward
  under autocast to ``dtype`` (the Trainer's ``bf16`` / ``fp16``). Pure bf16 weights would
  lose updates: bf16 keeps 8 significant bits, so a weight w changes only when
  ``|update| > ~2**-8 * |w|``; an update of 5e-5 x a gradient vanishes against weights of
  order 1e-2. Source: Micikevicius et al., "Mixed Precision Training" (ICLR 2018), sec. 3.1.
- ``lora``: the frozen base in ``dtype`` (half the memory), adapters in float32 (peft's
  ``autocast_adapter_dtype``; checked here), compute under autocast.
- ``qlora``: the frozen base in 4-bit NF4 with compute dtype ``dtype``; adapters, norms and
  the head in float32 (``prepare_model_for_kbit_training``); compute under autocast.
  Dettmers et al. 2023, sec. 3.

``pure=True`` (full and lora only) trains weights and optimizer states in ``dtype`` without
autocast; the record says so.
"""

from __future__ import annotations

from dataclasses import dataclass

from bashkir_peft.errors import ConfigError
from bashkir_peft.models.device import Placement

DTYPES = ("float32", "bfloat16", "float16")


@dataclass(frozen=True)
class Precision:
    """The dtypes of one training run.

    Attributes:
        compute_dtype: the requested compute dtype (``float32``, ``bfloat16``, ``float16``).
        load_dtype: dtype the (non-4-bit) weights are loaded in.
        master_dtype: dtype of the trainable weights and of the optimizer states.
        autocast: dtype of the Trainer's autocast (``None``: none).
        pure: pure low-precision training was asked for.
    """

    compute_dtype: str
    load_dtype: str
    master_dtype: str
    autocast: str | None
    pure: bool

    def record(self) -> dict:
        """The ``precision`` field of the training record."""
        return {"compute_dtype": self.compute_dtype, "load_dtype": self.load_dtype,
                "master_dtype": self.master_dtype, "autocast": self.autocast, "pure": self.pure}


def bf16_supported(placement: Placement) -> bool:
    """bfloat16 compute on this device: CUDA ``torch.cuda.is_bf16_supported()`` (Ampere and
    newer; a ``planned`` GPU, one the planner assumes, has it); the CPU (autocast, emulated where the CPU lacks AVX512-BF16); MPS: assumed."""
    import torch

    if placement.device == "cuda":
        return placement.how == "planned" or bool(torch.cuda.is_bf16_supported())
    return True


def plan_precision(method: str, dtype: str, placement: Placement, pure: bool = False) -> Precision:
    """The dtypes of a run (module docstring).

    Args:
        method: ``full``, ``lora`` or ``qlora``.
        dtype: compute dtype, one of :data:`DTYPES`.
        placement: where the run trains (:func:`bashkir_peft.models.device.choose_device`).
        pure: train in ``dtype`` without a float32 master copy (explicit request only).

    Raises:
        ConfigError: unknown dtype; bfloat16 on a GPU without it; float16 autocast off CUDA
            (the Trainer's fp16 needs a CUDA grad scaler); ``pure`` for QLoRA (its adapters
            train in float32 by construction).
    """
    if dtype not in DTYPES:
        raise ConfigError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    if dtype == "bfloat16" and not bf16_supported(placement):
        raise ConfigError(f"dtype bfloat16: {placement.name} has no bfloat16 support; use float16 or float32")
    if pure and method == "qlora":
        raise ConfigError("pure low-precision training applies to full and lora; QLoRA adapters train in float32")
    if dtype == "float32":
        return Precision(dtype, "float32", "float32", None, pure)
    if pure:
        return Precision(dtype, dtype, dtype, None, True)
    if dtype == "float16" and placement.device != "cuda":
        raise ConfigError(f"dtype float16 mixed precision needs CUDA (the Trainer's fp16 grad scaler); "
                          f"this run is on {placement.device}: use bfloat16 or float32")
    load = "float32" if method == "full" else dtype
    return Precision(dtype, load, "float32", dtype, False)


def cast_trainable(model, dtype: str) -> int:
    """Cast every trainable parameter of ``model`` to ``dtype`` in place (LoRA adapters on a
    low-precision base: float32 master weights). Returns the number of tensors cast."""
    import torch

    target = getattr(torch, dtype)
    n = 0
    for p in model.parameters():
        if p.requires_grad and p.dtype != target:
            p.data = p.data.to(target)
            n += 1
    return n

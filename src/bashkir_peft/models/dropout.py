"""LoRA dropout with masks from bulk random bits: the distribution of ``nn.Dropout``, without
torch's element-by-element Bernoulli sampling on the CPU.

Dropout (Srivastava et al., JMLR 2014, "inverted" form as in ``torch.nn.Dropout``): each input
element is kept with probability 1 - p and scaled by 1 / (1 - p), else set to 0; at evaluation
the input passes unchanged. peft puts an ``nn.Dropout`` in front of every LoRA path
(``lora_B(lora_A(dropout(x)))``, Hu et al. 2021). On a CPU, torch draws its masks with
``aten::bernoulli_``, one double-precision uniform from mt19937 per element (the vectorized
MKL path is taken on Intel CPUs only): 15 % of a LoRA step of SmolLM2-135M on the 2-core AMD
EPYC of benchmarks/RESULTS.md ("Training throughput").

:class:`BulkDropout` draws the mask as 32 random bits per element from numpy's SFC64
generator in one call (``BitGenerator.random_raw``, half a random 64-bit word per element)
and keeps an element when its bits, read as a signed 32-bit integer, reach the threshold
``-2**31 + round(p * 2**32)``: the keep probability is ``1 - round(p * 2**32) / 2**32``, p to
within 2**-33 (torch's float32 ``rand_like(x) < p`` resolves p to 2**-24). The generator's
seed is one draw from torch's default generator per call, so ``torch.manual_seed`` (the
Trainer's ``seed``), checkpoint resumption (which restores torch's RNG state) and
gradient-checkpoint recomputation (which replays it) give the same masks. Other devices use
``torch.nn.functional.dropout`` (vectorized there). SFC64: Chris Doty-Humphrey's Small Fast
Chaotic PRNG, as shipped by numpy (numpy.random.SFC64 docs; passes PractRand).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional

_WORD = 2**32
_INT32_MIN = -(2**31)
_SEED_HIGH = 2**63 - 1


def keep_threshold(p: float) -> int:
    """The signed 32-bit threshold at or above which an element is kept (probability
    ``1 - round(p * 2**32) / 2**32``).

    Raises:
        ValueError: p outside [0, 1).
    """
    if not 0 <= p < 1:
        raise ValueError(f"dropout probability must be in [0, 1), got {p}")
    return _INT32_MIN + round(p * _WORD)


def bulk_dropout(x: torch.Tensor, p: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Inverted dropout of a CPU tensor with a mask from bulk random bits (module docstring).

    Args:
        x: a tensor of any shape and floating dtype, on the CPU.
        p: drop probability in [0, 1); 0 returns ``x`` itself (nothing computed).
        generator: the ``torch.Generator`` that seeds the mask; ``None`` = torch's default.

    Returns:
        A tensor of ``x``'s shape and dtype: ``x / (1 - p)`` where kept, 0 elsewhere;
        differentiable in ``x`` (the gradient is the same mask and scale).

    Raises:
        ValueError: p outside [0, 1).
    """
    threshold = keep_threshold(p)
    if p == 0:
        return x
    seed = int(torch.randint(_SEED_HIGH, (), generator=generator))
    n = x.numel()
    bits = np.random.SFC64(seed).random_raw((n + 1) // 2).view(np.int32)[:n]
    keep = torch.from_numpy(bits).view(x.shape) >= threshold
    return torch.where(keep, x * (1.0 / (1.0 - p)), 0.0)


class BulkDropout(nn.Dropout):
    """``nn.Dropout`` (same ``p``, same train/eval behaviour) whose CPU masks come from
    :func:`bulk_dropout`; on other devices ``torch.nn.functional.dropout``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        if x.device.type != "cpu":
            return functional.dropout(x, self.p, True, self.inplace)
        return bulk_dropout(x, self.p)


def use_bulk_dropout(model: nn.Module) -> int:
    """Replace every ``nn.Dropout`` of peft's LoRA layers (the ``lora_dropout`` ModuleDict of
    each ``LoraLayer``) by a :class:`BulkDropout` of the same p, in place. Layers with p = 0
    hold ``nn.Identity`` (peft) and stay as they are: nothing is computed for them.

    Returns:
        How many dropout modules were replaced.
    """
    replaced = 0
    for module in model.modules():
        dropouts = getattr(module, "lora_dropout", None)
        if not isinstance(dropouts, nn.ModuleDict):
            continue
        for name, layer in dropouts.items():
            if type(layer) is nn.Dropout:
                dropouts[name] = BulkDropout(layer.p)
                replaced += 1
    return replaced

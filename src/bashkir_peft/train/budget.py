"""A training budget in bytes of text, and validation loss in bits per byte.

Tokens do not compare across tokenizers: a tokenizer with 16,000 new Bashkir tokens packs
~3.4x the text of SmolLM2's into a token. A budget of ``train_bytes`` UTF-8 bytes of
training text gives every run the same text whatever its tokenizer, and evaluations every
``eval_every_bytes`` put the learning curves of all runs on one axis (bytes of training
text seen). Validation loss per token becomes bits per byte the way lm-evaluation-harness
defines it: summed negative log-likelihood over the text's UTF-8 bytes, in bits.
"""

from __future__ import annotations

import math

from bashkir_peft.errors import ConfigError
from bashkir_peft.records import Budget


def tokens_per_step(params, processes: int) -> int:
    """Tokens of one optimizer step: processes x per-device batch x accumulation x block_size."""
    return processes * params.per_device_train_batch_size * params.gradient_accumulation_steps * params.block_size


def resolve_budget(params, train: dict, processes: int) -> Budget:
    """The optimizer steps and evaluation interval of a run from its byte settings.

    Args:
        params: :class:`~bashkir_peft.config.train.TrainParams` (``train_bytes``,
            ``eval_every_bytes``, ``max_steps``, ``eval_steps`` and the batch shape).
        train: the packed training split's stats, with ``tokens`` (document framing
            included) and ``bytes`` (UTF-8 bytes of its documents' text).
        processes: training processes (data-parallel ranks).

    Returns:
        The :class:`~bashkir_peft.records.Budget`: ``bytes_per_token`` = bytes / tokens of the training
        split [bytes/token]; ``bytes_per_step`` = that x :func:`tokens_per_step`;
        ``max_steps`` = ``ceil(train_bytes / bytes_per_step)`` when ``train_bytes`` is set
        (else ``params.max_steps``); ``eval_steps`` = ``round(eval_every_bytes /
        bytes_per_step)``, at least 1, when ``eval_every_bytes`` is set (else
        ``params.eval_steps``).

    Raises:
        ConfigError: a byte setting on a training split without bytes or tokens.
    """
    if not train.get("tokens") or not train.get("bytes"):
        if params.train_bytes is not None or params.eval_every_bytes is not None:
            raise ConfigError("train_bytes / eval_every_bytes need a training split with text")
        return Budget(max_steps=params.max_steps, eval_steps=params.eval_steps)
    bytes_per_token = train["bytes"] / train["tokens"]
    bytes_per_step = bytes_per_token * tokens_per_step(params, processes)
    max_steps = params.max_steps if params.train_bytes is None else math.ceil(params.train_bytes / bytes_per_step)
    eval_steps = (params.eval_steps if params.eval_every_bytes is None
                  else max(1, round(params.eval_every_bytes / bytes_per_step)))
    return Budget(bytes_per_token=bytes_per_token, bytes_per_step=bytes_per_step, train_bytes=params.train_bytes,
                  eval_every_bytes=params.eval_every_bytes, max_steps=max_steps, eval_steps=eval_steps)


def validation_bits_per_byte(eval_loss: float, validation: dict) -> float | None:
    """Validation loss in bits per byte: ``eval_loss x tokens / (bytes x ln 2)``.

    Args:
        eval_loss: mean negative log-likelihood per predicted token [nats] (the Trainer's
            ``eval_loss`` on the packed validation blocks).
        validation: the packed validation split's stats (``tokens``, framing included, and
            ``bytes`` of its documents' text).

    Returns:
        Bits per byte (lm-evaluation-harness: summed NLL / UTF-8 bytes / ln 2), with the
        summed NLL estimated as the mean loss x the split's tokens (the blocks drop the tail
        that does not fill a block, and the first token of a block is not predicted: both
        change the estimate by under 1 % at block_size 128); ``None`` without bytes.
    """
    if not validation.get("bytes") or not validation.get("tokens"):
        return None
    return eval_loss * validation["tokens"] / (validation["bytes"] * math.log(2))

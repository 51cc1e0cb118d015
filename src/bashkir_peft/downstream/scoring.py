"""Multiple-choice scoring by log-likelihood, as lm-evaluation-harness scores it.

For a request ``(context, continuation)`` (lm-evaluation-harness 0.4, ``TemplateLM.loglikelihood``
and ``_encode_pair``, causal models, no special tokens added): trailing spaces of the context
move to the continuation; the continuation's tokens are those of ``tokenize(context +
continuation)`` after the first ``len(tokenize(context))``; an empty context is the prefix token
(BOS, else EOS). The model reads ``(context + continuation)[-(max_length + 1):][:-1]`` and the
log-probabilities of the continuation's tokens are summed (natural log).

The choice of a sentence is the label of highest log-likelihood (``acc``) or of highest
log-likelihood per character of the label string (``acc_norm``: lm-evaluation-harness divides
by ``len(choice)`` in characters, without the leading space), which removes plain
log-likelihood's preference for short labels.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bashkir_peft.errors import ConfigError
from bashkir_peft.models.loading import prefix_token_id


def encode_request(tokenizer, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """Token ids ``(context, continuation)`` of one request (see the module docstring).

    Raises:
        ConfigError: the continuation is empty or adds no token.
    """
    if not continuation:
        raise ConfigError("an empty continuation cannot be scored")
    if context == "":
        cont = tokenizer(continuation, add_special_tokens=False)["input_ids"]
        prefix = prefix_token_id(tokenizer)
        return ([prefix], cont) if cont[0] != prefix else (cont[:1], cont[1:])
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces:
        context, continuation = context[:-n_spaces], context[-n_spaces:] + continuation
    whole = tokenizer(context + continuation, add_special_tokens=False)["input_ids"]
    ctx = tokenizer(context, add_special_tokens=False)["input_ids"]
    cont = whole[len(ctx):]
    if not cont:
        raise ConfigError(f"the continuation {continuation!r} adds no token after its context")
    return ctx, cont


def loglikelihoods(model, tokenizer, requests: Sequence[tuple[str, str]], *, max_length: int,
                   batch_size: int = 8, progress: bool = False) -> np.ndarray:
    """Log-likelihood (nats, summed over the continuation's tokens) of each request.

    Args:
        model, tokenizer: a causal LM (or peft model, in eval mode) and its tokenizer.
        requests: ``(context, continuation)`` pairs.
        max_length: model input length; longer inputs lose their leftmost context tokens
            (as lm-evaluation-harness truncates).
        batch_size: sequences per forward pass (right-padded; sorted by length).

    Returns:
        float64 array of ``len(requests)`` log-likelihoods (<= 0).
    """
    import torch
    from tqdm.auto import tqdm

    encoded = [encode_request(tokenizer, c, x) for c, x in requests]
    inputs = [(ctx + cont)[-(max_length + 1):][:-1] for ctx, cont in encoded]
    order = sorted(range(len(inputs)), key=lambda i: -len(inputs[i]))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else prefix_token_id(tokenizer)
    device = next(model.parameters()).device
    out = np.zeros(len(inputs))
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    with torch.inference_mode():
        for batch in tqdm(batches, disable=not progress, desc="label scoring"):
            width = len(inputs[batch[0]])
            ids = torch.full((len(batch), width), pad, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, i in enumerate(batch):
                ids[row, :len(inputs[i])] = torch.tensor(inputs[i])
                mask[row, :len(inputs[i])] = 1
            # logits only where a continuation token is predicted: the last m positions of each
            # row (transformers' logits_to_keep, 2-D: the same count for every row)
            m = max(len(encoded[i][1]) for i in batch)
            keep = torch.tensor([[max(len(inputs[i]) - m + j, 0) for j in range(m)] for i in batch])
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device),
                           logits_to_keep=keep.to(device)).logits
            for row, i in enumerate(batch):
                cont = encoded[i][1]
                logp = torch.log_softmax(logits[row, m - len(cont):].float(), dim=-1)
                out[i] = float(logp.gather(1, torch.tensor(cont, device=device)[:, None]).sum())
    return out


def choose(lls: np.ndarray, choices: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """The chosen choice index of each item, by log-likelihood and per character.

    Args:
        lls: ``(items, choices)`` log-likelihoods.
        choices: the choice strings as scored, without the leading space (their
            character lengths normalize ``acc_norm``).

    Returns:
        ``(pred, pred_norm)``: int arrays of length ``items`` (``argmax``: the first of
        tied choices, as numpy and lm-evaluation-harness break ties).

    Raises:
        ConfigError: ``lls`` is not ``(items, len(choices))``.
    """
    lls = np.asarray(lls, dtype=float)
    if lls.ndim != 2 or lls.shape[1] != len(choices):
        raise ConfigError(f"log-likelihoods of shape {lls.shape}, expected (items, {len(choices)})")
    lengths = np.array([float(len(c)) for c in choices])
    return lls.argmax(axis=1), (lls / lengths).argmax(axis=1)

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

    Consecutive requests with the same context (the choices of one item) that fit in
    ``max_length`` share one forward pass over the context: its key/value cache is repeated
    for the continuations, which are scored in one batch (the same numbers as scoring each
    ``context + continuation`` whole, up to float rounding, for a fraction of the compute).
    The others are scored whole, in right-padded batches of ``batch_size`` sorted by length.

    Args:
        model, tokenizer: a causal LM (or peft model, in eval mode) and its tokenizer.
        requests: ``(context, continuation)`` pairs.
        max_length: model input length; longer inputs lose their leftmost context tokens
            (as lm-evaluation-harness truncates).
        batch_size: sequences per forward pass of the requests scored whole.

    Returns:
        float64 array of ``len(requests)`` log-likelihoods (<= 0).
    """
    import torch
    from tqdm.auto import tqdm

    encoded = [encode_request(tokenizer, c, x) for c, x in requests]
    out = np.zeros(len(encoded))
    groups, whole, start = [], [], 0
    for end in range(1, len(encoded) + 1):
        if end < len(encoded) and encoded[end][0] == encoded[start][0]:
            continue
        group = list(range(start, end))
        if all(len(encoded[i][0]) + len(encoded[i][1]) <= max_length + 1 for i in group):
            groups.append(group)
        else:
            whole.extend(group)
        start = end
    with torch.inference_mode():
        for group in tqdm(groups, disable=not progress, desc="label scoring"):
            lls = _shared_context(model, encoded[group[0]][0], [encoded[i][1] for i in group])
            out[group] = lls
        _whole(model, tokenizer, encoded, whole, out, max_length, batch_size)
    return out


def _log_probs(logits, targets: list[int]) -> float:
    import torch

    logp = torch.log_softmax(logits.float(), dim=-1)
    return float(logp.gather(1, torch.tensor(targets, device=logits.device)[:, None]).sum())


def _shared_context(model, context: list[int], continuations: list[list[int]]) -> list[float]:
    """Log-likelihoods of ``continuations`` after one ``context`` (one pass over the context,
    its cache repeated for the continuations' tokens after their first)."""
    import torch

    device = next(model.parameters()).device
    first = model(input_ids=torch.tensor([context], device=device), use_cache=True, logits_to_keep=1)
    lls = [_log_probs(first.logits[0, -1:], cont[:1]) for cont in continuations]
    width = max(len(c) for c in continuations) - 1
    if width == 0:
        return lls
    n = len(continuations)
    ids = torch.zeros((n, width), dtype=torch.long)
    mask = torch.ones((n, len(context) + width), dtype=torch.long)
    for row, cont in enumerate(continuations):
        ids[row, :len(cont) - 1] = torch.tensor(cont[:-1], dtype=torch.long)
        mask[row, len(context) + len(cont) - 1:] = 0
    cache = first.past_key_values
    cache.batch_repeat_interleave(n)
    logits = model(input_ids=ids.to(device), attention_mask=mask.to(device), past_key_values=cache,
                   use_cache=True).logits
    for row, cont in enumerate(continuations):
        if len(cont) > 1:
            lls[row] += _log_probs(logits[row, :len(cont) - 1], cont[1:])
    return lls


def _whole(model, tokenizer, encoded, indices: list[int], out: np.ndarray, max_length: int,
           batch_size: int) -> None:
    """Score ``encoded[i]`` for ``i`` in ``indices`` whole (left-truncated to ``max_length``)
    into ``out[i]``."""
    import torch

    inputs = {i: (encoded[i][0] + encoded[i][1])[-(max_length + 1):][:-1] for i in indices}
    order = sorted(indices, key=lambda i: -len(inputs[i]))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else prefix_token_id(tokenizer)
    device = next(model.parameters()).device
    for b in range(0, len(order), batch_size):
        batch = order[b:b + batch_size]
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
            out[i] = _log_probs(logits[row, m - len(cont):], cont)


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

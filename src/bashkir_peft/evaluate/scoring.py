"""Token negative log-likelihoods of a causal LM over scoring windows, in bounded memory.

A *window* is a token sequence ``tokens`` (length n + 1) and a count ``n_scored``: the
model reads ``tokens[:-1]`` and the next-token targets ``tokens[1:]`` of the last
``n_scored`` positions are scored. Both evaluation protocols reduce to windows:

- :func:`rolling_windows`: one document, rolling windows of a fixed ``max_length`` with a
  prefix token, exactly as lm-evaluation-harness ``loglikelihood_rolling`` builds them
  (``lm_eval.utils.get_rolling_token_windows`` + ``make_disjoint_window`` and the
  ``(context + continuation)[-(max_length + 1):]`` truncation of ``_loglikelihood_tokens``).
- :func:`block_windows`: packed training blocks (``bashkir_peft.data.packing``); every target
  of a block after its first token is scored, as in the HF causal-LM loss.

:func:`score_windows` runs the decoder on batches of windows (padding never scored; left
or right padding give the same numbers because position ids are passed explicitly) and
computes the loss from the final hidden states of the scored positions only, in chunks
of ``chunk_tokens`` positions: full-vocabulary logits are never held for all positions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from bashkir_peft.models.head import output_layer


@dataclass(frozen=True)
class Window:
    """A scoring window.

    Attributes:
        tokens: token ids (1-D int64 array, often a view into the document's ids); the
            model input is ``tokens[:-1]`` (length <= max_length).
        n_scored: how many of the last targets ``tokens[-n_scored:]`` are scored (>= 1).
        doc: index of the document the scored targets belong to (-1: several, as in
            packed blocks).
    """

    tokens: np.ndarray
    n_scored: int
    doc: int = -1


def rolling_windows(token_ids: Sequence[int], prefix_token_id: int, max_length: int,
                    stride: int | None = None, doc: int = -1) -> list[Window]:
    """Rolling windows over one document, as lm-evaluation-harness ``loglikelihood_rolling``.

    The first window reads ``[prefix] + token_ids[:max_length - 1]`` and scores its first
    ``min(max_length, len(token_ids))`` tokens; each next window scores the following
    ``stride`` tokens (the last one fewer) and reads the ``max_length`` tokens before each
    target, so later windows condition on ``max_length - stride`` tokens of context
    (with ``stride = max_length`` the default, as lm_eval: windows do not overlap). Every
    token of ``token_ids`` is scored exactly once.

    Args:
        token_ids: the document's tokens, without special tokens.
        prefix_token_id: the token the first window conditions on (BOS, or EOS where the
            tokenizer has no BOS; lm_eval ``HFLM.prefix_token_id``).
        max_length: model input length of every window (> 0).
        stride: new tokens scored per window after the first, in [1, max_length];
            ``None`` = ``max_length``. lm_eval's ``context_len`` is ``max_length - stride + 1``.
        doc: document index stored in the windows.

    Returns:
        Windows in document order; ``[]`` for an empty document.

    Raises:
        ValueError: ``max_length`` < 1 or ``stride`` out of range.
    """
    if max_length < 1:
        raise ValueError(f"max_length must be >= 1, got {max_length}")
    pred_len = max_length if stride is None else stride
    if not 1 <= pred_len <= max_length:
        raise ValueError(f"stride must be in [1, max_length={max_length}], got {stride}")
    seq = np.empty(len(token_ids) + 1, dtype=np.int64)  # seq[i + 1] == token_ids[i]
    seq[0] = prefix_token_id
    seq[1:] = token_ids
    n = len(seq) - 1
    if n == 0:
        return []
    first = min(max_length, n)
    windows = [Window(seq[: first + 1], first, doc)]
    predicted = first
    while predicted < n:
        k = min(n - predicted, pred_len)
        end = predicted + k  # targets token_ids[end - k:end] == seq[end - k + 1:end + 1]
        windows.append(Window(seq[max(0, end - max_length) : end + 1], k, doc))
        predicted = end
    return windows


def block_windows(blocks: np.ndarray) -> list[Window]:
    """Windows of packed blocks (n_blocks, block_size): all targets after the first token.

    Returns:
        One window per block with ``n_scored = block_size - 1``.
    """
    blocks = np.asarray(blocks, dtype=np.int64)
    return [Window(row, len(row) - 1) for row in blocks]


def _parts(model):
    """(decoder, lm_head, softcap) of a causal LM or a peft model wrapping one."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    decoder = base.get_decoder()
    if decoder is None or decoder is base:
        raise ValueError(f"{type(base).__name__}: cannot separate the decoder from the LM head")
    return decoder, *output_layer(model)


def _batch_inputs(batch: list[Window], pad_id: int, padding_side: str, device):
    import torch

    width = max(len(w.tokens) - 1 for w in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    pos = torch.zeros((len(batch), width), dtype=torch.long)
    rows, cols, targets = [], [], []
    for i, w in enumerate(batch):
        n_in = len(w.tokens) - 1
        off = width - n_in if padding_side == "left" else 0
        ids[i, off : off + n_in] = torch.as_tensor(np.asarray(w.tokens[:-1], dtype=np.int64))
        mask[i, off : off + n_in] = 1
        pos[i, off : off + n_in] = torch.arange(n_in)
        cols.append(torch.arange(off + n_in - w.n_scored, off + n_in))
        rows.append(torch.full((w.n_scored,), i, dtype=torch.long))
        targets.append(torch.as_tensor(np.asarray(w.tokens[-w.n_scored :], dtype=np.int64)))
    return (ids.to(device), mask.to(device), pos.to(device),
            torch.cat(rows).to(device), torch.cat(cols).to(device), torch.cat(targets).to(device))


def score_windows(model, windows: Sequence[Window], *, batch_size: int = 8, pad_token_id: int = 0,
                  padding_side: str = "right", chunk_tokens: int = 1024, progress: bool = False) -> list[np.ndarray]:
    """Per-token NLL (natural log, nats) of the scored targets of each window.

    Windows are sorted by length (longest first) and batched; each batch runs the
    decoder once with an attention mask and explicit position ids (0 .. n-1 per window,
    whatever the padding side), then the LM head and ``cross_entropy`` are applied to
    the scored positions only, ``chunk_tokens`` positions at a time, in float32.
    Peak logits memory is ``chunk_tokens x vocab_size`` floats.

    Args:
        model: a causal LM (transformers) or a ``peft.PeftModel`` around one, in eval mode.
        windows: the windows to score.
        batch_size: windows per forward pass (>= 1).
        pad_token_id: id written into padded positions (never scored, masked out).
        padding_side: ``"right"`` or ``"left"``.
        chunk_tokens: positions per LM-head / log-softmax chunk (>= 1).
        progress: show a tqdm bar.

    Returns:
        One float64 array per window (same order as ``windows``) of length ``n_scored``.

    Raises:
        ValueError: bad ``batch_size``/``padding_side``/``chunk_tokens``, or a model whose
            LM head cannot be separated from its decoder.
    """
    import torch
    import torch.nn.functional as F
    from tqdm.auto import tqdm

    if batch_size < 1 or chunk_tokens < 1:
        raise ValueError(f"batch_size and chunk_tokens must be >= 1, got {batch_size}, {chunk_tokens}")
    if padding_side not in ("left", "right"):
        raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
    decoder, head, softcap = _parts(model)
    device = head.weight.device
    order = sorted(range(len(windows)), key=lambda i: -len(windows[i].tokens))
    out: list[np.ndarray | None] = [None] * len(windows)
    with torch.inference_mode():
        for start in tqdm(range(0, len(order), batch_size), disable=not progress, desc="scoring", unit="batch"):
            idx = order[start : start + batch_size]
            batch = [windows[i] for i in idx]
            ids, mask, pos, rows, cols, targets = _batch_inputs(batch, pad_token_id, padding_side, device)
            hidden = decoder(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=False).last_hidden_state
            selected = hidden[rows, cols]  # (n_scored_total, hidden)
            nll = torch.empty(len(targets), dtype=torch.float32, device=device)
            for c in range(0, len(targets), chunk_tokens):
                logits = head(selected[c : c + chunk_tokens]).float()
                if softcap:
                    logits = torch.tanh(logits / softcap) * softcap
                nll[c : c + chunk_tokens] = F.cross_entropy(logits, targets[c : c + chunk_tokens], reduction="none")
            nll = nll.double().cpu().numpy()
            pos_ = 0
            for i, w in zip(idx, batch):
                out[i] = nll[pos_ : pos_ + w.n_scored]
                pos_ += w.n_scored
    return out  # type: ignore[return-value]

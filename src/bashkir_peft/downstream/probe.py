"""A linear probe: logistic regression on a frozen model's mean-pooled hidden states.

Features (Alain & Bengio 2016, "Understanding intermediate layers using linear classifier
probes"): each sentence, tokenized without special tokens, is run through the model once;
the hidden states of every layer (``output_hidden_states``: index 0 the embeddings, -1 the
last layer) are averaged over the sentence's tokens. The classifier is scikit-learn's
``LogisticRegression`` on standardized features; its inverse regularization ``C`` is chosen
on dev (accuracy; ties: the smaller ``C``), the chosen classifier scores test.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from bashkir_peft.errors import ConfigError
from bashkir_peft.models.loading import prefix_token_id

C_GRID: tuple[float, ...] = (0.01, 0.1, 1.0, 10.0)
"""Inverse regularization strengths tried on dev."""


def mean_pooled_states(model, tokenizer, texts: Sequence[str], *, layers: Sequence[int] | None = None,
                       max_length: int = 512, batch_size: int = 16, progress: bool = False) -> np.ndarray:
    """Mean-pooled hidden states of each text at each requested layer.

    Args:
        model, tokenizer: a causal LM (or peft model, in eval mode) and its tokenizer.
        texts: sentences (each truncated to its first ``max_length`` tokens).
        layers: indices into ``output_hidden_states`` (0: embeddings; -1: last layer);
            ``None``: all.
        batch_size: sentences per forward pass (right-padded).

    Returns:
        float32 array ``(len(layers), len(texts), hidden_size)``.

    Raises:
        ConfigError: a layer index outside the model's ``num_layers + 1`` hidden states, or
            an empty text.
    """
    import torch
    from tqdm.auto import tqdm

    ids = tokenizer(list(texts), add_special_tokens=False, truncation=True, max_length=max_length)["input_ids"]
    empty = [i for i, t in enumerate(ids) if not t]
    if empty:
        raise ConfigError(f"text {empty[0]} has no tokens; a probe needs at least one")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else prefix_token_id(tokenizer)
    device = next(model.parameters()).device
    order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))  # batches of similar lengths: less padding
    chunks = []
    picked = None
    with torch.inference_mode():
        for start in tqdm(range(0, len(ids), batch_size), disable=not progress, desc="probe features"):
            batch = [ids[i] for i in order[start:start + batch_size]]
            width = max(len(t) for t in batch)
            x = torch.full((len(batch), width), pad, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, t in enumerate(batch):
                x[row, :len(t)] = torch.tensor(t)
                mask[row, :len(t)] = 1
            states = model(input_ids=x.to(device), attention_mask=mask.to(device),
                           output_hidden_states=True, logits_to_keep=1).hidden_states
            if picked is None:
                n = len(states)
                picked = list(range(n)) if layers is None else list(layers)
                bad = [i for i in picked if not -n <= i < n]
                if bad:
                    raise ConfigError(f"layer {bad[0]} out of range: the model has {n} hidden states "
                                      f"(0 = embeddings .. {n - 1} = last, or -1)")
            m = mask.to(device)[:, :, None].float()
            chunks.append(torch.stack([(states[i].float() * m).sum(1) / m.sum(1) for i in picked]).cpu().numpy())
    feats = np.concatenate(chunks, axis=1)
    out = np.empty_like(feats)
    out[:, order] = feats
    return out


def choose_on_dev(make, x_train, y_train, x_dev, y_dev, c_grid: Sequence[float] = C_GRID):
    """Fit ``make(C)`` on train for each ``C`` of ``c_grid``; keep the most accurate on dev
    (ties: the earlier, smaller ``C``).

    Returns:
        ``(classifier, C, dev_accuracy)``.
    """
    best = None
    for c in c_grid:
        clf = make(c).fit(x_train, y_train)
        acc = float((clf.predict(x_dev) == np.asarray(y_dev)).mean())
        if best is None or acc > best[2]:
            best = (clf, float(c), acc)
    return best


@dataclass(frozen=True)
class ProbeFit:
    """A probe chosen on dev.

    Attributes:
        pred: predicted class of each test item.
        C: the chosen inverse regularization strength.
        dev_accuracy: its accuracy on dev.
    """

    pred: np.ndarray
    C: float
    dev_accuracy: float


def fit_probe(x_train: np.ndarray, y_train: Sequence, x_dev: np.ndarray, y_dev: Sequence, x_test: np.ndarray,
              *, c_grid: Sequence[float] = C_GRID, seed: int = 0) -> ProbeFit:
    """Train a logistic-regression probe on train for each ``C``, keep the best on dev,
    predict test.

    Args:
        x_train, x_dev, x_test: ``(n, features)`` arrays.
        y_train, y_dev: labels of train and dev.
        c_grid: inverse regularization strengths tried.
        seed: ``random_state`` of the solver.

    Returns:
        :class:`ProbeFit`.

    Raises:
        ConfigError: shapes that do not match, or fewer than two classes in train.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x_train, x_dev, x_test = (np.asarray(a, dtype=np.float64) for a in (x_train, x_dev, x_test))
    y_train, y_dev = np.asarray(y_train), np.asarray(y_dev)
    if x_train.ndim != 2 or len(x_train) != len(y_train) or len(x_dev) != len(y_dev) \
            or x_dev.shape[1:] != x_train.shape[1:] or x_test.shape[1:] != x_train.shape[1:]:
        raise ConfigError(f"probe inputs do not match: train {x_train.shape} with {len(y_train)} labels, "
                          f"dev {x_dev.shape} with {len(y_dev)} labels, test {x_test.shape}")
    if len(set(y_train.tolist())) < 2:
        raise ConfigError("a probe needs at least two classes in train")
    clf, c, acc = choose_on_dev(
        lambda c: make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000, random_state=seed)),
        x_train, y_train, x_dev, y_dev, c_grid)
    return ProbeFit(clf.predict(x_test), c, acc)

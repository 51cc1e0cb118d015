"""Training the new vocabulary rows on their own: a warm-up phase, and their learning rate.

A tokenizer adaptation (:mod:`bashkir_peft.data.vocab`) appends rows to the input embeddings
and the LM head, initialised (mean of their pieces, or random) but never trained. Two remedies
from the literature, each a parameter of the setting
(:class:`~bashkir_peft.config.tokenizer.TokenizerAdaptation`):

- :func:`warm_up_new_rows`: before the main phase (LoRA, QLoRA or full fine-tuning), a few
  optimizer steps on the training split that update only the new rows of the input
  embeddings and of an untied head, every other weight frozen (the embeddings-only warm-up of
  Dobler & de Melo 2023, FOCUS, sec. 4; the first stage of EEVE's staged unfreezing, Kim et
  al. 2024). Old rows get a zero gradient (a hook masks them) and AdamW without weight decay
  moves a parameter with zero gradient and zero state by exactly nothing, so every weight but
  the new rows leaves the warm-up bit-identical.
- :func:`new_rows_param_group`: in the main phase of an adapter run, the new rows (peft's
  ``trainable_tokens_delta``) in an optimizer group of their own learning rate.
"""

from __future__ import annotations

import math
import time


def warm_up_new_rows(model, new_ids: list[int], dataset, steps: int, learning_rate: float, batch_size: int,
                     seed: int = 0) -> dict:
    """Train only the new rows of ``model``'s input embeddings and LM head for ``steps`` steps.

    Args:
        model: a causal LM already resized to the adapted vocabulary (before peft wraps it).
        new_ids: the new rows' ids.
        dataset: packed training blocks (rows with ``input_ids`` and ``labels``,
            :func:`bashkir_peft.data.packing.packed_dataset`), drawn in a seeded random order,
            without replacement until exhausted.
        steps: optimizer steps (> 0).
        learning_rate: AdamW's learning rate (no weight decay, no schedule).
        batch_size: blocks per step.
        seed: seed of the order of blocks.

    Returns:
        ``{"steps", "tokens", "learning_rate", "loss_first", "loss_last", "seconds"}``: the mean
        causal-LM loss (nats per token) of the first and the last step.

    Raises:
        ValueError: no steps, no new rows or no blocks.
        FloatingPointError: a non-finite loss.
    """
    import torch

    if steps <= 0 or not new_ids or len(dataset) == 0:
        raise ValueError(f"warm-up needs steps > 0, new rows and training blocks (got {steps}, {len(new_ids)}, "
                         f"{len(dataset)})")
    emb = model.get_input_embeddings().weight
    head = model.get_output_embeddings()
    rows = [emb] + ([head.weight] if head is not None and head.weight is not emb else [])
    frozen = {n: p.requires_grad for n, p in model.named_parameters()}
    for p in model.parameters():
        p.requires_grad_(False)
    hooks = []
    for w in rows:
        mask = torch.zeros(w.shape[0], 1, dtype=w.dtype, device=w.device)
        mask[torch.tensor(new_ids, device=w.device)] = 1
        w.requires_grad_(True)
        hooks.append(w.register_hook(lambda g, m=mask: g * m))
    optimizer = torch.optim.AdamW(rows, lr=learning_rate, weight_decay=0.0)
    gen = torch.Generator().manual_seed(seed)
    order: list[int] = []
    losses: list[float] = []
    was_training = model.training
    model.train()
    start = time.perf_counter()
    try:
        for _ in range(steps):
            if len(order) < batch_size:
                order += torch.randperm(len(dataset), generator=gen).tolist()
            take, order = order[:batch_size], order[batch_size:]
            batch = dataset[take]
            device = emb.device
            out = model(input_ids=torch.as_tensor(batch["input_ids"], device=device),
                        labels=torch.as_tensor(batch["labels"], device=device))
            loss = out.loss.item()
            if not math.isfinite(loss):
                raise FloatingPointError(f"non-finite loss in the new-row warm-up ({loss}); lower its learning rate")
            out.loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(loss)
    finally:
        for h in hooks:
            h.remove()
        for n, p in model.named_parameters():
            p.requires_grad_(frozen[n])
        model.train(was_training)
    block = len(dataset[0]["input_ids"])
    return {"steps": steps, "tokens": steps * batch_size * block, "learning_rate": learning_rate,
            "loss_first": losses[0], "loss_last": losses[-1], "seconds": time.perf_counter() - start}


def new_rows_param_group(optimizer, model, learning_rate: float) -> int:
    """Move the new rows of a peft model (its ``trainable_tokens_delta`` parameters) into an
    optimizer group of their own with ``learning_rate`` (the group's other settings copied from
    the group they leave). Call before the learning-rate scheduler is built: it reads each
    group's initial rate.

    Returns:
        The number of parameters moved (0: the model has no trainable token rows).
    """
    delta = {id(p) for n, p in model.named_parameters() if "trainable_tokens_delta" in n and p.requires_grad}
    moved, settings = [], None
    for group in optimizer.param_groups:
        keep = [p for p in group["params"] if id(p) not in delta]
        if len(keep) < len(group["params"]):
            moved += [p for p in group["params"] if id(p) in delta]
            settings = {k: v for k, v in group.items() if k != "params"}
            group["params"] = keep
    if moved:
        optimizer.param_groups[:] = [g for g in optimizer.param_groups if g["params"]]
        optimizer.add_param_group({**settings, "params": moved, "lr": learning_rate})
    return sum(p.numel() for p in moved)

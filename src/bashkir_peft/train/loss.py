"""The causal-LM training loss from hidden states, in chunks, without full-vocabulary logits.

The HF path (``model(..., labels=...)``, ``transformers.loss.loss_utils.ForCausalLMLoss``)
builds the logits of every position (batch x block x vocabulary floats: 200 MB for
SmolLM2's 49,152 tokens at 8 x 128) and, through cross-entropy and its backward, three more
tensors of that size. :class:`ChunkedCausalLMLoss` computes the same loss

    loss = sum over positions t with labels[t + 1] != -100 of -log softmax(head(h_t))[labels[t + 1]]
           / (num_items_in_batch, or the number of such positions)

(the shift and the reduction of ``ForCausalLMLoss``) from the final hidden states ``h``, a
chunk of positions at a time, and takes each chunk's gradients (with respect to ``h`` and
the output layer's trainable parameters) right away, so only one chunk's logits ever exist.
It calls the model's own output layer module: a peft-wrapped head (LoRA on the head,
``trainable_token_indices`` rows of an adapted tokenizer, a head tied to the embedding)
gets its gradients as in the HF path. The same idea as the fused linear cross-entropy of
Liger Kernel (Hsu et al. 2024, arXiv 2410.10989, sec. 3.4), written with autograd instead of
a fused kernel so it runs on any device and any head module.

Plugged into the HF ``Trainer`` as its ``compute_loss_func``
(:class:`bashkir_peft.train.callbacks.GuardedTrainer` asks the model for its hidden states
and only the last position's logits). Numbers: equal to the HF path up to floating-point
summation order (tested on a LoRA model with a resized vocabulary: loss and every gradient).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from bashkir_peft.models.head import output_layer

IGNORE_INDEX = -100  # transformers' ignore index for labels


class _HeadCrossEntropy(torch.autograd.Function):
    """Summed cross-entropy of ``head(hidden)`` against ``targets``, chunk by chunk; the
    gradients are computed in the forward pass (one chunk's logits at a time) and scaled by
    the incoming gradient in the backward pass."""

    @staticmethod
    def forward(ctx, hidden, targets, head, chunk_tokens, softcap, *params):
        needs_hidden, needs_params = ctx.needs_input_grad[0], ctx.needs_input_grad[5:]
        wanted = [p for p, need in zip(params, needs_params) if need]
        grad_hidden = torch.zeros_like(hidden) if needs_hidden else None
        grad_params = [torch.zeros_like(p) for p in wanted]
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        for start in range(0, hidden.shape[0], chunk_tokens):
            chunk = hidden[start:start + chunk_tokens].detach().requires_grad_(needs_hidden)
            with torch.enable_grad():
                logits = head(chunk).float()
                if softcap is not None:
                    logits = softcap * torch.tanh(logits / softcap)
                loss = F.cross_entropy(logits, targets[start:start + chunk_tokens], reduction="sum")
            if needs_hidden or wanted:
                grads = torch.autograd.grad(loss, ([chunk] if needs_hidden else []) + wanted)
                if needs_hidden:
                    grad_hidden[start:start + chunk_tokens] = grads[0]
                for acc, g in zip(grad_params, grads[int(needs_hidden):]):
                    acc += g
            total += loss.detach()
        ctx.save_for_backward(*([grad_hidden] if needs_hidden else []), *grad_params)
        return total

    @staticmethod
    def backward(ctx, grad_total):
        saved = list(ctx.saved_tensors)
        needs_hidden, needs_params = ctx.needs_input_grad[0], ctx.needs_input_grad[5:]
        grad_hidden = saved.pop(0) * grad_total if needs_hidden else None
        grads = iter(saved)
        return (grad_hidden, None, None, None, None,
                *[next(grads) * grad_total if need else None for need in needs_params])


class ChunkedCausalLMLoss:
    """The causal-LM loss of ``ForCausalLMLoss``, from the final hidden states, through the
    model's own output layer, ``chunk_tokens`` positions at a time (module docstring).

    Args:
        model: the model being trained (a causal LM, or a peft model wrapping one); its
            output layer is looked up once (:func:`~bashkir_peft.models.head.output_layer`).
        chunk_tokens: positions per chunk (>= 1); peak logits memory is
            ``chunk_tokens x vocabulary`` float32 values.

    Raises:
        ValueError: ``chunk_tokens`` < 1, or a model :func:`~bashkir_peft.models.head.output_layer` rejects.
    """

    #: what the model's forward must return for :meth:`__call__` (the Trainer passes these)
    model_inputs = {"output_hidden_states": True, "logits_to_keep": 1}

    def __init__(self, model, chunk_tokens: int = 128):
        if chunk_tokens < 1:
            raise ValueError(f"chunk_tokens must be >= 1, got {chunk_tokens}")
        self.head, self.softcap = output_layer(model)
        self.chunk_tokens = chunk_tokens

    def loss(self, hidden: torch.Tensor, labels: torch.Tensor, num_items_in_batch=None) -> torch.Tensor:
        """The mean next-token loss [nats].

        Args:
            hidden: final hidden states (after the last norm), shape (batch, seq, hidden).
            labels: token ids, shape (batch, seq); ``-100`` = not scored. Position t is
                scored against ``labels[:, t + 1]``.
            num_items_in_batch: the divisor (the Trainer's count of scored labels over the
                accumulated batch); ``None`` = the number of scored positions here.

        Returns:
            A 0-dim float32 tensor, differentiable with respect to ``hidden`` and the output
            layer's trainable parameters.
        """
        targets = labels[:, 1:]
        keep = targets != IGNORE_INDEX
        selected = hidden[:, :-1][keep]
        params = [p for p in self.head.parameters() if p.requires_grad]
        total = _HeadCrossEntropy.apply(selected, targets[keep], self.head, self.chunk_tokens, self.softcap, *params)
        if num_items_in_batch is None:
            return total / keep.sum()
        if torch.is_tensor(num_items_in_batch):
            num_items_in_batch = num_items_in_batch.to(total.device)
        return total / num_items_in_batch

    def __call__(self, outputs, labels, num_items_in_batch=None) -> torch.Tensor:
        """The Trainer's ``compute_loss_func``: ``outputs`` from a forward pass with
        ``output_hidden_states=True`` (its last hidden state is the output layer's input)."""
        return self.loss(outputs.hidden_states[-1], labels, num_items_in_batch)


__all__ = ["ChunkedCausalLMLoss", "IGNORE_INDEX"]

"""The output layer (LM head) of a causal LM, for losses computed from hidden states."""

from __future__ import annotations


def output_layer(model) -> tuple[object, float | None]:
    """The output layer (LM head) module of a causal LM or of a peft model wrapping one,
    and the model's final-logit softcap (``None``: none).

    Raises:
        ValueError: the model has no separate output layer, or scales its logits
            (``logit_scale``), which the chunked loss does not reproduce.
    """
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    head = base.get_output_embeddings()
    if head is None:
        raise ValueError(f"{type(base).__name__}: no output layer (get_output_embeddings() is None)")
    if getattr(base.config, "logit_scale", None) is not None:
        raise ValueError(f"{type(base).__name__}: logit_scale is not supported by the chunked loss")
    return head, getattr(base.config, "final_logit_softcapping", None)


__all__ = ["output_layer"]

"""The chunked training loss (bashkir_peft.train.loss) against the HF full-logits path: the same
loss and the same gradients of every trainable parameter, on LoRA models whose vocabulary was
resized with trainable new rows (peft's trainable_token_indices; a tied and an untied head) and
on full fine-tuning, and the same losses through the Trainer."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from bashkir_peft.models.loading import load_model  # noqa: E402
from bashkir_peft.models.lora import apply_lora  # noqa: E402
from bashkir_peft.models.registry import get_entry  # noqa: E402
from bashkir_peft.models.vocab import token_rows_for_peft  # noqa: E402
from bashkir_peft.train.loss import ChunkedCausalLMLoss  # noqa: E402

NEW_ROWS = 6


def _model(name: str, method: str):
    torch.manual_seed(0)
    model = load_model(name, "full" if method == "full" else "lora").model
    old = model.get_input_embeddings().weight.shape[0]
    model.resize_token_embeddings(old + NEW_ROWS)
    new_ids = list(range(old, old + NEW_ROWS))
    if method == "lora":
        model = apply_lora(model, get_entry(name).target_modules, 4, 8, 0.0, token_rows_for_peft(model, new_ids))
        for n, p in model.named_parameters():  # every trainable tensor away from its initial value (B = 0, delta = 0)
            if p.requires_grad:
                with torch.no_grad():
                    p.add_(0.05 * torch.randn_like(p))
    return model, old


def _batch(vocab: int):
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, vocab + NEW_ROWS, (3, 17), generator=g)
    ids[:, ::4] = torch.arange(vocab, vocab + NEW_ROWS).repeat(3)[: ids[:, ::4].numel()].view(3, -1)  # new rows used
    labels = ids.clone()
    labels[1, 5:9] = -100  # unscored positions
    return ids, labels


def _grads(model) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad and p.grad is not None}


@pytest.mark.parametrize("name, method", [("tiny-gpt2", "lora"), ("tiny-qwen2", "lora"), ("tiny-gpt2", "full")])
@pytest.mark.parametrize("num_items", [None, 40])
def test_loss_and_gradients_equal_the_full_logits_path(name, method, num_items):
    model, vocab = _model(name, method)
    ids, labels = _batch(vocab)
    model.train()  # dropout on: both passes draw the same masks from the same seed
    extra = {} if num_items is None else {"num_items_in_batch": torch.tensor(num_items)}
    torch.manual_seed(2)
    reference = model(input_ids=ids, labels=labels, **extra).loss
    reference.backward()
    expected = _grads(model)
    model.zero_grad(set_to_none=True)

    torch.manual_seed(2)
    out = model(input_ids=ids, **ChunkedCausalLMLoss.model_inputs)
    assert out.logits.shape[1] == 1  # the full logits were never built
    loss = ChunkedCausalLMLoss(model, chunk_tokens=5)(out, labels, extra.get("num_items_in_batch"))
    loss.backward()
    got = _grads(model)

    torch.testing.assert_close(loss, reference, rtol=1e-5, atol=1e-6)
    assert got.keys() == expected.keys()
    new_rows = [n for n in got if "trainable_tokens_delta" in n]
    assert (method == "lora") == bool(new_rows)
    for n in got:
        assert expected[n].abs().sum() > 0, n  # every compared gradient carries signal
        torch.testing.assert_close(got[n], expected[n], rtol=1e-4, atol=1e-6, msg=n)


def test_gradient_scales_with_the_incoming_gradient():
    """The saved chunk gradients are multiplied by the loss's incoming gradient (e.g. a
    GradScaler's scale, or a loss weight)."""
    model, vocab = _model("tiny-gpt2", "lora")
    ids, labels = _batch(vocab)
    fn = ChunkedCausalLMLoss(model, chunk_tokens=7)
    grads = []
    for weight in (1.0, 3.0):
        model.zero_grad(set_to_none=True)
        torch.manual_seed(2)
        (weight * fn(model(input_ids=ids, **fn.model_inputs), labels)).backward()
        grads.append(_grads(model))
    for n in grads[0]:
        torch.testing.assert_close(grads[1][n], 3.0 * grads[0][n], rtol=1e-5, atol=1e-7)


def test_bad_chunk_size_is_refused():
    model, _ = _model("tiny-gpt2", "lora")
    with pytest.raises(ValueError, match="chunk_tokens"):
        ChunkedCausalLMLoss(model, chunk_tokens=0)

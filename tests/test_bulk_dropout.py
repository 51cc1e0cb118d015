"""LoRA dropout from bulk random bits (bashkir_peft.models.dropout): the distribution of
nn.Dropout (keep rate, scale, independence), reproducible under torch's seed, its gradient,
and its place in a peft LoRA model."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from bashkir_peft.models.dropout import BulkDropout, bulk_dropout, keep_threshold, use_bulk_dropout  # noqa: E402

N = 1_000_000  # elements per statistical draw: the keep rate's standard error at p = 0.05 is 2.2e-4


def _sigmas(observed: float, p: float, n: int) -> float:
    """How many binomial standard errors ``observed`` lies from ``p`` over ``n`` trials."""
    return abs(observed - p) / math.sqrt(p * (1 - p) / n)


@pytest.mark.parametrize("p", [0.05, 0.1, 0.5])
def test_keep_rate_and_scale_match_dropout(p):
    """Kept elements are x / (1 - p), dropped ones 0, and the keep rate is 1 - p within 4
    standard errors (fixed seed, 10^6 elements); so is the mean of the output (unbiased)."""
    gen = torch.Generator().manual_seed(1234)
    x = torch.full((1000, N // 1000), 3.0)
    y = bulk_dropout(x, p, generator=gen)
    kept = y != 0
    values = torch.unique(y).tolist()
    assert len(values) == 2 and values[0] == 0.0 and values[1] == pytest.approx(3.0 / (1 - p), rel=1e-7)
    assert _sigmas(kept.double().mean().item(), 1 - p, N) < 4
    assert abs(y.double().mean().item() - 3.0) < 4 * 3.0 / (1 - p) * math.sqrt(p * (1 - p) / N)


def test_masks_independent_across_neighbours_and_calls():
    """Two neighbouring elements (the two halves of one random 64-bit word) are both dropped
    at rate p^2, and two calls draw different masks, also independent (rate p^2)."""
    p = 0.2
    gen = torch.Generator().manual_seed(7)
    x = torch.ones(N)
    a = bulk_dropout(x, p, generator=gen) == 0
    b = bulk_dropout(x, p, generator=gen) == 0
    pairs = (a[0::2] & a[1::2]).double().mean().item()
    assert _sigmas(pairs, p * p, N // 2) < 4
    assert not torch.equal(a, b)
    assert _sigmas((a & b).double().mean().item(), p * p, N) < 4


def test_same_seed_same_mask_and_gradient_is_the_mask():
    """torch's seed decides the mask (resumption and gradient checkpointing rely on it);
    the gradient with respect to x is the same mask and scale."""
    x = torch.randn(64, 33, requires_grad=True)
    torch.manual_seed(5)
    y1 = bulk_dropout(x, 0.3)
    torch.manual_seed(5)
    y2 = bulk_dropout(x, 0.3)
    assert torch.equal(y1, y2)
    y1.sum().backward()
    expected = (y1 != 0).float() / 0.7
    torch.testing.assert_close(x.grad, expected)


def test_nothing_computed_at_p0_or_in_eval():
    """p = 0 and evaluation mode return the input tensor itself (no copy, no random draw)."""
    x = torch.randn(8, 8)
    state = torch.get_rng_state()
    assert bulk_dropout(x, 0.0) is x
    module = BulkDropout(0.3).eval()
    assert module(x) is x
    assert torch.equal(torch.get_rng_state(), state)


def test_threshold_bounds():
    """The 32-bit threshold resolves p to 2**-32; p outside [0, 1) is refused."""
    assert keep_threshold(0.0) == -(2**31)
    assert keep_threshold(0.5) == 0
    assert abs((keep_threshold(0.05) + 2**31) / 2**32 - 0.05) <= 2**-33
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        keep_threshold(1.0)


def test_drop_in_for_peft_lora_dropout():
    """apply_lora(dropout_sampler="bulk") puts a BulkDropout of the same p where peft put each
    LoRA layer's nn.Dropout, leaves p = 0 layers' nn.Identity alone, and the model trains
    (finite gradients on the adapters); "torch" keeps peft's modules; anything else is refused."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from bashkir_peft.errors import ConfigError
    from bashkir_peft.models.lora import apply_lora

    def base():  # a tiny random Llama, built here
        return LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                            num_attention_heads=2, num_key_value_heads=2))

    def dropouts(model):
        return [m for n, m in model.named_modules() if n.endswith("lora_dropout.default")]

    torch.manual_seed(0)
    model = apply_lora(base(), ["q_proj", "v_proj"], lora_r=2, lora_alpha=4, lora_dropout=0.1, dropout_sampler="bulk")
    assert len(dropouts(model)) == 2 and all(type(d) is BulkDropout and d.p == 0.1 for d in dropouts(model))
    model.train()
    model(input_ids=torch.randint(64, (2, 5))).logits.sum().backward()
    grads = [p.grad for n, p in model.named_parameters() if "lora_A" in n]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)

    assert all(type(d) is torch.nn.Dropout for d in dropouts(apply_lora(base(), ["q_proj", "v_proj"], lora_dropout=0.1)))
    no_dropout = apply_lora(base(), ["q_proj"], lora_dropout=0.0, dropout_sampler="bulk")
    assert [type(d) for d in dropouts(no_dropout)] == [torch.nn.Identity]
    assert use_bulk_dropout(no_dropout) == 0
    with pytest.raises(ConfigError, match="dropout_sampler"):
        apply_lora(base(), ["q_proj"], dropout_sampler="fast")

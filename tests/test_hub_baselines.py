"""Hub baselines (issue 30): an adapter entry (MaLA-500: a LoRA adapter with an extended
vocabulary on Llama-2-7B) loads as its card says (vocabulary resized, adapter merged) to the
logits of the adapter model itself; a baseline is never trained. Shown on a tiny Llama and a
local adapter folder (no Hub here)."""

from __future__ import annotations

import pytest
import torch

from bashkir_peft.errors import ConfigError
from bashkir_peft.models.device import choose_device
from bashkir_peft.models.loading import _with_adapter, load_model
from bashkir_peft.models.registry import AdapterSource


def _tiny():
    return load_model("tiny-llama", "full", placement=choose_device("cpu")).model


def test_adapter_on_a_resized_base_loads_to_the_adapter_model_s_logits(tmp_path):
    from peft import LoraConfig, get_peft_model

    base = _tiny()
    vocab = base.get_input_embeddings().weight.shape[0] + 8  # the adapter's extended vocabulary
    base.resize_token_embeddings(vocab)
    net = get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj", "v_proj"],
                                          modules_to_save=["embed_tokens", "lm_head"]))
    torch.manual_seed(0)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if "lora_B" in name or "modules_to_save" in name:
                p.add_(0.1 * torch.randn_like(p))
    net.save_pretrained(tmp_path / "adapter")
    batch = torch.tensor([[1, 5, vocab - 1, 7]])  # a token of the new rows
    net.eval()
    with torch.no_grad():
        want = net(input_ids=batch).logits

    got_net = _with_adapter(_tiny(), AdapterSource(hub_id=str(tmp_path / "adapter"), vocab_size=vocab))
    assert got_net.get_input_embeddings().weight.shape[0] == vocab
    assert not any("lora_" in n for n, _ in got_net.named_parameters())  # merged
    with torch.no_grad():
        got = got_net.eval()(input_ids=batch).logits
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_a_baseline_is_not_trained():
    with pytest.raises(ConfigError, match="zero-shot baseline"):
        load_model("goldfish-bak", "lora")

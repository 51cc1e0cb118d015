"""The one loader of the subject under test (models.subject): a base model and a finished LoRA
run load with their method, tokenizer, training record and run label; a merged adapter gives the
logits of the unmerged one; a run asked for with another base model, or a dtype a 4-bit model
cannot take, is one line before any weights load."""

from __future__ import annotations

from pathlib import Path

import pytest

import bashkir_peft.models.subject as subject_module
from bashkir_peft.config.train import TrainParams
from bashkir_peft.errors import ConfigError
from bashkir_peft.models.subject import UNMERGED_NOTE, load_subject
from bashkir_peft.records import write_record
from report_synth import stage_train_record


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory) -> Path:
    """A finished tiny-gpt2 LoRA run (rank 4) as training writes it: train.json, and final/ with
    the adapter (B matrices non-zero, so it moves the logits) and the tokenizer."""
    import torch

    from bashkir_peft.models.loading import load_model
    from bashkir_peft.models.lora import apply_lora

    run = tmp_path_factory.mktemp("subject") / "run"
    params = TrainParams(model="tiny-gpt2", method="lora", lora_r=4, seed=7, block_size=16, data_dir=str(run),
                         output_dir=str(run))
    loaded = load_model("tiny-gpt2", "lora")
    torch.manual_seed(0)
    peft_model = apply_lora(loaded.model, ["c_attn", "c_proj", "c_fc"], lora_r=4, lora_alpha=8)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 1.0)
    peft_model.save_pretrained(run / "final")
    loaded.tokenizer.save_pretrained(run / "final")
    write_record(run / "train.json", stage_train_record(params.model_dump(), model=loaded.resolved.record(),
                                                        data={"dir": str(run), "fingerprint": "fp"}))
    return run


def _logits(subject, text: str = "Һаумыһығыҙ, дуҫтар!"):
    import torch

    ids = subject.tokenizer(text, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        return subject.model(input_ids=ids).logits


def test_a_base_model_loads_as_the_base_method():
    subject = load_subject("tiny-gpt2", device="cpu")
    assert subject.method == "base" and subject.record is None and subject.run_dir is None
    assert subject.base_model == "tiny-gpt2" and subject.model_info.name == "tiny-gpt2"
    assert not subject.merged and subject.merge_note is None and subject.lora_r is None and subject.seed is None
    assert subject.placement.device == "cpu" and not subject.model.training
    assert subject.prefix_token == "<|endoftext|>"
    assert subject.label(3) == "tiny-gpt2/base/s3"  # a base model carries the seed it is given


def test_a_lora_run_loads_with_its_record_tokenizer_and_label(lora_run):
    from peft import PeftModel

    subject = load_subject("tiny-gpt2", lora_run, device="cpu")  # the matching base model may be named
    assert subject.method == "lora" and subject.run_dir == lora_run and subject.base_model == "tiny-gpt2"
    assert subject.record.params.lora_r == 4 and subject.model_info.name == "tiny-gpt2"
    assert isinstance(subject.model, PeftModel) and not subject.model.training
    assert Path(subject.tokenizer.name_or_path) == lora_run / "final"  # the run's own tokenizer
    assert not subject.merged and subject.merge_note == UNMERGED_NOTE
    assert subject.label(3) == "tiny-gpt2/lora/r4/s7"  # a run carries its training seed


def test_merged_adapter_gives_the_unmerged_logits(lora_run):
    import torch

    unmerged = load_subject(None, lora_run, device="cpu")
    merged = load_subject(None, lora_run, merge=True, device="cpu")
    assert merged.merged and merged.merge_note == "adapter merged into the base weights"
    assert not hasattr(merged.model, "peft_config")
    torch.testing.assert_close(_logits(merged), _logits(unmerged), rtol=1e-4, atol=1e-4)
    base = load_subject("tiny-gpt2", device="cpu")
    assert not torch.allclose(_logits(base), _logits(unmerged), atol=1e-3)  # the adapter matters
    cast = load_subject(None, lora_run, dtype="bfloat16", device="cpu")
    assert next(cast.model.parameters()).dtype == torch.bfloat16


def test_bad_requests_are_one_line_before_any_weights_load(lora_run, tmp_path, monkeypatch):
    def no_loading(*a, **k):
        raise AssertionError("weights loaded before the request was checked")

    monkeypatch.setattr(subject_module, "load_trained", no_loading)
    monkeypatch.setattr(subject_module, "load_model", no_loading)
    with pytest.raises(ConfigError, match="model='tiny-llama' but .* was trained from 'tiny-gpt2'"):
        load_subject("tiny-llama", lora_run)
    with pytest.raises(ConfigError, match="give model"):
        load_subject(None, None)
    with pytest.raises(ConfigError, match="no train.json"):
        load_subject(None, tmp_path)
    with pytest.raises(ConfigError, match="dtype must be"):
        load_subject(None, lora_run, dtype="float64")
    qlora = tmp_path / "qlora"
    (qlora / "final").mkdir(parents=True)
    write_record(qlora / "train.json", stage_train_record({"model": "tiny-gpt2", "method": "qlora"}))
    with pytest.raises(ConfigError, match="dtype cannot change a 4-bit QLoRA model"):
        load_subject(None, qlora, dtype="float16")

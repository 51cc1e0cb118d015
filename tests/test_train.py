"""Training: QLoRA gradients equal a dequantized full-precision twin's at every point of a
run (also right after an evaluation pass); gradient checkpointing trains every adapter;
GPT-2 Conv1D layers train under LoRA and QLoRA; saved adapters reload to identical
logits; merged == unmerged; full FT updates every weight; a non-finite loss fails the
run; bad input fails before any weights are loaded."""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import TrainerCallback

from bashkir_peft.config.train import TrainParams
from bashkir_peft.data.folder import write_presplit_folder
from bashkir_peft.errors import ConfigError, DataError
from bashkir_peft.models.quant import dequantized_copy
from bashkir_peft.models.trained import load_trained
from bashkir_peft.records import TrainRecord, read_record
from bashkir_peft.train.run import run_training

# Tiny runs: tiny-gpt2 (Conv1D layers), 16-token blocks, a few steps.
TINY = dict(model="tiny-gpt2", block_size=16, per_device_train_batch_size=4, per_device_eval_batch_size=16,
            max_steps=3, eval_steps=2, save_steps=2, logging_steps=1, max_eval_documents=2)


def make_data_dir(corpus: Path, out: Path, n_train: int = 24, n_val: int = 4, chars: int = 240) -> Path:
    """A data-prep-shaped folder (train/validation/test.parquet + a complete manifest.json) made of
    the first documents of the shared demo corpus, cut to ``chars`` characters."""
    import pandas as pd

    rows = []
    with gzip.open(corpus / "bashkir-demo.jsonl.gz", "rt", encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            rows.append({"id": r["id"], "source": r["source"], "text": r["text"][:chars]})
            if len(rows) == n_train + 2 * n_val:
                break
    splits = {"train": rows[:n_train], "validation": rows[n_train:n_train + n_val], "test": rows[n_train + n_val:]}
    write_presplit_folder(out, {k: pd.DataFrame(v) for k, v in splits.items()}, "tiny-test-data",
                          {"kind": "file", "location": str(corpus / "bashkir-demo.jsonl.gz")})
    return out


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory, corpus_dir) -> Path:
    return make_data_dir(corpus_dir, tmp_path_factory.mktemp("train-data"))


def _batch(model, n: int = 2, length: int = 16) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    vocab = model.get_input_embeddings().weight.shape[0]
    return torch.randint(0, vocab, (n, length), generator=g).to(model.device)


def _logits(model, batch) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model(input_ids=batch).logits.float().cpu()


class Capture(TrainerCallback):
    """Logits of a fixed batch from the in-memory model when training ends."""

    def on_train_end(self, args, state, control, model=None, **kwargs):
        was = model.training
        self.batch = _batch(model)
        self.logits = _logits(model, self.batch)
        model.train(was)


def _run(data_dir, out, **kw):
    cap = Capture()
    params = TrainParams(**(TINY | {"data_dir": str(data_dir), "output_dir": str(out)} | kw))
    return run_training(params, callbacks=[cap]), cap


@pytest.fixture(scope="module")
def lora_run(data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("lora") / "run"
    return out, *_run(data_dir, out, method="lora", gradient_checkpointing=True)


@pytest.fixture(scope="module")
def qlora_run(data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("qlora") / "run"
    return out, *_run(data_dir, out, method="qlora", gradient_checkpointing=True)


# --- parameters -----------------------------------------------------------------------


def test_learning_rate_default_depends_on_method():
    assert TrainParams(method="full").resolved_learning_rate == 5e-5
    assert TrainParams(method="lora").resolved_learning_rate == 2e-4
    assert TrainParams(method="qlora").resolved_learning_rate == 2e-4
    assert TrainParams(method="full", learning_rate=1e-3).resolved_learning_rate == 1e-3


def test_bad_input_fails_before_loading(data_dir, tmp_path):
    with pytest.raises(ConfigError, match="block_size 4096 exceeds"):
        run_training(TINY | {"block_size": 4096, "data_dir": str(data_dir), "output_dir": str(tmp_path / "a")})
    with pytest.raises(ConfigError, match="lora_r"):
        run_training(TINY | {"lora_r": 0, "data_dir": str(data_dir), "output_dir": str(tmp_path / "a")})
    with pytest.raises(ConfigError, match="unknown key"):
        run_training(TINY | {"epochs": 3, "data_dir": str(data_dir), "output_dir": str(tmp_path / "a")})
    with pytest.raises(ConfigError, match="not a transformers optimizer"):
        run_training(TINY | {"optim": "sgd_magic", "data_dir": str(data_dir), "output_dir": str(tmp_path / "a")})
    with pytest.raises(DataError, match="manifest"):
        run_training(TINY | {"data_dir": str(tmp_path / "nothing"), "output_dir": str(tmp_path / "a")})
    assert not (tmp_path / "a").exists()


# --- QLoRA gradients equal those through a dequantized full-precision twin -----------


def _lora_grads(model, batch) -> dict[str, torch.Tensor]:
    names = [n for n, p in model.named_parameters() if p.requires_grad and "lora_" in n]
    params = dict(model.named_parameters())
    loss = model(input_ids=batch, labels=batch).loss
    grads = torch.autograd.grad(loss, [params[n] for n in names])
    return dict(zip(names, (g.float() for g in grads)))


class GradCheck(TrainerCallback):
    """At the start, after every optimizer step and right after every evaluation pass:
    the LoRA gradients of the 4-bit model vs a deep copy whose 4-bit layers are nn.Linear
    layers holding the same dequantized weights (same adapters, same batch, dropout off)."""

    def __init__(self):
        self.checks: list[tuple[str, float, float]] = []
        self.packed_after_eval: list[bool] = []

    def _check(self, where, model):
        was = model.training
        model.train()
        for m in model.modules():
            if isinstance(m, torch.nn.Dropout):
                m.p = 0.0  # both paths must see the same function
        batch = _batch(model)
        twin = dequantized_copy(model)
        gq, gf = _lora_grads(model, batch), _lora_grads(twin, batch)
        assert gq.keys() == gf.keys() and gq
        diff = max((gq[k] - gf[k]).abs().max().item() for k in gq)
        scale = max(gf[k].abs().max().item() for k in gf)
        self.checks.append((where, diff, scale))
        model.train(was)

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self._check("start", model)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        self._check(f"step {state.global_step}", model)

    def on_evaluate(self, args, state, control, model=None, **kwargs):
        import bitsandbytes as bnb

        layers = [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]
        # the setting that keeps bitsandbytes from repacking weights for CPU inference (quant.py)
        assert layers and not any(m.support_avx512bf16_for_cpu for m in layers)
        self.packed_after_eval.append(any(getattr(m.weight.quant_state, "packing_format_for_cpu", False)
                                          for m in layers))
        self._check(f"after evaluation at step {state.global_step}", model)


def test_qlora_gradients_equal_dequantized_twin_throughout_a_run(data_dir, tmp_path):
    check = GradCheck()
    params = TrainParams(**(TINY | {"method": "qlora", "lora_dropout": 0.0, "max_steps": 2, "eval_steps": 1,
                                    "save_steps": 10, "data_dir": str(data_dir), "output_dir": str(tmp_path / "r")}))
    record = run_training(params, callbacks=[check])
    assert record.status == "finished"
    wheres = [w for w, _, _ in check.checks]
    assert wheres == ["start", "step 1", "after evaluation at step 1", "step 2", "after evaluation at step 2"]
    assert check.packed_after_eval and not any(check.packed_after_eval)
    # Stated tolerance, relative to the largest gradient: the 4-bit path dequantizes to the
    # compute dtype and multiplies; the twin multiplies the same dequantized weights, so any
    # difference is rounding: 1e-5 in float32 (CPU; observed: 0), 1e-2 in bfloat16 (GPU).
    tol = 1e-5 if record.compute_dtype == "float32" else 1e-2
    for where, diff, scale in check.checks:
        assert scale > 0, where
        assert diff <= tol * scale, f"{where}: max |grad diff| {diff:.3g} vs max |grad| {scale:.3g}"


# --- adapters train, with checkpointing, on Conv1D layers; reload and merge ------------


@pytest.mark.parametrize("which", ["lora_run", "qlora_run"])
def test_every_lora_B_trains_with_gradient_checkpointing_on_conv1d(which, request):
    out, record, _ = request.getfixturevalue(which)
    assert record.status == "finished" and record.reason is None
    assert record.params.gradient_checkpointing is True
    weights = load_file(out / "final" / "adapter_model.safetensors")
    lora_b = {k: v for k, v in weights.items() if "lora_B" in k}
    # GPT-2 blocks: attn.c_attn, attn.c_proj, mlp.c_fc, mlp.c_proj (Conv1D), 2 layers.
    assert len(lora_b) == 8
    assert {k.split(".")[-3] for k in lora_b} == {"c_attn", "c_proj", "c_fc"}
    for k, v in lora_b.items():
        assert v.norm() > 0, f"{k} did not train"


@pytest.mark.parametrize("which", ["lora_run", "qlora_run"])
def test_record_says_what_produced_it(which, request):
    out, record, _ = request.getfixturevalue(which)
    on_disk = json.loads((out / "train.json").read_text())
    assert on_disk == record.model_dump(mode="json", exclude_unset=True) | {"schema_version": 2}
    method = record.params.method
    assert record.params.learning_rate == 2e-4
    assert record.model.name == "tiny-gpt2" and record.model.revision.startswith("local:")
    assert record.data.fingerprint == "tiny-test-data"
    assert record.data.train.blocks > 0 and record.data.validation.blocks > 0
    assert 0 < record.trainable_params < record.total_params
    assert record.trainable_share == pytest.approx(record.trainable_params / record.total_params)
    assert record.tokens_seen == 3 * 4 * 16 and record.global_step == 3
    assert record.tokens_per_s > 0
    assert [r.step for r in record.losses.train] == [1, 2, 3]
    assert [r.step for r in record.losses.eval] == [2, 3]
    assert record.final_eval.perplexity == pytest.approx(2.718281828 ** record.final_eval.eval_loss)
    assert record.cost.wall_time_s > 0 and record.cost.peak_rss_mib > 0
    assert record.environment.packages["peft"] and record.environment.git.commit
    assert record.environment.hardware.cpu_cores_available >= 1
    assert record.compute_dtype == ("float32" if not torch.cuda.is_available() else record.compute_dtype)
    card = (out / "final" / "README.md").read_text()
    assert "tiny-test-data" in card and method in card and "Validation loss" in card
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["checkpoint-2", "checkpoint-3"]


@pytest.mark.parametrize("which", ["lora_run", "qlora_run"])
def test_saved_adapter_reloads_to_identical_logits(which, request):
    from peft import PeftModel

    out, record, cap = request.getfixturevalue(which)
    trained = load_trained(out)
    model = trained.model
    assert isinstance(model, PeftModel) and trained.merge_note is None
    torch.testing.assert_close(_logits(model, cap.batch.to(model.device)), cap.logits, rtol=0, atol=1e-6)


@pytest.mark.parametrize("which", ["lora_run", "qlora_run"])
def test_merged_equals_unmerged(which, request):
    out, record, cap = request.getfixturevalue(which)
    merged_run = load_trained(out, merge=True)
    merged = merged_run.model
    assert not any("lora_" in n for n, _ in merged.named_parameters())
    if record.params.method == "qlora":
        assert "dequantized" in merged_run.merge_note
    # float32 (CPU): merging reorders the sums, a rounding-level difference. bfloat16 (GPU):
    # the merged weight W + BA is itself rounded to bf16 (8-bit significand, ~4e-3 relative).
    tol = 1e-4 if record.compute_dtype == "float32" else 3e-2
    torch.testing.assert_close(_logits(merged, cap.batch.to(merged.device)), cap.logits, rtol=tol, atol=tol)


def test_full_finetuning_updates_every_weight(data_dir, tmp_path):
    from bashkir_peft.models.loading import resolve_model

    record = run_training(TINY | {"method": "full", "max_steps": 2, "data_dir": str(data_dir),
                                  "output_dir": str(tmp_path / "full")})
    assert record.status == "finished" and record.params.learning_rate == 5e-5
    assert record.trainable_params == record.total_params and record.trainable_share == 1.0
    before = load_file(Path(resolve_model("tiny-gpt2").location) / "model.safetensors")
    after = load_file(tmp_path / "full" / "final" / "model.safetensors")
    assert before.keys() == after.keys()
    for k in before:
        assert not torch.equal(before[k], after[k]), f"{k} unchanged"
    model = load_trained(tmp_path / "full").model
    assert sum(p.numel() for p in model.parameters()) == record.total_params


def test_chunked_loss_trains_like_the_full_logits_path(data_dir, tmp_path):
    """Through the Trainer (LoRA, gradient checkpointing): every logged training loss and every
    validation loss of the chunked path equals the HF path's up to summation order, and the
    record says which one ran."""
    runs = {flag: _run(data_dir, tmp_path / str(flag), method="lora", gradient_checkpointing=True, max_steps=4,
                       chunked_loss=flag)[0] for flag in (True, False)}
    assert [r.params.chunked_loss for r in runs.values()] == [True, False]
    for kind, key in (("train", "loss"), ("eval", "eval_loss")):
        chunked, plain = ([getattr(h, key) for h in getattr(runs[f].losses, kind)] for f in (True, False))
        assert len(chunked) == (4 if kind == "train" else 2)
        assert chunked == pytest.approx(plain, rel=1e-5), kind


def test_validation_without_gathered_logits_gives_the_same_loss(data_dir, tmp_path):
    """prediction_loss_only (runs never gather validation logits) claims the same numbers:
    the validation loss is bit-identical with and without it."""
    from transformers import TrainingArguments, default_data_collator

    from bashkir_peft.data.folder import load_texts
    from bashkir_peft.data.packing import packed_dataset
    from bashkir_peft.models.loading import load_model
    from bashkir_peft.train.callbacks import GuardedTrainer

    loaded = load_model("tiny-gpt2", "full")
    ds, _ = packed_dataset(load_texts(data_dir, "validation", None), loaded.tokenizer, 16, "validation")
    losses = []
    for flag in (False, True):
        args = TrainingArguments(output_dir=str(tmp_path / str(flag)), per_device_eval_batch_size=4,
                                 prediction_loss_only=flag, report_to="none", use_cpu=True, disable_tqdm=True)
        trainer = GuardedTrainer(model=loaded.model, args=args, eval_dataset=ds, data_collator=default_data_collator)
        losses.append(trainer.evaluate()["eval_loss"])
    assert losses[0] == losses[1]


def test_a_byte_budget_sets_the_steps_and_every_curve_point_is_in_bits_per_byte(data_dir, tmp_path):
    record, _ = _run(data_dir, tmp_path / "run", method="lora", max_steps=-1, eval_steps=200, save_steps=2,
                     train_bytes=600, eval_every_bytes=300, keep_checkpoints=False)
    # a finished run keeps its adapter, not the checkpoints that only served resuming
    assert (tmp_path / "run" / "final" / "adapter_model.safetensors").is_file()
    assert not list((tmp_path / "run" / "checkpoints").glob("checkpoint-*"))
    assert record.sessions[-1].checkpoints_deleted[-1] == f"checkpoint-{record.global_step}"
    b, train, val = record.budget, record.data.train, record.data.validation
    assert b.bytes_per_token == pytest.approx(train.bytes / train.tokens)
    assert b.bytes_per_step == pytest.approx(b.bytes_per_token * 4 * 16)
    assert record.global_step == b.max_steps == math.ceil(600 / b.bytes_per_step) > 1
    steps = [p.step for p in record.losses.eval]
    assert steps[0] == b.eval_steps == max(1, round(300 / b.bytes_per_step))
    for point in record.losses.eval:
        assert point.bits_per_byte == pytest.approx(point.eval_loss * val.tokens / (val.bytes * math.log(2)))
        assert point.train_bytes_seen == round(point.step * b.bytes_per_step)
    assert record.final_eval.bits_per_byte == pytest.approx(record.losses.eval[-1].bits_per_byte)


def test_non_finite_loss_fails_the_run(data_dir, tmp_path):
    record = run_training(TINY | {"method": "full", "learning_rate": 1e30, "max_steps": 4, "save_steps": 1,
                                  "data_dir": str(data_dir), "output_dir": str(tmp_path / "nan")})
    assert record.status == "failed"
    assert "non-finite training loss" in record.reason
    assert json.loads((tmp_path / "nan" / "train.json").read_text())["status"] == "failed"
    assert not (tmp_path / "nan" / "final").exists()
    with pytest.raises(ConfigError, match="training status is 'failed'"):
        load_trained(tmp_path / "nan")


def test_other_parameters_in_the_same_folder_are_refused(lora_run, data_dir):
    out, record, _ = lora_run
    with pytest.raises(ConfigError, match="other parameters"):
        run_training(TINY | {"method": "lora", "seed": 7, "data_dir": str(data_dir), "output_dir": str(out)})
    again = run_training(TrainParams.model_validate(record.params))  # finished: not recomputed
    assert again == read_record(out / "train.json", TrainRecord)


# --- GPU: bf16 QLoRA with paged AdamW ------------------------------------------------------


@pytest.mark.gpu
def test_qlora_on_gpu_is_nf4_double_quant_bf16_with_paged_adamw(data_dir, tmp_path):
    import bitsandbytes as bnb

    record = run_training(TINY | {"model": "tiny-llama", "method": "qlora", "data_dir": str(data_dir),
                                  "output_dir": str(tmp_path / "gpu")})
    assert record.status == "finished"
    assert record.optimizer == "paged_adamw_32bit" and record.compute_dtype == "bfloat16"
    assert record.cost.peak_gpu_mib > 0
    model = load_trained(tmp_path / "gpu").model
    layers = [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert layers and all(m.weight.device.type == "cuda" for m in layers)
    for m in layers:
        assert m.weight.quant_state.quant_type == "nf4" and m.weight.quant_state.nested  # double quantization
        assert m.compute_dtype == torch.bfloat16

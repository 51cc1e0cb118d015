"""The device rule, mixed precision and the QLoRA merge (issue 16), on the CPU with the same
code path a GPU takes, plus gpu-marked twins for the GPU side.

- the device rule: a pinned device is used or refused in one line; several GPUs with one
  process use one GPU and never DataParallel (GPU count simulated);
- mixed precision: a bf16 request for full fine-tuning keeps float32 master weights and
  float32 AdamW states, training under bf16 autocast; LoRA on a bf16 base trains float32
  adapters; pure bf16 only on request;
- the QLoRA merge: dequantized to float32, merged, cast once; merged and unmerged NLL agree
  within 1e-5 relative in float32 (CPU), 1e-2 relative when cast to bf16.
"""

from __future__ import annotations

import json
from unittest import mock

import pytest
import torch
from transformers import TrainerCallback

from bashkir_peft.config.train import TrainParams
from bashkir_peft.errors import ConfigError
from bashkir_peft.models.device import choose_device, one_gpu_per_process
from bashkir_peft.models.precision import plan_precision
from bashkir_peft.models.trained import load_trained
from bashkir_peft.train.run import run_training
from test_train import TINY, make_data_dir

CPU_ONLY = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only machine's refusals")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory, corpus_dir):
    return make_data_dir(corpus_dir, tmp_path_factory.mktemp("device-data"))


def _params(data_dir, out, **kw) -> TrainParams:
    return TrainParams(**(TINY | {"max_steps": 2, "eval_steps": 2, "save_steps": 2, "data_dir": str(data_dir),
                                  "output_dir": str(out)} | kw))


def _simulated_gpus(n: int):
    """torch sees ``n`` CUDA devices (set_device and names stubbed: nothing runs on them)."""
    return mock.patch.multiple(torch.cuda, is_available=mock.Mock(return_value=True),
                               device_count=mock.Mock(return_value=n), set_device=mock.Mock(),
                               get_device_name=mock.Mock(return_value="Simulated GPU"))


# --- the device rule ---------------------------------------------------------------------


def test_pinned_cpu_is_used_and_recorded():
    p = choose_device("cpu", "full")
    assert (p.device, p.index, p.how, p.torch_device) == ("cpu", None, "pinned", "cpu")
    assert p.record(processes=1) == {"device": "cpu", "how": "pinned", "name": "cpu",
                                     "visible_gpus": torch.cuda.device_count(), "notes": [], "processes": 1}


@CPU_ONLY
def test_pinned_device_that_is_absent_is_refused_in_one_line():
    with pytest.raises(ConfigError, match="cuda pinned, but torch sees no CUDA device"):
        choose_device("cuda")
    with pytest.raises(ConfigError, match="device must be one of cpu, cuda, mps"):
        choose_device("tpu")


def test_automatic_rule_takes_the_accelerator_and_one_gpu_per_process():
    with _simulated_gpus(3):
        p = choose_device(None, "lora")
    assert (p.device, p.index, p.how, p.torch_device, p.visible_gpus) == ("cuda", 0, "auto", "cuda:0", 3)
    assert "3 GPUs visible to 1 process(es)" in p.notes[0] and "DataParallel is never used" in p.notes[0]
    with _simulated_gpus(2), mock.patch.dict("os.environ", {"LOCAL_RANK": "1", "WORLD_SIZE": "2"}):
        p = choose_device(None, "qlora")  # each torchrun process: its own GPU (QLoRA's device_map too)
    assert p.torch_device == "cuda:1" and p.notes == ()


def test_several_gpus_and_one_process_never_use_data_parallel():
    from transformers import TrainingArguments

    with _simulated_gpus(4):
        args = TrainingArguments(output_dir="unused", report_to="none")
        assert args.n_gpu == 4  # what the Trainer would wrap in nn.DataParallel
        note = one_gpu_per_process(args)
        assert args.n_gpu == 1 and str(args.device) == "cuda:0"
    assert note.startswith("4 GPUs visible to one process: trained on one (cuda:0)")


# --- mixed precision -----------------------------------------------------------------------


def test_precision_plan_per_method():
    cpu = choose_device("cpu")
    full = plan_precision("full", "bfloat16", cpu)
    assert (full.load_dtype, full.master_dtype, full.autocast, full.pure) == ("float32", "float32", "bfloat16", False)
    pure = plan_precision("full", "bfloat16", cpu, pure=True)
    assert (pure.load_dtype, pure.master_dtype, pure.autocast, pure.pure) == ("bfloat16", "bfloat16", None, True)
    lora = plan_precision("lora", "bfloat16", cpu)
    assert (lora.load_dtype, lora.master_dtype, lora.autocast) == ("bfloat16", "float32", "bfloat16")
    fp32 = plan_precision("qlora", "float32", cpu)
    assert (fp32.load_dtype, fp32.master_dtype, fp32.autocast) == ("float32", "float32", None)
    with pytest.raises(ConfigError, match="QLoRA adapters train in float32"):
        plan_precision("qlora", "bfloat16", cpu, pure=True)
    with pytest.raises(ConfigError, match="float16 mixed precision needs CUDA"):
        plan_precision("full", "float16", cpu)


class DtypeProbe(TrainerCallback):
    """After each optimizer step: dtypes of the trainable weights, the frozen weights and the
    AdamW states, and whether a bf16 autocast region is active in the forward pass."""

    def __init__(self):
        self.trainable, self.frozen, self.states = set(), set(), set()
        self.forward_dtypes: set[torch.dtype] = set()

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        head = model.get_output_embeddings()
        head.register_forward_hook(lambda m, i, o: self.forward_dtypes.add(o.dtype))

    def on_step_end(self, args, state, control, model=None, optimizer=None, **kwargs):
        for p in model.parameters():
            (self.trainable if p.requires_grad else self.frozen).add(p.dtype)
        for st in optimizer.state.values():
            self.states |= {v.dtype for k, v in st.items() if k in ("exp_avg", "exp_avg_sq")}


def test_full_finetuning_bf16_request_keeps_fp32_master_weights(data_dir, tmp_path):
    probe = DtypeProbe()
    record = run_training(_params(data_dir, tmp_path / "full", method="full", dtype="bfloat16", device="cpu",
                                  learning_rate=1e-3), callbacks=[probe])
    assert record.status == "finished"
    assert record.precision.model_dump() == {"compute_dtype": "bfloat16", "load_dtype": "float32", "master_dtype": "float32",
                                "autocast": "bfloat16", "pure": False}
    assert record.device.device == "cpu" and record.device.how == "pinned"
    assert probe.trainable == {torch.float32} and probe.states == {torch.float32}
    assert probe.forward_dtypes == {torch.bfloat16}  # computed under autocast
    from safetensors.torch import load_file

    saved = load_file(tmp_path / "full" / "final" / "model.safetensors")
    assert {t.dtype for t in saved.values()} == {torch.float32}
    # the live position the grid shows inside the training stage (grid/progress.py)
    progress = json.loads((tmp_path / "full" / "progress.json").read_text())
    assert (progress["step"], progress["max_steps"]) == (2, 2)


def test_pure_bf16_only_on_request_and_recorded(data_dir, tmp_path):
    probe = DtypeProbe()
    record = run_training(_params(data_dir, tmp_path / "pure", method="full", dtype="bfloat16", device="cpu",
                                  pure_low_precision=True, max_steps=1), callbacks=[probe])
    assert record.precision.pure is True and record.precision.master_dtype == "bfloat16"
    assert probe.trainable == {torch.bfloat16} and probe.states == {torch.bfloat16}


def test_lora_on_bf16_base_trains_fp32_adapters(data_dir, tmp_path):
    probe = DtypeProbe()
    record = run_training(_params(data_dir, tmp_path / "lora", method="lora", dtype="bfloat16", device="cpu",
                                  max_steps=1), callbacks=[probe])
    assert record.precision.load_dtype == "bfloat16" and record.precision.master_dtype == "float32"
    assert probe.frozen == {torch.bfloat16} and probe.trainable == {torch.float32}
    assert probe.states == {torch.float32}


# --- the QLoRA merge -------------------------------------------------------------------------


def _nll(model, batch) -> float:
    model.eval()
    with torch.no_grad():
        return float(model(input_ids=batch, labels=batch).loss)


@pytest.fixture(scope="module")
def qlora_dir(data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("qlora-merge") / "run"
    record = run_training(_params(data_dir, out, method="qlora", learning_rate=1e-2, lora_dropout=0.0))
    assert record.status == "finished"
    return out


def _fixed_batch(model) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    vocab = model.get_input_embeddings().weight.shape[0]
    return torch.randint(0, vocab, (4, 16), generator=g).to(model.device)


def test_qlora_merge_dequantizes_to_fp32_and_keeps_the_nll(qlora_dir):
    from peft import PeftModel

    unmerged = load_trained(qlora_dir).model
    assert isinstance(unmerged, PeftModel)
    batch = _fixed_batch(unmerged)
    merged_run = load_trained(qlora_dir, merge=True)
    merged = merged_run.model
    assert "dequantized to float32, adapter merged in float32" in merged_run.merge_note
    assert {p.dtype for p in merged.parameters()} == {getattr(torch, merged_run.record.compute_dtype)}
    assert not any("lora_" in n for n, _ in merged.named_parameters())
    assert not any(type(m).__name__ == "Linear4bit" for m in merged.modules())
    # Stated tolerance: float32 merge vs the 4-bit path that dequantizes per layer: 1e-5 relative.
    tol = 1e-5 if merged_run.record.compute_dtype == "float32" else 1e-2
    assert _nll(merged, batch) == pytest.approx(_nll(unmerged, batch), rel=tol)


def test_qlora_merge_cast_once_to_bf16(qlora_dir):
    """The merge runs in float32 and only the result is cast: a bf16 merged model scores the
    unmerged model's NLL within 1e-2 relative (bf16 keeps 8 significant bits)."""
    from bashkir_peft.models.loading import load_model
    from bashkir_peft.models.quant import merge_qlora, prepare_qlora

    unmerged = load_trained(qlora_dir).model
    batch = _fixed_batch(unmerged)
    base = prepare_qlora(load_model("tiny-gpt2", "qlora", placement=choose_device("cpu", "qlora")).model)
    merged = merge_qlora(base, qlora_dir / "final", "bfloat16")
    assert {p.dtype for p in merged.parameters()} == {torch.bfloat16}
    assert _nll(merged, batch) == pytest.approx(_nll(unmerged, batch), rel=1e-2)


# --- GPU side ------------------------------------------------------------------------------


@pytest.mark.gpu
def test_gpu_stages_are_placed_on_the_gpu(data_dir, tmp_path):
    from bashkir_peft.models.loading import load_model

    assert choose_device(None, "full").device == "cuda"
    assert load_model("tiny-llama", "full").model.device.type == "cuda"
    record = run_training(_params(data_dir, tmp_path / "lora", model="tiny-llama", method="lora"))
    assert record.device.device == "cuda:0" and record.device.how == "auto"
    assert load_trained(tmp_path / "lora").model.device.type == "cuda"


@pytest.mark.gpu
def test_gpu_full_finetuning_bf16_is_autocast_over_fp32(data_dir, tmp_path):
    probe = DtypeProbe()
    record = run_training(_params(data_dir, tmp_path / "full", model="tiny-llama", method="full",
                                  dtype="bfloat16"), callbacks=[probe])
    assert record.precision.autocast == "bfloat16" and record.precision.master_dtype == "float32"
    assert probe.trainable == {torch.float32} and probe.states == {torch.float32}
    assert probe.forward_dtypes == {torch.bfloat16}


@pytest.mark.gpu
def test_gpu_qlora_merge_bf16_keeps_the_nll(data_dir, tmp_path):
    out = tmp_path / "q"
    record = run_training(_params(data_dir, out, model="tiny-llama", method="qlora", learning_rate=1e-2,
                                  lora_dropout=0.0))
    assert record.compute_dtype == "bfloat16" and record.precision.master_dtype == "float32"
    unmerged = load_trained(out).model
    batch = _fixed_batch(unmerged)
    merged = load_trained(out, merge=True).model
    assert {p.dtype for p in merged.parameters()} == {torch.bfloat16}
    assert merged.device.type == "cuda"
    assert _nll(merged, batch) == pytest.approx(_nll(unmerged, batch), rel=2e-2)

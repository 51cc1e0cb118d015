"""The planner (grid/plan.py): weight, gradient and optimizer-state bytes of the memory
estimate are exact against a tiny model's tensors after a training step (full and LoRA);
a grid with a cell that cannot fit the visible GPU is refused before any data preparation
or download, with the numbers; a gpu-marked test holds the whole estimate to
``torch.cuda.max_memory_allocated`` of a short run within a factor of 1.5."""

from __future__ import annotations

import pytest
import torch

import test_grid_runner as gr
from bashkir_peft.cli import main
from bashkir_peft.config.train import TrainParams
from bashkir_peft.grid import plan as planner
from bashkir_peft.models.device import choose_device
from bashkir_peft.models.loading import load_model
from bashkir_peft.models.lora import apply_lora
from bashkir_peft.train.run import run_training
from test_train import make_data_dir


def _bytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def _one_step(model) -> torch.optim.Optimizer:
    """One AdamW step on a random batch (the Trainer's default optimizer, torch's AdamW)."""
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    batch = torch.randint(0, model.config.vocab_size, (2, 16))
    model(input_ids=batch, labels=batch).loss.backward()
    opt.step()
    return opt


@pytest.mark.parametrize("method", ["full", "lora"])
def test_parameter_gradient_and_optimizer_bytes_are_exact(method):
    params = TrainParams(model="tiny-gpt2", method=method, device="cpu", lora_r=4)
    est = planner.estimate_memory(params)
    model = load_model("tiny-gpt2", "full", placement=choose_device("cpu")).model
    if method == "lora":
        model = apply_lora(model, ["c_attn", "c_proj", "c_fc"], lora_r=4)
    opt = _one_step(model)
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert est.weights == _bytes(model.parameters())
    assert est.gradients == _bytes(p.grad for p in trainable)
    assert est.optimizer_states == _bytes(v for st in opt.state.values() for k, v in st.items()
                                          if k in ("exp_avg", "exp_avg_sq"))
    assert est.activations > 0


def test_qlora_weights_close_to_the_4bit_tensors():
    """QLoRA: packed NF4 weights, double-quantized scales and float32 rest, within 2 %."""
    from bashkir_peft.models.quant import prepare_qlora

    est = planner.estimate_memory(TrainParams(model="tiny-gpt2", method="qlora", device="cpu", lora_r=4))
    model = prepare_qlora(load_model("tiny-gpt2", "qlora", placement=choose_device("cpu", "qlora")).model)
    model = apply_lora(model, ["c_attn", "c_proj", "c_fc"], lora_r=4)
    states = [m.weight.quant_state for m in model.modules() if type(m).__name__ == "Linear4bit"]
    scales = _bytes(s.absmax for s in states) + _bytes(s.state2.absmax for s in states if s.state2 is not None)
    assert est.weights == pytest.approx(_bytes(model.parameters()) + scales, rel=0.02)


def test_dry_run_refuses_a_cell_that_cannot_fit_before_any_work(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(planner, "visible_gpu", lambda: ("Simulated GPU", 2**20))  # 1 MiB
    nbs = gr.write_notebooks(tmp_path / "notebooks")
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text('{"text": "hello"}\n')
    grid = gr.write_grid(tmp_path / "unit.yaml", include=[])
    args = ["grid", "run", str(grid), "--corpus", str(corpus), "--runs-dir", str(tmp_path / "runs"),
            "--notebooks", str(nbs), "--no-progress"]
    assert main(args + ["--dry-run"]) == 2
    captured = capsys.readouterr()
    assert "does NOT fit Simulated GPU (0.0 GiB)" in captured.out
    assert "1 cell(s) cannot fit Simulated GPU" in captured.err and "weights" in captured.err
    assert main(args) == 2  # the real run refuses too, before data prep
    assert not (tmp_path / "runs" / "unit" / "data").exists()
    monkeypatch.setattr(planner, "visible_gpu", lambda: ("Simulated GPU", 80 * 2**30))
    assert main(args + ["--dry-run"]) == 0
    assert "fits Simulated GPU (80.0 GiB)" in capsys.readouterr().out
    # a cell the training will refuse (a target module the model lacks) is not the planner's
    # to stop: it says why it cannot estimate, and the cell fails at run time, recorded
    gr.write_grid(grid)  # the runner tests' grid, with its failing "nope" cell
    assert main(args + ["--dry-run"]) == 0
    assert "memory unknown: target_modules ['nope'] match no module" in capsys.readouterr().out


@pytest.mark.gpu
@pytest.mark.parametrize("method", ["full", "lora", "qlora"])
def test_estimate_within_1_5x_of_measured_peak(method, tmp_path, corpus_dir):
    data = make_data_dir(corpus_dir, tmp_path / "data", n_train=64, chars=2000)
    params = TrainParams(model="tiny-llama", method=method, block_size=128, per_device_train_batch_size=8,
                         max_steps=3, eval_steps=3, save_steps=3, max_eval_documents=2, data_dir=str(data),
                         output_dir=str(tmp_path / "run"))
    est = planner.estimate_memory(params)
    record = run_training(params)
    measured = record.cost.peak_gpu_mib * 2**20
    assert est.total / 1.5 <= measured <= est.total * 1.5, (est, measured)

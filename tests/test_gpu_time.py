"""The dry run of a grid sized for GPUs (grid/estimate.py, grid/gputime.py, grid/plan.py): on a
machine without CUDA it skips the CPU speed probe and says why in one line, while a grid for
any hardware still gets it; every training cell that may run on a GPU gets a GPU training time
from an assumed throughput, whose arithmetic (tokens from the prepared data's bytes, FLOPs with
recomputation, the assumed rate) is checked on a constructed cell, and the grid gets its sum."""

from __future__ import annotations

import types

import nbformat
import pandas as pd
import pytest
import torch

import test_grid_runner as gr
from bashkir_peft.cli import main
from bashkir_peft.config.train import TrainParams
from bashkir_peft.grid import estimate, gputime
from bashkir_peft.grid import plan as planner


def _dry_run(tmp_path, capsys, include=(), **grid) -> str:
    nbs = gr.write_notebooks(tmp_path / "notebooks")
    train = nbs / gr.FILES["train"]  # the runner tests' training notebook, with a device parameter added
    nb = nbformat.read(train, as_version=4)
    nb.cells[0].source += "\ndevice = None"
    nbformat.write(nb, train)
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text('{"text": "hello"}\n')
    path = gr.write_grid(tmp_path / "unit.yaml", include=list(include), **grid)
    assert main(["grid", "run", str(path), "--corpus", str(corpus), "--runs-dir", str(tmp_path / "runs"),
                 "--notebooks", str(nbs), "--no-progress", "--dry-run"]) == 0
    return capsys.readouterr().out


def test_a_gpu_grid_without_cuda_skips_the_cpu_probe_and_says_why(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    probes = []
    monkeypatch.setattr(estimate, "gemm_gflops", lambda shapes, rows, **kw: probes.append(rows) or (100.0, 10**6))
    out = _dry_run(tmp_path / "gpu", capsys, hardware="gpu")
    assert probes == []
    skip = [ln for ln in out.splitlines() if ln.startswith("no wall-time estimate on this machine")]
    assert len(skip) == 1 and "for 2 cell(s)" in skip[0] and "sized for GPUs (hardware: gpu)" in skip[0]
    assert "no CUDA device" in skip[0] and "expected wall time on this machine" not in out
    # a cell pinned to the CPU keeps its estimate (the grid's LoRA cell: 8 x 128 rows), the other is skipped
    pinned = {"model": "tiny-gpt2", "method": "lora", "label": "cpu", "train": {"device": "cpu"}}
    out = _dry_run(tmp_path / "pinned", capsys, include=[pinned], hardware="gpu")
    assert probes == [8 * 128] and "no wall-time estimate on this machine for 2 cell(s)" in out
    assert "expected wall time on this machine: ~" in out and "for 1 cell(s)" in out
    # the same grid for any hardware keeps its CPU estimate, from the probe
    probes.clear()
    out = _dry_run(tmp_path / "any", capsys)
    assert probes and "expected wall time on this machine" in out and "no wall-time estimate" not in out


def test_a_gpu_grid_with_cuda_keeps_its_estimate():
    run = types.SimpleNamespace(grid=types.SimpleNamespace(name="g", spec=types.SimpleNamespace(hardware="gpu")))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(torch.cuda, "is_available", lambda: True)
        assert estimate.cells_on_this_cpu(run, ["a", "b"]) == (["a", "b"], None)


def test_flops_with_recomputation_and_seconds_at_the_assumed_rate():
    assert gputime.train_flops_per_token(6e9, "full", gradient_checkpointing=True) == 8e9  # 6P + 2P
    assert gputime.train_flops_per_token(4e9, "qlora", gradient_checkpointing=True) == 6e9  # 4P + 2P
    assert gputime.train_flops_per_token(4e9, "lora", gradient_checkpointing=False) == 4e9
    assert gputime.ASSUMED_GPU.flops == pytest.approx(0.30 * 989.4e12)
    # 1e6 tokens x 6e9 FLOP at 296.82 TFLOP/s
    assert gputime.gpu_train_seconds(1_000_000, 6e9) == pytest.approx(6e15 / 296.82e12)


def _prepared(data_dir, model: str):
    """A data folder's statistics and fertility table: 3 training documents of 1,000 + 2,000 +
    3,000 bytes, one test document; the model's tokenizer reads 2.0 bytes per token."""
    data_dir.mkdir()
    pd.DataFrame({"split": ["train", "train", "train", "test"], "bytes": [1000, 2000, 3000, 500]}).to_parquet(
        data_dir / "doc_stats.parquet")
    pd.DataFrame({"model": [model, "other"], "bytes_per_token": [2.0, 4.0]}).to_parquet(
        data_dir / "tokenizer_fertility.parquet")
    return data_dir


def test_a_constructed_cell_tokens_and_gpu_time(tmp_path):
    params = TrainParams(model="tiny-llama", method="qlora", num_train_epochs=3, block_size=100,
                         gradient_checkpointing=True)
    # before data prep: unknown, and why
    tokens, how = planner.cell_train_tokens(params, None, None)
    assert tokens is None and "counted by data prep" in how
    # after: (6,000 bytes / 2.0 bytes per token + 3 end-of-text tokens) // 100 = 30 blocks; x 100 x 3 epochs
    data = _prepared(tmp_path / "data", "tiny-llama")
    assert gputime.estimated_train_blocks(data, "tiny-llama", 100) == 30
    tokens, how = planner.cell_train_tokens(params, None, data)
    assert tokens == 9_000 and "prepared data" in how
    # a finished run's measured blocks win over the estimate
    assert planner.cell_train_tokens(params, 40, data)[0] == 12_000
    # max_steps: exact, 10 steps x 8 x 4 x 128
    steps = TrainParams(model="tiny-llama", method="lora", max_steps=10, per_device_train_batch_size=8,
                        gradient_accumulation_steps=4, block_size=128)
    assert planner.cell_train_tokens(steps, None, None) == (40_960, "max_steps")
    # a byte budget: unknown before data prep, its steps at 2.0 bytes per token after
    budget = TrainParams(model="tiny-llama", method="lora", train_bytes=20_480, per_device_train_batch_size=8,
                         block_size=128)
    assert planner.cell_train_tokens(budget, None, None)[0] is None
    assert planner.cell_train_tokens(budget, None, data)[0] == 10 * 8 * 128  # 20,480 B / 2.0 / 1,024 per step
    # the cell's GPU time: 9,000 tokens x (4P + 2P) / (0.30 x 989.4 TFLOP/s), P = 1e9
    cell = planner.GpuPlan(planner.MemoryEstimate(0, 0, 0, 0, trainable=1), 4 * 10**9,
                           gputime.train_flops_per_token(4e9, "qlora", True), tokens, how)
    assert cell.seconds == pytest.approx(9_000 * 6e9 / (0.30 * 989.4e12))


def test_the_grid_total_sums_the_known_cells_and_counts_the_unknown():
    def cell(tokens):
        gpu = planner.GpuPlan(planner.MemoryEstimate(0, 0, 0, 0, trainable=1), 6 * 10**9, 6e9, tokens, "t")
        return planner.CellPlan("c", None, None, None, "", True, "", gpu)

    rate = gputime.ASSUMED_GPU.flops
    plans = [cell(rate * 3600 / 6e9), cell(rate * 1800 / 6e9), cell(None)]  # 1 h + 0.5 h + unknown
    line = planner.describe_gpu_total(plans)
    assert line.startswith("GPU training time of 2 of 3 training cell(s)")
    assert "~1.5 GPU-hours" in line and "1 cell(s) unknown until data prep" in line
    assert "not a measurement" in line and "30% of an H100 SXM's bf16 dense peak" in line
    assert planner.describe_gpu_total([cell(None)]).startswith(
        "GPU training time of the 1 training cell(s): unknown until data prep")


def test_the_dry_run_prints_each_cells_gpu_time_and_the_total(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = _dry_run(tmp_path, capsys, hardware="gpu")
    lines = [ln for ln in out.splitlines() if ln.startswith("  GPU training time")]
    # the grid's one LoRA cell, tiny-gpt2, max_steps 3: its tokens are exact before data prep
    assert len(lines) == 1 and "not a measurement" in lines[0] and "(max_steps)" in lines[0]
    assert "GPU training time of 1 of 1 training cell(s)" in out

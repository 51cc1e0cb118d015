"""The grid's expected wall time (grid/estimate.py): the weights the speed probe multiplies by are
the model's (checked against SmolLM2-135M's published parameter count and GPT-2's formula), and
the estimate adds each cell's training (tokens x 6P or 4P at the trainer's share of the measured
GEMM rate) and its other notebook executions (reference seconds scaled by the GEMM ratio)."""

from __future__ import annotations

import pytest

from bashkir_peft.grid import estimate
from bashkir_peft.grid.plan import meta_model
from bashkir_peft.grid.stages import Unit
from bashkir_peft.stages import STAGES


def test_matmul_weights_of_smollm2_are_its_parameters_but_the_norms():
    shapes = estimate.matmul_shapes(meta_model("smollm2-135m"))
    # 134,515,008 parameters (its training record's total_params); the 2 x 30 + 1 RMSNorm weight
    # vectors of 576 multiply nothing; the tied output layer is the embedding, counted once
    assert sum(k * n * c for k, n, c in shapes) == 134_515_008 - 61 * 576
    assert (576, 49152, 1) in shapes  # the output layer


def test_matmul_weights_of_gpt2_follow_its_formula():
    net = meta_model("tiny-gpt2")
    cfg = net.config
    d, layers, vocab = cfg.n_embd, cfg.n_layer, cfg.vocab_size
    inner = cfg.n_inner or 4 * d
    # per layer: attention q, k, v (one Conv1D d x 3d) and its projection d x d, MLP d x inner and back
    expected = layers * (3 * d * d + d * d + 2 * d * inner) + d * vocab
    assert sum(k * n * c for k, n, c in estimate.matmul_shapes(net)) == expected


class _Cell:
    def __init__(self, method, device=None):
        self.method, self.model, self.slug, self.device = method, "tiny-gpt2", f"tiny-gpt2-{method}", device


class _Planned:
    def __init__(self, method, device=None):
        self.cell = _Cell(method, device)


class _Run:
    """The GridRun method the estimate reads: a cell's units, shaped as GridRun.units gives them
    (an external set's pass carries its ``external`` settings; tests/test_external.py), and the
    notebooks' declared parameters (here: no notebook takes ``passes``)."""

    declared = {}

    def units(self, p):
        train = {"method": p.cell.method, "max_steps": 10, "per_device_train_batch_size": 4, "block_size": 32,
                 "device": p.cell.device}
        units = [("train", "train", train)] if p.cell.method != "base" else []
        units += [("evaluate.1", "evaluate", {"protocol": "rolling", "model": "m", "data_dir": "d"}),
                  ("evaluate.2", "evaluate", {"protocol": "rolling", "model": "m",
                                              "external": {"name": "sib200-eng", "path": "params"}}),
                  ("generate", "generate", {"n_prompts": 5, "model": "m", "data_dir": "d"})]
        return [Unit(name, stage, parameters, STAGES[stage].params_model.model_validate(parameters))
                for name, stage, parameters in units]


def test_estimate_adds_training_flops_and_scaled_reference_stages(monkeypatch):
    g, n_params = 50.0, 2_000_000
    monkeypatch.setattr(estimate, "gemm_gflops", lambda shapes, rows: (g, n_params))  # a fixed machine
    cells = [_Planned("base"), _Planned("full"), _Planned("lora")]
    est = estimate.estimate_grid(_Run(), cells)
    tokens = 10 * 4 * 32
    share = estimate.TRAIN_SHARE_OF_BOUND
    ref, scale = estimate.REFERENCE_SECONDS, estimate.REFERENCE_GFLOPS / g
    assert est.train_seconds == pytest.approx(tokens * n_params * (6 / (share["full"] * g * 1e9)
                                                                    + 4 / (share["lora"] * g * 1e9))
                                              + 2 * scale * ref["train"]["any"])
    # evaluate.1 is a protocol pass, evaluate.2 an external set; generation costs by prompt
    assert est.other_seconds == pytest.approx(scale * sum(
        ref["evaluate"][m] + ref["external"][m] + estimate.GENERATE_START_S + 5 * ref["generate"][m]
        for m in ("base", "full", "lora")))
    assert est.book_seconds == pytest.approx(scale * ref["book"]["any"])
    assert est.seconds == pytest.approx(est.train_seconds + est.other_seconds + est.book_seconds)
    assert not est.unknown and "~" in est.describe()


def test_a_pass_sharing_the_execution_before_it_pays_no_notebook_start(monkeypatch):
    """With an evaluation notebook that takes ``passes`` (issue 28), the external set's pass runs
    in the execution of the split's pass: its reference seconds less one notebook start."""
    g = estimate.REFERENCE_GFLOPS  # scale 1
    monkeypatch.setattr(estimate, "gemm_gflops", lambda shapes, rows: (g, 1_000_000))
    separate = estimate.estimate_grid(_Run(), [_Planned("base")]).other_seconds
    run = _Run()
    run.declared = {"evaluate": {"passes": None}}
    together = estimate.estimate_grid(run, [_Planned("base")]).other_seconds
    assert separate - together == pytest.approx(estimate.GENERATE_START_S)


def test_cells_on_a_gpu_are_not_estimated(monkeypatch):
    monkeypatch.setattr(estimate, "gemm_gflops", lambda shapes, rows: (50.0, 1000))
    monkeypatch.setattr(estimate, "choose_device", lambda device, method: type("P", (), {"device": device})())
    est = estimate.estimate_grid(_Run(), [_Planned("lora", device="cuda")])
    assert est.seconds == 0 and est.unknown == ["tiny-gpt2-lora (GPU)"]

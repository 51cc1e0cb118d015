"""Offline model configurations (issue 30): the planner finds every registry model's
configuration without the Hub, and the paper grid's adapter placement gives the trainable
parameters the paper states ("over 40 times fewer" than GPT-2-medium full fine-tuning for
QLoRA on Mistral-7B and Phi-2), counted from the shipped configurations on the meta device."""

from __future__ import annotations

import pytest

from bashkir_peft.config.grid import expand, load_grid
from bashkir_peft.config.train import TrainParams
from bashkir_peft.grid import plan as planner
from bashkir_peft.models.configs import has_shipped_config, offline_config
from bashkir_peft.models.registry import load_registry
from bashkir_peft.settings import params_dir


@pytest.fixture
def no_hub(monkeypatch, tmp_path):
    """The Hub out of reach and an empty Hugging Face cache: nothing may come from either."""
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    planner.meta_model.cache_clear()
    planner.reference_trainable.cache_clear()
    yield
    planner.meta_model.cache_clear()
    planner.reference_trainable.cache_clear()


def test_every_registry_model_has_its_configuration_offline(no_hub):
    reg = load_registry()
    for name in reg.models:
        entry = reg.get(name)
        if entry.baseline:  # scored zero-shot only: nothing to plan (see the next test)
            continue
        if entry.source != "tiny":
            assert has_shipped_config(entry), name
        config = offline_config(entry)
        assert config.model_type == entry.model_type, name
        net = planner.meta_model(name)
        assert next(net.parameters()).device.type == "meta"
        # the planner finds the registry's LoRA target modules in it
        est = planner.estimate_memory(TrainParams(model=name, method="lora"), net, planner.PLANNED_GPU)
        assert est.trainable > 0, name


def test_no_shipped_grid_trains_a_zero_shot_baseline():
    reg = load_registry()
    baselines = {n for n, e in reg.models.items() if e.baseline}
    assert {"goldfish-bak", "mgpt-1.3b-bashkir", "mala-500"} <= baselines
    scored = set()
    for path in sorted((params_dir() / "grids").glob("*.yaml")):
        for cell in expand(load_grid(path)):
            if cell.model in baselines:
                assert cell.method == "base", (path.name, cell.slug)
                scored.add(cell.model)
    assert scored == baselines  # every baseline is a zero-shot row of a grid (paper.yaml)


def _lora_count(config, r: int, placement: str) -> int:
    """r x (in + out) summed over the wrapped projections (Hu et al. 2021), from the config's
    dimensions alone: q and o are (h, h); k and v (h, kv_heads x head_dim); gate, up, down
    (h, intermediate)."""
    h, layers = config.hidden_size, config.num_hidden_layers
    kv = config.num_key_value_heads * (h // config.num_attention_heads)
    attention = (h + h) + 2 * (h + kv) + (h + h)
    mlp = 3 * (h + config.intermediate_size) if config.model_type != "phi" else 2 * (h + config.intermediate_size)
    return r * layers * (attention + (mlp if placement == "all" else 0))


def _paper_cell(cells, model: str, label: str | None):
    return next(c for c in cells if (c.model, c.method, c.lora_r, c.seed, c.label) == (model, "qlora", 8, 42, label))


@pytest.mark.parametrize("model", ["mistral-7b", "phi-2"])
def test_paper_grid_qlora_has_over_40x_fewer_trainable_parameters(no_hub, model):
    cells = expand(load_grid(params_dir() / "grids" / "paper.yaml"))
    reg = load_registry()
    config = offline_config(reg.get(model))
    reference = sum(p.numel() for p in planner.meta_model("gpt2-medium").parameters())
    assert planner.reference_trainable() == reference

    def trainable(cell) -> int:
        params = TrainParams(model=model, method="qlora", lora_r=8, **cell.params["train"])
        return planner.estimate_memory(params, placement=planner.PLANNED_GPU).trainable

    main, all_linear = trainable(_paper_cell(cells, model, None)), trainable(_paper_cell(cells, model, "all-linear"))
    assert main == _lora_count(config, 8, "attention")
    assert all_linear == _lora_count(config, 8, "all")
    assert reference / main > 40  # the paper: "over 40 times fewer trainable parameters"
    assert reference / all_linear < 40  # every linear layer would contradict it


def test_the_learning_rate_sweep_trains_what_the_paper_grid_trains():
    """paper-lr.yaml repeats paper.yaml's placement and per-model batch settings (YAML has no
    includes): every sweep cell trains with the settings of its paper-grid cell, the learning
    rate and the budget (epochs, checkpoints) aside."""
    grids = params_dir() / "grids"
    paper = {(c.model, c.method, c.lora_r, c.seed): c.params["train"] for c in expand(load_grid(grids / "paper.yaml"))
             if c.label is None and c.method != "base"}
    own = {"learning_rate", "num_train_epochs", "save_total_limit", "keep_checkpoints"}
    sweep = expand(load_grid(grids / "paper-lr.yaml"))
    assert len(sweep) == 3 * len({(c.model, c.method) for c in sweep}) == 51
    for c in sweep:
        want = {k: v for k, v in paper[(c.model, c.method, c.lora_r, c.seed)].items() if k not in own}
        assert {k: v for k, v in c.params["train"].items() if k not in own} == want, c.slug


def test_gpu_plan_line_flops_and_fit(no_hub):
    """The plan's GPU line: training FLOPs per token are 6 x the matrix-product weights for full
    fine-tuning (Kaplan et al. 2020: GPT-2-medium's 24 layers x 12 h^2 plus the V x h output
    layer) and 4 x for adapters; fully fine-tuning a 7B model (16 bytes per parameter: bf16
    compute on float32 master weights, gradients, two AdamW moments) fits no card of 80 GB,
    its QLoRA cell fits 24 GB."""
    cfg = offline_config(load_registry().get("gpt2-medium"))
    matmul = cfg.n_layer * 12 * cfg.n_embd**2 + cfg.vocab_size * cfg.n_embd
    net = planner.meta_model("gpt2-medium")
    assert planner.flops_per_token(net, "full") == 6 * matmul
    assert planner.flops_per_token(net, "lora") == 4 * matmul
    full = planner.estimate_memory(TrainParams(model="mistral-7b", method="full", per_device_train_batch_size=4,
                                               gradient_checkpointing=True), placement=planner.PLANNED_GPU)
    assert full.weights + full.gradients + full.optimizer_states == 16 * full.trainable
    line = planner.GpuPlan(full, 0).describe()
    assert "does NOT fit 80 GB, does NOT fit 40 GB, does NOT fit 24 GB" in line
    qlora = planner.estimate_memory(TrainParams(model="mistral-7b", method="qlora", per_device_train_batch_size=4,
                                                gradient_checkpointing=True), placement=planner.PLANNED_GPU)
    assert "fits 80 GB, fits 40 GB, fits 24 GB" in planner.GpuPlan(qlora, 0).describe()

"""The grid's expected wall time (grid/estimate.py): the weights the speed probe multiplies by are
the model's (checked against SmolLM2-135M's published parameter count and GPT-2's formula), and
the estimate adds each cell's training (tokens x 6P or 4P at the trainer's share of the measured
GEMM rate, plus its validation passes), its evaluation passes (the tokens they score x 2P at the
protocol's share) and its other notebook executions (reference seconds scaled by the GEMM ratio)."""

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
    data_dir = "d"

    train = {"max_steps": 10}

    def units(self, p):
        train = {"method": p.cell.method, "per_device_train_batch_size": 4, "block_size": 32,
                 "eval_steps": 4, "max_eval_documents": 2, "device": p.cell.device} | self.train
        units = [("train", "train", train)] if p.cell.method != "base" else []
        units += [("evaluate.1", "evaluate", {"protocol": "rolling", "model": "m", "data_dir": "d"}),
                  ("evaluate.2", "evaluate", {"protocol": "goldfish", "model": "m",
                                              "external": {"name": "flores-eng", "path": "params", "format": "lines"}}),
                  ("generate", "generate", {"n_prompts": 5, "model": "m", "data_dir": "d"})]
        return [Unit(name, stage, parameters, STAGES[stage].params_model.model_validate(parameters))
                for name, stage, parameters in units]


@pytest.fixture
def machine(monkeypatch):
    """A fixed machine (50 GFLOP/s, P = 2M weights) and prepared data: 2 bytes per token, a
    validation split of 300 + 500 bytes, 3,000 tokens for a split's pass and 500 for the
    external set's."""
    g, n_params = 50.0, 2_000_000
    monkeypatch.setattr(estimate, "gemm_gflops", lambda shapes, rows: (g, n_params))
    monkeypatch.setattr(estimate, "base_bytes_per_token", lambda data_dir, model: 2.0)
    monkeypatch.setattr(estimate, "load_texts", lambda data_dir, split, n: ["a" * 300, "b" * 500, "c" * 900][:n])
    monkeypatch.setattr(estimate, "scored_tokens",
                        lambda params, data_dir, model, tokenizer=None: 500 if params.external else 3_000)
    return g, n_params


def test_estimate_adds_training_validation_scoring_and_scaled_reference_stages(machine):
    g, n_params = machine
    cells = [_Planned("base"), _Planned("full"), _Planned("lora")]
    est = estimate.estimate_grid(_Run(), cells)
    tokens, forward = 10 * 4 * 32, 2 * n_params / (g * 1e9)
    share, rolling = estimate.TRAIN_SHARE_OF_BOUND, estimate.EVAL_SHARE_OF_BOUND["rolling"]
    ref, scale = estimate.REFERENCE_SECONDS, estimate.REFERENCE_GFLOPS / g
    # validation: steps 4, 8 and the last (10): 3 passes over the first 2 documents, 800 bytes = 400 tokens
    validation = 3 * 400 * forward / rolling
    assert est.train_seconds == pytest.approx(tokens * n_params * (6 / (share["full"] * g * 1e9)
                                                                    + 4 / (share["lora"] * g * 1e9))
                                              + 2 * (validation + scale * ref["train"]["any"]))
    # evaluate.1 scores 3,000 tokens (rolling), evaluate.2 500 (goldfish), each in its own notebook;
    # generation costs by prompt
    scoring = 3_000 * forward / rolling + 500 * forward / estimate.EVAL_SHARE_OF_BOUND["goldfish"]
    assert est.other_seconds == pytest.approx(sum(
        scoring + scale * (2 * estimate.NOTEBOOK_START_S + estimate.NOTEBOOK_START_S + 5 * ref["generate"][m])
        for m in ("base", "full", "lora")))
    assert est.book_seconds == pytest.approx(scale * ref["book"]["any"])
    assert est.seconds == pytest.approx(est.train_seconds + est.other_seconds + est.book_seconds)
    assert not est.unknown and "~" in est.describe()


def test_a_pass_sharing_the_execution_before_it_pays_no_notebook_start(machine):
    """With an evaluation notebook that takes ``passes`` (issue 28), the external set's pass runs
    in the execution of the split's pass: one notebook start less."""
    g, _ = machine
    separate = estimate.estimate_grid(_Run(), [_Planned("base")]).other_seconds
    run = _Run()
    run.declared = {"evaluate": {"passes": None}}
    together = estimate.estimate_grid(run, [_Planned("base")]).other_seconds
    assert separate - together == pytest.approx(estimate.NOTEBOOK_START_S * estimate.REFERENCE_GFLOPS / g)


def test_before_data_prep_training_and_evaluation_are_named_not_estimated(machine, monkeypatch):
    monkeypatch.setattr(estimate, "base_bytes_per_token", lambda data_dir, model: None)
    est = estimate.estimate_grid(_Run(), [_Planned("base"), _Planned("lora")])
    assert est.train_seconds == 0 and est.unknown == [
        "training and evaluation of 2 cell(s) (their tokens are known once data prep has measured the model's bytes "
        "per token: `grid run` prints the whole estimate after it)"]


def test_an_adapted_tokenizer_cell_counts_its_own_tokens_rows_warm_up_and_build(machine, monkeypatch):
    """A cell with an adapted tokenizer (issue 28: the vocab tier ran 26 % under its estimate,
    counted with the base tokenizer's tokens): its byte budget at the adapted tokenizer's bytes
    per token, its new rows in the output layer, its warm-up steps at the adapters' cost, the
    seconds building the tokenizer, and evaluation tokens cut by the adapted tokenizer."""
    g, n_params = machine
    hidden = meta_model("tiny-gpt2").config.hidden_size
    built = estimate.AdaptedTokenizer(tokenizer="adapted", bytes_per_token_gain=2.5, new_rows=100, build_seconds=7.0)
    monkeypatch.setattr(estimate, "adapted_tokenizer", lambda data_dir, model, setting: built)
    monkeypatch.setattr(estimate, "scored_tokens", lambda params, data_dir, model, tokenizer=None:
                        (500 if params.external else 3_000) // (2 if tokenizer == "adapted" else 1))
    base, adapted = _Run(), _Run()
    base.train = {"train_bytes": 40_960}
    adapted.train = {"train_bytes": 40_960, "tokenizer": {"new_tokens": 100, "new_rows_warmup_steps": 3}}
    before = estimate.estimate_grid(base, [_Planned("lora")])
    after = estimate.estimate_grid(adapted, [_Planned("lora")])
    p_after, share = n_params + 100 * hidden, estimate.TRAIN_SHARE_OF_BOUND["lora"]
    # 40,960 bytes at 2 bytes per token = 160 steps of 4 x 32; at 5 bytes per token, 64 steps;
    # validation at steps 4, 8, ... and the last: 40 then 16 passes over 800 bytes
    forward_before, forward_after = 2 * n_params / (g * 1e9), 2 * p_after / (g * 1e9)
    rolling, fixed = estimate.EVAL_SHARE_OF_BOUND["rolling"], estimate.REFERENCE_SECONDS["train"]["any"]
    scale = estimate.REFERENCE_GFLOPS / g
    assert before.train_seconds == pytest.approx(160 * 128 * 4 * n_params / (share * g * 1e9)
                                                 + 40 * 400 * forward_before / rolling + scale * fixed)
    assert after.train_seconds == pytest.approx(7.0 + (64 + 3) * 128 * 4 * p_after / (share * g * 1e9)
                                                + 16 * 160 * forward_after / rolling + scale * fixed)
    scoring = 1_500 * forward_after / rolling + 250 * forward_after / estimate.EVAL_SHARE_OF_BOUND["goldfish"]
    assert after.other_seconds - before.other_seconds == pytest.approx(
        scoring - (3_000 * forward_before / rolling + 500 * forward_before / estimate.EVAL_SHARE_OF_BOUND["goldfish"]))


def test_adapted_tokenizer_is_built_as_training_builds_it_once_per_shape(tmp_path, corpus_dir):
    """The tokenizer the estimate builds is the one training builds (same vocabulary), its gain
    is the training split's bytes per token after over before, and settings that differ only in
    what does not shape the tokenizer (init, warm-up) share one build."""
    from bashkir_peft.config.tokenizer import TokenizerAdaptation
    from bashkir_peft.data.vocab import adapt_tokenizer
    from bashkir_peft.models.loading import load_tokenizer, resolve_model
    from test_train import make_data_dir

    data = make_data_dir(corpus_dir, tmp_path / "data", n_train=24, chars=2000)
    setting = TokenizerAdaptation(new_tokens=150, bpe_vocab_size=1200)
    built = estimate.adapted_tokenizer(data, "tiny-gpt2", setting)
    direct, added, info = adapt_tokenizer(data, load_tokenizer(resolve_model("tiny-gpt2")), setting, sides={})
    assert built.new_rows == len(added) == 150 and built.tokenizer.get_vocab() == direct.get_vocab()
    assert built.bytes_per_token_gain == pytest.approx(info["train_after"]["bytes_per_token"]
                                                       / info["train_before"]["bytes_per_token"])
    assert built.bytes_per_token_gain > 1.2 and built.build_seconds > 0
    warm = setting.model_copy(update={"init": "random", "new_rows_warmup_steps": 5})
    assert estimate.adapted_tokenizer(data, "tiny-gpt2", warm) is built
    assert estimate.adapted_tokenizer(data, "tiny-gpt2", setting.model_copy(update={"new_tokens": 100})) is not built


def test_validation_passes_count_the_last_step_once():
    assert estimate.validation_passes(20, 7) == 3  # 7, 14 and the last, 20
    assert estimate.validation_passes(21, 7) == 3  # 7, 14, 21: the last is one of them
    assert estimate.validation_passes(100, 200) == 1  # only the last


def test_scored_tokens_are_those_of_the_text_the_evaluation_reads(tmp_path):
    """The estimate tokenizes what the evaluation reads: the first N documents, each cut at
    ``max_document_bytes`` (one code path: evaluate.run.scored_documents)."""
    import pandas as pd

    from bashkir_peft.config.evaluate import EvalParams
    from bashkir_peft.data.folder import write_presplit_folder
    from bashkir_peft.models.loading import load_tokenizer, resolve_model

    words = "Башҡортостан Республикаһы ҡала "
    texts = [words * 2, words * 5, words * 9]  # 118, 295 and 531 bytes
    splits = {s: pd.DataFrame({"id": [f"{s}{i}" for i in range(3)], "source": "web", "text": texts})
              for s in ("train", "validation", "test")}
    write_presplit_folder(tmp_path / "data", splits, "fp", {"kind": "fixture", "location": "texts"})
    params = EvalParams(model="m", data_dir=str(tmp_path / "data"), max_documents=2, max_document_bytes=100)
    # the first two documents, each cut at the last word boundary within 100 bytes
    head = "Башҡортостан Республикаһы ҡала Башҡортостан"
    tokens = len(load_tokenizer(resolve_model("tiny-gpt2"))(head, add_special_tokens=False)["input_ids"])
    assert tokens > 10 and estimate.scored_tokens(params, tmp_path / "data", "tiny-gpt2") == 2 * tokens


def test_cells_on_a_gpu_are_not_estimated(machine, monkeypatch):
    monkeypatch.setattr(estimate, "choose_device", lambda device, method: type("P", (), {"device": device})())
    est = estimate.estimate_grid(_Run(), [_Planned("lora", device="cuda")])
    assert est.seconds == 0 and est.unknown == ["tiny-gpt2-lora (GPU)"]

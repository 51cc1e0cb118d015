"""Tokenizer adaptation, one test per known trap, on a tied (tiny-gpt2) and an untied
(tiny-qwen2) model: English (SIB-200) keeps its token ids and every old token its id; the
resized input embeddings, LM head, tokenizer and logits agree; new rows start at the mean of
their base pieces; under LoRA the new rows get gradients and are in the saved adapter; a
saved run (LoRA, merged LoRA, full) reloads with its tokenizer to identical logits and
perplexity."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import yaml
from peft.tuners.trainable_tokens.layer import TrainableTokensLayer
from safetensors.torch import load_file

from bashkir_peft.config.grid import expand, load_grid, parse_grid, parse_only, select
from bashkir_peft.config.tokenizer import TokenizerAdaptation
from bashkir_peft.config.train import TrainParams
from bashkir_peft.data.folder import load_texts
from bashkir_peft.data.sib200 import SIB200_SPLITS, read_sib200_split
from bashkir_peft.data.vocab import adapt_tokenizer
from bashkir_peft.errors import ConfigError
from bashkir_peft.grid.runids import make_run_id
from bashkir_peft.models.loading import load_model, load_tokenizer, resolve_model
from bashkir_peft.models.trained import load_trained
from bashkir_peft.models.vocab import base_pieces, resize_and_init
from bashkir_peft.records import RunFiles
from bashkir_peft.train.run import run_training
from test_train import TINY, Capture, _logits, make_data_dir

REPO = Path(__file__).resolve().parents[1]
K = 150
SETTING = TokenizerAdaptation(new_tokens=K, bpe_vocab_size=1200)
MODELS = {"tied": "tiny-gpt2", "untied": "tiny-qwen2"}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory, corpus_dir):
    return make_data_dir(corpus_dir, tmp_path_factory.mktemp("vocab-data"), n_train=24, chars=2000)


@pytest.fixture(scope="module", params=list(MODELS))
def adapted(request, data_dir):
    """``(kind, base tokenizer, adapted tokenizer, new tokens, info)``."""
    base = load_tokenizer(resolve_model(MODELS[request.param]))
    tokenizer, added, info = adapt_tokenizer(data_dir, base, SETTING, sides={})  # sides: test_vocab_protect
    return request.param, base, tokenizer, added, info


def test_english_and_every_old_token_keep_their_ids(adapted, shared_dir, data_dir):
    _, base, tokenizer, added, info = adapted
    assert info["new_tokens_added"] == K and len(tokenizer) == len(base) + K
    assert tokenizer.convert_tokens_to_ids(added) == list(range(len(base), len(base) + K))
    old = base.get_vocab()
    new = tokenizer.get_vocab()
    assert {t: new[t] for t in old} == old
    english = [t for s in SIB200_SPLITS for t in read_sib200_split(shared_dir / "eval/sib200/eng_Latn", s)["text"]]
    assert len(english) > 1000
    assert tokenizer(english, add_special_tokens=False)["input_ids"] == base(english, add_special_tokens=False)["input_ids"]
    bashkir = load_texts(data_dir, "test")
    ids = tokenizer(bashkir, add_special_tokens=False)["input_ids"]
    assert [tokenizer.decode(x) for x in ids] == bashkir  # lossless
    assert sum(map(len, ids)) < 0.8 * sum(map(len, base(bashkir, add_special_tokens=False)["input_ids"]))
    assert info["train_after"]["chars_per_token"] > info["train_before"]["chars_per_token"]


def test_too_few_new_tokens_is_one_clear_error(data_dir):
    base = load_tokenizer(resolve_model("tiny-gpt2"))
    with pytest.raises(ConfigError, match="raise bpe_vocab_size"):
        adapt_tokenizer(data_dir, base, TokenizerAdaptation(new_tokens=5000, bpe_vocab_size=1000))


@pytest.mark.parametrize("init", ["mean", "random"])
def test_resized_head_embeddings_tokenizer_and_logits_agree(adapted, init):
    kind, _, tokenizer, added, _ = adapted
    loaded = load_model(MODELS[kind], "full")  # a fresh copy: resizing changes the model
    model, base = loaded.model, loaded.tokenizer
    emb0 = model.get_input_embeddings().weight.detach().clone()
    head0 = model.get_output_embeddings().weight.detach().clone()
    info = resize_and_init(model, base, tokenizer, added, init, seed=0)
    assert info["tied"] == (kind == "tied") and info["new_rows"] == K
    head = model.get_output_embeddings()
    logits = model(input_ids=torch.tensor([[len(tokenizer) - 1, 0]])).logits
    assert model.get_input_embeddings().weight.shape[0] == head.weight.shape[0] == len(tokenizer) == logits.shape[-1]
    assert getattr(head, "out_features", len(tokenizer)) == len(tokenizer)
    assert torch.equal(model.get_input_embeddings().weight[: len(base)], emb0)  # old rows untouched
    assert torch.equal(head.weight[: len(base)], head0)
    token, i = added[-1], len(tokenizer) - 1
    pieces = base_pieces(base, token)
    assert len(pieces) > 1 and base.convert_ids_to_tokens(pieces) and "".join(base.convert_ids_to_tokens(pieces)) == token
    row, head_row = model.get_input_embeddings().weight[i], head.weight[i]
    if init == "mean":
        torch.testing.assert_close(row, emb0[pieces].mean(0))
        torch.testing.assert_close(head_row, head0[pieces].mean(0))
    else:
        assert 0.5 * 0.02 < row.std().item() < 2 * 0.02
        assert not torch.allclose(row, emb0[pieces].mean(0))
    assert torch.equal(row, head_row) == (kind == "tied")


class RowGradients(Capture):
    """Gradient norms of the new rows at the first step, and the logits at the end."""

    def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
        if not hasattr(self, "grads"):
            self.grads = {n: p.grad.norm().item() for n, p in model.named_parameters()
                          if p.grad is not None and ("trainable_tokens" in n or p.shape[0] > 150_000 // 3)}


def _train(data_dir, out, model, method, **kw):
    cap = RowGradients()
    params = TrainParams(**(TINY | {"model": model, "method": method, "data_dir": str(data_dir),
                                    "output_dir": str(out), "tokenizer": SETTING.model_dump(),
                                    "max_steps": 2, "eval_steps": 2, "save_steps": 2} | kw))
    return run_training(params, callbacks=[cap]), cap


def _ppl(model, tokenizer, text: str) -> float:
    ids = torch.tensor([tokenizer(text, add_special_tokens=False)["input_ids"][:64]])
    with torch.no_grad():
        return math.exp(model(input_ids=ids, labels=ids).loss.item())


@pytest.mark.parametrize("kind, method", [("tied", "lora"), ("untied", "lora"), ("tied", "qlora")])
def test_adapters_train_save_and_reload_the_new_rows(kind, method, data_dir, tmp_path):
    out = tmp_path / "run"
    record, cap = _train(data_dir, out, MODELS[kind], method)
    vocab = record.vocab
    assert record.status == "finished" and vocab.new_rows == K and vocab.tied == (kind == "tied")
    assert vocab.peft_mechanism == "trainable_token_indices"
    hidden = 32
    assert vocab.token_rows_trainable_params == K * hidden * (1 if kind == "tied" else 2)
    deltas = {n: g for n, g in cap.grads.items() if "trainable_tokens_delta" in n}
    assert len(deltas) == (1 if kind == "tied" else 2) and all(g > 0 for g in deltas.values())
    saved = load_file(out / RunFiles.FINAL / "adapter_model.safetensors")
    rows = {k.split(".token_adapter")[0].rsplit(".", 1)[-1]: v for k, v in saved.items() if "trainable_tokens" in k}
    assert set(rows) == ({"wte"} if kind == "tied" else {"embed_tokens", "lm_head"})  # a tied head follows wte
    assert all(v.shape == (K, hidden) for v in rows.values()) and set(saved) - {k for k in saved if "lora_" in k
                                                                                 or "trainable_tokens" in k} == set()
    trained = load_trained(out)
    assert len(trained.tokenizer) == vocab.vocab_size
    torch.testing.assert_close(_logits(trained.model, cap.batch), cap.logits)
    # the rows are copied in once at loading (merge_token_rows), bit-equal to peft's copy per call
    layers = [m for m in trained.model.modules() if isinstance(m, TrainableTokensLayer)]
    assert layers and all(m.merged for m in layers)
    once = _logits(trained.model, cap.batch)
    for m in layers:
        m.unmerge()
    assert not any(m.merged for m in layers) and torch.equal(_logits(trained.model, cap.batch), once)
    if method == "qlora":  # merging dequantizes the base: covered by test_train's merged == unmerged
        return
    # merging after a vocabulary change on a tied model must not break it (transformers #45127)
    merged = load_trained(out, merge=True)
    torch.testing.assert_close(_logits(merged.model, cap.batch), cap.logits, rtol=1e-4, atol=1e-4)
    merged.model.save_pretrained(tmp_path / "merged")
    from transformers import AutoModelForCausalLM

    again = AutoModelForCausalLM.from_pretrained(tmp_path / "merged")
    assert again.get_output_embeddings().weight.shape[0] == len(trained.tokenizer)
    torch.testing.assert_close(_logits(again, cap.batch), cap.logits, rtol=1e-4, atol=1e-4)
    text = load_texts(data_dir, "test")[0]
    assert _ppl(again, trained.tokenizer, text) == pytest.approx(_ppl(trained.model, trained.tokenizer, text), rel=1e-4)


def test_full_finetuning_trains_and_reloads_the_resized_model(data_dir, tmp_path):
    out = tmp_path / "run"
    record, cap = _train(data_dir, out, MODELS["untied"], "full")
    assert record.vocab.peft_mechanism is None and record.vocab.token_rows_trainable_params == K * 32 * 2
    trained = load_trained(out)
    assert (RunFiles.TOKENIZER in {p.name for p in out.iterdir()})
    assert trained.model.get_output_embeddings().weight.shape[0] == len(trained.tokenizer) == record.vocab.vocab_size
    torch.testing.assert_close(_logits(trained.model, cap.batch), cap.logits)


# --- the grid's tokenizer axis -----------------------------------------------------------


def _grid(**over) -> dict:
    return {"name": "t", "default_source": "ours", "train": {"max_steps": 3},
            "matrix": {"model": ["tiny-gpt2"], "method": ["base", "lora"], "seed": [1, 2]}} | over


def _ids(grid) -> dict:
    return {c.slug: make_run_id(c.slug, c.axes(), c.params, "fp", "local:abc") for c in expand(grid)}


def test_tokenizer_axis_leaves_existing_run_ids_unchanged():
    demo = load_grid(REPO / "params/grids/cpu-demo.yaml")
    adapted = [c for c in expand(demo) if c.tokenizer != "base"]
    assert [(c.method, c.tokenizer) for c in adapted] == [("lora", "bak16k")]
    assert adapted[0].params["train"]["tokenizer"] == {"new_tokens": 16000, "bpe_vocab_size": None, "init": "mean"}
    raw = yaml.safe_load((REPO / "params/grids/cpu-demo.yaml").read_text())
    without = {k: v for k, v in raw.items() if k not in ("tokenizers", "include")}
    before, after = _ids(parse_grid(without)), _ids(demo)
    assert len(before) == 3 and {k: after[k] for k in before} == before
    for c in expand(demo):  # what an id hashes: the axes of before the tokenizer axis existed
        if c.tokenizer == "base":
            assert set(c.axes()) == {"model", "method", "lora_r", "seed", "label"}
            assert "tokenizer" not in c.params.get("train", {})


def test_tokenizer_axis_applies_to_trained_cells_only():
    grid = parse_grid(_grid(tokenizers={"k8": {"new_tokens": 8}, "k9": {"new_tokens": 9, "init": "random"}},
                            matrix={"model": ["tiny-gpt2"], "method": ["base", "lora"], "seed": [1],
                                    "tokenizer": ["base", "k8", "k9"]}))
    cells = expand(grid)
    assert [(c.method, c.tokenizer) for c in cells] == [("base", "base"), ("lora", "base"), ("lora", "k8"),
                                                        ("lora", "k9")]
    assert cells[3].params["train"]["tokenizer"] == {"new_tokens": 9, "bpe_vocab_size": None, "init": "random"}
    assert cells[2].axes()["tokenizer"] == "k8" and cells[2].slug.endswith("-k8")
    assert len(set(_ids(grid).values())) == 4
    assert [c.tokenizer for c in select(cells, parse_only(["tokenizer=k9"]))] == ["k9"]


@pytest.mark.parametrize("over, message", [
    ({"matrix": {"model": ["tiny-gpt2"], "method": ["lora"], "tokenizer": ["nope"]}}, "not defined under tokenizers"),
    ({"tokenizers": {"base": {"new_tokens": 8}}}, "means the base model's tokenizer"),
    ({"tokenizers": {"k": {"new_tokens": -1}}}, "new_tokens"),
    ({"tokenizers": {"k": {"new_tokens": 8}}, "include": [{"model": "tiny-gpt2", "method": "base", "tokenizer": "k"}]},
     "keeps the base tokenizer"),
])
def test_bad_tokenizer_settings_are_one_clear_error(over, message):
    with pytest.raises(ConfigError, match=message):
        parse_grid(_grid(**over))


def test_report_tells_adapted_tokenizer_runs_apart(tmp_path):
    from bashkir_peft.names import label_parts
    from bashkir_peft.report.cost import quality_cost_table, runs_table
    from bashkir_peft.report.lm import metrics_table
    from bashkir_peft.report.runs import read_run
    from bashkir_peft.report.tokenizers import fertility_table
    from report_synth import write_adapted_pair

    docs, fewer, plain, adapted = write_adapted_pair(tmp_path)
    runs = [read_run(plain), read_run(adapted)]
    assert [r.method_label for r in runs] == ["lora r=8", "lora r=8 tok=k8"]
    assert label_parts("lora r=8 tok=k8") == ("lora", 8)
    quality = quality_cost_table(runs_table(runs), metrics_table(runs), "rolling")
    fert = fertility_table(runs, quality, None, "rolling").set_index("method_label")["fertility"]
    assert fert["lora r=8"] == pytest.approx(docs["tokens"].sum() / docs["words"].sum())
    assert fert["lora r=8 tok=k8"] == pytest.approx(fewer["tokens"].sum() / fewer["words"].sum())

"""New vocabulary rows trained on their own (issue 32): the warm-up changes only the new rows
(every other weight bit-identical after it), on a tied and an untied model; an adapter run with
warm-up, the rows' own learning rate and replay records each, trains the rows at their rate and
reloads to the same logits; replay reaches its share of bytes; bad combinations are one clear
error."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from bashkir_peft.config.tokenizer import TextSample, TokenizerAdaptation
from bashkir_peft.config.train import TrainParams
from bashkir_peft.data.folder import load_texts
from bashkir_peft.data.packing import packed_dataset
from bashkir_peft.data.retokenization import mix_replay, read_samples
from bashkir_peft.data.vocab import adapt_tokenizer
from bashkir_peft.errors import ConfigError
from bashkir_peft.models.loading import load_model
from bashkir_peft.models.trained import load_trained
from bashkir_peft.models.vocab import resize_and_init
from bashkir_peft.records import RunFiles
from bashkir_peft.train.new_rows import warm_up_new_rows
from bashkir_peft.train.run import run_training
from test_train import TINY, Capture, _logits, make_data_dir

K = 60
SAMPLE = "../shared/corpus/langid-sample.jsonl"
MODELS = {"tied": "tiny-gpt2", "untied": "tiny-qwen2"}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory, corpus_dir):
    return make_data_dir(corpus_dir, tmp_path_factory.mktemp("new-rows-data"), n_train=24, chars=2000)


@pytest.mark.parametrize("kind", list(MODELS))
def test_warm_up_changes_only_the_new_rows(kind, data_dir, tmp_path):
    loaded = load_model(MODELS[kind], "full")
    model = loaded.model
    setting = TokenizerAdaptation(new_tokens=K, bpe_vocab_size=1500)
    tokenizer, added, _ = adapt_tokenizer(data_dir, loaded.tokenizer, setting, sides={})
    resize_and_init(model, loaded.tokenizer, tokenizer, added, "mean")
    new_ids = tokenizer.convert_tokens_to_ids(added)
    ds, _ = packed_dataset(load_texts(data_dir, "train"), tokenizer, 16, "train")
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    info = warm_up_new_rows(model, new_ids, ds, steps=3, learning_rate=1e-2, batch_size=4, seed=0)
    assert info["steps"] == 3 and info["tokens"] == 3 * 4 * 16 and info["loss_first"] > 0
    rows = {n for n, p in model.named_parameters()
            if p is model.get_input_embeddings().weight or p is model.get_output_embeddings().weight}
    assert len(rows) == (1 if kind == "tied" else 2)
    new = torch.tensor(new_ids)
    old = torch.ones(before[next(iter(rows))].shape[0], dtype=torch.bool)
    old[new] = False
    occurring = set(sum(ds["input_ids"], [])) & set(new_ids)
    head = model.get_output_embeddings().weight
    for n, p in model.named_parameters():
        if n in rows:
            assert torch.equal(p[old], before[n][old]), n  # every old row bit-identical
            changed = {i for i, c in zip(new_ids, (p[new] != before[n][new]).any(1).tolist()) if c}
            if p is head:  # the softmax's gradient reaches every output row
                assert changed == set(new_ids), n
            else:  # an input row moves only where its token occurs
                assert changed and changed <= occurring, n
        else:
            assert torch.equal(p, before[n]), n
    assert {n: p.requires_grad for n, p in model.named_parameters()} == flags  # restored


class GroupRates(Capture):
    """The learning rate of each optimizer group at the first step, by whether it holds new rows."""

    def on_step_begin(self, args, state, control, model=None, optimizer=None, **kwargs):
        if not hasattr(self, "rates"):
            delta = {id(p) for n, p in model.named_parameters() if "trainable_tokens_delta" in n}
            self.rates = {all(id(p) in delta for p in g["params"]): g["lr"] for g in optimizer.param_groups}


def test_adapter_run_with_warm_up_own_rate_and_replay_records_and_reloads(data_dir, tmp_path):
    setting = TokenizerAdaptation(new_tokens=K, bpe_vocab_size=1500, new_rows_warmup_steps=2,
                                  new_rows_learning_rate=5e-3, replay=[TextSample(path=SAMPLE, lang="rus")],
                                  replay_share=0.2)
    cap = GroupRates()
    params = TrainParams(**(TINY | {"model": MODELS["untied"], "method": "lora", "data_dir": str(data_dir),
                                    "output_dir": str(tmp_path / "run"), "tokenizer": setting.model_dump(),
                                    "learning_rate": 1e-3, "lr_scheduler_type": "constant", "max_steps": 2,
                                    "eval_steps": 2, "save_steps": 2}))
    record = run_training(params, callbacks=[cap])
    vocab = record.vocab
    assert record.status == "finished" and vocab.warmup.steps == 2 and vocab.warmup.learning_rate == 5e-3
    assert vocab.new_rows_group_params == K * 32 * 2  # embedding and untied head rows, hidden 32
    assert cap.rates == {True: 5e-3, False: 1e-3}
    assert 0.2 <= vocab.replayed.share < 0.25 and vocab.replayed.documents > 0
    assert vocab.new_rows_warmup_steps == 2 and vocab.replay_share == 0.2  # the setting, recorded
    # the adapter holds LoRA and the new rows only, not the resized embedding matrix (peft's
    # save_embedding_layers="auto" would save it: the embeddings were resized)
    saved = load_file(tmp_path / "run" / RunFiles.FINAL / "adapter_model.safetensors")
    assert all("lora_" in k or "trainable_tokens" in k for k in saved)
    row_values = sum(v.numel() for k, v in saved.items() if "trainable_tokens" in k)
    assert row_values == 2 * K * 32 < vocab.vocab_size * 32  # K rows of embedding and head, not every row
    trained = load_trained(tmp_path / "run")  # resized before the adapter loads; warmed-up rows travel in it
    torch.testing.assert_close(_logits(trained.model, cap.batch), cap.logits)


def test_replay_reaches_its_share_of_bytes():
    replay = read_samples([TextSample(path=SAMPLE, lang="eng")])
    texts = ["ҡала " * 400]
    mixed, info = mix_replay(texts, replay, 0.3, seed=1)
    own = len(texts[0].encode("utf-8"))
    assert mixed[:1] == texts and info["documents"] == len(mixed) - 1
    assert info["bytes"] == sum(len(t.encode("utf-8")) for t in mixed[1:])
    assert 0.3 <= info["share"] == info["bytes"] / (own + info["bytes"])
    assert (info["bytes"] - len(mixed[-1].encode("utf-8"))) / (own + info["bytes"]) < 0.3  # stops once reached


@pytest.mark.parametrize("setting, message", [
    ({"new_tokens": 8, "replay_share": 0.1}, "needs replay texts"),
    ({"new_tokens": 8, "replay": [{"path": SAMPLE}]}, "replay_share is 0"),
    ({"new_tokens": 8, "replay": [{"path": "../shared/eval/flores200/rus_Cyrl.devtest.gz"}], "replay_share": 0.1},
     "may not come from FLORES-200"),
])
def test_bad_new_row_settings_are_one_clear_error(setting, message):
    with pytest.raises(ValueError, match=message):
        TokenizerAdaptation(**setting)


def test_full_finetuning_rejects_a_new_row_rate_without_warm_up(data_dir, tmp_path):
    params = TrainParams(**(TINY | {"method": "full", "data_dir": str(data_dir), "output_dir": str(tmp_path / "r"),
                                    "tokenizer": {"new_tokens": 8, "new_rows_learning_rate": 1e-3}}))
    with pytest.raises(ConfigError, match="full fine-tuning trains them inside the whole embedding matrix"):
        run_training(params)

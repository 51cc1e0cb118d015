"""Checkpoints of an adapter run with an adapted tokenizer (issue 32) hold the adapter and the
new token rows only, as the final adapter does, not the resized embedding matrix and head
(peft's ``save_embedding_layers="auto"`` would add them: the vocabulary differs from the base
config's); a run resumed from such a checkpoint ends with the logits of an uninterrupted run.
On the untied tiny model (tiny-qwen2), whose embedding and head both get new rows."""

from __future__ import annotations

import shutil

import torch
from safetensors.torch import load_file

from bashkir_peft.config.tokenizer import TokenizerAdaptation
from bashkir_peft.config.train import TrainParams
from bashkir_peft.models.trained import load_trained
from bashkir_peft.records import RunFiles
from bashkir_peft.train.run import run_training
from test_train import TINY, Capture, _logits, make_data_dir

K, HIDDEN = 40, 32
ADAPTER = "adapter_model.safetensors"


def test_checkpoints_hold_only_the_new_rows_and_resume_to_equal_logits(tmp_path, corpus_dir):
    data = make_data_dir(corpus_dir, tmp_path / "data", n_train=24, chars=2000)
    cap = Capture()
    params = TrainParams(**(TINY | {"model": "tiny-qwen2", "method": "lora", "data_dir": str(data),
                                    "output_dir": str(tmp_path / "run"), "max_steps": 3, "save_steps": 2,
                                    "eval_steps": 3, "tokenizer": TokenizerAdaptation(new_tokens=K, bpe_vocab_size=1200).model_dump()}))
    record = run_training(params, callbacks=[cap])
    assert record.status == "finished" and record.vocab.tied is False and record.vocab.new_rows == K
    run = params.out_dir
    final = load_file(run / RunFiles.FINAL / ADAPTER)
    for step in (2, 3):  # a checkpoint in the middle and the one at the budget's end
        saved = load_file(run / RunFiles.CHECKPOINTS / f"checkpoint-{step}" / ADAPTER)
        assert set(saved) == set(final)
        rows = {k: v.shape for k, v in saved.items() if "lora_" not in k}
        assert len(rows) == 2 and all("trainable_tokens_delta" in k for k in rows)  # embedding and head
        assert set(rows.values()) == {torch.Size([K, HIDDEN])}  # not (vocabulary, hidden): 151,000+ rows
    for k, v in load_file(run / RunFiles.CHECKPOINTS / "checkpoint-3" / ADAPTER).items():
        torch.testing.assert_close(v, final[k], rtol=0, atol=0)

    # killed after checkpoint-2: resume from it (optimizer, RNG) and train the last step again
    shutil.rmtree(run / RunFiles.FINAL)
    shutil.rmtree(run / RunFiles.CHECKPOINTS / "checkpoint-3")
    resumed = run_training(params)
    assert [s.resumed_from for s in resumed.sessions] == [None, "checkpoint-2"] and resumed.global_step == 3
    got = load_trained(run)
    assert len(got.tokenizer) == record.vocab.vocab_size
    torch.testing.assert_close(_logits(got.model, cap.batch), cap.logits, rtol=1e-5, atol=1e-5)
    # the new rows moved in training: equal logits are not those of the initialisation
    again = load_file(run / RunFiles.FINAL / ADAPTER)
    first = load_file(run / RunFiles.CHECKPOINTS / "checkpoint-2" / ADAPTER)
    assert all(not torch.equal(again[k], first[k]) for k in again if "trainable_tokens_delta" in k)

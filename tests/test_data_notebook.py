"""The data-prep notebook runs under papermill (as the grid runner runs it) on a tiny
corpus; tokenizer profiles."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from bashkir_peft.data.fertility import profile_texts, profile_tokenizers
from bashkir_peft.records import DataFiles
from test_data_prep import _docs

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "01_data_prep.ipynb"


def test_fertility_definitions():
    from transformers import AutoTokenizer

    from bashkir_peft.models.registry import get_entry

    tok = AutoTokenizer.from_pretrained(get_entry("gpt2").tokenizer_path())
    texts = ["Башҡортостан Республикаһы Урал тауҙары буйында урынлашҡан.", "Һин бөгөн эшләйһеңме?"]
    prof = profile_texts(texts, tok)
    tokens = sum(len(tok(t, add_special_tokens=False)["input_ids"]) for t in texts)
    assert prof["tokens"] == tokens and prof["words"] == 9
    assert prof["fertility"] == pytest.approx(tokens / 9)
    assert prof["bytes_per_token"] == pytest.approx(sum(len(t.encode()) for t in texts) / tokens)
    assert prof["chars_per_token"] == pytest.approx(sum(map(len, texts)) / tokens)
    table = profile_tokenizers(texts, ["gpt2", "distilgpt2", "tiny-mistral"])
    assert list(table["tokenizer"]) == ["gpt2", "gpt2", "mistral-7b-v0.1"]
    assert table.loc[0, "fertility"] == table.loc[1, "fertility"] != table.loc[2, "fertility"]
    # byte-level BPE on Cyrillic: several tokens per word
    assert table.loc[0, "fertility"] > 2


def test_notebook_runs_under_papermill(tmp_path, corpus_dir):
    import papermill as pm

    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in _docs(30)), encoding="utf-8")
    out = tmp_path / "data"
    pm.execute_notebook(
        str(NOTEBOOK), str(tmp_path / "executed.ipynb"), kernel_name="bashkir-peft", progress_bar=False,
        parameters={"corpus": str(corpus), "output_dir": str(out), "min_chars": 30, "num_proc": 1,
                    "tokenizers": ["tiny-gpt2"], "langid_sample": str(corpus_dir / "langid-sample.jsonl")},
    )
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["status"] == "complete" and manifest["counts"]["documents_kept"] == 30
    fert = pd.read_parquet(out / DataFiles.FERTILITY)
    assert list(fert["model"]) == ["tiny-gpt2"] and fert.loc[0, "fertility"] > 1
    assert fert.loc[0, "premium"] == pytest.approx(fert.loc[0, "tokens_bak"] / fert.loc[0, "tokens_eng"])
    executed = (tmp_path / "executed.ipynb").read_text(encoding="utf-8")
    assert "Data card" in executed and "precision" in executed and "image/png" in executed
    assert "### Tokenizers" in executed and "premium" in executed

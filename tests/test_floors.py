"""The report's n-gram floors: trained on the grid's training split only, scored on exactly
the documents the runs scored, per protocol and split; their Goldfish rows sit in the table
beside published models."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from bashkir_peft.config.external import ExternalSet
from bashkir_peft.data.external import load_external
from bashkir_peft.data.fertility import load_profile_tokenizer
from bashkir_peft.evaluate.goldfish import goldfish_windows
from bashkir_peft.evaluate.ngram import ByteKneserNey, TokenBigram
from bashkir_peft.records import EVAL_DOCUMENT_COLUMNS, RunFiles
from bashkir_peft.report.floors import BYTE_ORDER, floors_table
from bashkir_peft.report.published import published_table
from bashkir_peft.report.runs import discover_runs
from report_synth import documents, write_corpus_data, write_run
from test_flores import _add_goldfish_entry

FLORES_BAK = ExternalSet(name="flores-bak", format="lines", path="../shared/eval/flores200/bak_Cyrl.devtest.gz",
                         max_documents=5)


def test_floors_on_what_the_runs_scored(tmp_path, corpus_dir):
    data, texts = write_corpus_data(tmp_path / "data", corpus_dir)
    rng = np.random.default_rng(0)
    docs = documents(rng, 3)  # ids d000..d002: the test split's first three
    flores = load_external(FLORES_BAK)
    for name, method in (("m-base", "base"), ("m-lora", "lora")):
        d = write_run(tmp_path / "runs", name, "tiny-gpt2", method, 8 if method == "lora" else None,
                      None if method == "base" else 42, 2.0, docs, rng, generate=False)
        _add_goldfish_entry(d, "bak_Cyrl", 100.0, 5, 0)
        path = d / RunFiles.EVAL_DOCUMENTS
        rows = pd.DataFrame({"protocol": "goldfish", "split": "flores-bak", "id": flores.ids, "source": "x",
                             "nll": 1.0, "tokens": 1, "bytes": 1, "words": 1, "separator_nll": 0.0,
                             "separator_tokens": 0})
        pd.concat([pd.read_parquet(path), rows], ignore_index=True)[list(EVAL_DOCUMENT_COLUMNS)].to_parquet(path)
    runs = discover_runs(tmp_path / "runs")
    table = floors_table(runs, data)
    assert set(zip(table["protocol"], table["split"])) == {("rolling", "test"), ("goldfish", "flores-bak")}  # no paper
    # the byte model, direct: trained on the training split only, on the three scored test documents
    byte_lm = ByteKneserNey.fit(texts[:40], order=BYTE_ORDER)
    test = texts[40:43]
    row = table[(table["split"] == "test") & (table["model"] == "")].iloc[0]
    assert row["documents"] == 3 and row["trained_on"].startswith("training split: 40 documents")
    assert row["bits_per_byte"] == pytest.approx(byte_lm.bits(test).sum() / sum(len(t.encode()) for t in test))
    # the bigram over tiny-gpt2's (GPT-2's) tokens under the Goldfish protocol, direct
    tok, _ = load_profile_tokenizer("tiny-gpt2")
    bigram = TokenBigram.fit(tok(texts[:40], add_special_tokens=False)["input_ids"], len(tok), tok.unk_token_id)
    windows, _, _ = goldfish_windows(flores.texts, tok)
    bits = sum(bigram.surprisals([int(t) for t in w.tokens[1:]])[-w.n_scored:].sum() for w in windows)
    row = table[(table["split"] == "flores-bak") & (table["model"] == "tiny-gpt2")].iloc[0]
    assert row["bits_per_sentence"] == pytest.approx(bits / 5) and row["documents"] == 5
    # ... and both floors sit in the table beside published models, kind "floor"
    floors = published_table(runs, table)
    floor_rows = floors[floors["kind"] == "floor"].set_index("model")
    assert floor_rows.loc["tiny-gpt2", "bak_Cyrl"] == pytest.approx(bits / 5)
    assert math.isnan(floor_rows.loc["tiny-gpt2", "tat_Cyrl"]) and floor_rows.loc["tiny-gpt2", "sentences"] == "bak 5"
    assert floors_table(runs, None).empty

"""Words, not letters, stored per generation: the generate stage counts each continuation's (and
reference's) word forms in the training split's lexicon and word 8-grams found in it; the
report's words table reads those counts, and counts the text itself only for a table written
before them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bashkir_peft.config.generate import GenerateParams
from bashkir_peft.data.folder import load_split, write_presplit_folder
from bashkir_peft.generate.run import run_generation
from bashkir_peft.records import GENERATION_WORD_COLUMNS, RecordError, RunFiles
from bashkir_peft.report.runs import discover_runs
from bashkir_peft.report.words import RUSSIAN_LABEL, words_table
from bashkir_peft.text.lexicon import Lexicon, word_forms
from report_synth import documents, write_run
from test_train import make_data_dir


def test_generate_stage_stores_word_counts_per_generation(tmp_path, corpus_dir):
    import torch

    torch.set_num_threads(1)
    data = make_data_dir(corpus_dir, tmp_path / "data", n_train=24, chars=600)
    out = tmp_path / "gen"
    rec = run_generation(GenerateParams(model="tiny-gpt2", data_dir=str(data), output_dir=str(out), prompt_words=5,
                                        reference_words=12, max_new_tokens=8, n_prompts=4, batch_size=2,
                                        num_threads=1))
    df = pd.read_parquet(out / RunFiles.GENERATIONS)
    assert set(GENERATION_WORD_COLUMNS) <= set(df.columns) and len(df) == 4
    lexicon = Lexicon.build(str(t) for t in load_split(data, "train")["text"])
    for row in df.itertuples():  # each generation's counts, direct
        for prefix, text in (("", row.continuation), ("reference_", row.reference)):
            assert (getattr(row, f"{prefix}in_lexicon_words"), getattr(row, f"{prefix}lexicon_words")) == \
                lexicon.in_lexicon([text])
            assert (getattr(row, f"{prefix}copied_8grams"), getattr(row, f"{prefix}word_8grams")) == \
                lexicon.copy_rate([text])
    assert df["reference_lexicon_words"].sum() == sum(len(word_forms(t)) for t in df["reference"]) > 0
    info = rec.lexicon
    assert info.forms == len(lexicon.forms) and info.train_documents == 24 and (info.min_count, info.n) == (2, 8)
    hits, words = lexicon.in_lexicon(df["reference"].tolist())
    assert info.reference_in_lexicon_rate == pytest.approx(hits / words)
    # no training split (a prompts file, no data folder): no counts, no lexicon
    rec = run_generation(GenerateParams(model="tiny-gpt2", prompts_file="params/prompts.yaml",
                                        output_dir=str(tmp_path / "pf"), max_new_tokens=4, n_prompts=2, batch_size=2,
                                        num_threads=1))
    assert rec.lexicon is None
    assert not set(GENERATION_WORD_COLUMNS) & set(pd.read_parquet(tmp_path / "pf" / RunFiles.GENERATIONS).columns)


@pytest.fixture
def generated(tmp_path):
    """A data folder and a finished run whose generations.parquet holds two texts, and word
    counts that are *not* those of its text (so a table read from them is told apart)."""
    texts = ["Башҡортостан Республикаһы матур ил", "Ҡыш көнө һыуыҡ булды"]
    frame = pd.DataFrame({"id": ["0", "1"], "source": "web", "text": texts})
    data = tmp_path / "data"
    write_presplit_folder(data, {"train": pd.concat([frame, frame]), "validation": frame, "test": frame}, "fp",
                          {"kind": "fixture", "location": "texts"})
    rng = np.random.default_rng(0)
    d = write_run(tmp_path / "runs", "m-lora", "tiny-gpt2", "lora", 8, 42, 2.0, documents(rng, 3), rng)
    gen = pd.read_parquet(d / RunFiles.GENERATIONS)
    gen["continuation"] = [texts[i % 2] for i in range(len(gen))]  # all in the lexicon
    gen["reference"] = texts[0]
    counts = {"lexicon_words": 10, "in_lexicon_words": 3, "word_8grams": 4, "copied_8grams": 1,
              "reference_lexicon_words": 5, "reference_in_lexicon_words": 5, "reference_word_8grams": 0,
              "reference_copied_8grams": 0}
    gen.assign(**counts).to_parquet(d / RunFiles.GENERATIONS)
    return data, d, gen


def test_words_table_reads_the_stored_counts(generated):
    data, d, gen = generated
    runs = discover_runs(d.parent)
    for data_dir in (data, None):  # the same rows with or without the corpus (a results bundle has none)
        table = words_table(runs, data_dir).set_index("method_label")
        assert table.loc["lora r=8", "words"] == 10 * len(gen)
        assert table.loc["lora r=8", "in_lexicon_rate"] == pytest.approx(0.3)
        assert table.loc["lora r=8", "copy_rate"] == pytest.approx(0.25)
        assert table.loc["reference text", "in_lexicon_rate"] == 1.0
        assert np.isnan(table.loc["reference text", "copy_rate"])  # no 8-gram in the references
        assert (RUSSIAN_LABEL in table.index) == (data_dir is not None)  # counted from the corpus only


def test_words_table_counts_a_table_written_before_the_stored_counts(generated):
    data, d, gen = generated
    gen.to_parquet(d / RunFiles.GENERATIONS)  # without the count columns
    runs = discover_runs(d.parent)
    table = words_table(runs, data).set_index("method_label")
    assert table.loc["lora r=8", "words"] == sum(len(word_forms(t)) for t in gen["continuation"])
    assert table.loc["lora r=8", "in_lexicon_rate"] == 1.0
    assert words_table(runs, None).empty
    gen.assign(**dict.fromkeys(GENERATION_WORD_COLUMNS, 1.5)).to_parquet(d / RunFiles.GENERATIONS)
    with pytest.raises(RecordError, match="lexicon_words"):
        words_table(runs, data)

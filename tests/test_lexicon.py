"""Words, not letters: the in-lexicon rate is 1.0 on training sentences and 0 on random letter
strings; the copy rate finds training passages and nothing in random text."""

from __future__ import annotations

import gzip
import itertools
import json
import random
from collections import Counter

import pytest

from bashkir_peft.text.lexicon import Lexicon, word_forms

LETTERS = "абвгғдҙеёжзийкҡлмнңоөпрҫстуүфхһцчшщъыьэәюя"


@pytest.fixture(scope="module")
def docs(corpus_dir) -> list[str]:
    with gzip.open(corpus_dir / "bashkir-demo.jsonl.gz", "rt", encoding="utf-8") as f:
        return [json.loads(line)["text"] for line in itertools.islice(f, 30)]


def _random_words(n: int, seed: int = 0) -> str:
    rng = random.Random(seed)
    return " ".join("".join(rng.choice(LETTERS) for _ in range(rng.randint(6, 11))) for _ in range(n))


def test_word_forms_rule():
    assert word_forms("Ҡыҙ-ҡырҡын, 2024 йылда: «Өфө»! don't_stop") == ["ҡыҙ-ҡырҡын", "йылда", "өфө", "don't", "stop"]
    assert word_forms("12 345 — ... ") == []


def test_in_lexicon_rate_is_one_on_training_sentences_and_zero_on_random_letters(docs):
    lexicon = Lexicon.build(docs + docs)  # every form of docs seen at least twice
    hits, words = lexicon.in_lexicon(docs[:5])
    assert words > 100 and hits == words
    assert lexicon.in_lexicon([_random_words(200)]) == (0, 200)
    once = Lexicon.build(docs)  # forms seen once are out: the rate is the share of forms seen twice
    counts = Counter(w for d in docs for w in word_forms(d))
    words = [w for w in word_forms(docs[0])]
    assert once.in_lexicon([docs[0]]) == (sum(counts[w] >= 2 for w in words), len(words))


def test_copy_rate_finds_training_passages_only(docs):
    lexicon = Lexicon.build(docs[:-1])
    passage = " ".join(docs[0].split()[10:40])  # 30 consecutive training words: every 8-gram copied
    hits, grams = lexicon.copy_rate([passage])
    assert grams == len(word_forms(passage)) - 7 and hits == grams
    assert lexicon.copy_rate([_random_words(50)]) == (0, 43)
    held_hits, held = lexicon.copy_rate([docs[-1]])  # a document it never saw: (almost) nothing copied
    assert held > 50 and held_hits / held < 0.05
    assert lexicon.copy_rate(["шаҡ шаҡ"]) == (0, 0)  # fewer than 8 words: no 8-gram


def test_words_table_places_runs_between_the_reference_and_russian(tmp_path, docs):
    import numpy as np
    import pandas as pd

    from bashkir_peft.data.folder import write_presplit_folder
    from bashkir_peft.records import RunFiles
    from bashkir_peft.report.runs import discover_runs
    from bashkir_peft.report.words import RUSSIAN_LABEL, words_table
    from report_synth import documents, write_run

    frame = pd.DataFrame({"id": [str(i) for i in range(len(docs))], "source": "web", "text": docs})
    data = tmp_path / "data"
    write_presplit_folder(data, {"train": pd.concat([frame, frame]), "validation": frame, "test": frame}, "fp",
                          {"kind": "fixture", "location": "texts"})
    rng = np.random.default_rng(0)
    d = write_run(tmp_path / "runs", "m-full", "tiny-gpt2", "full", None, 42, 2.0, documents(rng, 3), rng)
    gen = pd.read_parquet(d / RunFiles.GENERATIONS)
    # half the continuations recite training text, half are random letters; references are training text
    passages = [" ".join(docs[i].split()[:20]) for i in range(len(gen))]
    gen["continuation"] = [p if i % 2 == 0 else _random_words(20, i) for i, p in enumerate(passages)]
    gen["reference"] = passages
    gen.to_parquet(d / RunFiles.GENERATIONS)
    table = words_table(discover_runs(tmp_path / "runs"), data).set_index("method_label")
    assert table.index.tolist() == ["reference text", "full", RUSSIAN_LABEL]
    run_words = sum(len(word_forms(t)) for t in gen["continuation"])
    recited = sum(len(word_forms(p)) for i, p in enumerate(passages) if i % 2 == 0)
    assert table.loc["full", "words"] == run_words
    assert table.loc["full", "in_lexicon_rate"] == pytest.approx(recited / run_words)
    assert table.loc["reference text", "in_lexicon_rate"] == 1.0 and table.loc["reference text", "copy_rate"] == 1.0
    assert table.loc[RUSSIAN_LABEL, "texts"] == 204 and table.loc[RUSSIAN_LABEL, "in_lexicon_rate"] < 0.6
    assert words_table([], None).empty

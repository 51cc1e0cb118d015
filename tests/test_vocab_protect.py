"""Re-tokenization and protected text (issue 32) on the tiny tied model's tokenizer (GPT-2's):
protected Russian and English samples tokenize to identical ids before and after the
adaptation while Bashkir fertility drops; the same adaptation without protection changes
them; the re-tokenization shares count what they say; protection enters the run id only
when set, and FLORES-200 / SIB-200 text cannot be protected."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from bashkir_peft.config.grid import expand, parse_grid
from bashkir_peft.config.tokenizer import TextSample, TokenizerAdaptation
from bashkir_peft.data.folder import load_texts
from bashkir_peft.data.retokenization import read_samples
from bashkir_peft.data.vocab import adapt_tokenizer
from bashkir_peft.errors import ConfigError
from bashkir_peft.grid.runids import make_run_id
from bashkir_peft.models.loading import load_tokenizer, resolve_model
from bashkir_peft.models.retokenization import segmentation_change
from bashkir_peft.models.vocab import extend_tokenizer
from bashkir_peft.records import VocabAdaptation
from bashkir_peft.report.tokenizers import RETOKENIZATION_COLUMNS, retokenization_table
from test_train import make_data_dir

SAMPLE = "../shared/corpus/langid-sample.jsonl"
PROTECT = [TextSample(path=SAMPLE, lang="rus"), TextSample(path=SAMPLE, lang="eng")]
K = 40


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory, corpus_dir):
    return make_data_dir(corpus_dir, tmp_path_factory.mktemp("protect-data"), n_train=24, chars=2000)


@pytest.fixture(scope="module")
def base():
    return load_tokenizer(resolve_model("tiny-gpt2"))


def _tokens(tokenizer, texts):
    return sum(map(len, tokenizer(texts, add_special_tokens=False)["input_ids"]))


def test_protected_text_keeps_its_ids_while_bashkir_fertility_drops(base, data_dir, tmp_path):
    protected = read_samples(PROTECT)
    assert len(protected) == 400  # 350 Russian + 50 English documents of the sample
    setting = TokenizerAdaptation(new_tokens=K, bpe_vocab_size=3000, protect=PROTECT)
    tokenizer, added, info = adapt_tokenizer(data_dir, base, setting, tmp_path / "tok", sides={})
    assert len(added) == K
    ids = lambda tok: tok(protected, add_special_tokens=False)["input_ids"]  # noqa: E731
    assert ids(tokenizer) == ids(base)
    assert info["protection"] == {"merges_dropped": info["protection"]["merges_dropped"], "documents": 400,
                                  "unchanged": 1.0}
    assert info["protection"]["merges_dropped"] > 0
    bashkir = load_texts(data_dir, "test")
    assert _tokens(tokenizer, bashkir) < 0.95 * _tokens(base, bashkir)
    assert info["train_after"]["fertility"] < info["train_before"]["fertility"]
    # without protection the same K changes the Russian sample: protection is what keeps it
    plain, _, _ = adapt_tokenizer(data_dir, base, TokenizerAdaptation(new_tokens=K, bpe_vocab_size=3000), sides={})
    assert segmentation_change(base, plain, protected)["texts_unchanged"] < 0.9
    # a resumed run reads the saved tokenizer and the merges it dropped back
    again, _, info2 = adapt_tokenizer(data_dir, base, setting, tmp_path / "tok", sides={})
    assert info2["protection"] == info["protection"] and len(again) == len(tokenizer)


def test_held_out_sides_are_measured_and_recorded(base, data_dir):
    _, _, info = adapt_tokenizer(data_dir, base, TokenizerAdaptation(new_tokens=K, bpe_vocab_size=3000))
    re = info["retokenized"]
    assert set(re) >= {"flores-eng", "flores-rus", "flores-tat", "sib200-eng", "sib200-rus", "sib200-bak"}
    assert re["flores-eng"]["changed_share"] == 0 and re["flores-eng"]["texts_unchanged"] == 1  # all-ASCII
    assert re["flores-eng"]["texts"] == 1012 and re["sib200-rus"]["texts"] == 1004
    assert re["sib200-bak"]["new_row_share"] > 0 and re["sib200-bak"]["changed_share"] > 0
    assert "FLORES" not in json.dumps(re)  # shares only, never a sentence
    # the record contract takes it, and the report's table shows one row per setting x side
    vocab = VocabAdaptation.model_validate(info | {"tied": True, "new_rows": K, "peft_mechanism": None,
                                                   "token_rows_trainable_params": 0})
    runs = [SimpleNamespace(status="finished", model="tiny-gpt2", train=SimpleNamespace(vocab=vocab),
                            cell=SimpleNamespace(params=SimpleNamespace(tokenizer="k40"))) for _ in range(2)]
    table = retokenization_table(runs)
    assert list(table.columns) == RETOKENIZATION_COLUMNS and len(table) == len(re)
    rus = table[table["side"] == "flores-rus"].iloc[0]
    assert rus["runs"] == 2 and rus["changed_share"] == re["flores-rus"]["changed_share"]
    assert rus["train_fertility_adapted"] < rus["train_fertility_base"] and rus["protected_documents"] == 0


def test_segmentation_change_counts_merged_tokens(base):
    word = "ҡалаһы"
    trained = base.train_new_from_iterator([word] * 50, 400)
    adapted, _, _ = extend_tokenizer(base, trained, 100)
    b = base(word, add_special_tokens=False)["input_ids"]
    a = adapted(word, add_special_tokens=False)["input_ids"]
    # the new merges join the first three base pieces (ҡ's two bytes and а) into one new row
    assert len(b) == 8 and a[0] >= len(base) and a[1:] == b[3:]
    hello = base("hello", add_special_tokens=False)["input_ids"]
    same = segmentation_change(base, base, [word, "hello"])
    assert (same["changed_share"], same["new_row_share"], same["texts_unchanged"]) == (0, 0, 1)
    got = segmentation_change(base, adapted, [word, "hello"])
    assert got["base_tokens"] == 8 + len(hello) and got["adapted_tokens"] == 6 + len(hello)
    assert got["changed_share"] == pytest.approx(3 / (8 + len(hello)))
    assert got["new_row_share"] == pytest.approx(1 / (6 + len(hello)))
    assert got["texts_unchanged"] == 0.5


def _ids(tokenizers: dict) -> dict:
    grid = parse_grid({"name": "t", "default_source": "ours", "tokenizers": tokenizers,
                       "matrix": {"model": ["tiny-gpt2"], "method": ["lora"], "seed": [1], "tokenizer": list(tokenizers)}})
    return {c.tokenizer: (c.params["train"]["tokenizer"], make_run_id(c.slug, c.axes(), c.params, "fp", "r"))
            for c in expand(grid)}


def test_protection_enters_the_run_id_only_when_set():
    ids = _ids({"a": {"new_tokens": 8}, "b": {"new_tokens": 8, "protect": [{"path": SAMPLE, "lang": "rus"}]}})
    assert ids["a"][0] == {"new_tokens": 8, "bpe_vocab_size": None, "init": "mean"}  # as before issue 32
    assert ids["b"][0]["protect"] == [{"path": SAMPLE, "lang": "rus"}]
    assert ids["a"][1] != ids["b"][1]


@pytest.mark.parametrize("path", ["../shared/eval/flores200/rus_Cyrl.devtest.gz", "../shared/eval/sib200/rus_Cyrl"])
def test_test_sets_cannot_be_protected(path):
    with pytest.raises(ConfigError, match="may not come from FLORES-200 or SIB-200"):
        parse_grid({"name": "t", "default_source": "ours", "tokenizers": {"k": {"new_tokens": 8, "protect": [{"path": path}]}},
                    "matrix": {"model": ["tiny-gpt2"], "method": ["lora"], "tokenizer": ["k"]}})


def test_protected_entry_without_text_is_one_clear_error():
    with pytest.raises(ConfigError, match=r"text sample ../shared/corpus/langid-sample.jsonl \(lang xyz\): no text in it"):
        read_samples([TextSample(path=SAMPLE, lang="xyz")])


def test_speed_table_reads_tokens_per_word_and_generation_rates(tmp_path):
    from bashkir_peft.records import GenerateRecord, RunFiles, read_record, write_record
    from bashkir_peft.report.runs import read_run
    from bashkir_peft.report.tokenizers import speed_table
    from report_synth import write_adapted_pair

    docs, fewer, plain, adapted = write_adapted_pair(tmp_path)
    gen = read_record(adapted / RunFiles.GENERATE, GenerateRecord)  # the adapted run generates in half the time
    write_record(adapted / RunFiles.GENERATE, gen.model_copy(update={"cost": gen.cost.model_copy(
        update={"generate_time_s": gen.cost.generate_time_s / 2})}))
    table = speed_table([read_run(plain), read_run(adapted)], "rolling").set_index("tokenizer")
    words = gen.summary.mean_words * gen.summary.n
    assert table.loc["base", "test_tokens_per_word"] == pytest.approx(docs["tokens"].sum() / docs["words"].sum())
    assert table.loc["k8", "test_tokens_per_word"] == pytest.approx(fewer["tokens"].sum() / fewer["words"].sum())
    assert table.loc["base", "generation_words_per_s"] == pytest.approx(words / gen.cost.generate_time_s)
    assert table.loc["k8", "generation_tokens_per_word"] == pytest.approx(gen.cost.new_tokens / words)
    assert table.loc["k8", "words_per_s_vs_base_tokenizer"] == pytest.approx(2.0)
    assert table.loc["base", "words_per_s_vs_base_tokenizer"] == pytest.approx(1.0)


def test_the_data_chapter_describes_each_adapted_tokenizer_once_a_run_of_it_finished(tmp_path):
    from bashkir_peft.book import assemble_data
    from bashkir_peft.records import RunFiles, TrainRecord, read_record, write_record
    from bashkir_peft.report.runs import discover_runs
    from report_synth import write_adapted_pair

    _, _, plain, adapted = write_adapted_pair(tmp_path / "runs")
    gen = tmp_path / "generated"
    # before any adapted run carries its tokenizer's record: no page (the base-tokenizer run has none)
    assert assemble_data(tmp_path / "runs", gen, discover_runs(tmp_path / "runs")) == []
    shares = {"flores-rus": (1012, 0.011, 0.005, 0.604), "flores-tat": (1012, 0.131, 0.053, 0.006),
              "sib200-bak": (1004, 0.348, 0.128, 0.0)}
    vocab = VocabAdaptation(
        new_tokens=8, bpe_vocab_size=300, init="mean", new_tokens_added=8, base_vocab_size=50257, vocab_size=50265,
        tied=True, new_rows=8, train_before={"fertility": 7.5, "chars_per_token": 1.0, "bytes_per_token": 1.8},
        train_after={"fertility": 5.6, "chars_per_token": 1.3, "bytes_per_token": 2.4}, peft_mechanism=None,
        token_rows_trainable_params=0, protect=[{"path": SAMPLE, "lang": "rus"}, {"path": "extra/eng.txt", "lang": None}],
        protection={"merges_dropped": 764, "documents": 400, "unchanged": 1.0},
        retokenized={side: {"texts": n, "base_tokens": 1000, "adapted_tokens": 900, "changed_share": c,
                            "new_row_share": new, "texts_unchanged": same} for side, (n, c, new, same) in shares.items()})
    train = read_record(adapted / RunFiles.TRAIN, TrainRecord)
    write_record(adapted / RunFiles.TRAIN, train.model_copy(update={"vocab": vocab}))
    sections = assemble_data(tmp_path / "runs", gen, discover_runs(tmp_path / "runs"))
    assert sections == [{"file": "generated/data/adapted_tokenizers"}]
    page = (gen / "data" / "adapted_tokenizers.md").read_text(encoding="utf-8")
    assert page.startswith("# Adapted tokenizers\n") and page.count("\n## ") == 1
    assert "## `tiny-gpt2` with `k8`" in page
    assert ("8 new tokens (rows initialised: mean); protected text: rus, eng.txt (400 documents, 100.0% of them cut "
            "as before; 764 new merges dropped). Bashkir fertility (training split): 7.50 with the base tokenizer, "
            "5.60 adapted.") in page
    rows = [line for line in page.splitlines() if line.startswith(("| flores", "| sib200"))]
    assert rows == ["| flores-rus | 1,012 | 1.1% | 0.5% | 60.4% |", "| flores-tat | 1,012 | 13.1% | 5.3% | 0.6% |",
                    "| sib200-bak | 1,004 | 34.8% | 12.8% | 0.0% |"]
    # a setting with a warm-up of its new rows says so (it read as the same tokenizer without one)
    warm = vocab.model_copy(update={"new_rows_warmup_steps": 5, "new_rows_learning_rate": 1e-3})
    write_record(adapted / RunFiles.TRAIN, train.model_copy(update={"vocab": warm}))
    assemble_data(tmp_path / "runs", gen, discover_runs(tmp_path / "runs"))
    page = (gen / "data" / "adapted_tokenizers.md").read_text(encoding="utf-8")
    assert "8 new tokens (rows initialised: mean; before training, 5 steps of the new rows alone at 0.001);" in page

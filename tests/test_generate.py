"""Generation stage: same seed and parameters give the same generations (sampling on, tiny
model); left padding does not change greedy text; prompts are chosen deterministically
from test documents; a run folder gets generate.json (with provenance) and
generations.parquet whose summary matches its rows; a training run is loaded through
load_trained; bad input fails before any model is loaded; the notebook's parameters
agree with GenerateParams."""

from __future__ import annotations

import gzip
import json
import random
import shutil
from pathlib import Path

import pandas as pd
import pytest

from bashkir_peft.config.generate import GenerateParams, PromptsFile
from bashkir_peft.errors import ConfigError, DataError
from bashkir_peft.generate.run import generate_texts, run_generation, run_summaries, select_prompts, side_by_side
from bashkir_peft.records import RunFiles, write_record
from bashkir_peft.text.codeswitch import BASHKIR_LETTERS
from bashkir_peft.yamlio import load_yaml, notebook_params, validate
from report_synth import stage_train_record

REPO = Path(__file__).resolve().parents[1]
PROMPTS = REPO / "params" / "prompts.yaml"
FAST = dict(max_new_tokens=8, n_prompts=4, batch_size=2, num_threads=1)
TEXTS = ["Һаумыһығыҙ, хөрмәтле", "Бөгөн Өфөлә көн йылы булды, ә кисен", "Ҡыш", "Башҡортостан Республикаһы"]


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models gain nothing from threads, and on a shared 2-core machine two intra-op
    threads make generation 10-20x slower; speed only, the numbers are the same."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny():
    from bashkir_peft.models.loading import load_model

    loaded = load_model("tiny-gpt2", "full")
    return loaded.model, loaded.tokenizer


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory, corpus_dir) -> Path:
    """The data preparation run on the first 40 documents of the demo corpus (cut to 600 characters)."""
    from bashkir_peft.config.data import DataPrepParams
    from bashkir_peft.data.prepare import prepare

    tmp = tmp_path_factory.mktemp("gen-data")
    with gzip.open(corpus_dir / "bashkir-demo.jsonl.gz", "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for _, line in zip(range(40), f)]
    corpus = tmp / "corpus.jsonl"
    corpus.write_text("".join(json.dumps(r | {"text": r["text"][:600]}, ensure_ascii=False) + "\n" for r in rows),
                      encoding="utf-8")
    prepare(DataPrepParams(corpus=str(corpus), output_dir=str(tmp / "data"), num_proc=1, min_chars=30,
                           tokenizers=[], langid_sample=None))
    return tmp / "data"


# --- parameters -----------------------------------------------------------------------


@pytest.mark.parametrize("values, needle", [
    ({"data_dir": "d", "output_dir": "o"}, "give model"),
    ({"model": "tiny-gpt2", "output_dir": "o"}, "data_dir"),
    ({"model": "tiny-gpt2", "data_dir": "d", "output_dir": "o", "top_p": 1.5}, "top_p"),
    ({"model": "tiny-gpt2", "data_dir": "d", "output_dir": "o", "max_new_tokens": 0}, "max_new_tokens"),
    ({"model": "tiny-gpt2", "data_dir": "d", "output_dir": "o", "temprature": 0.7}, "temprature: unknown key"),
])
def test_bad_parameters_fail_with_one_line(values, needle):
    with pytest.raises(ConfigError, match=needle) as err:
        validate(GenerateParams, values, "generate params")
    assert "\n" not in str(err.value)


def test_notebook_namespace_ignores_other_globals():
    p = notebook_params(GenerateParams, {"model": "tiny-gpt2", "data_dir": "d", "output_dir": "o", "pd": object()})
    assert p.model == "tiny-gpt2" and p.seed == 42


def test_decoding_settings_passed_only_when_sampling():
    p = GenerateParams(model="m", data_dir="d", output_dir="o", do_sample=False)
    assert p.decoding() == {"max_new_tokens": 400, "do_sample": False, "repetition_penalty": 1.0,
                            "budget": 30, "budget_unit": "words"}
    assert GenerateParams(model="m", data_dir="d", output_dir="o").decoding()["top_p"] == 0.95


def test_every_decoding_default_has_a_source():
    decoding = ["n_prompts", "prompt_words", "reference_words", "do_sample", "temperature", "top_p", "top_k",
                "repetition_penalty", "budget", "budget_unit", "max_new_tokens", "seed", "batch_size", "min_letters"]
    for name in decoding:
        extra = GenerateParams.model_fields[name].json_schema_extra
        assert isinstance(extra, dict) and extra["source"].strip(), name


# --- prompts --------------------------------------------------------------------------


def test_prompts_are_chosen_deterministically_from_ids():
    ids = [f"doc{i}" for i in range(50)]
    texts = [f"Беренсе һүҙ {i} икенсе өсөнсө дүртенсе бишенсе" for i in range(50)]
    texts[7] = "ике һүҙ"  # too short to give a prompt of 3 words and a continuation
    a = select_prompts(ids, texts, 10, 3, reference_words=2)
    order = list(range(50))
    random.Random(0).shuffle(order)
    b = select_prompts([ids[i] for i in order], [texts[i] for i in order], 10, 3, reference_words=2)
    assert a == b and len(a) == 10
    assert "doc7" not in {p.id for p in a}
    p = a[0]
    i = int(p.id[3:])
    assert p.text == f"Беренсе һүҙ {i}" and p.reference == "икенсе өсөнсө"
    # adding documents keeps the old prompts that still rank in the first n
    more = select_prompts(ids + ["new1", "new2"], texts + texts[:2], 10, 3)
    kept = [q.id for q in more if q.id in ids]
    assert kept == [q.id for q in a][: len(kept)] and len(kept) >= 8
    with pytest.raises(DataError, match="prompt_words"):
        select_prompts(["x"], ["бер ике"], 1, 5)


def test_prompts_file_holds_bashkir_openings():
    from bashkir_peft.text.langid import classify

    pf = load_yaml(PROMPTS, PromptsFile)
    assert len(pf.prompts) >= 10 and len({p.id for p in pf.prompts}) == len(pf.prompts)
    for p in pf.prompts:
        assert 4 <= len(p.text.split()) <= 8, p.text
        assert any(ch in BASHKIR_LETTERS for ch in p.text), p.text
        assert not any("a" <= ch.lower() <= "z" for ch in p.text), p.text
        assert classify(p.text) == "bak", p.text


# --- decoding: penalty, budget, whole characters ---------------------------------------


def test_budget_counts_complete_words_and_whole_characters():
    from bashkir_peft.generate.decoding import budget_reached, trim_to_budget

    assert not budget_reached("бер ике өс", 3, "words")  # the third word may go on
    assert budget_reached("бер ике өс ", 3, "words") and budget_reached("бер ике\nөс дүр", 3, "words")
    assert trim_to_budget(" бер ике\nөс дүрт", 3, "words") == " бер ике\nөс"  # whitespace as written
    assert trim_to_budget("бер ике", 3, "words") == "бер ике"
    assert not budget_reached("абв\ufffd", 4, "characters") and budget_reached("абвг", 4, "characters")
    assert trim_to_budget("абвгд", 4, "characters") == "абвг" and trim_to_budget("аб\ufffd", 4, "characters") == "аб"


def test_a_cut_byte_is_not_decoded_as_a_broken_character(tiny):
    from bashkir_peft.generate.decoding import decode_whole

    _, tok = tiny
    ids = tok("ҡ", add_special_tokens=False)["input_ids"]
    assert len(ids) == 2 and "\ufffd" in tok.decode(ids[:1])  # GPT-2 byte tokens: one per UTF-8 byte
    assert decode_whole(tok, ids[:1]) == "" and decode_whole(tok, ids) == "ҡ"
    assert decode_whole(tok, tok("Өфө ҡ", add_special_tokens=False)["input_ids"][:-1]) == "Өфө "


def _greedy_reference(model, ids, n: int, penalty: float) -> list[int]:
    """Greedy decoding written out: the CTRL penalty on the tokens generated so far only."""
    import torch

    seq, new = list(ids), []
    for _ in range(n):
        with torch.no_grad():
            logits = model(torch.tensor([seq])).logits[0, -1].clone()
        for t in set(new):
            logits[t] = logits[t] / penalty if logits[t] > 0 else logits[t] * penalty
        nxt = int(logits.argmax())
        seq.append(nxt)
        new.append(nxt)
    return new


@pytest.mark.parametrize("penalty", [1.0, 1.5])
def test_greedy_continuation_matches_plain_greedy_and_penalizes_generated_tokens_only(tiny, penalty):
    import torch

    from bashkir_peft.models.loading import prefix_token_id

    model, tok = tiny
    p = GenerateParams(model="tiny-gpt2", data_dir="d", output_dir="o", do_sample=False, max_new_tokens=10,
                       budget=1000, repetition_penalty=penalty)
    got = generate_texts(model, tok, [TEXTS[1]], p)[0]
    ids = [prefix_token_id(tok)] + tok(TEXTS[1], add_special_tokens=False)["input_ids"]
    ref = _greedy_reference(model, ids, 10, penalty)
    assert got["n_new_tokens"] == 10 and got["stop_reason"] == "token_cap"
    assert got["continuation"] == tok.decode(ref).rstrip("\ufffd")
    if penalty == 1.0:  # no penalty is plain greedy decoding of transformers itself
        plain = model.generate(torch.tensor([ids]), do_sample=False, max_new_tokens=10, pad_token_id=tok.eos_token_id)
        assert plain[0, len(ids):].tolist() == ref
    else:  # the prompt's tokens are not penalized: penalizing them gives other text here
        penalized_prompt = model.generate(torch.tensor([ids]), do_sample=False, max_new_tokens=10,
                                          repetition_penalty=penalty, pad_token_id=tok.eos_token_id)
        assert penalized_prompt[0, len(ids):].tolist() != ref


def test_word_budget_gives_equal_word_counts_across_tokenizers():
    from bashkir_peft.models.loading import load_model

    p = GenerateParams(model="tiny-gpt2", data_dir="d", output_dir="o", do_sample=True, temperature=1.0, top_k=0,
                       top_p=1.0, budget=6, max_new_tokens=200, batch_size=2)
    for name in ("tiny-gpt2", "tiny-qwen2"):
        loaded = load_model(name, "full")
        gens = generate_texts(loaded.model, loaded.tokenizer, TEXTS[:2], p)
        assert [g["stop_reason"] for g in gens] == ["budget", "budget"], name
        assert [len(g["continuation"].split()) for g in gens] == [6, 6], name
        assert all("\ufffd" not in g["continuation"] for g in gens)


# --- generation -----------------------------------------------------------------------


def test_same_seed_same_generations_with_sampling(tiny):
    model, tok = tiny
    p = GenerateParams(model="tiny-gpt2", data_dir="d", output_dir="o", **FAST)
    first = generate_texts(model, tok, TEXTS, p)
    again = generate_texts(model, tok, TEXTS, p)
    assert first == again
    assert all(g["n_new_tokens"] > 0 and g["continuation"] for g in first)
    other = generate_texts(model, tok, TEXTS, p.model_copy(update={"seed": 7}))
    assert [g["continuation"] for g in other] != [g["continuation"] for g in first]  # sampling is on


def test_left_padding_does_not_change_greedy_text(tiny):
    model, tok = tiny
    p = GenerateParams(model="tiny-gpt2", data_dir="d", output_dir="o", do_sample=False, max_new_tokens=8,
                       batch_size=4)
    texts = TEXTS[1:3]  # 10 and 1 words: the short one is padded
    batched = generate_texts(model, tok, texts, p)
    single = [generate_texts(model, tok, [t], p)[0] for t in texts]
    assert batched == single
    assert tok.padding_side == "right"  # the tokenizer is left as it was


def test_run_generation_writes_record_and_table(tmp_path, data_dir):
    out = tmp_path / "base"
    p = GenerateParams(model="tiny-gpt2", data_dir=str(data_dir), output_dir=str(out), reference_words=12,
                       prompt_words=5, **FAST)
    rec = run_generation(p)
    on_disk = json.loads((out / RunFiles.GENERATE).read_text(encoding="utf-8"))
    assert on_disk == rec.model_dump(mode="json", exclude_unset=True) | {"schema_version": rec.schema_version}
    assert rec.status == "finished" and rec.label == "tiny-gpt2/base/s42" and rec.run.method == "base"
    assert rec.model.name == "tiny-gpt2" and rec.model.revision.startswith("local:")
    test = pd.read_parquet(data_dir / "test.parquet")
    manifest = json.loads((data_dir / "manifest.json").read_text(encoding="utf-8"))
    assert rec.data.model_dump(exclude_unset=True) == {"kind": "test_split", "path": str(data_dir), "fingerprint": manifest["fingerprint"],
                           "test_documents": len(test)}
    assert rec.decoding.do_sample is True and rec.decoding.seed == 42
    assert rec.environment.packages["transformers"] and rec.cost.wall_time_s > 0
    assert rec.prefix_token == "<|endoftext|>"

    df = pd.read_parquet(out / RunFiles.GENERATIONS)
    assert len(test) >= 4 and len(df) == 4
    for row in df.itertuples():
        doc = test.set_index("id").loc[row.prompt_id, "text"].split()
        assert row.prompt == " ".join(doc[:5]) and row.reference == " ".join(doc[5:17])
    assert rec.summary.n == 4
    words = sum(len(t.split()) for t in df["continuation"])
    assert words > 0 and rec.cost.words_per_s == pytest.approx(words / rec.cost.generate_time_s)
    nonempty = df[df["n_letters"] > 0]
    assert rec.summary.code_switch_rate == pytest.approx(nonempty["code_switch"].mean())
    assert rec.summary.non_bashkir_word_share == pytest.approx(
        df["n_non_bashkir_words"].sum() / df["n_label_words"].sum())
    # the real next words of Bashkir test documents read as Bashkir
    assert rec.reference_summary.language_shares["bak"] > 0.8
    assert rec.reference_summary.bashkir_letter_share > 0.1
    assert sum(rec.stops.values()) == 4 and df["stop_reason"].isin(["eos", "budget", "token_cap"]).all()
    check = rec.reference_summary.crosscheck  # fastText agrees that the real next words are Bashkir
    assert check.n_sentences > 0 and check.ours["bak"] > 0.8 and check.fasttext["bak"] > 0.5

    # a second run (here: a copy with another label and text) beside the first
    out2 = tmp_path / "other"
    shutil.copytree(out, out2)
    (out2 / RunFiles.GENERATE).write_text(json.dumps(on_disk | {"label": "other"}), encoding="utf-8")
    df.assign(continuation=df["continuation"].str.upper()).iloc[:3].to_parquet(out2 / RunFiles.GENERATIONS)
    table = side_by_side([out, out2])
    assert list(table.columns) == ["prompt", "reference", "tiny-gpt2/base/s42", "other"]
    assert table.index.tolist() == df["prompt_id"].tolist()
    assert table["tiny-gpt2/base/s42"].tolist() == df["continuation"].tolist()
    assert table["other"].tolist()[:3] == df["continuation"].str.upper().tolist()[:3]
    assert pd.isna(table["other"].iloc[3])  # a prompt the other run lacks
    summ = run_summaries([out, out2])
    assert summ["label"].tolist() == ["tiny-gpt2/base/s42", "other"]
    assert summ["code_switch_rate"].iloc[0] == pytest.approx(rec.summary.code_switch_rate, nan_ok=True)
    assert {"lang_share_bak", "distinct_2", "non_bashkir_word_share"} <= set(summ.columns)
    with pytest.raises(DataError, match="share the label"):
        side_by_side([out, out])


def test_prompts_file_wins_over_data_dir(tmp_path, data_dir):
    out = tmp_path / "pf"
    rec = run_generation(GenerateParams(model="tiny-gpt2", data_dir=str(data_dir), prompts_file="params/prompts.yaml",
                                        output_dir=str(out), do_sample=False, max_new_tokens=4, n_prompts=3,
                                        num_threads=1))
    pf = load_yaml(PROMPTS, PromptsFile)
    df = pd.read_parquet(out / RunFiles.GENERATIONS)
    assert df["prompt"].tolist() == [p.text for p in pf.prompts[:3]]
    assert rec.data.kind == "prompts_file" and rec.data.fingerprint.startswith("sha256:")
    assert rec.reference_summary is None


# --- training runs and bad input --------------------------------------------------------


def test_generation_from_a_lora_run(tmp_path, data_dir):
    from bashkir_peft.config.train import TrainParams
    from bashkir_peft.train.run import run_training

    run = tmp_path / "run"
    run_training(TrainParams(model="tiny-gpt2", method="lora", lora_r=4, block_size=16, per_device_train_batch_size=4,
                             max_steps=1, eval_steps=10, save_steps=10, logging_steps=1, max_eval_documents=1,
                             seed=3, data_dir=str(data_dir), output_dir=str(run)))
    rec = run_generation(GenerateParams(model="tiny-gpt2", run_dir=str(run), **FAST))  # data_dir: the run's
    assert (run / RunFiles.GENERATE).is_file() and (run / RunFiles.GENERATIONS).is_file()
    assert rec.label == "tiny-gpt2/lora/r4/s3"
    assert rec.run.method == "lora" and rec.run.lora_r == 4
    assert rec.data.matches_training_data is True
    with pytest.raises(ConfigError, match="trained from 'tiny-gpt2'"):
        run_generation(GenerateParams(model="tiny-llama", run_dir=str(run), data_dir=str(data_dir)))


def test_bad_input_fails_before_loading_and_keeps_results(tmp_path, data_dir, monkeypatch):
    import bashkir_peft.generate.run as gen

    old = '{"status": "finished", "label": "earlier"}'
    (tmp_path / RunFiles.GENERATE).write_text(old, encoding="utf-8")

    def no_loading(*a, **k):
        raise AssertionError("model loaded before the input was checked")

    monkeypatch.setattr(gen, "load_subject", no_loading)
    with pytest.raises(ConfigError, match="no train.json"):
        run_generation(GenerateParams(run_dir=str(tmp_path), data_dir=str(data_dir)))
    write_record(tmp_path / "train.json", stage_train_record({"model": "tiny-gpt2"}, "failed", "loss is nan"))
    with pytest.raises(ConfigError, match="training status is 'failed' \\(loss is nan\\)"):
        run_generation(GenerateParams(run_dir=str(tmp_path), data_dir=str(data_dir)))
    with pytest.raises(ConfigError, match="no such file"):
        run_generation(GenerateParams(model="tiny-gpt2", prompts_file=str(tmp_path / "nope.yaml"),
                                      output_dir=str(tmp_path)))
    bad = tmp_path / "bad.yaml"
    bad.write_text("source: x\nprompts:\n  - id: a\n    txt: Һаумы\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="unknown key"):
        run_generation(GenerateParams(model="tiny-gpt2", prompts_file=str(bad), output_dir=str(tmp_path)))
    with pytest.raises(DataError):
        run_generation(GenerateParams(model="tiny-gpt2", data_dir=str(tmp_path / "none"), output_dir=str(tmp_path)))
    assert (tmp_path / RunFiles.GENERATE).read_text(encoding="utf-8") == old  # an earlier result is kept


def test_texts_are_kept_when_measuring_fails(tmp_path, monkeypatch):
    import bashkir_peft.generate.run as gen

    def broken(*a, **k):
        raise RuntimeError("language identifier crashed")

    monkeypatch.setattr(gen, "analyze_many", broken)
    with pytest.raises(RuntimeError):
        run_generation(GenerateParams(model="tiny-gpt2", prompts_file=str(PROMPTS), output_dir=str(tmp_path),
                                      n_prompts=2, max_new_tokens=3, num_threads=1))
    df = pd.read_parquet(tmp_path / RunFiles.GENERATIONS)
    assert len(df) == 2 and df["continuation"].str.len().min() > 0
    assert not (tmp_path / RunFiles.GENERATE).exists()  # no record: the run is not finished

"""Evaluation: windows, bounded-memory scoring, both protocols, metrics, records, notebook."""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

import numpy as np
import pytest

from bashkir_peft.config.evaluate import EvalParams
from bashkir_peft.data.folder import write_presplit_folder
from bashkir_peft.errors import ConfigError
from bashkir_peft.evaluate.metrics import corpus_metrics, count_bytes, count_words, summarize, token_spans
from bashkir_peft.evaluate.run import run_evaluation, score_paper, score_rolling
from bashkir_peft.evaluate.scoring import Window, rolling_windows, score_windows
from bashkir_peft.models.loading import prefix_token_id
from bashkir_peft.records import write_record
from bashkir_peft.text.excerpt import head_bytes
from report_synth import stage_train_record

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def texts(corpus_dir) -> list[str]:
    """Eight real documents of varied length (cut to keep the test fast)."""
    out = []
    with gzip.open(corpus_dir / "bashkir-demo.jsonl.gz", "rt", encoding="utf-8") as f:
        for i, line in enumerate(f):
            out.append(json.loads(line)["text"][: 50 + 50 * (i % 4)].strip())
            if len(out) == 8:
                break
    return out


@pytest.fixture(scope="module")
def mistral():
    """tiny-mistral (Llama-style rotary model): Mistral tokenizer, which has a BOS and a
    small vocabulary (32k: cheap to score)."""
    from bashkir_peft.models.loading import load_model

    loaded = load_model("tiny-mistral", "full")
    return loaded.model.eval(), loaded.tokenizer


@pytest.fixture(scope="module")
def gpt2():
    """tiny-gpt2: GPT-2 tokenizer (no distinct BOS: prefix is <|endoftext|>)."""
    from bashkir_peft.models.loading import load_model

    loaded = load_model("tiny-gpt2", "full")
    return loaded.model.eval(), loaded.tokenizer


def _reference_nll(model, ids: list[int]) -> float:
    """NLL of ids[1:] given ids, from the model's full logits (no chunking, no padding)."""
    import torch

    with torch.no_grad():
        logp = model(torch.tensor([ids])).logits[0].float().log_softmax(-1)
    return float(-logp[torch.arange(len(ids) - 1), torch.tensor(ids[1:])].sum())


# ----------------------------------------------------------------- windows


@pytest.mark.parametrize("n", [0, 1, 5, 16, 17, 40, 63])
@pytest.mark.parametrize("stride", [None, 1, 5, 16])
def test_rolling_windows_are_lm_eval_windows(n, stride):
    """Same model inputs and scored targets as lm_eval's get_rolling_token_windows +
    make_disjoint_window + the (context + continuation)[-(max_length + 1):] truncation."""
    from lm_eval.utils import get_rolling_token_windows, make_disjoint_window

    L, prefix = 16, 999
    tokens = list(range(100, 100 + n))
    ours = rolling_windows(tokens, prefix, L, stride)
    ctx_len = 1 if stride is None else L - stride + 1
    theirs = [make_disjoint_window(w) for w in get_rolling_token_windows(tokens, prefix, L, ctx_len)]
    assert len(ours) == len(theirs)
    for w, (ctx, cont) in zip(ours, theirs):
        assert w.tokens.tolist() == (ctx + cont)[-(L + 1):]
        assert w.n_scored == len(cont)
    # every token scored exactly once, in order
    assert [t for w in ours for t in w.tokens[len(w.tokens) - w.n_scored:].tolist()] == tokens


def test_rolling_windows_reject_bad_stride():
    with pytest.raises(ValueError, match="stride"):
        rolling_windows([1, 2, 3], 0, 4, stride=5)


# ----------------------------------------------------------------- scoring


def test_chunked_loss_equals_full_logits(mistral, gpt2, texts):
    """Decoder + chunked LM head gives the NLL of the model's own logits."""
    for model, tok in (mistral, gpt2):
        ids = [prefix_token_id(tok)] + tok(texts[1], add_special_tokens=False)["input_ids"][:40]
        w = Window(np.array(ids), len(ids) - 1)
        got = score_windows(model, [w], chunk_tokens=7)[0]
        assert len(got) == len(ids) - 1
        assert got.sum() == pytest.approx(_reference_nll(model, ids), rel=1e-5)


def test_batch_size_and_padding_side_do_not_change_numbers(mistral, texts):
    a = score_rolling(*mistral, texts[:6], max_length=24, batch_size=1)
    b = score_rolling(*mistral, texts[:6], max_length=24, batch_size=8, padding_side="right")
    c = score_rolling(*mistral, texts[:6], max_length=24, batch_size=8, padding_side="left")
    for other in (b, c):
        np.testing.assert_allclose(other["nll"], a["nll"], rtol=1e-5)
        np.testing.assert_array_equal(other["tokens"], a["tokens"])


def test_padded_positions_never_scored(mistral, texts):
    """Windows of very different lengths in one batch: each returns exactly its scored
    targets, and the pad id (a different token in the padded slots) changes nothing."""
    model, tok = mistral
    ids = tok(texts[3], add_special_tokens=False)["input_ids"]
    windows = [Window(np.array(ids[:n]), k) for n, k in ((40, 39), (5, 2), (12, 11), (3, 1))]
    alone = [score_windows(model, [w])[0] for w in windows]
    for pad in (0, 7, 12345):
        for side in ("left", "right"):
            got = score_windows(model, windows, batch_size=4, pad_token_id=pad, padding_side=side)
            assert [len(g) for g in got] == [w.n_scored for w in windows]
            for g, a in zip(got, alone):
                np.testing.assert_allclose(g, a, rtol=1e-5, atol=1e-6)


def test_scored_tokens_are_the_tokens_of_the_text(mistral, gpt2, texts):
    for model, tok in (mistral, gpt2):
        sums = score_rolling(model, tok, texts, max_length=16, batch_size=8)
        expected = [len(tok(t, add_special_tokens=False)["input_ids"]) for t in texts]
        assert sums["tokens"].tolist() == expected
        assert sums["bytes"].tolist() == [len(t.encode("utf-8")) for t in texts]
        assert sums["words"].tolist() == [len(t.split()) for t in texts]


def test_prefix_is_bos_or_eos(mistral, gpt2):
    assert prefix_token_id(mistral[1]) == mistral[1].bos_token_id != mistral[1].eos_token_id
    assert prefix_token_id(gpt2[1]) == gpt2[1].eos_token_id


def test_stride_on_short_text_equals_one_window(mistral, texts):
    model, tok = mistral
    ids = tok(texts[0], add_special_tokens=False)["input_ids"]
    L = len(ids) + 3
    one = _reference_nll(model, [tok.bos_token_id] + ids)
    for stride in (1, 4, L):
        got = score_rolling(model, tok, [texts[0]], max_length=L, stride=stride)["nll"][0]
        assert got == pytest.approx(one, rel=1e-5)


def test_stride_on_long_text_scores_each_token_once_with_more_context(mistral, texts):
    model, tok = mistral
    long_text = max(texts, key=len)
    n = len(tok(long_text, add_special_tokens=False)["input_ids"])
    disjoint = score_rolling(model, tok, [long_text], max_length=16)
    strided = score_rolling(model, tok, [long_text], max_length=16, stride=4)
    assert disjoint["tokens"][0] == strided["tokens"][0] == n > 16
    assert strided["nll"][0] != pytest.approx(disjoint["nll"][0], rel=1e-6)


# ----------------------------------------------------------------- paper protocol


def test_paper_protocol_is_the_training_loss_on_packed_blocks(gpt2, texts):
    import torch

    from bashkir_peft.data.packing import pack_blocks, tokenize_documents

    model, tok = gpt2
    bs = 24
    sums = score_paper(model, tok, texts, block_size=bs, batch_size=3)
    blocks = pack_blocks(tokenize_documents(texts, tok), bs)
    with torch.no_grad():
        loss = model(input_ids=torch.tensor(blocks), labels=torch.tensor(blocks)).loss.item()
    n_scored = blocks.shape[0] * (bs - 1)
    assert sums["tokens"].sum() + sums["separator_tokens"].sum() == n_scored
    all_nll = sums["nll"].sum() + sums["separator_nll"].sum()
    assert math.exp(all_nll / n_scored) == pytest.approx(math.exp(loss), rel=1e-5)
    # bytes and words of scored tokens only: at most the documents', most of them
    total_bytes = sum(count_bytes(t) for t in texts)
    assert 0.8 * total_bytes < sums["bytes"].sum() <= total_bytes
    assert (sums["bytes"] <= [count_bytes(t) for t in texts]).all()


def test_training_blocks_give_a_bos_model_its_bos_at_every_document_start(mistral, gpt2, texts):
    from bashkir_peft.data.packing import packed_dataset, tokenize_documents
    from bashkir_peft.models.loading import prefix_token_id

    _, tok = mistral  # Llama-style: BOS <s> distinct from EOS </s>
    bos, eos = tok.bos_token_id, tok.eos_token_id
    assert prefix_token_id(tok) == bos != eos  # what evaluation and generation prefix
    docs = tokenize_documents(texts, tok)
    plain = tok(texts, add_special_tokens=False)["input_ids"]
    assert all(d == [bos] + p + [eos] for d, p in zip(docs, plain))
    ds, stats = packed_dataset(texts, tok, 16, "train")
    flat = [t for row in ds["input_ids"] for t in row]
    starts = [i + 1 for i, t in enumerate(flat[:-1]) if t == eos]  # every document after the first
    assert flat[0] == bos and all(flat[i] == bos for i in starts)
    assert stats["framing"] == f"{tok.bos_token} + text + {tok.eos_token}"
    # GPT-2: BOS is EOS, so the separator already precedes each document: framing unchanged
    _, tok = gpt2
    assert tokenize_documents(texts[:2], tok) == [p + [tok.eos_token_id]
                                                  for p in tok(texts[:2], add_special_tokens=False)["input_ids"]]


def test_paper_bits_per_byte_excludes_the_separators_that_own_no_bytes(mistral, texts):
    import pandas as pd
    import torch

    from bashkir_peft.data.packing import pack_blocks, tokenize_documents

    model, tok = mistral
    bs = 20
    sums = score_paper(model, tok, texts, block_size=bs, batch_size=4)
    blocks = pack_blocks(tokenize_documents(texts, tok), bs)
    with torch.no_grad():
        logp = model(torch.tensor(blocks)).logits.float().log_softmax(-1)
    targets = torch.tensor(blocks[:, 1:])
    nll = -logp[:, :-1].gather(-1, targets[..., None])[..., 0]
    sep = (targets == tok.bos_token_id) | (targets == tok.eos_token_id)
    assert sums["separator_tokens"].sum() == int(sep.sum()) > 0
    assert sums["separator_nll"].sum() == pytest.approx(float(nll[sep].sum()), rel=1e-4)
    assert sums["nll"].sum() == pytest.approx(float(nll[~sep].sum()), rel=1e-4)
    table = summarize(pd.DataFrame({"source": "s", **sums}), by=None).iloc[0]
    assert table["bits_per_byte"] == pytest.approx(float(nll[~sep].sum()) / (math.log(2) * sums["bytes"].sum()),
                                                   rel=1e-4)
    assert table["perplexity"] == pytest.approx(math.exp(float(nll.sum()) / nll.numel()), rel=1e-4)


def test_token_spans_partition_bytes_and_words(mistral, gpt2, texts):
    for _, tok in (mistral, gpt2):
        for t in texts + ["  two  words ", "ҡ"]:
            enc = tok(t, add_special_tokens=False, return_offsets_mapping=True)
            b, w = token_spans(t, enc["offset_mapping"])
            assert len(b) == len(enc["input_ids"])
            assert b.sum() == count_bytes(t) and w.sum() == count_words(t)
            assert (b >= 0).all()


# ----------------------------------------------------------------- metrics


def test_corpus_metrics_definitions():
    m = corpus_metrics(nll=100.0, tokens=50, bytes_=200, words=20)
    assert m["perplexity"] == pytest.approx(math.exp(2.0))
    assert m["bits_per_byte"] == pytest.approx(100.0 / (math.log(2) * 200))
    assert m["word_perplexity"] == pytest.approx(math.exp(5.0))
    assert math.isnan(corpus_metrics(1.0, 0, 0, 0)["perplexity"])


def test_summarize_uses_corpus_sums_not_mean_of_documents():
    import pandas as pd

    df = pd.DataFrame({"source": ["a", "a", "b"], "nll": [10.0, 30.0, 5.0], "tokens": [10, 10, 5],
                       "bytes": [40, 60, 10], "words": [4, 6, 1], "separator_nll": 0.0, "separator_tokens": 0})
    t = summarize(df).set_index("group")
    assert t.loc["all", "perplexity"] == pytest.approx(math.exp(45 / 25))
    assert t.loc["a", "bits_per_byte"] == pytest.approx(40 / (math.log(2) * 100))
    assert t.loc["b", "word_perplexity"] == pytest.approx(math.exp(5.0))
    assert t.loc["all", "documents"] == 3


# ----------------------------------------------------------------- parameters and notebook


def test_params_validation():
    from pydantic import ValidationError

    from bashkir_peft.yamlio import validate

    with pytest.raises(ConfigError, match="give model"):
        validate(EvalParams, {}, "eval")

    with pytest.raises(ValidationError, match="stride"):
        EvalParams(model="tiny-gpt2", data_dir="d", max_length=8, stride=9)
    with pytest.raises(ValidationError, match="data_dir"):
        EvalParams(model="tiny-gpt2")
    with pytest.raises(ValidationError, match="Extra inputs"):
        EvalParams(model="tiny-gpt2", data_dir="d", window=3)
    with pytest.raises(ValidationError, match="protocol"):
        EvalParams(model="tiny-gpt2", data_dir="d", protocol="mean")


# ----------------------------------------------------------------- end to end


@pytest.fixture()
def data_dir(tmp_path, texts):
    """A data prep folder in the contract layout (id, source, text; manifest with fingerprint)."""
    import pandas as pd

    d = tmp_path / "data"
    splits = {split: pd.DataFrame({"id": [f"{split}-{i}" for i in range(len(part))],
                                   "source": ["alpha" if i % 2 else "beta" for i in range(len(part))],
                                   "text": part})
              for split, part in (("test", texts[:6]), ("validation", texts[6:]), ("train", texts))}
    write_presplit_folder(d, splits, "fixture-fp", {"kind": "fixture", "location": "texts"})
    return d


def test_run_evaluation_writes_records_for_both_protocols_and_splits(tmp_path, data_dir, texts):
    import pandas as pd

    out = tmp_path / "out"
    common = dict(model="tiny-gpt2", data_dir=str(data_dir), output_dir=str(out), max_length=32, batch_size=4,
                  block_size=16, num_threads=1)
    entry = run_evaluation(EvalParams(**common), progress=False)
    run_evaluation(EvalParams(**common, protocol="paper"), progress=False)
    run_evaluation(EvalParams(**common, split="validation"), progress=False)

    rec = json.loads((out / "eval.json").read_text())
    assert set(rec["evaluations"]) == {"rolling/test", "paper/test", "rolling/validation"}
    r = rec["evaluations"]["rolling/test"]
    assert r["max_length"] == 32 and r["stride"] == 32 and r["prefix_token"] == "<|endoftext|>"
    assert r["data"]["fingerprint"] == "fixture-fp" and r["method"] == "base"
    assert r["model"]["name"] == "tiny-gpt2" and "packages" in r["environment"]
    assert set(r["by_source"]) == {"alpha", "beta"}
    assert r["metrics"] == pytest.approx(entry.metrics.model_dump())  # returned == recorded

    docs = pd.read_parquet(out / "eval_documents.parquet")
    test_rolling = docs[(docs.protocol == "rolling") & (docs.split == "test")]
    assert len(test_rolling) == 6 and len(docs[docs.split == "validation"]) == 2
    assert r["metrics"]["tokens"] == test_rolling["tokens"].sum()
    assert r["metrics"]["bits_per_byte"] == pytest.approx(
        test_rolling["nll"].sum() / (math.log(2) * sum(count_bytes(t) for t in texts[:6])))

    table = pd.read_csv(out / "eval_metrics.csv")
    assert {"protocol", "split", "source", "perplexity", "bits_per_byte", "word_perplexity"} <= set(table.columns)
    assert len(table) == 3 * 3  # 3 evaluations x (all + 2 sources)
    # re-running one evaluation replaces its rows, keeps the others
    run_evaluation(EvalParams(**common, max_documents=2), progress=False)
    docs = pd.read_parquet(out / "eval_documents.parquet")
    assert len(docs[(docs.protocol == "rolling") & (docs.split == "test")]) == 2
    assert len(docs[docs.protocol == "paper"]) == 6
    # a byte budget per document: each scored text is its head, at a word boundary
    cap = 40
    entry = run_evaluation(EvalParams(**common, max_document_bytes=cap), progress=False)
    docs = pd.read_parquet(out / "eval_documents.parquet")
    heads = docs[(docs.protocol == "rolling") & (docs.split == "test")]
    assert list(heads["bytes"]) == [count_bytes(head_bytes(t, cap)) for t in texts[:6]]
    assert (heads["bytes"] <= cap).all() and entry.metrics.bytes == heads["bytes"].sum()


def test_the_head_of_a_document_ends_at_a_word_within_its_bytes():
    assert head_bytes("баш ҡорт теле", 100) == "баш ҡорт теле"  # fits: whole
    assert head_bytes("баш ҡорт теле", 15) == "баш ҡорт"  # 15 bytes would cut "теле"
    assert head_bytes("баш ҡорт теле", 16) == "баш ҡорт"  # "баш ҡорт " + "т": no half word
    assert head_bytes("баш ҡорт теле", 23) == "баш ҡорт"  # one byte short of the whole (24 bytes)
    # a budget that ends between the two bytes of a letter inside a word: no half word either
    assert head_bytes("баш ҡорт теле", 18) == "баш ҡорт"  # "баш ҡорт т" + half of "е"
    assert head_bytes("баш ҡорт теле", 22) == "баш ҡорт"  # "баш ҡорт тел" + half of "е"
    assert head_bytes("баш ҡорт теле", 17) == "баш ҡорт"  # "баш ҡорт " + half of "т"
    assert head_bytes("баш ҡорт теле", 16) == "баш ҡорт"
    assert head_bytes("баш ҡорт\nтеле", 16) == "баш ҡорт"  # the budget stops before a newline
    assert head_bytes("баш ҡорт теле", 24) == "баш ҡорт теле"
    assert head_bytes("ҡҡҡҡҡ", 5) == "ҡҡ"  # one long word: whole characters (2 bytes each)
    with pytest.raises(ValueError):
        head_bytes("x", 0)


def test_run_evaluation_rejects_bad_input_before_scoring(tmp_path, data_dir):
    out = tmp_path / "out"
    with pytest.raises(ConfigError, match="context length"):
        run_evaluation(EvalParams(model="tiny-gpt2", data_dir=str(data_dir), output_dir=str(out)), progress=False)
    with pytest.raises(ConfigError, match="block_size"):
        run_evaluation(EvalParams(model="tiny-gpt2", data_dir=str(data_dir), output_dir=str(out),
                                  protocol="paper"), progress=False)
    with pytest.raises(ConfigError, match="train.json"):
        run_evaluation(EvalParams(run_dir=str(tmp_path / "nope"), output_dir=str(out)), progress=False)
    run = tmp_path / "run"
    run.mkdir()
    params = {"model": "tiny-gpt2", "method": "full", "data_dir": str(data_dir), "block_size": 16}
    write_record(run / "train.json", stage_train_record(params, "failed", "loss is nan"))
    with pytest.raises(ConfigError, match="loss is nan"):
        run_evaluation(EvalParams(run_dir=str(run), output_dir=str(out)), progress=False)
    write_record(run / "train.json", stage_train_record(params))
    (run / "final").mkdir()
    with pytest.raises(ConfigError, match="merge applies to lora/qlora"):
        run_evaluation(EvalParams(run_dir=str(run), output_dir=str(out), merge=True, max_length=64), progress=False)
    assert not (out / "eval.json").exists()


def _lora_run_folder(run: Path, data_dir: Path) -> Path:
    """A finished LoRA run folder as training writes it (train.json + final/ adapter and
    tokenizer), built directly: a tiny-gpt2 LoRA adapter with non-zero B matrices."""
    import torch

    from bashkir_peft.config.train import TrainParams
    from bashkir_peft.models.loading import load_model
    from bashkir_peft.models.lora import apply_lora

    params = TrainParams(model="tiny-gpt2", method="lora", block_size=16, data_dir=str(data_dir), output_dir=str(run))
    loaded = load_model("tiny-gpt2", "lora")
    model, tok = loaded.model, loaded.tokenizer
    torch.manual_seed(0)  # lora_A's random init too: the adapter's effect is the same every run
    peft_model = apply_lora(model, ["c_attn", "c_proj", "c_fc"], lora_r=4, lora_alpha=8)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 1.0)  # large enough to move a random tiny model's near-uniform logits
    peft_model.save_pretrained(run / "final")
    tok.save_pretrained(run / "final")
    write_record(run / "train.json", stage_train_record(params.model_dump(), model=loaded.resolved.record(),
                                                        data={"dir": str(data_dir), "fingerprint": "fixture-fp"}))
    return run


def test_trained_lora_run_unmerged_and_merged(tmp_path, data_dir):
    """A finished LoRA run: block_size and data come from its record; merged == unmerged;
    the adapter changes the numbers."""
    run = _lora_run_folder(tmp_path / "run", data_dir)
    common = dict(run_dir=str(run), model="tiny-gpt2", protocol="paper", batch_size=4, max_documents=4,
                  num_threads=1)
    unmerged = run_evaluation(EvalParams(**common), progress=False)
    merged = run_evaluation(EvalParams(**common, merge=True, output_dir=str(tmp_path / "merged")), progress=False)
    assert unmerged.block_size == 16 and unmerged.method == "lora"
    assert unmerged.merge_note == "adapters scored unmerged" and merged.merged is True
    assert unmerged.data.fingerprint == unmerged.train_data_fingerprint == "fixture-fp"
    assert merged.metrics.perplexity == pytest.approx(unmerged.metrics.perplexity, rel=1e-5)
    base = run_evaluation(EvalParams(model="tiny-gpt2", data_dir=str(data_dir), protocol="paper", block_size=16,
                                     max_documents=4, output_dir=str(tmp_path / "base"), num_threads=1),
                          progress=False)
    assert base.metrics.tokens == unmerged.metrics.tokens
    assert base.metrics.nll != pytest.approx(unmerged.metrics.nll, rel=1e-4)
    assert json.loads((run / "eval.json").read_text())["evaluations"]["paper/test"]["method"] == "lora"
    with pytest.raises(ConfigError, match="trained from"):
        run_evaluation(EvalParams(run_dir=str(run), model="tiny-mistral"), progress=False)


def test_logits_are_never_held_for_all_positions(gpt2, texts):
    """The LM head sees at most chunk_tokens positions at a time."""
    model, tok = gpt2
    seen = []
    hook = model.get_output_embeddings().register_forward_hook(lambda m, i, o: seen.append(i[0].shape[0]))
    try:
        sums = score_rolling(model, tok, texts[:3], max_length=64, batch_size=8, chunk_tokens=10)
    finally:
        hook.remove()
    assert max(seen) <= 10 and sum(seen) == sums["tokens"].sum()

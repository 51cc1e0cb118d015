"""The Goldfish protocol (bits on each sentence's second half, one start token, at most 512
tokens, the unknown-token rule) on tiny models: batched scoring equals a direct
one-sentence-at-a-time computation from the model's full logits, and constructed cases pin
down the half-split count, the start token and truncation."""

from __future__ import annotations

import gzip
import json
import math

import numpy as np
import pytest

from bashkir_peft.evaluate.goldfish import bits_per_sentence, goldfish_windows, score_goldfish
from bashkir_peft.evaluate.scoring import score_windows
from bashkir_peft.models.loading import prefix_token_id


@pytest.fixture(scope="module")
def sentences(corpus_dir) -> list[str]:
    """Five corpus sentences of varied length, with stray spaces (the protocol strips)."""
    out = []
    with gzip.open(corpus_dir / "bashkir-demo.jsonl.gz", "rt", encoding="utf-8") as f:
        for i, line in enumerate(f):
            out.append(" " + json.loads(line)["text"][: 30 + 40 * (i % 4)].strip() + "  ")
            if len(out) == 5:
                break
    return out


@pytest.fixture(scope="module", params=["tiny-mistral", "tiny-gpt2"])
def lm(request):
    """tiny-mistral (its tokenizer has BOS and an unknown token) and tiny-gpt2 (no BOS: EOS
    starts the sentence)."""
    from bashkir_peft.models.loading import load_model

    loaded = load_model(request.param, "full")
    return loaded.model.eval(), loaded.tokenizer


def _direct(model, tok, sentence: str, max_tokens: int) -> tuple[float, int]:
    """Goldfish's own steps, one sentence, full logits: (bits of the second half, counted targets)."""
    import torch

    line = sentence.strip()
    ids = ([prefix_token_id(tok)] + tok(line, add_special_tokens=False)["input_ids"])[:max_tokens]
    with torch.no_grad():
        logp = model(torch.tensor([ids])).logits[0, :-1].float().log_softmax(-1)
    labels = torch.tensor(ids[1:])
    bits = -logp[torch.arange(len(labels)), labels] / math.log(2)
    if tok.unk_token_id is not None:
        bits[labels == tok.unk_token_id] = math.log2(tok.vocab_size)
    k = len(tok(line[: len(line) // 2], add_special_tokens=False)["input_ids"])
    bits[:k] = 0.0
    return float(bits.sum()), max(0, len(labels) - k)


def test_batched_equals_one_sentence_at_a_time(lm, sentences):
    model, tok = lm
    sums = score_goldfish(model, tok, sentences, max_tokens=40, batch_size=8, chunk_tokens=7)
    direct = [_direct(model, tok, s, 40) for s in sentences]
    np.testing.assert_allclose(sums["nll"] / math.log(2), [d[0] for d in direct], rtol=1e-5)
    assert sums["tokens"].tolist() == [d[1] for d in direct]
    one = [score_goldfish(model, tok, [s], max_tokens=40, batch_size=1)["nll"][0] for s in sentences]
    np.testing.assert_allclose(sums["nll"], one, rtol=1e-5)
    assert bits_per_sentence(sums["nll"].sum(), len(sentences)) == pytest.approx(np.mean([d[0] for d in direct]),
                                                                                  rel=1e-5)


def test_half_split_start_token_and_truncation(lm):
    model, tok = lm
    line = "Һаумыһығыҙ, дуҫтар! Бөгөн көн матур."
    ids = tok(line, add_special_tokens=False)["input_ids"]
    k = len(tok(line[: len(line) // 2], add_special_tokens=False)["input_ids"])  # its first 18 characters
    assert line[: len(line) // 2] == "Һаумыһығыҙ, дуҫтар"
    windows, skipped, truncated = goldfish_windows(["  " + line + " "], tok, max_tokens=512)
    (w,) = windows
    assert w.tokens[0] == prefix_token_id(tok) and w.tokens.tolist()[1:] == ids  # one start token, then the text
    assert skipped[0] == k and w.n_scored == len(ids) - k and not truncated[0]
    # truncation: the start token and the first k + 3 text tokens remain; of them the k
    # first-half tokens are not counted
    assert len(ids) > k + 3
    windows, skipped, truncated = goldfish_windows([line], tok, max_tokens=k + 4)
    assert truncated[0] and windows[0].tokens.tolist() == [prefix_token_id(tok), *ids[: k + 3]]
    assert windows[0].n_scored == 3
    # a cut inside the first half leaves nothing to count: no window, 0 bits, still counted as truncated
    windows, _, truncated = goldfish_windows([line], tok, max_tokens=k)
    assert windows == [] and truncated[0]
    sums = score_goldfish(model, tok, [line, "а"], max_tokens=k)
    assert sums["nll"][0] == 0.0 and sums["tokens"][0] == 0 and sums["truncated"].tolist() == [True, False]
    assert sums["bytes"][0] == len(line[len(line) // 2:].encode()) and sums["words"][0] == 4


def test_unknown_token_costs_log_vocabulary(lm):
    model, tok = lm
    if tok.unk_token_id is None or tok.unk_token_id == prefix_token_id(tok):
        pytest.skip("this tokenizer's unknown token is its start token: it never is a target")
    windows, _, _ = goldfish_windows(["ab cd ef gh"], tok)
    w = windows[0]
    w.tokens[-1] = tok.unk_token_id  # a target the model cannot name
    raw = score_windows(model, [w])[0]

    class Fixed:  # the tokenizer, answering with the doctored ids
        def __getattr__(self, name):
            return getattr(tok, name)

        def __call__(self, texts, add_special_tokens=False):
            out = tok(texts, add_special_tokens=add_special_tokens)
            if texts == ["ab cd ef gh"]:
                out["input_ids"][0][-1] = tok.unk_token_id
            return out

    sums = score_goldfish(model, Fixed(), ["ab cd ef gh"])
    assert sums["nll"][0] == pytest.approx(raw[:-1].sum() + math.log(tok.vocab_size), rel=1e-6)


def test_an_evaluation_pass_under_the_protocol_records_truncation(tmp_path, monkeypatch):
    """run_evaluation on a FLORES-200 side under ``goldfish`` (the tiny model's 256 positions
    are below the protocol's 512, so the limit is lowered to 24 here to force truncation)."""
    import pandas as pd

    import bashkir_peft.evaluate.run as run
    from bashkir_peft.config.evaluate import EvalParams
    from bashkir_peft.config.external import ExternalSet
    from bashkir_peft.data.external import load_external
    from bashkir_peft.errors import ConfigError
    from bashkir_peft.models.loading import load_model
    from bashkir_peft.records import RunFiles

    flores = ExternalSet(name="flores-bak", format="lines", path="../shared/eval/flores200/bak_Cyrl.devtest.gz",
                         max_documents=3)
    common = dict(model="tiny-gpt2", output_dir=str(tmp_path), protocol="goldfish", num_threads=1,
                  external=flores.model_dump())
    with pytest.raises(ConfigError, match="goldfish protocol scores up to 512 tokens; the model's context is 256"):
        run.run_evaluation(EvalParams(**common), progress=False)
    monkeypatch.setattr(run, "GOLDFISH_MAX_TOKENS", 24)
    entry = run.run_evaluation(EvalParams(**common), progress=False)
    assert entry.protocol == "goldfish" and entry.max_length == 24 and entry.prefix_token == "<|endoftext|>"
    loaded = load_model("tiny-gpt2", "full")
    texts = load_external(flores).texts
    direct = [_direct(loaded.model.eval(), loaded.tokenizer, t, 24) for t in texts]
    assert entry.truncated == sum(len(loaded.tokenizer(t)["input_ids"]) + 1 > 24 for t in texts) == 3
    assert bits_per_sentence(entry.metrics.nll, entry.metrics.documents) == pytest.approx(
        np.mean([d[0] for d in direct]), rel=1e-5)
    docs = pd.read_parquet(tmp_path / RunFiles.EVAL_DOCUMENTS)
    assert set(docs["protocol"]) == {"goldfish"} and docs["id"].tolist() == load_external(flores).ids

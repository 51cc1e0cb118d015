"""n-gram floors: the byte Kneser-Ney model is a distribution in a seen and an unseen context
and scores training text better than shuffled text; the token bigram's stupid backoff is
Goldfish's, and normalized it is a distribution too."""

from __future__ import annotations

import gzip
import json
import math
import random

import numpy as np
import pytest

from bashkir_peft.evaluate.ngram import STUPID_BACKOFF, ByteKneserNey, TokenBigram


@pytest.fixture(scope="module")
def corpus(corpus_dir) -> list[str]:
    """About 60 kB of the demo corpus."""
    out = []
    with gzip.open(corpus_dir / "bashkir-demo.jsonl.gz", "rt", encoding="utf-8") as f:
        for line in f:
            out.append(json.loads(line)["text"])
            if sum(len(t) for t in out) > 30_000:
                break
    return out


def _shuffled(text: str, seed: int = 0) -> str:
    chars = list(text)
    random.Random(seed).shuffle(chars)
    return "".join(chars)


@pytest.mark.parametrize("order", [1, 3, 5])
def test_byte_kneser_ney_is_a_distribution_in_seen_and_unseen_contexts(corpus, order):
    lm = ByteKneserNey.fit(corpus, order=order)
    seen = corpus[0].encode()[:40]
    for history in (b"", seen, "Һаумы".encode(), bytes([0xFF, 0xFE, 0x00, 0x01, 0x02, 0x03])):
        p = lm.distribution(history)
        assert p.shape == (256,) and (p > 0).all() and p.sum() == pytest.approx(1.0, abs=1e-12)
    if order > 1:  # a seen context puts its mass on what followed it
        nxt = corpus[0].encode()[40]
        assert lm.distribution(seen)[nxt] > 0.2


def test_byte_kneser_ney_scores_training_text_better_than_shuffled(corpus):
    lm = ByteKneserNey.fit(corpus[:-2], order=5)
    held_out = corpus[-2:]  # text the counts never saw, and the same letters shuffled
    nbytes = sum(len(t.encode()) for t in held_out)
    real = lm.bits(held_out).sum() / nbytes
    shuffled = lm.bits([_shuffled(t) for t in held_out]).sum() / nbytes
    train = lm.bits(corpus[:3]).sum() / sum(len(t.encode()) for t in corpus[:3])
    assert train < real < shuffled
    assert real < 4.0 < shuffled  # Bashkir held out well under the 8 bits of a uniform byte


def test_byte_bits_are_the_distribution_along_the_text():
    lm = ByteKneserNey.fit(["abcabcabd", "abx"], order=3)
    text = "abq"
    direct = sum(-math.log2(lm.distribution(text.encode()[:i])[text.encode()[i]]) for i in range(3))
    assert lm.bits([text])[0] == pytest.approx(direct, rel=1e-12)
    with pytest.raises(ValueError, match="order must be in 1..7"):
        ByteKneserNey.fit(["a"], order=8)


def test_token_bigram_stupid_backoff_as_goldfish():
    # start=5; sequences 0 1 2 / 0 1 3 / 0 2; token 4 never seen
    lm = TokenBigram.fit([[0, 1, 2], [0, 1, 3], [0, 2]], vocab_size=5, unk=3)
    assert lm.score(5, 0) == 1.0 and lm.score(0, 1) == pytest.approx(2 / 3)  # seen pairs: relative frequency
    uni = np.array([3, 2, 2, 1, 0]) / 8
    assert lm.score(1, 0) == pytest.approx(STUPID_BACKOFF * uni[0])  # an unseen pair backs off, x 0.4
    assert lm.score(4, 2) == pytest.approx(STUPID_BACKOFF * uni[2])  # an unseen context too
    assert lm.score(0, 4) == pytest.approx(STUPID_BACKOFF * 1 / 8)  # an unseen unigram: the smallest seen
    bits = lm.surprisals([0, 3, 4])
    assert bits[0] == 0.0 and bits[1] == pytest.approx(math.log2(5))  # the unknown token: log2(vocabulary)
    assert sum(lm.score(0, t) for t in range(5)) > 1.0  # stupid backoff is a score, not a distribution


def test_token_bigram_normalized_is_a_distribution_and_prefers_real_text(corpus):
    from transformers import AutoTokenizer

    from bashkir_peft.settings import tokenizers_root

    tok = AutoTokenizer.from_pretrained(tokenizers_root() / "gpt2")
    ids = tok(corpus[:-2], add_special_tokens=False)["input_ids"]
    lm = TokenBigram.fit(ids, vocab_size=len(tok), unk=tok.unk_token_id)
    seen_context, unseen_context = ids[0][0], next(t for t in range(len(tok)) if t not in lm.bigram)
    for prev in (len(tok), seen_context, unseen_context):
        total = sum(lm.score(prev, t, normalized=True) for t in range(len(tok)))
        assert total == pytest.approx(1.0, abs=1e-9)
    held = tok(corpus[-2:], add_special_tokens=False)["input_ids"]
    shuffled = tok([_shuffled(t) for t in corpus[-2:]], add_special_tokens=False)["input_ids"]
    nbytes = sum(len(t.encode()) for t in corpus[-2:])
    for normalized in (False, True):
        real = sum(lm.surprisals(s, normalized).sum() for s in held) / nbytes
        mixed = sum(lm.surprisals(s, normalized).sum() for s in shuffled) / nbytes
        trained = sum(lm.surprisals(s, normalized).sum() for s in ids[:3]) / sum(len(t.encode()) for t in corpus[:3])
        assert trained < real < mixed

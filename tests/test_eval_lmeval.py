"""Agreement with an external reference: lm-evaluation-harness ``loglikelihood_rolling``.

On the same tiny model, texts and max_length, our ``rolling`` bits_per_byte and
word_perplexity must equal lm_eval's within 1e-4 relative, with lm_eval's numbers
aggregated exactly as its wikitext task does (``process_results`` pairs
``(loglikelihood, count_words | count_bytes)``, aggregated by ``weighted_perplexity`` and
``bits_per_byte``).
"""

from __future__ import annotations

import gzip
import json
import math

import pytest

from bashkir_peft.evaluate.metrics import corpus_metrics
from bashkir_peft.evaluate.run import score_rolling


@pytest.fixture(scope="module")
def texts(corpus_dir) -> list[str]:
    out = []
    with gzip.open(corpus_dir / "bashkir-demo.jsonl.gz", "rt", encoding="utf-8") as f:
        for line in f:
            out.append(json.loads(line)["text"][:150].strip())
            if len(out) == 4:
                break
    return out


def _lm_eval_metrics(model, tokenizer, texts, max_length: int) -> tuple[dict, list[float]]:
    from lm_eval.api.instance import Instance
    from lm_eval.api.metrics import bits_per_byte, weighted_perplexity
    from lm_eval.api.task import ConfigurableTask
    from lm_eval.models.huggingface import HFLM

    # add_bos_token=False: lm_eval tokenizes the text without special tokens and prefixes
    # the first window with its prefix token (BOS, else EOS), as our rolling protocol does.
    lm = HFLM(pretrained=model, tokenizer=tokenizer, max_length=max_length, batch_size=1, add_bos_token=False)
    requests = [Instance(request_type="loglikelihood_rolling", doc={}, arguments=(t,), idx=0) for t in texts]
    lls = lm.loglikelihood_rolling(requests, disable_tqdm=True)
    words = [(ll, ConfigurableTask.count_words(t)) for ll, t in zip(lls, texts)]
    bytes_ = [(ll, ConfigurableTask.count_bytes(t)) for ll, t in zip(lls, texts)]
    return {"word_perplexity": weighted_perplexity(words), "bits_per_byte": bits_per_byte(bytes_)}, lls


@pytest.mark.parametrize("name", ["tiny-gpt2", "tiny-mistral"])  # no BOS (EOS prefix) / BOS prefix
def test_rolling_agrees_with_lm_evaluation_harness(name, texts):
    from bashkir_peft.models.loading import load_model

    loaded = load_model(name, "full")
    model, tok = loaded.model.eval(), loaded.tokenizer
    max_length = 32  # several windows per document
    theirs, lls = _lm_eval_metrics(model, tok, texts, max_length)
    ours = score_rolling(model, tok, texts, max_length=max_length, batch_size=4)
    assert (ours["tokens"] > max_length).any()
    ours_m = corpus_metrics(ours["nll"].sum(), ours["tokens"].sum(), ours["bytes"].sum(), ours["words"].sum())
    assert ours_m["bits_per_byte"] == pytest.approx(theirs["bits_per_byte"], rel=1e-4)
    assert ours_m["word_perplexity"] == pytest.approx(theirs["word_perplexity"], rel=1e-4)
    for nll, ll in zip(ours["nll"], lls):  # and per document
        assert nll == pytest.approx(-ll, rel=1e-5)
    assert math.isfinite(ours_m["bits_per_byte"])

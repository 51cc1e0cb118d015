"""Agreement with an external reference: lm-evaluation-harness multiple choice.

The SIB-200 task is the local YAML file of :mod:`bashkir_peft.downstream.harness` over the
shared TSV files (a ``csv`` dataset: no Hub, no remote code). On the same tiny model and test
sentences, our per-choice log-likelihoods (:func:`bashkir_peft.downstream.scoring.loglikelihoods`)
equal lm-evaluation-harness' within 1e-4, zero-shot and with shots (its ``first_n`` sampler,
our first ``k`` train sentences), on a case where the predictions are not all one label.
"""

from __future__ import annotations

import numpy as np
import pytest

from bashkir_peft.data.sib200 import read_sib200_labels, read_sib200_split
from bashkir_peft.downstream.harness import harness_loglikelihoods, harness_task
from bashkir_peft.downstream.prompts import choice_requests, prompt_format
from bashkir_peft.downstream.scoring import choose, loglikelihoods

LIMIT = 4


@pytest.mark.parametrize("k", [0, 2])
def test_label_loglikelihoods_agree_with_lm_evaluation_harness(k, shared_dir):
    from bashkir_peft.models.loading import load_model

    folder = shared_dir / "eval" / "sib200" / "bak_Cyrl"
    labels = read_sib200_labels(folder)
    fmt = prompt_format(labels, "eng")
    loaded = load_model("tiny-gpt2", "full")
    model, tok = loaded.model.eval(), loaded.tokenizer
    theirs, doc_ids = harness_loglikelihoods(model, tok, harness_task(folder, fmt, labels), num_fewshot=k,
                                             limit=LIMIT)
    assert doc_ids == list(range(LIMIT))
    train, test = read_sib200_split(folder, "train"), read_sib200_split(folder, "test").head(LIMIT)
    shots = list(zip(train["text"][:k], train["category"][:k]))
    ours = loglikelihoods(model, tok, choice_requests(fmt, labels, shots, list(test["text"])),
                          max_length=model.config.n_positions, batch_size=8).reshape(LIMIT, len(labels))
    assert theirs.shape == ours.shape == (LIMIT, 7)
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-4)
    pred, pred_norm = choose(ours, labels)
    assert len(set(pred.tolist()) | set(pred_norm.tolist())) > 1  # not all one label
    assert (pred == choose(theirs, labels)[0]).all() and (pred_norm == choose(theirs, labels)[1]).all()

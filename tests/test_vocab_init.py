"""Initialisations of new vocabulary rows (issue 32): FOCUS runs offline on a tiny corpus and its
new rows are convex combinations of old rows (sparsemax weights on the simplex, the rows equal
to the weighted sum); sparsemax matches its definition; transformers' ``mean_resizing`` draws
rows near the old rows' mean, seeded; every choice leaves the old rows untouched."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bashkir_peft.config.tokenizer import TokenizerAdaptation
from bashkir_peft.data.folder import load_texts
from bashkir_peft.data.vocab import adapt_tokenizer
from bashkir_peft.models.focus import auxiliary_vectors, focus_weights, sparsemax
from bashkir_peft.models.loading import load_model
from bashkir_peft.models.vocab import resize_and_init
from test_train import make_data_dir

K = 60


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory, corpus_dir):
    return make_data_dir(corpus_dir, tmp_path_factory.mktemp("init-data"), n_train=24, chars=2000)


@pytest.fixture(scope="module")
def adapted(data_dir):
    loaded = load_model("tiny-qwen2", "full")
    tokenizer, added, _ = adapt_tokenizer(data_dir, loaded.tokenizer, TokenizerAdaptation(new_tokens=K, bpe_vocab_size=1500),
                                         sides={})
    return loaded.tokenizer, tokenizer, added


def test_sparsemax_is_the_projection_onto_the_simplex():
    z = np.array([[0.9, 0.5, 0.1, -1.0], [2.0, 0.0, 0.0, 0.0], [0.3, 0.3, 0.3, 0.3]])
    p = sparsemax(z)
    assert np.allclose(p.sum(1), 1) and (p >= 0).all()
    # Martins & Astudillo 2016: tau solves sum(max(z - tau, 0)) = 1; here by hand
    assert np.allclose(p[0], [0.7, 0.3, 0, 0]) and np.allclose(p[1], [1, 0, 0, 0]) and np.allclose(p[2], 0.25)


def test_focus_rows_are_convex_combinations_of_old_rows(adapted, data_dir):
    base, tokenizer, added = adapted
    texts = load_texts(data_dir, "train")
    model = load_model("tiny-qwen2", "full").model  # untied: embeddings and head both set
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    info = resize_and_init(model, base, tokenizer, added, "focus", seed=0, texts=texts)
    assert info["focus_rows"] > 0.5 * K and info["focus_rows"] + info["focus_fallback_rows"] == K
    assert 1 <= info["focus_mean_support"] < info["focus_overlapping"]  # sparse weights
    # recompute the weights independently of focus_init and check every row it set
    ids, vectors = auxiliary_vectors(tokenizer(texts, add_special_tokens=False)["input_ids"], seed=0)
    new = [int(i) for i in ids if i >= len(base)]
    old = [int(i) for i in ids if i < len(base)]
    assert len(new) == info["focus_rows"] and len(old) == info["focus_overlapping"]
    w = focus_weights(vectors[ids >= len(base)], vectors[ids < len(base)])
    assert (w >= 0).all() and np.allclose(w.sum(1), 1)
    for table in (model.get_input_embeddings().weight, model.get_output_embeddings().weight):
        e = table.detach().double()
        torch.testing.assert_close(e[new], torch.from_numpy(w) @ e[old], rtol=1e-5, atol=1e-6)
        assert torch.equal(table[: len(base)], before[_name(model, table)][: len(base)])  # old rows untouched
    # convex: each new row inside the box of the old rows it mixes
    e = model.get_input_embeddings().weight.detach()
    for r, row in zip(w[:5], new[:5]):
        support = torch.tensor([old[j] for j in np.flatnonzero(r)])
        assert (e[row] >= e[support].min(0).values - 1e-6).all() and (e[row] <= e[support].max(0).values + 1e-6).all()


def _name(model, param) -> str:
    return next(n for n, p in model.named_parameters() if p is param)


def test_mean_resizing_is_seeded_and_near_the_old_mean(adapted):
    base, tokenizer, added = adapted
    rows = []
    for _ in range(2):
        model = load_model("tiny-qwen2", "full").model
        old = model.get_input_embeddings().weight.detach().clone()
        info = resize_and_init(model, base, tokenizer, added, "mean_resizing", seed=3)
        new = model.get_input_embeddings().weight.detach()[len(base):]
        assert info["init"] == "mean_resizing" and new.shape[0] == K
        assert torch.equal(model.get_input_embeddings().weight[: len(base)], old)
        rows.append(new.clone())
    assert torch.equal(rows[0], rows[1])  # the seed decides the draw
    # transformers draws from N(mean, 1e-5 * covariance): rows close to the old mean
    mean = old.mean(0)
    assert (rows[0] - mean).norm(dim=1).max() < 0.1 * (old - mean).norm(dim=1).mean()

"""FOCUS initialisation of new vocabulary rows (Dobler & de Melo 2023, "FOCUS: Effective
Embedding Initialization for Monolingual Specialization of Multilingual Models", EMNLP 2023,
sec. 3), without the ``deepfocus`` package.

FOCUS sets each new token's row to a convex combination of the rows of *overlapping* tokens
(tokens of both vocabularies: here every old token), weighted by how similar the new token
is to each of them in an auxiliary static embedding space trained on target-language text:

    e_new = sum_j w_j e_j,   w = sparsemax(cos(a_new, a_j) for the overlapping tokens j)

(sparsemax: Martins & Astudillo 2016, the Euclidean projection onto the probability simplex,
so w >= 0, sum w = 1 and most w_j = 0).

The auxiliary space differs from the paper's: FOCUS trains fastText on the tokenized target
text; this environment has only the prediction half of fastText (``fasttext-predict``), so the
auxiliary vectors are count-based token embeddings from the same tokenized text: positive
pointwise mutual information over a symmetric window, context-distribution smoothing 0.75,
truncated SVD with the singular values' square root (Levy, Goldberg & Dagan 2015, "Improving
Distributional Similarity with Lessons Learned from Word Embeddings"; competitive with
skip-gram there). Only tokens that occur in the text have auxiliary vectors: the overlapping
set is the old tokens that occur, and a new token that never occurs keeps the fallback
initialisation (mean of its pieces), counted in the result.
"""

from __future__ import annotations

from collections.abc import Sequence


def sparsemax(z):
    """Sparsemax of each row of ``z`` (Martins & Astudillo 2016, eq. 2-4).

    Args:
        z: array ``(n, k)`` of scores.

    Returns:
        array ``(n, k)``: rows on the probability simplex (non-negative, summing to 1).
    """
    import numpy as np

    z = np.asarray(z, dtype=np.float64)
    s = -np.sort(-z, axis=1)
    k = np.arange(1, z.shape[1] + 1)
    cums = np.cumsum(s, axis=1)
    support = 1 + k * s > cums
    kz = support.sum(axis=1)
    tau = (cums[np.arange(len(z)), kz - 1] - 1) / kz
    return np.maximum(z - tau[:, None], 0.0)


def auxiliary_vectors(sequences: Sequence[Sequence[int]], dim: int = 100, window: int = 5, seed: int = 0):
    """Count-based token vectors from token-id sequences (PPMI + truncated SVD, see module doc).

    Args:
        sequences: token ids of each document.
        dim: vector size (at most the number of distinct tokens - 1).
        window: symmetric context window, in tokens.
        seed: seed of the randomized SVD.

    Returns:
        ``(ids, vectors)``: the distinct token ids that occur (sorted) and an array
        ``(len(ids), dim)`` of their vectors.

    Raises:
        ValueError: fewer than 3 distinct tokens.
    """
    import numpy as np
    from scipy import sparse
    from sklearn.decomposition import TruncatedSVD

    ids = np.unique(np.concatenate([np.asarray(s, dtype=np.int64) for s in sequences if len(s)]))
    if len(ids) < 3:
        raise ValueError(f"auxiliary vectors need at least 3 distinct tokens, got {len(ids)}")
    index = {int(t): i for i, t in enumerate(ids)}
    rows, cols = [], []
    for seq in sequences:
        x = np.fromiter((index[int(t)] for t in seq), dtype=np.int64, count=len(seq))
        for d in range(1, window + 1):
            rows += [x[:-d], x[d:]]
            cols += [x[d:], x[:-d]]
    n = len(ids)
    r, c = np.concatenate(rows), np.concatenate(cols)
    counts = sparse.coo_matrix((np.ones(len(r)), (r, c)), shape=(n, n)).tocsr()
    counts.sum_duplicates()
    total = counts.sum()
    p_w = np.asarray(counts.sum(1)).ravel() / total
    ctx = np.asarray(counts.sum(0)).ravel() ** 0.75
    p_c = ctx / ctx.sum()
    coo = counts.tocoo()
    pmi = np.log(coo.data / total / (p_w[coo.row] * p_c[coo.col]))
    keep = pmi > 0
    ppmi = sparse.csr_matrix((pmi[keep], (coo.row[keep], coo.col[keep])), shape=(n, n))
    svd = TruncatedSVD(n_components=min(dim, n - 1), algorithm="randomized", random_state=seed)
    u = svd.fit_transform(ppmi)  # U * S
    vectors = u / np.sqrt(np.maximum(svd.singular_values_, 1e-12))  # U * sqrt(S)
    return ids, vectors


def focus_weights(new_vectors, old_vectors, chunk: int = 1024):
    """FOCUS weights: sparsemax over the cosine similarities of each new token's auxiliary
    vector to every overlapping token's.

    Args:
        new_vectors: ``(n_new, dim)``.
        old_vectors: ``(n_old, dim)``.
        chunk: rows per block (bounds memory at ``chunk x n_old``).

    Returns:
        ``(n_new, n_old)`` array: each row on the probability simplex.
    """
    import numpy as np

    def unit(v):
        return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)

    a, b = unit(np.asarray(new_vectors, dtype=np.float64)), unit(np.asarray(old_vectors, dtype=np.float64))
    return np.concatenate([sparsemax(a[i : i + chunk] @ b.T) for i in range(0, len(a), chunk)])


def focus_init(model, tokenizer, new_ids: Sequence[int], texts: Sequence[str], dim: int = 100, window: int = 5,
               seed: int = 0) -> dict:
    """Set the rows ``new_ids`` of ``model``'s input embeddings (and of an untied head) by FOCUS.

    Args:
        model: a causal LM already resized to ``tokenizer`` (its new rows hold the fallback).
        tokenizer: the adapted tokenizer (every id below the first new id is an old token).
        new_ids: the new rows' ids.
        texts: target-language text for the auxiliary vectors (the training split only).
        dim, window, seed: of :func:`auxiliary_vectors`.

    Returns:
        ``{"focus_rows", "focus_fallback_rows", "focus_overlapping", "focus_mean_support"}``:
        rows set by FOCUS, rows left at the fallback (their token never occurs in ``texts``),
        overlapping old tokens used, and the mean number of non-zero weights per row.
    """
    import numpy as np
    import torch

    sequences = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
    ids, vectors = auxiliary_vectors(sequences, dim, window, seed)
    first_new = min(new_ids)
    new_set = set(int(i) for i in new_ids)
    is_old = ids < first_new
    is_new = np.array([int(t) in new_set for t in ids])
    old_ids, found = ids[is_old], ids[is_new]
    weights = focus_weights(vectors[is_new], vectors[is_old])
    w = torch.from_numpy(weights)
    emb = model.get_input_embeddings().weight
    head = model.get_output_embeddings()
    tables = [emb] + ([head.weight] if head is not None and head.weight is not emb else [])
    with torch.no_grad():
        for table in tables:
            old = table[torch.from_numpy(old_ids)].double()
            table[torch.from_numpy(found)] = (w @ old).to(table.dtype)
    return {"focus_rows": len(found), "focus_fallback_rows": len(new_ids) - len(found),
            "focus_overlapping": int(is_old.sum()), "focus_mean_support": float((weights > 0).sum(1).mean())}

"""De-duplication across the whole corpus, before splitting.

- Exact duplicates: documents whose *normalized* text (lower case, words only, single
  spaces) has the same hash; one of each group is kept.
- Near duplicates: MinHash signatures (datasketch) of each document's word n-gram
  shingles, taken inside sentences so that two copies of a sentence-shuffled document
  have the same shingles; candidate pairs from MinHash LSH (Broder 1997; Leskovec,
  Rajaraman & Ullman, *Mining of Massive Datasets*, ch. 3) are confirmed when their
  estimated Jaccard similarity is >= the threshold; confirmed pairs are joined into
  clusters (union-find) and one representative per cluster is kept.

The representative of a group or cluster is its longest document (most text), ties
broken by the smallest id, so the choice does not depend on the reading order.
"""

from __future__ import annotations

import hashlib
import re
import zlib
from collections.abc import Iterable, Sequence

import numpy as np

_WORD = re.compile(r"\w+")


def normalized_hash(text: str) -> bytes:
    """16-byte blake2b hash of the text's lower-cased words joined by single spaces."""
    norm = " ".join(_WORD.findall(text.lower()))
    return hashlib.blake2b(norm.encode("utf-8"), digest_size=16).digest()


def shingles(sentences: Iterable[str], ngram: int) -> list[bytes]:
    """Word ``ngram``-grams inside each sentence (a shorter sentence is one shingle).

    Returns:
        UTF-8 encoded shingles (duplicates kept; MinHash ignores them).
    """
    out: list[bytes] = []
    for s in sentences:
        words = _WORD.findall(s.lower())
        if not words:
            continue
        if len(words) <= ngram:
            out.append(" ".join(words).encode("utf-8"))
        else:
            out.extend(" ".join(words[i : i + ngram]).encode("utf-8") for i in range(len(words) - ngram + 1))
    return out


def _crc32(b: bytes) -> int:
    return zlib.crc32(b)


_TEMPLATES: dict[tuple[int, int], object] = {}


def minhash_signature(sentences: Iterable[str], ngram: int, num_perm: int, seed: int = 1) -> np.ndarray:
    """MinHash signature (datasketch ``MinHash``, crc32 shingle hash) of a document.

    Returns:
        uint32 array of shape (num_perm,).
    """
    from datasketch import MinHash

    key = (num_perm, seed)
    if key not in _TEMPLATES:  # the permutations are drawn once per process
        _TEMPLATES[key] = MinHash(num_perm=num_perm, seed=seed, hashfunc=_crc32)
    m = _TEMPLATES[key].copy()
    sh = shingles(sentences, ngram)
    if sh:
        m.update_batch(sh)
    return m.hashvalues.astype(np.uint32)


class _UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def _better(i: int, j: int, lengths: Sequence[int], ids: Sequence[str]) -> bool:
    """Is document i a better representative than j (longer; then smaller id)?"""
    return (lengths[i], ids[j]) > (lengths[j], ids[i])


def exact_duplicates(hashes: Sequence[bytes], lengths: Sequence[int], ids: Sequence[str]) -> dict[int, int]:
    """Exact duplicates to drop: ``{dropped index: kept index}`` (all but the
    representative of each group of equal hashes)."""
    best: dict[bytes, int] = {}
    for i, h in enumerate(hashes):
        j = best.get(h)
        if j is None or _better(i, j, lengths, ids):
            best[h] = i
    return {i: best[h] for i, h in enumerate(hashes) if best[h] != i}


def near_duplicate_clusters(signatures: np.ndarray, candidates: Sequence[int], threshold: float,
                            num_perm: int) -> list[list[int]]:
    """Clusters (size >= 2) of near-duplicate documents among ``candidates``.

    Args:
        signatures: uint32 array (n_docs, num_perm) of MinHash signatures.
        candidates: the document indices to consider (e.g. those left after exact dedup).
        threshold: Jaccard similarity at or above which two documents are duplicates.
        num_perm: permutations of the signatures.

    Returns:
        Lists of document indices, each sorted, one per cluster of two or more.
    """
    from datasketch import LeanMinHash, MinHashLSH

    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    uf = _UnionFind(len(signatures))
    for i in candidates:
        sig = signatures[i]
        m = LeanMinHash(seed=1, hashvalues=sig, scheme="affine32")
        for key in lsh.query(m):
            if float(np.mean(signatures[key] == sig)) >= threshold:
                uf.union(i, key)
        lsh.insert(i, m)
    groups: dict[int, list[int]] = {}
    for i in candidates:
        groups.setdefault(uf.find(i), []).append(i)
    return [sorted(g) for g in groups.values() if len(g) > 1]


def choose_representatives(clusters: Iterable[list[int]], lengths: Sequence[int],
                           ids: Sequence[str]) -> dict[int, int]:
    """Cluster members to drop: ``{dropped index: kept index}``, every member but the
    cluster's representative (longest, then smallest id)."""
    drop: dict[int, int] = {}
    for c in clusters:
        rep = c[0]
        for i in c[1:]:
            if _better(i, rep, lengths, ids):
                rep = i
        drop.update({i: rep for i in c if i != rep})
    return drop

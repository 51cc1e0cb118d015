"""Document-level train/validation/test assignment, deterministic from (document id, seed).

Each document gets ``u = sha256(f"{seed}:{id}")`` read as a number in [0, 1); it goes to
train when ``u < train_fraction``, to validation when ``u < train_fraction +
validation_fraction``, else to test. The assignment of a document depends on nothing
but its id and the seed: re-running gives the same split, and adding documents never
moves existing ones (unlike shuffling a list and cutting it).
"""

from __future__ import annotations

import hashlib

SPLITS: tuple[str, ...] = ("train", "validation", "test")


def split_unit(doc_id: str, seed: int) -> float:
    """The document's position in [0, 1): the first 8 bytes of sha256(f"{seed}:{doc_id}") / 2**64."""
    digest = hashlib.sha256(f"{seed}:{doc_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def assign_split(doc_id: str, seed: int, train_fraction: float, validation_fraction: float) -> str:
    """``"train"``, ``"validation"`` or ``"test"`` for one document.

    Args:
        doc_id: the document's id (stable across runs).
        seed: the split seed.
        train_fraction, validation_fraction: shares in [0, 1]; test gets the rest.
    """
    u = split_unit(doc_id, seed)
    if u < train_fraction:
        return "train"
    if u < train_fraction + validation_fraction:
        return "validation"
    return "test"

"""Which rows of an external test set a budget keeps: spread over the file, never its head.

SIB-200's ``test.tsv`` is sorted by category (rows 1-51 of the Bashkir side are all
science/technology), and FLORES-200 runs article by article (about three sentences
each): the first N rows of either measure one topic, or a few articles. Two rules:

- ``even``: N rows evenly spaced over the file: row ``floor((i + 1/2) * n / N)`` for
  ``i = 0 .. N-1`` (the midpoints of N equal bins; systematic sampling with a centred
  start, Cochran 1977, *Sampling Techniques*, ch. 8);
- ``stratified``: by category (SIB-200's topic), proportional allocation with at least one
  row per category when N allows (largest remainders for what proportional shares leave;
  ties go to the category met first in the file), each category's rows then chosen
  ``even``-ly within it.

Both are deterministic (no seed: the same rows on every machine and in every language of
a parallel set, whose rows and categories line up) and return row indices in file order.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

from bashkir_peft.errors import DataError


def even_indices(n_rows: int, n: int) -> list[int]:
    """``n`` row indices evenly spaced over ``n_rows`` rows, ascending.

    Args:
        n_rows: rows in the file (>= 0).
        n: rows to keep (>= 1); ``n >= n_rows`` keeps every row.

    Returns:
        ``[floor((i + 0.5) * n_rows / n) for i in range(n)]`` (integer arithmetic), or
        ``range(n_rows)`` when ``n >= n_rows``.

    Raises:
        DataError: ``n < 1``.
    """
    if n < 1:
        raise DataError(f"a subset of {n} rows: keep at least one")
    if n >= n_rows:
        return list(range(n_rows))
    return [((2 * i + 1) * n_rows) // (2 * n) for i in range(n)]


def stratified_allocation(counts: dict[str, int], n: int) -> dict[str, int]:
    """Rows per category for a subset of ``n`` rows (proportional, at least one each when
    ``n >= len(counts)``, largest remainders; see the module docstring).

    Args:
        counts: category -> rows in the file, in file order of first appearance.
        n: rows to keep (>= 1).

    Returns:
        category -> rows to keep (every category of ``counts``, possibly 0 when
        ``n < len(counts)``); the values sum to ``min(n, sum(counts))``.

    Raises:
        DataError: ``n < 1``.
    """
    if n < 1:
        raise DataError(f"a subset of {n} rows: keep at least one")
    total = sum(counts.values())
    if n >= total:
        return dict(counts)
    floor = 1 if n >= len(counts) else 0
    share = {c: max(floor, math.floor(n * k / total)) for c, k in counts.items()}
    while sum(share.values()) > n:  # the floors of 1 took more than proportional shares leave
        c = max((c for c in share if share[c] > floor), key=lambda c: share[c] - n * counts[c] / total)
        share[c] -= 1
    order = list(counts)
    while sum(share.values()) < n:
        c = max((c for c in order if share[c] < counts[c]),
                key=lambda c: (n * counts[c] / total - share[c], -order.index(c)))
        share[c] += 1
    return share


def stratified_indices(categories: Sequence[str], n: int) -> list[int]:
    """``n`` row indices stratified by category (:func:`stratified_allocation`, then
    :func:`even_indices` within each category), ascending.

    Args:
        categories: the category of each row, in file order.
        n: rows to keep (>= 1).

    Raises:
        DataError: ``n < 1``.
    """
    rows: dict[str, list[int]] = {}
    for i, c in enumerate(categories):
        rows.setdefault(c, []).append(i)
    share = stratified_allocation({c: len(r) for c, r in rows.items()}, n)
    return sorted(rows[c][j] for c in rows if share[c] for j in even_indices(len(rows[c]), share[c]))


def composition(categories: Sequence[str]) -> dict[str, int]:
    """Category -> rows, in order of first appearance (what a subset is made of)."""
    return dict(Counter(categories))

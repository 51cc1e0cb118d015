"""Process-level runtime settings: threads and seeds.

On small CPU machines oversubscription (torch intra-op threads x tokenizer threads x
BLAS threads) can cost 10x; :func:`configure_threads` sets one consistent budget.
"""

from __future__ import annotations

import os


def configure_threads(num_threads: int | None = None) -> int:
    """Set torch's intra-op threads (default: physical cores available to this process).

    Also disables the HF tokenizers' own thread pool (its fork warnings and contention
    with torch). Call once, before heavy work.

    Args:
        num_threads: threads for torch; ``None`` = ``len(os.sched_getaffinity(0))``.

    Returns:
        The number of threads set.
    """
    import torch

    n = num_threads or len(os.sched_getaffinity(0))
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n

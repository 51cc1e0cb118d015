"""The head of a document, cut to a byte budget without splitting a word: how an evaluation
scores more documents for the same text (``evaluate.max_document_bytes``)."""

from __future__ import annotations


def head_bytes(text: str, max_bytes: int) -> str:
    """The longest prefix of ``text`` that is at most ``max_bytes`` UTF-8 bytes and ends at a
    word boundary (before a whitespace character), or the whole text when it fits.

    A prefix without any whitespace within the budget (one very long word) is cut at the last
    whole character instead, so the result is never empty for a non-empty text and a budget of
    at least 4 bytes.

    Args:
        text: the document.
        max_bytes: the budget in UTF-8 bytes (>= 1).

    Returns:
        The prefix, trailing whitespace removed (its bytes count as the document's bytes in
        bits per byte, so a dangling space would be scored for nothing).

    Raises:
        ValueError: ``max_bytes`` < 1.
    """
    if max_bytes < 1:
        raise ValueError(f"max_bytes must be >= 1, got {max_bytes}")
    raw = text.encode("utf-8")
    if len(raw) <= max_bytes:
        return text
    head = raw[:max_bytes].decode("utf-8", errors="ignore")  # the whole characters within the budget
    after = text[len(head)]  # the character the budget cut off or stopped before
    if not after.isspace():  # the budget ends inside a word: cut before it
        cut = max((i for i, ch in enumerate(head) if ch.isspace()), default=None)
        head = head[:cut] if cut else head
    return head.rstrip()

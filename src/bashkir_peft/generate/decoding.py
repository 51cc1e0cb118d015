"""Decoding pieces of the generation stage that transformers' ``generate`` takes as arguments:
a repetition penalty that ignores the prompt, and a stop at a length budget counted in text
(words or characters, the same for every tokenizer) rather than in tokens.

Why not ``GenerationConfig(repetition_penalty=...)``: transformers applies it to every token
already in the sequence, prompt included (CTRL, Keskar et al. 2019, sec. 4.1). Every
tokenizer of the study cuts Bashkir into near-character pieces, so after a Bashkir prompt
almost every Cyrillic piece is penalized while English word pieces are not (issue 13).
:func:`penalty_processors` uses transformers' own ``RepetitionPenaltyLogitsProcessor`` with
``prompt_ignore_length`` (the prompt, left padding included, is not penalized).

Why not ``max_new_tokens`` alone: a model with a finer tokenizer gets fewer words from the
same token budget. :func:`budget_criteria` stops each row once its decoded continuation
holds ``budget`` complete words (or ``budget`` characters); ``max_new_tokens`` stays as a
safety cap. :func:`finish_text` then cuts the text to the budget and never ends inside a
character (a byte-level token cap can leave a partial UTF-8 byte, decoded as U+FFFD).
"""

from __future__ import annotations

import re

from bashkir_peft.config.generate import BudgetUnit

REPLACEMENT = "\ufffd"  # what a partial UTF-8 sequence decodes to


def _whole(text: str) -> str:
    """``text`` without a trailing partial character (U+FFFD left by a cut byte sequence)."""
    return text.rstrip(REPLACEMENT)


def budget_reached(text: str, budget: int, unit: BudgetUnit) -> bool:
    """Whether a decoded continuation holds its budget.

    Args:
        text: decoded continuation so far (may end in a partial character).
        budget: words or characters.
        unit: ``words`` (whitespace-separated, the evaluation's word definition; a word
            counts once whitespace follows it, so the last word is not cut) or ``characters``.

    Returns:
        True once ``budget`` words are complete, or ``budget`` whole characters exist.
    """
    text = _whole(text)
    if unit == "characters":
        return len(text) >= budget
    n = len(text.split())
    return (n if text[-1:].isspace() else n - 1) >= budget


def trim_to_budget(text: str, budget: int, unit: BudgetUnit) -> str:
    """The first ``budget`` words (whitespace between them kept as written) or characters of
    ``text``, without a trailing partial character; shorter text is returned whole."""
    text = _whole(text)
    if unit == "characters":
        return text[:budget]
    m = re.match(rf"\s*(?:\S+\s+){{{budget - 1}}}\S+", text)
    return m.group(0) if m else text


def decode_whole(tokenizer, ids: list[int]) -> str:
    """Decode token ids (special tokens skipped), dropping trailing tokens that end in the
    middle of a character (at most 3: a UTF-8 character has at most 4 bytes)."""
    text = tokenizer.decode(ids, skip_special_tokens=True)
    cut = 0
    while text.endswith(REPLACEMENT) and cut < 3 and len(ids) > cut:
        cut += 1
        text = tokenizer.decode(ids[: len(ids) - cut], skip_special_tokens=True)
    return _whole(text)


def penalty_processors(penalty: float, prompt_width: int):
    """A ``LogitsProcessorList`` with transformers' ``RepetitionPenaltyLogitsProcessor``
    applied to generated tokens only (the first ``prompt_width`` positions - prompt and its
    left padding - are ignored), or ``None`` when ``penalty == 1.0`` (no penalty).

    Formula (CTRL, Keskar et al. 2019, eq. 2 as transformers implements it): the logit of a
    token already generated is divided by ``penalty`` if positive, multiplied if negative.
    """
    if penalty == 1.0:
        return None
    from transformers import LogitsProcessorList, RepetitionPenaltyLogitsProcessor

    return LogitsProcessorList([RepetitionPenaltyLogitsProcessor(penalty, prompt_ignore_length=prompt_width)])


def budget_criteria(tokenizer, prompt_width: int, budget: int, unit: BudgetUnit):
    """A ``StoppingCriteriaList`` that ends each row of a batch once its decoded continuation
    (the tokens after ``prompt_width``) reaches :func:`budget_reached`.

    Args:
        tokenizer: the model's tokenizer.
        prompt_width: length of the (left-padded) prompt block of the batch, in tokens.
        budget, unit: as in :func:`budget_reached`.

    Returns:
        transformers ``StoppingCriteriaList`` (per-row stopping, transformers >= 4.39).
    """
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    class TextBudget(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):
            done = [budget_reached(tokenizer.decode(row[prompt_width:], skip_special_tokens=True), budget, unit)
                    for row in input_ids.tolist()]
            return torch.tensor(done, dtype=torch.bool, device=input_ids.device)

    return StoppingCriteriaList([TextBudget()])

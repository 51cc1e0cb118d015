"""In-context classification prompts for SIB-200 topics, in the format of an
lm-evaluation-harness ``multiple_choice`` task.

A request is ``(context, continuation)``: the context is the shots (each
``template(text) + " " + label``) joined by a blank line, then ``template(text)`` of the
sentence to classify; the continuation of choice ``c`` is ``" " + label(c)``. Shots are the
first ``k`` sentences of the train split in file order (lm-evaluation-harness' ``first_n``
sampler): deterministic, the same for every model and test sentence.

Label strings: ``eng`` uses ``labels.txt`` as it is; ``bak`` uses our Bashkir translations
(:data:`BASHKIR_LABELS`, not checked by a native speaker) with a Bashkir template.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bashkir_peft.config.downstream import LabelLanguage
from bashkir_peft.errors import ConfigError

TEMPLATES: dict[str, str] = {
    "eng": "Text: {text}\nTopic:",
    "bak": "Текст: {text}\nТемаһы:",
}
"""The prompt template of each label language (``{text}``: the sentence)."""

BASHKIR_LABELS: dict[str, str] = {
    "science/technology": "фән һәм техника",
    "travel": "сәйәхәт",
    "politics": "сәйәсәт",
    "sports": "спорт",
    "health": "сәләмәтлек",
    "entertainment": "күңел асыу",
    "geography": "география",
}
"""Our Bashkir translations of the SIB-200 categories (not checked by a native speaker)."""

TARGET_DELIMITER = " "
FEWSHOT_DELIMITER = "\n\n"


@dataclass(frozen=True)
class PromptFormat:
    """How sentences and labels are written into prompts.

    Attributes:
        template: with a ``{text}`` field; the prompt ends where the label starts.
        label_strings: category (as in ``labels.txt``) -> the string scored for it.
        label_language: ``eng`` or ``bak``.
    """

    template: str
    label_strings: dict[str, str]
    label_language: LabelLanguage

    def question(self, text: str) -> str:
        return self.template.format(text=text)


def prompt_format(labels: Sequence[str], label_language: LabelLanguage = "eng") -> PromptFormat:
    """The template and label strings of ``label_language`` for the categories ``labels``.

    Raises:
        ConfigError: an unknown language, or a category without a Bashkir translation.
    """
    if label_language not in TEMPLATES:
        raise ConfigError(f"label_language {label_language!r}: one of {', '.join(TEMPLATES)}")
    if label_language == "eng":
        strings = {c: c for c in labels}
    else:
        missing = [c for c in labels if c not in BASHKIR_LABELS]
        if missing:
            raise ConfigError(f"no Bashkir translation of the categories {', '.join(missing)}")
        strings = {c: BASHKIR_LABELS[c] for c in labels}
    return PromptFormat(TEMPLATES[label_language], strings, label_language)


def few_shot_context(fmt: PromptFormat, shots: Sequence[tuple[str, str]], text: str) -> str:
    """The context of one sentence: ``k`` answered shots ``(text, category)``, then the question."""
    parts = [fmt.question(t) + TARGET_DELIMITER + fmt.label_strings[c] for t, c in shots]
    return FEWSHOT_DELIMITER.join([*parts, fmt.question(text)])


def choice_requests(fmt: PromptFormat, labels: Sequence[str], shots: Sequence[tuple[str, str]],
                    texts: Sequence[str]) -> list[tuple[str, str]]:
    """All ``(context, continuation)`` pairs: for each text, one per category in ``labels`` order.

    Returns:
        ``len(texts) * len(labels)`` pairs, text-major.
    """
    out = []
    for text in texts:
        context = few_shot_context(fmt, shots, text)
        out += [(context, TARGET_DELIMITER + fmt.label_strings[c]) for c in labels]
    return out

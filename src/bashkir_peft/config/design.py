"""What a study grid names before it runs (the ``study`` block of a grid file,
:mod:`bashkir_peft.config.grid`): its comparisons and its budget. The report
(:mod:`bashkir_peft.report.comparisons` and :mod:`bashkir_peft.report.findings`) measures and states them.
"""

from __future__ import annotations

from pydantic import Field

from bashkir_peft.names import NAME_PATTERN
from bashkir_peft.yamlio import StrictModel


class Comparison(StrictModel):
    """Two methods compared, A − B in bits per byte on one evaluated split (the report's
    paired differences, :func:`bashkir_peft.report.lm.differences_table`).

    Attributes:
        a, b: method labels of the grid's cells (``full``, ``lora r=8``,
            ``lora r=8 tok=bak16k``: :func:`bashkir_peft.names.method_label`).
        split: the evaluated split: ``test``, or an external set's name (``sib200-bak``).
        question: the question the comparison answers, in one sentence.
    """

    a: str
    b: str
    split: str = "test"
    question: str


class StudyDesign(StrictModel):
    """What a study grid names before it runs: its comparisons and its budget.

    Attributes:
        primary: the comparison the study is for.
        secondary: further comparisons, reported the same way.
        budget: the training budget every trained cell gets, in words.
        learning_rate_sweep: the grid whose runs chose the learning rates (its runs folder
            beside this grid's, ``runs/<name>``); the report shows it.
        label_arms: cell labels that make arms of their own (e.g. ``long``: the same methods
            at a longer budget): a run with such a label is named ``<method label> @<label>``
            (:func:`bashkir_peft.names.method_label`) in every table, figure and comparison,
            instead of being pooled with the unlabelled runs of its method. Other labels
            (a learning rate of a sweep) only tell cells apart.
    """

    primary: Comparison
    secondary: list[Comparison] = []
    budget: str
    learning_rate_sweep: str | None = Field(None, pattern=NAME_PATTERN)
    label_arms: list[str] = []

"""Named external test sets (evaluation parameter ``external``; the grid's
``evaluate.external_sets``): :mod:`bashkir_peft.data.external` reads them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from bashkir_peft.settings import resolve_path
from bashkir_peft.yamlio import StrictModel

DATA_PREP_SPLITS = ("train", "validation", "test")


def default_selection(fmt: str) -> str:
    """The ``selection`` of an :class:`ExternalSet` that does not name one: ``stratified`` for
    ``format: sib200`` (by topic), ``even`` otherwise."""
    return "stratified" if fmt == "sib200" else "even"


def with_default_selection(entry: dict) -> dict:
    """A grid's ``external_sets`` entry with the ``selection`` it would get spelled out where it
    chooses a subset (``max_documents`` set) and names none; otherwise the entry as given (a
    set scored whole scores the same sentences whatever the selection).

    The run id hashes the grid's settings: without this, a capped set that names no selection
    would hash the same before and after the default changed from the first rows to an even or
    stratified subset, and two cells scoring different sentences would share an id."""
    if not isinstance(entry, dict) or entry.get("max_documents") is None or entry.get("selection") is not None:
        return entry
    return {**entry, "selection": default_selection(entry.get("format", "corpus"))}


class ExternalSet(StrictModel):
    """A named external test set (a parameter of notebook 03; the grid's
    ``evaluate.external_sets`` lists them).

    Attributes:
        name: the set's name in every table (in place of a split name; not ``train``,
            ``validation`` or ``test``), e.g. ``sib200-eng``.
        path: a corpus file or folder (``format: corpus``), or a SIB-200 language folder
            (``format: sib200``, e.g. ``../shared/eval/sib200/eng_Latn``), or a text file
            of one sentence a line, plain or gzip (``format: lines``, e.g. FLORES-200's
            ``../shared/eval/flores200/bak_Cyrl.devtest.gz``; each line stripped, empty lines
            skipped, id = the 0-based line number); relative paths are taken from the
            repository root, like every data path.
        format: ``corpus``, ``sib200`` or ``lines``.
        sib200_split: ``format: sib200``: ``train``, ``dev``, ``test`` or ``all`` (the
            three, in that order).
        clean: pass the documents through data prep's cleaning and filters (drop counts
            recorded); default: scored raw.
        max_documents: score N documents (the CPU grids' budgets), chosen by ``selection``;
            default: all of them.
        selection: which N documents (:mod:`bashkir_peft.data.subsets`): ``even`` (evenly
            spaced over the set) or ``stratified`` (by SIB-200 category, ``format: sib200``
            only); default ``stratified`` for SIB-200, ``even`` otherwise. ``first`` (the
            first N rows) is only what records from before issue 27 say was scored: SIB-200's
            test split is sorted by category, so its head is one topic; new parameters
            refuse it.
    """

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    path: str
    format: Literal["corpus", "sib200", "lines"] = "corpus"
    sib200_split: Literal["train", "dev", "test", "all"] = "test"
    clean: bool = False
    max_documents: int | None = Field(None, ge=1)
    selection: Literal["even", "stratified", "first"]

    @model_validator(mode="before")
    @classmethod
    def _default_selection(cls, data: object, info: ValidationInfo) -> object:
        if isinstance(data, dict) and data.get("selection") is None:
            recorded = (info.context or {}).get("recorded")
            # a record without the field predates it: its subset was the first rows
            default = "first" if recorded else default_selection(data.get("format", "corpus"))
            data = {**data, "selection": default}
        return data

    @model_validator(mode="after")
    def _selection_fits(self, info: ValidationInfo) -> ExternalSet:
        if (info.context or {}).get("recorded"):
            return self
        if self.selection == "first":
            raise ValueError("selection 'first' keeps a set's first rows (one topic of SIB-200's sorted test split); "
                             "use 'even' or 'stratified'")
        if self.selection == "stratified" and self.format != "sib200":
            raise ValueError(f"selection 'stratified' needs categories (format: sib200); format {self.format!r} "
                             f"takes 'even'")
        return self

    @field_validator("name")
    @classmethod
    def _not_a_split(cls, v: str) -> str:
        if v in DATA_PREP_SPLITS:
            raise ValueError(f"{v!r} names a data-prep split; give the external set its own name (e.g. sib200-eng)")
        return v

    @field_validator("path")
    @classmethod
    def _exists(cls, v: str, info: ValidationInfo) -> str:
        if not (info.context or {}).get("recorded") and not resolve_path(v).exists():
            raise ValueError(f"{v}: no such file or folder ({resolve_path(v)})")
        return v

"""Named external test sets (evaluation parameter ``external``; the grid's
``evaluate.external_sets``): :mod:`bashkir_peft.data.external` reads them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, ValidationInfo, field_validator

from bashkir_peft.settings import resolve_path
from bashkir_peft.yamlio import StrictModel

DATA_PREP_SPLITS = ("train", "validation", "test")


class ExternalSet(StrictModel):
    """A named external test set (a parameter of notebook 03; the grid's
    ``evaluate.external_sets`` lists them).

    Attributes:
        name: the set's name in every table (in place of a split name; not ``train``,
            ``validation`` or ``test``), e.g. ``sib200-eng``.
        path: a corpus file or folder (``format: corpus``), or a SIB-200 language folder
            (``format: sib200``, e.g. ``../shared/eval/sib200/eng_Latn``); relative paths
            are taken from the repository root, like every data path.
        format: ``corpus`` or ``sib200``.
        sib200_split: ``format: sib200``: ``train``, ``dev``, ``test`` or ``all`` (the
            three, in that order).
        clean: pass the documents through data prep's cleaning and filters (drop counts
            recorded); default: scored raw.
        max_documents: score only the first N documents (quick looks, the CPU demo's
            budget); default: all of them.
    """

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    path: str
    format: Literal["corpus", "sib200"] = "corpus"
    sib200_split: Literal["train", "dev", "test", "all"] = "test"
    clean: bool = False
    max_documents: int | None = Field(None, ge=1)

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

"""Names, one spelling each: the methods, the name rule for folders, run labels, method labels
and their order in every table, and the file checksum every manifest uses.

Everything that spells a method or a run goes through here (the grid's cells, the records,
the report's tables and figures, the book's pages), so two places never disagree.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Literal, get_args

from bashkir_peft.errors import ConfigError

Method = Literal["base", "full", "lora", "qlora"]
"""The methods of a grid cell: ``base`` (the zero-shot baseline: no training), ``full`` (full
fine-tuning), ``lora`` (Hu et al. 2021), ``qlora`` (LoRA over a 4-bit NF4 base; Dettmers et al. 2023)."""
TrainedMethod = Literal["full", "lora", "qlora"]
"""The methods that train."""
METHODS: tuple[str, ...] = get_args(Method)
TRAINED_METHODS: tuple[str, ...] = get_args(TrainedMethod)
ADAPTER_METHODS: tuple[str, ...] = ("lora", "qlora")
"""The methods that train a LoRA adapter (they have a rank, ``lora_r``)."""
BASE_TOKENIZER = "base"
"""The ``tokenizer`` axis value of the base model's own tokenizer."""
REFERENCE_LABEL = "reference text"
"""The method label of the generation table's row for the test documents' own text."""
METHOD_ORDER: tuple[str, ...] = ("reference", *METHODS)
"""The order of methods in every table and figure."""

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
"""The one rule for grid names, cell labels, tokenizer adaptations and external sets (they
name folders or table rows): letters, digits, ``.``, ``_`` and ``-``, starting with a letter or
digit (so never ``..``, ``/`` or a hidden name)."""


def check_name(value: str, what: str = "grid name") -> str:
    """``value`` if it follows :data:`NAME_PATTERN`.

    Raises:
        ConfigError: one line naming the value and the rule.
    """
    if not re.fullmatch(NAME_PATTERN, value):
        raise ConfigError(f"{what} {value!r}: use letters, digits, '.', '_' and '-' only, starting with a "
                          "letter or digit (it names a folder under the runs root)")
    return value


def run_label(model: str, method: str, lora_r: int | None, seed: int | None, label: str | None = None,
              sep: str = "/") -> str:
    """The one spelling of a run: ``model/method[/rR][/sSEED][/label]``, e.g.
    ``smollm2-135m/qlora/r8/s42`` (the grid's run-id prefix uses ``sep="-"``).

    Args:
        model: registry name (or a folder/Hub id made safe by the caller).
        method: one of :data:`METHODS`.
        lora_r: adapter rank; ``None`` for full fine-tuning and the base model.
        seed: the training seed (a base model: the decoding seed); ``None`` leaves it out.
        label: an extra name that tells two otherwise equal cells apart.
    """
    parts = [model, method, *([f"r{lora_r}"] if lora_r is not None else []),
             *([f"s{seed}"] if seed is not None else []), *([label] if label else [])]
    return sep.join(parts)


def method_label(method: str, lora_r: int | None, tokenizer: str = BASE_TOKENIZER, variant: str = "",
                 placement: str = "", arm: str | None = None) -> str:
    """The one spelling of a run's method in the report's tables and figures.

    Args:
        method: one of :data:`METHODS`.
        lora_r: the adapter rank (``None`` for full fine-tuning and the base model).
        tokenizer: the grid's ``tokenizer`` axis (``base``, or an adaptation's name).
        variant: the LoRA variant's options
            (:func:`bashkir_peft.config.lora.lora_variant_label`; ``""`` = plain LoRA).
        placement: where the adapter sits when not the registry's default for the
            architecture (:meth:`bashkir_peft.models.registry.Registry.placement`: ``attention``
            or the target modules joined by ``+``; ``""`` = the default, every linear layer).
        arm: a cell label the grid's study block names an arm of its own
            (:attr:`bashkir_peft.config.design.StudyDesign.label_arms`, e.g. ``long`` for a
            longer budget); ``None``: the label, if any, only tells cells apart.

    Returns:
        ``base``, ``full``, ``lora r=8``, ``qlora r=16``, ``lora r=8 tok=bak16k``,
        ``lora r=64 [use_dora, use_rslora]``, ``lora r=8 [attention]``,
        ``lora r=64 tok=bak16k [attention, use_rslora]`` (placement before variant),
        ``full @long``...
    """
    label = method if lora_r is None else f"{method} r={lora_r}"
    label = label if tokenizer == BASE_TOKENIZER else f"{label} tok={tokenizer}"
    options = ", ".join(part for part in (placement, variant) if part)
    label = f"{label} [{options}]" if options else label
    return f"{label} @{arm}" if arm else label


def label_parts(label: str) -> tuple[str, int | None]:
    """The inverse of :func:`method_label`.

    Args:
        label: a method label, or :data:`REFERENCE_LABEL`.

    Returns:
        ``(method, lora_r)``: ``"lora r=8"`` -> ``("lora", 8)``, ``"full"`` -> ``("full", None)``,
        :data:`REFERENCE_LABEL` -> ``("reference", None)``.
    """
    if label == REFERENCE_LABEL:
        return "reference", None
    method, _, r = label.partition(" @")[0].partition(" [")[0].partition(" tok=")[0].partition(" r=")
    return method, int(r) if r else None


def label_tokenizer(label: str) -> str:
    """The tokenizer a method label names (:func:`method_label`): ``"lora r=8 tok=bak16k"`` ->
    ``"bak16k"``; :data:`BASE_TOKENIZER` for a label without one."""
    return label.partition(" @")[0].partition(" [")[0].partition(" tok=")[2] or BASE_TOKENIZER


def method_sort_key(label: str) -> tuple[int, str, int, str]:
    """Sort key of method labels: reference text, base, full, lora, qlora, then by rank, then
    by the whole label (so ``lora r=8`` comes before ``lora r=8 [attention]`` and ``lora r=8
    tok=bak16k`` in every table, whatever the order of the rows).

    Args:
        label: a method label (:func:`method_label`) or :data:`REFERENCE_LABEL`.

    Returns:
        ``(position in METHOD_ORDER, method, lora_r or 0, label)``.
    """
    method, r = label_parts(label)
    position = METHOD_ORDER.index(method) if method in METHOD_ORDER else len(METHOD_ORDER)
    return position, method, r or 0, label


def sha256_file(path: str | Path) -> str:
    """SHA-256 hex digest of a file, read in 1 MiB chunks (FIPS 180-4, via :mod:`hashlib`)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()

"""Machine-specific locations, read from environment variables (never written into params/).

- ``BASHKIR_PEFT_TOKENIZERS``: folder holding the offline tokenizer folders named in
  ``params/models.yaml`` (on this project's machines: ``../shared/tokenizers``).
- ``BASHKIR_PEFT_CACHE``: where provisioned models (tiny random models, the converted
  SmolLM2 GGUF) are kept. Default ``~/.cache/bashkir-peft``.
- ``BASHKIR_PEFT_PARAMS``: the params folder. Default: ``params/`` of this checkout.
- ``BASHKIR_PEFT_RUNS``: the runs root (``<root>/<grid name>/`` per grid). Default: ``runs/``
  of this checkout.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from bashkir_peft.errors import ConfigError

TOKENIZERS_ENV = "BASHKIR_PEFT_TOKENIZERS"
CACHE_ENV = "BASHKIR_PEFT_CACHE"
PARAMS_ENV = "BASHKIR_PEFT_PARAMS"
RUNS_ENV = "BASHKIR_PEFT_RUNS"

REPO_ROOT = Path(__file__).resolve().parents[2]


def params_dir() -> Path:
    """Return the params folder (``$BASHKIR_PEFT_PARAMS`` or ``<repo>/params``)."""
    return Path(os.environ.get(PARAMS_ENV, REPO_ROOT / "params"))


def resolve_path(path: str | Path) -> Path:
    """``path`` made absolute: ``~`` expanded, a relative path taken from the repository root
    (so notebooks executed from any folder, and the grid runner, read the same files)."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else (REPO_ROOT / p).resolve()


def runs_root() -> Path:
    """Return the runs root (``$BASHKIR_PEFT_RUNS`` or ``<repo>/runs``)."""
    return Path(os.environ.get(RUNS_ENV, REPO_ROOT / "runs"))


def stage_out_dir(output_dir: str | None, run_dir: str | None, model: str | None) -> Path:
    """Where a stage of one run writes: ``output_dir``, else the run folder ``run_dir``, else
    ``<runs root>/base/<model>`` for a zero-shot model (its name made a folder name)."""
    if output_dir:
        return Path(output_dir)
    if run_dir:
        return Path(run_dir)
    return runs_root() / "base" / re.sub(r"[^A-Za-z0-9._-]+", "_", model).strip("_")


def cache_dir() -> Path:
    """Return the cache folder for provisioned models, created if missing."""
    path = Path(os.environ.get(CACHE_ENV, Path.home() / ".cache" / "bashkir-peft"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def tokenizers_root() -> Path:
    """Return the offline tokenizers root.

    Raises:
        ConfigError: ``BASHKIR_PEFT_TOKENIZERS`` is unset or not a folder.
    """
    value = os.environ.get(TOKENIZERS_ENV)
    if not value:
        raise ConfigError(
            f"{TOKENIZERS_ENV} is not set: point it at a folder of tokenizer folders "
            "(e.g. export BASHKIR_PEFT_TOKENIZERS=../shared/tokenizers)"
        )
    path = Path(value).expanduser()
    if not path.is_dir():
        raise ConfigError(f"{TOKENIZERS_ENV}={value} is not a folder")
    return path

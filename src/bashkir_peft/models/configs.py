"""Model configurations for planning, offline: the ``config.json`` each registry model ships
with (``params/model-configs/<name>/``, sources and licences in that folder's README), so that
trainable parameters, memory and time of a grid are known without the Hub (issue 30).

Only planning reads these (shapes, on the ``meta`` device); training and evaluation load
the real model with its own configuration.
"""

from __future__ import annotations

from pathlib import Path

from bashkir_peft.models.registry import ModelEntry
from bashkir_peft.settings import params_dir

CONFIGS_FOLDER = "model-configs"


def shipped_config_dir(entry: ModelEntry) -> Path:
    """``<params>/model-configs/<name>``: where the configuration of ``entry`` ships."""
    return params_dir() / CONFIGS_FOLDER / entry.name


def has_shipped_config(entry: ModelEntry) -> bool:
    """Whether the repository ships ``entry``'s ``config.json``."""
    return (shipped_config_dir(entry) / "config.json").is_file()


def offline_config(entry: ModelEntry):
    """The transformers configuration of a registry entry, read without the Hub.

    ``source: tiny``: built from ``tiny_config`` and the vocabulary size of its offline
    tokenizer (as :func:`bashkir_peft.models.provision.build_tiny` builds the model);
    ``source: hub`` and ``gguf``: the shipped ``config.json``.

    Args:
        entry: a registry entry (``name`` set, as :meth:`Registry.get` returns it).

    Returns:
        A ``transformers.PretrainedConfig``.

    Raises:
        FileNotFoundError: the repository ships no configuration for the entry (a
            ``hub``/``gguf`` entry added without its ``config.json``).
    """
    from transformers import AutoConfig, AutoTokenizer

    if entry.source == "tiny":
        vocab = len(AutoTokenizer.from_pretrained(entry.tokenizer_path()))
        return AutoConfig.for_model(entry.model_type, vocab_size=vocab, **entry.tiny_config)
    folder = shipped_config_dir(entry)
    if not has_shipped_config(entry):
        raise FileNotFoundError(f"no configuration of {entry.name!r} ships with the repository "
                                f"(expected {folder / 'config.json'})")
    return AutoConfig.from_pretrained(folder, trust_remote_code=entry.trust_remote_code)

"""bashkir_peft: LoRA, QLoRA and full fine-tuning of causal language models for Bashkir.

Reference implementation reproducing and extending Arabov & Khaybullina (arXiv
2605.04948, 2026). All logic of the notebooks under ``notebooks/`` lives here.
"""

__version__ = "0.1.0"

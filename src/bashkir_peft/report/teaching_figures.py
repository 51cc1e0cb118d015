"""Figures of the book's method chapter, computed by the project's own code (no run needed).

- :func:`nf4_levels`: the 16 NF4 code values (taken from bitsandbytes) over a block of
  normally distributed weights scaled by their absolute maximum, beside the 16 evenly
  spaced levels of plain 4-bit integers.
- :func:`lora_parameter_counts`: trainable parameters of one ``d x d`` projection under
  full fine-tuning (``d^2``) and LoRA of rank r (``r (d + d)``), for the hidden sizes of
  the paper's model families.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bashkir_peft.report.figures import _save, pyplot

# Hidden sizes from the models' published configs (n_embd / hidden_size).
HIDDEN_SIZES = {"distilgpt2 / gpt2": 768, "gpt2-medium": 1024, "phi-2": 2560, "qwen2.5-7b": 3584,
                "mistral-7b / deepseek-7b": 4096}


def nf4_code() -> np.ndarray:
    """The 16 NF4 values in [-1, 1] as bitsandbytes defines them (Dettmers et al., QLoRA,
    arXiv 2305.14314, sec. 3: quantiles of N(0, 1) normalized to [-1, 1], with an exact 0)."""
    import bitsandbytes.functional as bnbf

    return bnbf.get_4bit_type("nf4", device="cpu").numpy().astype(np.float64)


def nf4_levels(path: Path, *, block_size: int = 64, n_blocks: int = 4000, seed: int = 0) -> Path:
    """Histogram of absmax-scaled normal weights (blocks of ``block_size``) with the NF4 levels
    and the uniform int4 levels; the inset numbers are the mean squared rounding errors."""
    plt, sns = pyplot()
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((n_blocks, block_size))
    x = (w / np.abs(w).max(axis=1, keepdims=True)).ravel()
    nf4 = nf4_code()
    int4 = np.linspace(-1, 1, 16)

    def mse(levels):
        q = levels[np.abs(x[:, None] - levels[None, :]).argmin(axis=1)]
        return float(np.mean((x - q) ** 2))

    fig, ax = plt.subplots(figsize=(8, 3.6))
    sns.histplot(x, bins=120, stat="density", color="lightgrey", ax=ax, label="weights / absmax (block of 64)")
    for i, v in enumerate(nf4):
        ax.axvline(v, color="tab:blue", lw=1.2, label="NF4 levels" if i == 0 else None)
    for i, v in enumerate(int4):
        ax.axvline(v, color="tab:orange", lw=1, ls=":", label="uniform int4 levels" if i == 0 else None)
    ax.set_xlabel("normalized weight")
    ax.set_title(f"NF4 puts its 16 levels where normal weights are dense "
                 f"(MSE: NF4 {mse(nf4):.5f}, int4 {mse(int4):.5f})", fontsize=10)
    ax.legend(loc="upper right", fontsize=8)
    return _save(fig, path)


def lora_parameter_counts(path: Path, ranks: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64, 128)) -> Path:
    """Trainable parameters of one square projection: full fine-tuning vs LoRA rank r."""
    plt, sns = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    palette = sns.color_palette("deep", len(HIDDEN_SIZES))
    for color, (name, d) in zip(palette, HIDDEN_SIZES.items()):
        ax.plot(ranks, [r * 2 * d for r in ranks], marker="o", color=color, label=f"LoRA, d={d} ({name})")
        ax.axhline(d * d, color=color, ls="--", lw=1)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("LoRA rank r")
    ax.set_ylabel("trainable parameters of one d x d matrix")
    ax.set_title("dashed: full fine-tuning (d²); solid: LoRA (r·2d)", fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    return _save(fig, path)


def write_teaching_figures(out_dir: Path) -> dict[str, Path]:
    """Write every method-chapter figure into ``out_dir`` and return name -> path."""
    out_dir = Path(out_dir)
    return {"nf4_levels": nf4_levels(out_dir / "nf4_levels.png"),
            "lora_parameter_counts": lora_parameter_counts(out_dir / "lora_parameter_counts.png")}

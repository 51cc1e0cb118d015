"""The rank full fine-tuning used: the singular-value spectrum of its weight change.

For every 2-D weight matrix LoRA would adapt (the registry's ``target_modules`` of the
architecture: for Llama-style models the q, k, v, o, gate, up and down projections of every
layer), ΔW = W_finetuned − W_base and its singular values s_1 >= s_2 >= ... give

- ``frobenius_norm`` ||ΔW||_F = sqrt(sum s_i^2) and ``relative_norm`` ||ΔW||_F / ||W_base||_F;
- ``spectral_norm`` ||ΔW||_2 = s_1 and the ``stable_rank`` ||ΔW||_F^2 / ||ΔW||_2^2;
- ``rank_50``, ``rank_90``, ``rank_99``: the smallest k with sum_{i<=k} s_i^2 >= p · sum s_i^2
  (p = 0.5, 0.9, 0.99), the rank that holds that share of ΔW's Frobenius energy, beside
  ``full_rank`` min(m, n).

Source: Biderman et al. 2024, "LoRA Learns Less and Forgets Less" (TMLR), its spectral analysis
of the weight perturbations: the rank needed to explain 90 % of the variance of the weight
change, found 10-100x the ranks of typical LoRA configurations. The stable rank: Rudelson &
Vershynin 2007, "Sampling from large matrices" (their numerical rank).

Numerics: ΔW is formed from the float32 weights and decomposed in float64 on the CPU
(``torch.linalg.svdvals``): no cancellation error at float32's precision, and LAPACK's
singular values are accurate to about 1e-15 · s_1. The SVDs run on one thread
(:data:`SVD_THREADS`): on SmolLM2's matrices (at most 576 x 1536) a second thread gains little,
and on a shared CPU OpenMP's barriers inside LAPACK's bidiagonal reduction made two threads
take over 10 minutes for one layer's 7 matrices that one thread decomposed in 0.4 s of CPU time
(benchmarks/RESULTS.md, issue 29b). A cumulative energy within :data:`ENERGY_RTOL` (relative) of
a threshold counts as reaching it, so a spectrum whose share sits exactly on a threshold
(a constructed one) is not pushed one rank up by rounding.

:func:`write_weight_spectrum` writes the table of a finished full fine-tuning run folder
(``weight_spectrum.parquet``): the training stage calls it after saving the final model, and
``bashkir-peft spectrum RUN_DIR`` for a run that finished before it existed.
"""

from __future__ import annotations

import math
import re
import time
from pathlib import Path

from bashkir_peft.atomic import write_parquet_atomic
from bashkir_peft.errors import ConfigError
from bashkir_peft.models.device import choose_device
from bashkir_peft.models.loading import load_model
from bashkir_peft.models.registry import load_registry
from bashkir_peft.models.trained import read_finished_run
from bashkir_peft.records import WEIGHT_SPECTRUM_COLUMNS, RunFiles, WeightSpectrumInfo

ENERGY_SHARES: tuple[float, ...] = (0.5, 0.9, 0.99)
"""The shares of ΔW's Frobenius energy whose rank the table gives (``rank_50`` ...)."""

SVD_THREADS = 1
"""Threads of the SVDs (module docstring, "Numerics"); the caller's setting is restored after."""

ENERGY_RTOL = 1e-12
"""Relative tolerance of the energy-rank threshold (module docstring, "Numerics")."""


def energy_rank(singular_values, share: float) -> int:
    """The rank that holds ``share`` of a matrix's Frobenius energy.

    Args:
        singular_values: 1-D tensor or sequence of singular values, in descending order.
        share: the energy share p, in (0, 1].

    Returns:
        The smallest k with sum_{i<=k} s_i^2 >= p · sum_i s_i^2 (within :data:`ENERGY_RTOL`);
        0 for a zero matrix (no energy to hold).

    Raises:
        ValueError: ``share`` outside (0, 1].
    """
    import torch

    if not 0 < share <= 1:
        raise ValueError(f"share must be in (0, 1], got {share}")
    s = torch.as_tensor(singular_values, dtype=torch.float64)
    energy = torch.cumsum(s * s, 0)
    if len(energy) == 0 or energy[-1] == 0:
        return 0
    target = share * energy[-1] * (1 - ENERGY_RTOL)
    return int(torch.searchsorted(energy, target, right=False)) + 1


def matrix_spectrum(delta, base=None) -> dict:
    """The spectrum summary of one weight change.

    Args:
        delta: ΔW, a 2-D tensor of shape (m, n) (any float dtype; decomposed in float64).
        base: W_base of the same shape, for ``relative_norm`` (``None``: NaN).

    Returns:
        ``rows`` m, ``cols`` n, ``full_rank`` min(m, n), ``frobenius_norm``, ``relative_norm``,
        ``spectral_norm``, ``stable_rank`` (NaN for a zero ΔW), and ``rank_50``, ``rank_90``,
        ``rank_99`` (:func:`energy_rank`): the columns of
        :data:`~bashkir_peft.records.WEIGHT_SPECTRUM_COLUMNS` after ``module, layer, matrix``.

    Raises:
        ValueError: ``delta`` is not 2-D, or ``base`` has another shape.
    """
    import torch

    if delta.ndim != 2:
        raise ValueError(f"a weight change must be a matrix, got shape {tuple(delta.shape)}")
    if base is not None and base.shape != delta.shape:
        raise ValueError(f"base weight shape {tuple(base.shape)} differs from the change's {tuple(delta.shape)}")
    d = delta.detach().to("cpu", torch.float64)
    s = torch.linalg.svdvals(d)
    frobenius = float(torch.sqrt(torch.sum(s * s)))
    base_norm = float(torch.linalg.matrix_norm(base.detach().to("cpu", torch.float64))) if base is not None else math.nan
    spectral = float(s[0]) if len(s) else 0.0
    m, n = d.shape
    return {"rows": m, "cols": n, "full_rank": min(m, n), "frobenius_norm": frobenius,
            "relative_norm": frobenius / base_norm if base_norm else math.nan,
            "spectral_norm": spectral,
            "stable_rank": frobenius ** 2 / spectral ** 2 if spectral > 0 else math.nan,
            **{f"rank_{round(100 * p)}": energy_rank(s, p) for p in ENERGY_SHARES}}


_LAYER = re.compile(r"\.(\d+)\.")


def adapted_weights(model, target_modules: list[str]) -> dict[str, object]:
    """The 2-D weights of the modules LoRA would adapt, by module name.

    A module is adapted when the last part of its name is one of ``target_modules`` (peft's
    rule for a list of names) and it has a 2-D ``weight`` (a ``Linear``; GPT-2's ``Conv1D``
    stores it transposed, (in, out): the singular values are the same).

    Args:
        model: a ``torch.nn.Module`` (a causal LM).
        target_modules: module names, e.g. ``["q_proj", "v_proj"]``.

    Returns:
        ``{module name: weight tensor}``, in the model's order.
    """
    wanted = set(target_modules)
    return {name: module.weight for name, module in model.named_modules()
            if name.rsplit(".", 1)[-1] in wanted and getattr(module, "weight", None) is not None
            and module.weight.ndim == 2}


def weight_change_spectrum(base, tuned, target_modules: list[str]):
    """The spectrum of ``tuned`` − ``base`` for every adapted matrix.

    Args:
        base: the base model (``torch.nn.Module``).
        tuned: the fine-tuned model of the same architecture.
        target_modules: the modules LoRA would adapt (:func:`adapted_weights`).

    Returns:
        A pandas DataFrame, one row per matrix in the model's order, with the columns of
        :data:`~bashkir_peft.records.WEIGHT_SPECTRUM_COLUMNS`: ``module`` (its name),
        ``layer`` (the first numeric part of the name, -1 if none), ``matrix`` (the name after
        the layer number, e.g. ``self_attn.q_proj``), then :func:`matrix_spectrum`.

    Raises:
        ConfigError: no module of ``target_modules`` in the model, or the two models'
            adapted matrices differ (names or shapes).
    """
    import pandas as pd
    import torch

    before, after = adapted_weights(base, target_modules), adapted_weights(tuned, target_modules)
    if not after:
        raise ConfigError(f"no 2-D weight of the modules {', '.join(target_modules)} in the model")
    if list(before) != list(after) or any(before[k].shape != after[k].shape for k in after):
        raise ConfigError("the base and the fine-tuned model have different adapted matrices "
                          "(names or shapes): not a fine-tuning of this base")
    rows, threads = [], torch.get_num_threads()
    torch.set_num_threads(SVD_THREADS)
    try:
        for name, weight in after.items():
            w0 = before[name].detach().to("cpu", torch.float64)
            layer = _LAYER.search(f".{name}.")
            rows.append({"module": name, "layer": int(layer.group(1)) if layer else -1,
                         "matrix": name[layer.end() - 1:] if layer else name,
                         **matrix_spectrum(weight.detach().to("cpu", torch.float64) - w0, w0)})
    finally:
        torch.set_num_threads(threads)
    table = pd.DataFrame(rows, columns=list(WEIGHT_SPECTRUM_COLUMNS))
    return table.astype({"module": "string", "matrix": "string"})


def final_model_spectrum(final: str | Path, base_model: str, target_modules: list[str],
                         out: str | Path) -> WeightSpectrumInfo:
    """Compute and write the weight-change spectrum of a saved full model against its base.

    The base is loaded again as training loads it (:func:`~bashkir_peft.models.loading.load_model`,
    ``full``), on the CPU in float32; the fine-tuned model from ``final`` likewise. Both stay
    in CPU memory (2 x 4 bytes per parameter); the SVD of an m x n matrix costs O(m n min(m, n)).

    Args:
        final: the fine-tuned model's folder (a run's ``final/``).
        base_model: registry name, folder or Hub id of the base (the run's ``model``).
        target_modules: the modules LoRA would adapt (:func:`spectrum_modules`).
        out: the table's path (``.parquet``; written atomically).

    Returns:
        A :class:`~bashkir_peft.records.WeightSpectrumInfo`: ``file`` (``out``'s name), the
        matrices, the wall time in seconds (both loads and the SVDs).

    Raises:
        ConfigError: the matrices do not match the base's (:func:`weight_change_spectrum`).
        ModelNotFoundError: the base model cannot be loaded.
    """
    import torch
    from transformers import AutoModelForCausalLM

    start = time.perf_counter()
    base = load_model(base_model, "full", dtype="float32", placement=choose_device("cpu")).model
    tuned = AutoModelForCausalLM.from_pretrained(final, dtype=torch.float32, use_safetensors=True)
    table = weight_change_spectrum(base, tuned, target_modules)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_parquet_atomic(table, out)
    return WeightSpectrumInfo(file=out.name, matrices=len(table), wall_time_s=round(time.perf_counter() - start, 3))


def write_weight_spectrum(run_dir: str | Path, out: str | Path | None = None) -> WeightSpectrumInfo:
    """The weight-change spectrum of a finished full fine-tuning run folder
    (:func:`final_model_spectrum` of its ``final/`` against its base model): for runs that
    finished before the training stage wrote it (``bashkir-peft spectrum RUN_DIR``). The run's
    ``train.json`` is left as it is (the grid's file manifests stamp it).

    Args:
        run_dir: a finished training run folder (``train.json`` and ``final/``).
        out: the table's path (default ``RUN_DIR/weight_spectrum.parquet``).

    Returns:
        A :class:`~bashkir_peft.records.WeightSpectrumInfo` (``file``: the name of ``out``).

    Raises:
        ConfigError: not a finished run (:func:`~bashkir_peft.models.trained.read_finished_run`),
            not a full fine-tuning run, no target modules known (:func:`spectrum_modules`), or
            matrices that do not match the base's.
    """
    run_dir = Path(run_dir)
    params = read_finished_run(run_dir).params
    if params.method != "full":
        raise ConfigError(f"{run_dir}: a {params.method} run; the weight-change spectrum is of full fine-tuning "
                          "(an adapter's change has rank <= lora_r by construction)")
    modules = spectrum_modules(params)
    return final_model_spectrum(run_dir / RunFiles.FINAL, params.model, modules,
                                out if out is not None else run_dir / RunFiles.WEIGHT_SPECTRUM)


def spectrum_modules(params) -> list[str]:
    """The modules whose change :func:`write_weight_spectrum` decomposes: a run's own
    ``target_modules``, else its registry entry's (the modules LoRA would adapt).

    Args:
        params: the run's :class:`~bashkir_peft.config.train.TrainParams`.

    Raises:
        ConfigError: neither is known (a model outside the registry, no ``target_modules``).
    """
    if params.target_modules is not None:
        return list(params.target_modules)
    entry = load_registry().models.get(str(params.model))
    if entry is None:
        raise ConfigError(f"model {params.model!r} is not in the registry: give the target modules of its "
                          "weight-change spectrum")
    return list(entry.target_modules)

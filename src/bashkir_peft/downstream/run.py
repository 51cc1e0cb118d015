"""The downstream stage (notebook 06): SIB-200 Bashkir topic classification of a base model or
a training run.

Measures, on the test sentences of ``sib200_dir`` (Adelani et al. 2023; 7 topics):

- ``in_context``: for each ``k`` of ``k_shots``, the label of highest log-likelihood after a
  ``k``-shot prompt (:mod:`bashkir_peft.downstream.prompts`, :mod:`bashkir_peft.downstream.scoring`;
  as lm-evaluation-harness scores multiple choice), ``acc`` and length-normalized ``acc_norm``;
- ``probe``: logistic regression on the frozen model's mean-pooled hidden states
  (:mod:`bashkir_peft.downstream.probe`) at ``probe_layer``, and at the layer of ``probe_layers``
  best on dev;
- baselines (:mod:`bashkir_peft.downstream.baselines`): ``majority`` and ``char_tfidf``.

Each with accuracy and macro-F1 and percentile bootstrap intervals over test sentences
(:mod:`bashkir_peft.downstream.measures`). Outputs in ``output_dir`` (the run folder of a
trained run): ``downstream.json`` (:class:`~bashkir_peft.records.DownstreamRecord`),
``downstream_predictions.parquet`` and ``downstream_metrics.csv``, written atomically.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from bashkir_peft.atomic import write_parquet_atomic, write_text_atomic
from bashkir_peft.config.downstream import DownstreamParams
from bashkir_peft.data.sib200 import read_sib200_labels, read_sib200_split
from bashkir_peft.downstream.baselines import char_tfidf_baseline, majority_baseline
from bashkir_peft.downstream.measures import scores_with_intervals
from bashkir_peft.downstream.probe import C_GRID, fit_probe, mean_pooled_states
from bashkir_peft.downstream.prompts import FEWSHOT_DELIMITER, TARGET_DELIMITER, choice_requests, prompt_format
from bashkir_peft.downstream.scoring import choose, loglikelihoods
from bashkir_peft.errors import ConfigError, DataError
from bashkir_peft.models.subject import load_subject
from bashkir_peft.models.trained import read_finished_run
from bashkir_peft.provenance import ResourceMeter, environment_info
from bashkir_peft.records import DownstreamRecord, DownstreamResult, RunFiles, write_record
from bashkir_peft.runtime import configure_threads
from bashkir_peft.settings import resolve_path


def read_task(params: DownstreamParams) -> dict:
    """The SIB-200 splits and labels the parameters select (checked before any model loads).

    Returns:
        ``{"labels", "train", "dev", "test"}`` (DataFrames cut to ``max_train``/``max_dev``/``max_test``).

    Raises:
        DataError: a missing or malformed SIB-200 file.
        ConfigError: more shots than train sentences.
    """
    folder = resolve_path(params.sib200_dir)
    task = {"labels": read_sib200_labels(folder)}
    for split in ("train", "dev", "test"):
        task[split] = read_sib200_split(folder, split)
    if params.max_train is not None:
        task["train"] = task["train"].head(params.max_train)
    if params.max_dev is not None:
        task["dev"] = task["dev"].head(params.max_dev)
    if params.max_test is not None and params.max_test < len(task["test"]):
        rows = np.linspace(0, len(task["test"]) - 1, params.max_test).round().astype(int)
        task["test"] = task["test"].iloc[rows].reset_index(drop=True)
    if max(params.k_shots, default=0) > len(task["train"]):
        raise ConfigError(f"k_shots {max(params.k_shots)} exceeds the {len(task['train'])} train sentences")
    return task


def input_length(model, max_length: int | None) -> int:
    """``max_length``, or the model's context length (``max_position_embeddings`` or
    ``n_positions`` of its config) where it is None.

    Raises:
        ConfigError: ``max_length`` exceeds the model's context length, or neither is known.
    """
    cfg = model.config
    ctx = getattr(cfg, "max_position_embeddings", None) or getattr(cfg, "n_positions", None)
    if max_length is not None and ctx is not None and max_length > ctx:
        raise ConfigError(f"max_length={max_length} exceeds the model's context length {ctx}")
    if max_length is None and ctx is None:
        raise ConfigError("the model's config names no context length; set max_length")
    return max_length or int(ctx)


def layer_index(layer: int, n_states: int) -> int:
    """A hidden-state index (negative: from the last) as a non-negative one.

    Raises:
        ConfigError: outside the model's ``n_states`` hidden states (embeddings + layers).
    """
    if not -n_states <= layer < n_states:
        raise ConfigError(f"probe layer {layer} out of range: the model has {n_states} hidden states "
                          f"(0 = embeddings .. {n_states - 1} = last, or -1)")
    return layer % n_states


def _result(approach: str, setting: str, y_true, y_pred, labels, params: DownstreamParams, **extra) -> dict:
    scores = scores_with_intervals(y_true, y_pred, labels, n_resamples=params.n_resamples,
                                   confidence=params.confidence)
    return DownstreamResult(approach=approach, setting=setting, **extra, **scores).model_dump()


def run_downstream(params: DownstreamParams, *, progress: bool = True) -> DownstreamRecord:
    """Measure one base model or run on SIB-200 and write its record and tables.

    Returns:
        The :class:`~bashkir_peft.records.DownstreamRecord` written to ``downstream.json``.

    Raises:
        DataError: missing or malformed SIB-200 files.
        ConfigError: bad parameters (an unfinished run, a probe layer out of range, more shots
            than train sentences).
    """
    import pandas as pd

    threads = configure_threads(params.num_threads)
    task = read_task(params)
    if params.run_dir is not None:
        read_finished_run(params.run_dir, params.model)
    labels, train, dev, test = task["labels"], task["train"], task["dev"], task["test"]
    y_test = list(test["category"])
    fmt = prompt_format(labels, params.label_language)
    results, predictions, timings = [], [], {}

    def keep(approach, setting, pred, **extra):
        results.append(_result(approach, setting, y_test, pred, labels, params, **extra))
        predictions.append(pd.DataFrame({"approach": approach, "setting": setting, "index_id": test["index_id"],
                                         "category": test["category"], "prediction": list(pred)}))

    probe_info = None
    with ResourceMeter() as meter:
        t0 = time.perf_counter()
        keep("majority", "most frequent train category", majority_baseline(list(train["category"]), len(test)))
        pred, c_tfidf = char_tfidf_baseline(list(train["text"]), list(train["category"]), list(dev["text"]),
                                            list(dev["category"]), list(test["text"]))
        keep("char_tfidf", "char 1-4-gram TF-IDF + logistic regression", pred, C=c_tfidf)
        timings["baselines_s"] = time.perf_counter() - t0
        subject = load_subject(params.model, params.run_dir)  # as evaluation loads it: adapters unmerged
        model, tokenizer = subject.model, subject.tokenizer
        max_length = input_length(model, params.max_length)
        n_states = model.config.num_hidden_layers + 1
        fixed = layer_index(params.probe_layer, n_states)
        layers = list(range(n_states)) if params.probe_layers is None else \
            sorted({fixed, *(layer_index(layer, n_states) for layer in params.probe_layers)})
        for k in params.k_shots:
            t0 = time.perf_counter()
            shots = list(zip(train["text"][:k], train["category"][:k]))
            requests = choice_requests(fmt, labels, shots, list(test["text"]))
            lls = loglikelihoods(model, tokenizer, requests, max_length=max_length,
                                 batch_size=params.batch_size, progress=progress).reshape(len(test), len(labels))
            pred, pred_norm = choose(lls, [fmt.label_strings[label] for label in labels])
            keep("in_context", f"{k}-shot, acc", [labels[i] for i in pred], k=k, score="acc")
            keep("in_context", f"{k}-shot, acc_norm", [labels[i] for i in pred_norm], k=k, score="acc_norm")
            timings.setdefault("in_context_s", {})[k] = time.perf_counter() - t0
        if params.probe:
            t0 = time.perf_counter()
            feats = [mean_pooled_states(model, tokenizer, list(df["text"]), layers=layers, max_length=max_length,
                                        batch_size=params.batch_size, progress=progress) for df in (train, dev, test)]
            fits = {layer: fit_probe(feats[0][j], train["category"], feats[1][j], dev["category"], feats[2][j])
                    for j, layer in enumerate(layers)}
            best = max(layers, key=lambda layer: (fits[layer].dev_accuracy, layer == fixed, -layer))
            for layer, selection in ((fixed, "fixed"), (best, "best on dev")):
                fit = fits[layer]
                keep("probe", f"layer {layer} ({selection})", [str(x) for x in fit.pred], layer=layer,
                     selection=selection, C=fit.C, dev_accuracy=fit.dev_accuracy)
            probe_info = {"pooling": "mean over the sentence's tokens", "hidden_states": n_states,
                          "layers_searched": layers, "fixed_layer": fixed, "best_layer": best, "C_grid": list(C_GRID),
                          "dev_accuracy_by_layer": {str(k): v.dev_accuracy for k, v in fits.items()}}
            timings["probe_s"] = time.perf_counter() - t0
    metrics = pd.DataFrame(results)
    record = DownstreamRecord(
        stage="downstream", status="finished", method=subject.method, model=subject.model_info,
        model_name=subject.model_info.name,
        run_dir=params.run_dir,
        task={"dataset": "SIB-200 (Adelani et al. 2023)", "sib200_dir": str(resolve_path(params.sib200_dir)),
              "labels": labels, "train": len(train), "dev": len(dev), "test": len(test),
              "test_subset": None if params.max_test is None else "max_test sentences evenly spaced over the file"},
        prompt={"template": fmt.template, "label_language": fmt.label_language, "label_strings": fmt.label_strings,
                "k_shots": params.k_shots, "shots": "the first k train sentences (lm-evaluation-harness first_n)",
                "max_length": max_length, "target_delimiter": TARGET_DELIMITER,
                "fewshot_delimiter": FEWSHOT_DELIMITER},
        probe=probe_info, results=results, params=params.model_dump(),
        cost={**meter.result(), **timings, "torch_threads": threads},
        environment=environment_info())
    out = params.out_dir
    out.mkdir(parents=True, exist_ok=True)
    write_parquet_atomic(pd.concat(predictions, ignore_index=True), out / RunFiles.DOWNSTREAM_PREDICTIONS)
    write_text_atomic(out / RunFiles.DOWNSTREAM_METRICS, metrics.to_csv(index=False))
    write_record(out / RunFiles.DOWNSTREAM, record)
    return record


def read_downstream_metrics(output_dir: str | Path):
    """The downstream table (``downstream_metrics.csv``) of an output folder, as pandas.

    Raises:
        DataError: the stage has not written one there.
    """
    import pandas as pd

    path = Path(output_dir) / RunFiles.DOWNSTREAM_METRICS
    if not path.is_file():
        raise DataError(f"{output_dir}: no {RunFiles.DOWNSTREAM_METRICS} (run the downstream stage first)")
    return pd.read_csv(path)

"""The in-context classification through lm-evaluation-harness, to check ours against it.

The task is the local YAML file ``sib200_topic.yaml`` next to this module (a ``csv``
dataset over the shared TSV files; no Hub, no remote code). :func:`harness_task` points it at
a SIB-200 folder and writes in the template and label strings of a
:class:`~bashkir_peft.downstream.prompts.PromptFormat`; :func:`harness_loglikelihoods` runs it
on an in-memory model and returns the per-choice log-likelihoods lm-evaluation-harness
computed, in the shape :func:`bashkir_peft.downstream.scoring.choose` takes.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bashkir_peft.downstream.prompts import PromptFormat
from bashkir_peft.settings import resolve_path
from bashkir_peft.yamlio import read_yaml

TASK_FILE = Path(__file__).with_name("sib200_topic.yaml")


def harness_task(sib200_dir: str | Path, fmt: PromptFormat, labels: Sequence[str]) -> dict:
    """The task configuration of ``TASK_FILE`` over ``sib200_dir`` with ``fmt``'s strings.

    Args:
        sib200_dir: a SIB-200 language folder (``train/dev/test.tsv``).
        fmt: template and label strings (:func:`bashkir_peft.downstream.prompts.prompt_format`).
        labels: the categories in ``labels.txt`` order (the choice order).

    Returns:
        A task configuration dict for ``lm_eval.tasks.get_task_dict``.
    """
    config = read_yaml(TASK_FILE)
    folder = resolve_path(sib200_dir)
    config["dataset_kwargs"]["data_files"] = {split: str(folder / f"{name}.tsv") for split, name in
                                              (("train", "train"), ("validation", "dev"), ("test", "test"))}
    config["doc_to_text"] = fmt.template.replace("{text}", "{{text}}")
    config["doc_to_choice"] = [fmt.label_strings[c] for c in labels]
    config["doc_to_target"] = "{{" + repr(list(labels)) + ".index(category)}}"
    return config


def harness_loglikelihoods(model, tokenizer, config: dict, *, num_fewshot: int = 0, limit: int | None = None,
                           batch_size: int = 1) -> tuple[np.ndarray, list[int]]:
    """Run the task with lm-evaluation-harness on ``model`` and collect its per-choice scores.

    Args:
        model, tokenizer: a causal LM in memory and its tokenizer (wrapped in ``HFLM``,
            ``add_bos_token=False``: prompts tokenized without special tokens).
        config: :func:`harness_task`'s configuration.
        num_fewshot: shots (the task samples the first ``num_fewshot`` train sentences).
        limit: score only the first ``limit`` test sentences.

    Returns:
        ``(lls, doc_ids)``: ``(items, choices)`` log-likelihoods (nats) in test-file order, and
        the test rows they belong to.
    """
    from lm_eval import evaluator
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager, get_task_dict

    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size, add_bos_token=False)
    tasks = get_task_dict([config], TaskManager())
    for task in tasks.values():
        task.set_config(key="num_fewshot", value=num_fewshot)
    out = evaluator.evaluate(lm=lm, task_dict=tasks, limit=limit, log_samples=True, verbosity="ERROR")
    samples = sorted(out["samples"][config["task"]], key=lambda s: s["doc_id"])
    lls = np.array([[float(r[0]) for r in s["filtered_resps"]] for s in samples])
    return lls, [s["doc_id"] for s in samples]

"""Figures and tables of one training record (for notebooks/02_train.ipynb)."""

from __future__ import annotations

from bashkir_peft.records import TrainRecord


def loss_frame(record: TrainRecord):
    """Tidy losses of a training record: columns step, loss, split (``train``/``validation``)."""
    import pandas as pd

    rows = [{"step": r.step, "loss": r.loss, "split": "train"} for r in record.losses.train]
    rows += [{"step": r.step, "loss": r.eval_loss, "split": "validation"} for r in record.losses.eval]
    return pd.DataFrame(rows, columns=["step", "loss", "split"])


def loss_figure(record: TrainRecord):
    """Training and validation loss (mean token cross-entropy, nats) over optimizer steps.

    Returns:
        The matplotlib ``Axes``.
    """
    import seaborn as sns

    p = record.params
    ax = sns.lineplot(data=loss_frame(record), x="step", y="loss", hue="split", marker="o")
    ax.set(xlabel="optimizer step", ylabel="loss (nats per token)",
           title=f"{p.model} {p.method}, seed {p.seed}")
    return ax

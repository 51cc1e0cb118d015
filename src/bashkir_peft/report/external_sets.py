"""What the external test sets were: one row per set as scored, with the subset's rule and its
composition by category (:mod:`bashkir_peft.data.subsets`), so a reader sees that a
50-sentence SIB-200 subset covers the seven topics and not one.

Reads the evaluation records only (``data.external``); nothing here writes files.
"""

from __future__ import annotations

import pandas as pd

from bashkir_peft.report.runs import RunRecord

EXTERNAL_SET_COLUMNS = ["set", "format", "selection", "documents_read", "documents", "composition",
                        "categories", "runs", "fingerprint"]
"""Columns of :func:`external_sets_table`."""


def external_sets_table(runs: list[RunRecord]) -> pd.DataFrame:
    """The external test sets the finished runs were scored on, one row per set and subset.

    Args:
        runs: all runs (the evaluation records of finished ones are read).

    Returns:
        Columns :data:`EXTERNAL_SET_COLUMNS`: ``set`` (its name), ``format``, ``selection``
        (``even``, ``stratified``; ``first`` in records from before issue 27),
        ``documents_read`` (the whole set), ``documents`` (scored), ``composition``
        (``category n, ...`` in file order; empty for a set without categories),
        ``categories`` (how many categories the subset covers; ``<NA>`` without categories),
        ``runs`` (how many runs scored this very subset, by its fingerprint, under any protocol) and
        ``fingerprint`` (its first 12 hex digits). One row per distinct set name and
        fingerprint (two subsets of one set under one name, e.g. after the grid's budget
        changed, are two rows), sorted by set name. Empty where no run has an external set.
    """
    rows: dict[tuple[str, str], dict] = {}
    for run in runs:
        if run.status != "finished" or run.eval is None:
            continue
        for entry in run.eval.evaluations.values():
            ext = entry.data.external
            if ext is None:
                continue
            key = (ext.name, ext.fingerprint)
            if key in rows:
                rows[key]["runs"].add(run.run_id)
                continue
            comp = ext.composition
            rows[key] = {
                "set": ext.name, "format": ext.format, "selection": ext.selection,
                "documents_read": ext.documents_read, "documents": ext.documents,
                "composition": ", ".join(f"{c} {n}" for c, n in comp.items() if n) if comp else "",
                "categories": sum(1 for n in comp.values() if n) if comp else pd.NA,
                "runs": {run.run_id}, "fingerprint": ext.fingerprint[:12]}
    table = pd.DataFrame([{**r, "runs": len(r["runs"])} for r in rows.values()], columns=EXTERNAL_SET_COLUMNS)
    return table.sort_values(["set", "fingerprint"], kind="stable").reset_index(drop=True)

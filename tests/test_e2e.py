"""End to end: the smoke grid through the CLI (real notebooks 01-04 on a tiny model and
a small slice of the real corpus), then the report and the strict offline book build.

Pinned down (issue 7, "Must show"):
- the results page of the built book has the per-run table with one row per finished
  cell, and the figures as images that exist;
- a second invocation skips every finished cell (no notebook re-executed);
- a cell whose parameters pass validation but fail at run time (LoRA target module
  ``q_proj``, which GPT-2 does not have) fails with its error recorded, the other cells
  finish, the exit code is non-zero, and the report and the book still build and list it.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from bashkir_peft.cli import main
from bashkir_peft.settings import REPO_ROOT
from browser import CHROMIUM, Browser, reader_problems


def _table(html: str, table_id: str) -> str:
    m = re.search(rf'<table[^>]*id="{table_id}".*?</table>', html, re.S)
    assert m, f"no table {table_id} in the results page"
    return m.group(0)


@pytest.fixture(scope="module")
def e2e(smoke_grid):
    """The session's smoke grid (tests/conftest.py) and a copy of the book's sources."""
    from bashkir_peft.book import copy_sources

    return {**smoke_grid, "book": copy_sources(smoke_grid["tmp"] / "book")}


def test_grid_runs_failure_recorded_others_finish(e2e):
    assert e2e["first"] == 1  # one cell failed
    assert set(e2e["cells"]) == {"base", "lora", "badtarget"}
    run_dir, bad = e2e["cells"]["badtarget"]
    assert bad["status"] == "failed" and bad["error"].startswith("train: ")
    assert "q_proj" in bad["error"] and bad["failure"]["ename"]
    assert (run_dir / "notebooks" / "02_train.ipynb").is_file()
    for name in ("base", "lora"):
        run_dir, rec = e2e["cells"][name]
        assert rec["status"] == "finished", rec.get("error")
        evaluation = json.loads((run_dir / "eval.json").read_text())
        assert evaluation["status"] == "finished"
        # the smoke grid's external set is one more evaluation pass, scored under its own name
        assert set(evaluation["evaluations"]) == {"rolling/test", "rolling/sib200-eng"}
        assert evaluation["evaluations"]["rolling/sib200-eng"]["metrics"]["documents"] == 4
        assert json.loads((run_dir / "generate.json").read_text())["status"] == "finished"
        assert (run_dir / "notebooks" / "03_evaluate.ipynb").is_file()  # both passes, one execution
        downstream = json.loads((run_dir / "downstream.json").read_text())  # notebook 06, after evaluation
        assert downstream["status"] == "finished" and downstream["task"]["test"] == 14
    train = json.loads((e2e["cells"]["lora"][0] / "train.json").read_text())
    assert train["status"] == "finished" and train["params"]["seed"] == 42 and train["params"]["lora_r"] == 4
    assert (e2e["root"] / "01_data_prep.ipynb").is_file()


def test_second_invocation_skips_every_finished_cell(e2e, capsys):
    notebooks = sorted(e2e["root"].glob("*/notebooks/*.ipynb")) + [e2e["root"] / "01_data_prep.ipynb"]
    stamps = {p: p.stat().st_mtime_ns for p in notebooks}
    assert main(e2e["args"] + ["--only", "label=none"]) == 0
    out = capsys.readouterr().out
    assert len(re.findall(r"^\S+-[0-9a-f]{12}\s+skipped\s", out, re.M)) == 2 and "2 skipped" in out
    assert {p: p.stat().st_mtime_ns for p in notebooks} == stamps  # nothing re-executed


def test_report_and_book_build_and_list_the_failure(e2e, executed_lessons):
    assert main(["report", str(e2e["grid_file"]), "--runs-dir", str(e2e["runs"])]) == 0
    assert main(["book", str(e2e["grid_file"]), "--runs-dir", str(e2e["runs"]),
                 "--book-dir", str(e2e["book"]), "--lessons-dir", str(executed_lessons[0])]) == 0
    html = e2e["book"] / "_build" / "html"
    page = (html / "generated" / "05_report.html").read_text(encoding="utf-8")
    per_run = _table(page, "results-per-run")
    rows = re.findall(r"<tr>\s*<td>.*?</tr>", per_run, re.S)
    assert sum("floor: " not in r for r in rows) == 2  # one row per finished cell, then the n-gram floors
    assert "floor: byte 7-gram (KN)" in per_run and "floor: token bigram" in per_run
    for name in ("base", "lora"):
        assert e2e["cells"][name][0].name in per_run
    failed = _table(page, "failed-runs")
    bad_dir = e2e["cells"]["badtarget"][0]
    assert bad_dir.name not in per_run and bad_dir.name in failed and "q_proj" in failed
    imgs = re.findall(r'<img[^>]+src="([^"]+)"', page)
    assert imgs
    for src in imgs:
        assert (html / "generated" / src).resolve().is_file(), src


def test_a_bundle_rebuilds_the_identical_book_without_training(e2e, tmp_path):
    import tarfile

    import pandas as pd

    from bashkir_peft.book import copy_sources

    archive = tmp_path / "smoke-results.tar.gz"
    assert main(["bundle", str(e2e["grid_file"]), "--runs-dir", str(e2e["runs"]), "--out", str(archive)]) == 0
    names = tarfile.open(archive).getnames()
    assert names[0] == "MANIFEST.json" and any(n.endswith("/eval_documents.parquet") for n in names)
    assert not [n for n in names if "/final/" in n or "/checkpoints/" in n or n.endswith((".safetensors", ".bin"))]
    assert not [n for n in names if n.endswith(("/train.parquet", "/validation.parquet", "/test.parquet"))]
    # a machine that never trained: the grid's runs folder is gone while the book is rebuilt
    root, away = e2e["root"], e2e["tmp"] / "away"
    root.rename(away)
    try:
        book = copy_sources(tmp_path / "book")
        assert main(["book", str(e2e["grid_file"]), "--runs-dir", str(tmp_path / "rebuilt"), "--book-dir", str(book),
                     "--from-bundle", str(archive)]) == 0
    finally:
        away.rename(root)
    tables = sorted((root / "report" / "tables").glob("*.csv"))
    assert len(tables) >= 8
    for csv in tables:
        rebuilt = tmp_path / "rebuilt" / root.name / "report" / "tables" / csv.name
        pd.testing.assert_frame_equal(pd.read_csv(rebuilt), pd.read_csv(csv), obj=csv.name)
    original = (e2e["book"] / "_build" / "html" / "generated" / "05_report.html").read_text(encoding="utf-8")
    again = (book / "_build" / "html" / "generated" / "05_report.html").read_text(encoding="utf-8")
    for table_id in ("results-per-run", "failed-runs", "results-summary"):
        assert _table(again, table_id) == _table(original, table_id)
    # no page of the book from the bundle names a folder of either machine (tests/test_bundle_paths.py: the bundle's files)
    roots = {str(e2e["tmp"]), str(tmp_path), str(REPO_ROOT), str(Path.home())} - {"/"}
    assert not [(page.name, root) for page in (book / "_build" / "html").rglob("*.html")
                for root in roots if root in page.read_text(encoding="utf-8")]


BROWSER_PAGES = {  # page: what it must show (tables with rows, images, typeset math)
    "generated/05_report.html": {"tables", "images"},
    "method.html": {"images", "math"},
    "generated/lessons/01_lora_from_scratch.html": {"tables", "math"},
    "generated/lessons/02_nf4_by_hand.html": {"tables", "math"},
    "generated/lessons/03_why_bashkir_costs_more.html": {"tables", "images"},
    "generated/lessons/04_reading_the_metrics.html": {"tables", "math"},
    "generated/lessons/05_a_short_fine_tune.html": {"tables", "images"},
}


WIDTHS = (1280, 390)
"""Viewport widths of the browser check, in CSS px: a laptop's and a phone's."""


def _pages(html: Path) -> dict[str, set[str]]:
    """BROWSER_PAGES and one run page (its name is the run id: found on disk)."""
    run_page = sorted(html.glob("generated/runs/*/index.html")) or sorted(html.glob("generated/runs/*.html"))
    assert run_page, "no run page in the built book"
    return {**BROWSER_PAGES, run_page[0].relative_to(html).as_posix(): {"tables"}}


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (Debian package `chromium`)")
def test_results_and_lesson_pages_render_in_a_browser_without_network(e2e):
    """At 1280 and 390 px: no console error, no request off the machine, every image loaded,
    math typeset, and what a reader must never see: "nan", a machine path, a table wider
    than the text column. Screenshots go to $BASHKIR_PEFT_SCREENSHOTS (CI keeps them), else
    beside the test's book."""
    html = e2e["book"] / "_build" / "html"
    shots = Path(os.environ.get("BASHKIR_PEFT_SCREENSHOTS") or e2e["tmp"] / "screenshots")
    pages = _pages(html)
    problems = []
    with Browser(e2e["tmp"] / "chromium-profile") as browser:
        for width in WIDTHS:
            for page, needs in pages.items():
                s = browser.open((html / page).as_uri(), shots / f"{width}px" / (page.replace("/", "_") + ".png"), width)
                where = f"{page} at {width} px"
                problems += reader_problems(s, where)
                if s["mathjax_errors"] or s["raw_math"]:
                    problems.append(f"{where}: math not typeset ({s['mathjax_errors']} MathJax errors, raw $$: {s['raw_math']})")
                for need, got in (("tables", s["table_rows"]), ("images", s["images"]), ("math", s["math"])):
                    if need in needs and not got:
                        problems.append(f"{where}: no {need}")
    assert not problems, "\n".join(problems)
    assert len(list(shots.glob("*px/*.png"))) >= len(WIDTHS) * len(pages)


def test_no_page_names_a_folder_of_the_machine_that_built_it(e2e):
    """The built HTML (text and attributes) never holds the folders the test ran in: the runs
    folder, the repository, the home folder (the browser check reads the visible text only)."""
    html = e2e["book"] / "_build" / "html"
    roots = {str(e2e["tmp"]), str(e2e["runs"]), str(REPO_ROOT), str(Path.home())} - {"/"}
    leaks = [(page.relative_to(html).as_posix(), root) for page in sorted(html.rglob("*.html"))
             for root in roots if root in page.read_text(encoding="utf-8")]
    assert not leaks, leaks[:10]

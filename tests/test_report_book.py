"""The book: a strict, offline Jupyter Book build over synthetic run records.

Built from a copy of book/ in a temporary folder (so it never touches the checkout's
book/generated or book/_build). Pinned down: the results page has the per-run table with
one row per finished cell and the figures as images, the failed run is listed, every
finished run has its pages, MathJax is served locally, and a warning fails the build.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from bashkir_peft.book import BookError, build_book, copy_sources, execute_report, jupyter_book_build
from bashkir_peft.config.book import BookParams
from report_synth import CELLS, make_grid

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("book")
    runs = make_grid(root / "runs")
    book = copy_sources(root / "book")
    index = build_book(BookParams(grid="synth", runs_dir=str(runs), book_dir=str(book)))
    return index.parent, runs


def _table(html: str, table_id: str) -> str:
    m = re.search(rf'<table[^>]*id="{table_id}".*?</table>', html, re.S)
    assert m, f"no table {table_id}"
    return m.group(0)


def test_results_page_has_the_tables_and_figures(built):
    html_dir, runs = built
    page = (html_dir / "generated" / "05_report.html").read_text(encoding="utf-8")
    per_run = _table(page, "results-per-run")
    body_rows = re.findall(r"<tr>\s*<td>", per_run)
    assert len(body_rows) == len(CELLS)  # one row per finished cell
    for i, (_, method, *_r) in enumerate(CELLS):
        assert f"run{i:02d}-{method}" in per_run
    assert "run99-qlora" not in per_run and "run99-qlora" in _table(page, "failed-runs")
    assert "Target modules" in _table(page, "failed-runs")
    assert "quoted from the paper" in _table(page, "paper-comparison")
    for quoted in ("3.34", "3.79", "3.81", "129.55"):
        assert f"<td>{quoted}</td>" in _table(page, "paper-comparison")
    _table(page, "results-summary"), _table(page, "paired-differences"), _table(page, "study-comparisons")
    text = re.sub(r"<[^>]+>", "", page)
    assert re.search(r"Findings.*Cells\. 8 cells: 6 finished", text, re.S)  # the findings open the page
    assert "3 x 1 seeds), lora r=8 − base = " in text  # a comparison stated in a sentence
    intro = re.sub(r"<[^>]+>", "", (html_dir / "intro.html").read_text(encoding="utf-8"))
    assert "This copy of the book was built from the grid synth (6 of 8 runs finished)" in intro
    imgs = re.findall(r'<img[^>]+src="([^"]+)"', page)
    assert len(imgs) >= 6
    for src in imgs:
        assert (html_dir / "generated" / src).resolve().is_file(), src


def test_every_finished_run_has_its_pages_and_math_is_local(built):
    html_dir, runs = built
    for i, (_, method, *_r) in enumerate(CELLS):
        run = html_dir / "generated" / "runs" / f"run{i:02d}-{method}"
        assert (run / "index.html").is_file() and (run / "03_evaluate.html").is_file()
    assert not (html_dir / "generated" / "runs" / "run99-qlora").exists()
    data = (html_dir / "generated" / "data" / "01_data_prep.html").read_text(encoding="utf-8")
    assert "kept 60 documents" in data and "moved aside" not in data
    method = (html_dir / "method.html").read_text(encoding="utf-8")
    assert 'src="_static/mathjax/tex-chtml.js"' in method
    assert (html_dir / "_static" / "mathjax" / "tex-chtml.js").is_file()
    assert not re.search(r'<script[^>]+src="https?://', method)
    assert method.count("<img") >= 2  # the method chapter's own figures


def test_a_warning_fails_the_strict_build(tmp_path):
    book = tmp_path / "b"
    book.mkdir()
    (book / "_config.yml").write_text((REPO / "book" / "_config.yml").read_text())
    shutil.copytree(REPO / "book" / "_ext", book / "_ext")  # the config's local Sphinx extension
    (book / "_toc.yml").write_text("format: jb-book\nroot: intro\n")
    (book / "intro.md").write_text("# Intro\n\nSee {doc}`missing-page`.\n")
    with pytest.raises(BookError, match="missing-page"):
        jupyter_book_build(book, book / "_toc.yml")


def test_a_report_that_fails_to_execute_fails_the_book(tmp_path):
    (tmp_path / "runs").mkdir()
    with pytest.raises(BookError, match="05_report.ipynb failed to execute: DataError"):
        execute_report("x", tmp_path / "runs", tmp_path / "out.ipynb", timeout_s=120)


def test_run_pages_start_with_results_and_cost_then_the_parameters_of_their_method(built):
    html_dir, _ = built
    for i, (_, method, *_r) in enumerate(CELLS):
        page = (html_dir / "generated" / "runs" / f"run{i:02d}-{method}" / "index.html").read_text(encoding="utf-8")
        text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page))  # code spans split words into tags
        assert text.index("Results") < text.index("Cost")
        assert "bits per word" in text and "rolling protocol" in text
        if method == "base":
            assert "No training (zero-shot)." in text and "All training parameters" not in text
            continue
        assert text.index("Cost") < text.index("Training parameters that matter") < text.index("All training parameters")
        assert "learning rate (used)" in text and "0.0001" in text  # the rate the run used (record), not a default
        key = text[text.index("Training parameters that matter"):text.index("All training parameters")]
        assert ("lora_r" in key) == (method == "lora")


def test_lessons_name_their_path_and_launch_links_where_the_repository_is_known(tmp_path, monkeypatch):
    import json

    from bashkir_peft.book import REPOSITORY_ENV, assemble_lessons
    from bashkir_peft.lessons import lesson_notebooks

    book = copy_sources(tmp_path / "book")
    first, *rest = lesson_notebooks()
    executed = tmp_path / "executed"
    executed.mkdir()
    shutil.copyfile(first, executed / first.name)  # one lesson "executed", the others not
    gen = tmp_path / "gen"
    (gen / "lessons").mkdir(parents=True)

    assert assemble_lessons(executed, book, gen) == [{"file": f"generated/lessons/{first.stem}"}]
    index = (gen / "lessons" / "index.md").read_text(encoding="utf-8")
    assert f"`lessons/{first.name}`" in index and "mybinder.org" not in index  # no URL known: the path only

    monkeypatch.setenv(REPOSITORY_ENV, "https://github.com/owner/bashkir-peft")
    assemble_lessons(executed, book, gen)
    index = (gen / "lessons" / "index.md").read_text(encoding="utf-8")
    for nb in (first, *rest):
        row = next(line for line in index.splitlines() if f"lessons/{nb.name}" in line)
        assert f"https://mybinder.org/v2/gh/owner/bashkir-peft/main?labpath=lessons/{nb.name}" in row
        assert f"https://colab.research.google.com/github/owner/bashkir-peft/blob/main/lessons/{nb.name}" in row
        assert f"`lessons/{nb.name}`" in row
        assert ("[executed]" in row) == (nb == first)
    cells = json.loads((gen / "lessons" / first.name).read_text(encoding="utf-8"))["cells"]
    assert cells[1]["source"].startswith("*Open this lesson:*") and "colab.research.google.com" in cells[1]["source"]
    assert len(cells) == len(json.loads(first.read_text(encoding="utf-8"))["cells"]) + 1

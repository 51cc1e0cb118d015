"""The CPU study's book as it ships (issue 33): built from the bundles committed under results/
(`make study-book`: no training), it shows a reader no "nan", no machine path and no table
wider than the text column, at a laptop's and a phone's width, on the results page, the data
page, the runs' pages (every run's summary, one run's stage notebooks) and the lessons page."""

from __future__ import annotations

import pytest

from bashkir_peft.cli import main
from bashkir_peft.settings import REPO_ROOT
from browser import CHROMIUM, Browser, reader_problems
from test_e2e import WIDTHS

STUDY = REPO_ROOT / "params" / "grids" / "cpu-study.yaml"
RESULTS = REPO_ROOT / "results" / "cpu-study"


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (Debian package `chromium`)")
def test_the_shipped_study_book_shows_no_nan_path_or_overflowing_table(tmp_path):
    from bashkir_peft.book import copy_sources

    book = copy_sources(tmp_path / "book")
    assert main(["book", str(STUDY), "--from-bundle", str(RESULTS), "--runs-dir", str(tmp_path / "runs"),
                 "--book-dir", str(book)]) == 0
    html = book / "_build" / "html"
    runs = sorted(html.glob("generated/runs/*/index.html"))
    assert len(runs) >= 11  # part 2's cells at least
    stages = sorted(runs[0].parent.glob("0*.html"))
    pages = [html / "generated" / "05_report.html", *html.glob("generated/data/*.html"),
             html / "generated" / "runs" / "index.html", *runs, *stages, html / "generated" / "lessons" / "index.html"]
    problems = []
    with Browser(tmp_path / "chromium-profile") as browser:
        for width in WIDTHS:
            for page in pages:
                rel = page.relative_to(html).as_posix()
                state = browser.open(page.as_uri(), tmp_path / "shots" / f"{width}px" / (rel.replace("/", "_") + ".png"),
                                     width)
                problems += reader_problems(state, f"{rel} at {width} px")
    assert not problems, "\n".join(problems)

"""The CPU study's book from its committed bundles (`make study-book`): the study's bundles in
``results/cpu-study/``, its learning-rate sweep's in ``results/cpu-study-lr/`` beside them,
extracted side by side so that the report finds the sweep (``<runs_dir>/../cpu-study-lr``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bashkir_peft.book import extract_from_bundle
from bashkir_peft.config.book import BookParams
from bashkir_peft.config.grid import study_design
from bashkir_peft.errors import ConfigError
from bashkir_peft.records import RunFiles
from bashkir_peft.report.bundle import write_bundle
from bashkir_peft.report.cost import sweep_runs_dir
from bashkir_peft.settings import REPO_ROOT
from report_synth import make_grid

STUDY = str(REPO_ROOT / "params" / "grids" / "cpu-study.yaml")


def _runs(folder: Path) -> list[str]:
    return sorted(p.parent.name for p in folder.glob(f"*/{RunFiles.CELL}"))


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """``results/<grid>/<grid>-results.tar.gz`` of a study and of its sweep (synthetic runs), and
    the grid folders they were bundled from."""
    tmp = tmp_path_factory.mktemp("study")
    trained = {}
    for seed, grid in enumerate(("cpu-study", "cpu-study-lr")):
        trained[grid] = make_grid(tmp / "trained" / grid, seed=seed, failed=False)
        write_bundle(trained[grid], tmp / "results" / grid / f"{grid}-results.tar.gz", grid)
    return {"results": tmp / "results", "trained": trained}


def test_the_sweep_is_extracted_beside_the_study_where_the_report_reads_it(results, tmp_path, monkeypatch):
    monkeypatch.setenv("BASHKIR_PEFT_RUNS", str(tmp_path / "runs"))
    params = extract_from_bundle(BookParams(grid=STUDY, from_bundle=str(results["results"] / "cpu-study")))
    runs_dir = Path(params.runs_dir)
    assert params.from_bundle is None and runs_dir == tmp_path / "runs" / "from-bundle" / "cpu-study"
    assert _runs(runs_dir) == _runs(results["trained"]["cpu-study"])
    sweep = sweep_runs_dir(runs_dir, study_design(STUDY))
    assert sweep == tmp_path / "runs" / "from-bundle" / "cpu-study-lr"
    assert _runs(sweep) == _runs(results["trained"]["cpu-study-lr"])


def test_without_the_sweep_s_bundles_the_study_has_no_sweep_and_another_grid_s_are_refused(results, tmp_path):
    only = tmp_path / "only"
    (only / "cpu-study").mkdir(parents=True)
    for archive in (results["results"] / "cpu-study").iterdir():
        (only / "cpu-study" / archive.name).write_bytes(archive.read_bytes())
    params = extract_from_bundle(BookParams(grid=STUDY, from_bundle=str(only / "cpu-study"),
                                            runs_dir=str(tmp_path / "a" / "cpu-study")))
    assert sweep_runs_dir(Path(params.runs_dir), study_design(STUDY)) is None
    (only / "cpu-study-lr").mkdir()
    write_bundle(results["trained"]["cpu-study"], only / "cpu-study-lr" / "cpu-study-results.tar.gz", "cpu-study")
    with pytest.raises(ConfigError, match="a bundle of grid 'cpu-study', not 'cpu-study-lr'"):
        extract_from_bundle(BookParams(grid=STUDY, from_bundle=str(only / "cpu-study"), runs_dir=str(tmp_path / "b" / "cpu-study")))


def test_the_committed_and_the_makefile_s_bundles_are_named_as_the_book_reads_them(capfd):
    """`make study-part` writes, and results/ holds, names the folder reader finds (a part's
    bundle named otherwise would be left out of the book without a word); `bundle --out` refuses
    another name."""
    import re

    from bashkir_peft.report.bundle import BUNDLE_SUFFIX, bundle_archives
    from test_faults import cli

    outs = re.findall(r"--out (\S+);", (REPO_ROOT / "Makefile").read_text())
    assert len(outs) == 2 and all(o.endswith(BUNDLE_SUFFIX) for o in outs)
    committed = sorted((REPO_ROOT / "results").glob("*/*.tar.gz"))
    assert committed and all(a in bundle_archives(a.parent) for a in committed)
    code, _, err = cli(capfd, "bundle", STUDY, "--out", "results/cpu-study/part2.tar.gz")
    assert code == 2 and f"a bundle's name ends in {BUNDLE_SUFFIX}" in err

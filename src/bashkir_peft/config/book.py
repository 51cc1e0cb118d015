"""Parameters of the book build (:mod:`bashkir_peft.book`).
"""

from __future__ import annotations

from bashkir_peft.yamlio import StrictModel


class BookParams(StrictModel):
    """Parameters of the book build.

    Attributes:
        grid: grid YAML (``params/grids/NAME.yaml``) or grid name.
        runs_dir: the grid's runs folder (default from the grid, ``runs/<name>``).
        book_dir: the book sources (``_config.yml``, ``_toc.yml``, pages).
        report_timeout_s: per-cell timeout when executing the report notebook.
        build: run ``jupyter-book build`` after assembling (False: assemble only).
        lessons_dir: executed lessons (default ``<runs root>/lessons``, where ``make
            lessons`` writes them); lessons not executed there are listed, not shown.
        from_bundle: a results bundle (``bashkir-peft bundle``), or a folder of one grid's
            bundles (a grid run in parts, e.g. ``results/cpu-study/``: their union), to build
            from instead of a trained grid: extracted (checksums checked) into ``runs_dir``,
            default ``<runs root>/from-bundle/<grid name>``; a study's learning-rate sweep from the
            folder of bundles beside (``results/<sweep>/``), extracted beside it
            (:func:`bashkir_peft.book.extract_from_bundle`).
    """

    grid: str = "params/grids/cpu-demo.yaml"
    runs_dir: str | None = None
    book_dir: str = "book"
    report_timeout_s: int = 600
    build: bool = True
    lessons_dir: str | None = None
    from_bundle: str | None = None

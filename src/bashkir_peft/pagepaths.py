"""How a page names a folder of the machine that built it: never by its absolute path.

A book is read on other machines, and the absolute folders of the one that built it (a home
folder, a temporary folder, a cluster's scratch space) say nothing to its reader and leak the
builder's layout. Pages name folders relative to the runs root (``runs/<grid>/...``) or to the
repository (``.`` for it, ``..`` for the folder beside it, where ``../shared`` is); the home
folder is ``~``.
"""

from __future__ import annotations

import re
from pathlib import Path

from bashkir_peft.settings import REPO_ROOT, runs_root


def shown_path(path: str | Path) -> str:
    """A folder as a page may name it.

    Args:
        path: a folder (absolute or relative).

    Returns:
        ``runs/<path relative to the runs root>`` for a folder under the runs root
        (``$BASHKIR_PEFT_RUNS``), else ``…/<its last two parts>`` (e.g. a test's or an
        extracted bundle's folder); a relative path as given.
    """
    path = Path(path)
    if not path.is_absolute():
        return path.as_posix()
    try:
        return "runs/" + path.resolve().relative_to(runs_root().resolve()).as_posix()
    except ValueError:
        return "…/" + "/".join(path.parts[-2:])


def machine_folders(runs_dir: str | Path) -> list[tuple[str, str]]:
    """The absolute folders a book's pages may hold and the names that replace them.

    Args:
        runs_dir: the grid's runs folder the book is built from.

    Returns:
        ``[(absolute folder, shown name)]``, longest folder first (both the path as given and
        resolved): the runs folder (``runs/<grid>``), the runs root (``runs``), the repository
        (``.``), the folder holding it (``..``) and the home folder (``~``). A folder of
        fewer than two parts (``/``, ``/work``'s parent) is never replaced.
    """
    runs_dir = Path(runs_dir)
    named = [(runs_dir, f"runs/{runs_dir.name}"), (runs_root(), "runs"), (REPO_ROOT, "."),
             (REPO_ROOT.parent, ".."), (Path.home(), "~")]
    pairs: dict[str, str] = {}
    for folder, name in named:
        for form in (folder.absolute(), folder.resolve()):
            if len(form.parts) >= 2:
                pairs.setdefault(str(form), name)
    return sorted(pairs.items(), key=lambda kv: -len(kv[0]))


MACHINE_PATH = re.compile(r"(?<![\w.:/~-])/(?:home|root|tmp|work|Users|mnt|var|opt|srv|scratch|data|private)"
                          r"(?:/[\w.+@-]+)+")
"""An absolute path under a usual top folder of a machine (what the browser check looks for)."""


def scrub(text: str, folders: list[tuple[str, str]]) -> str:
    """``text`` with the folders of this machine replaced by names a reader can use.

    Every folder of :func:`machine_folders` is replaced by its shown name, as a whole path
    component (``/work`` is not replaced inside ``/workspace``); any other absolute path under
    a usual top folder (:data:`MACHINE_PATH`: a grid file or a corpus given from a temporary
    or a home folder) by ``…/<its last two parts>``.
    """
    for folder, name in folders:
        text = re.sub(re.escape(folder) + r"(?![\w.-])", lambda _m, n=name: n, text)
    return MACHINE_PATH.sub(lambda m: "…/" + "/".join(m.group(0).split("/")[-2:]), text)


def scrub_notebook(nb: dict, folders: list[tuple[str, str]]) -> dict:
    """A notebook (nbformat 4 as a dict, changed in place and returned) with :func:`scrub`
    applied to what its page shows: cell sources, stream outputs and text outputs (never
    images)."""

    def clean(value):
        return scrub("".join(value), folders) if isinstance(value, list) else scrub(value, folders)

    for cell in nb.get("cells", []):
        cell["source"] = clean(cell.get("source", ""))
        for out in cell.get("outputs", []):
            if "text" in out:
                out["text"] = clean(out["text"])
            for mime, value in out.get("data", {}).items():
                if mime.startswith("text/"):
                    out["data"][mime] = clean(value)
    return nb

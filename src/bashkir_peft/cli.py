"""bashkir-peft: LoRA, QLoRA and full fine-tuning for Bashkir, from data to book.

Commands:
    setup-models   provision the offline models of the registry (tiny random models,
                   the converted SmolLM2 GGUF) into the cache folder
    models         list the registry
    prepare-data   clean, filter, de-duplicate and split a corpus (notebook 01's logic)
    grid run       run an experiment grid: papermill over notebooks 01-04 (cli_grid)
    grid status    the state of every cell of a grid
    report         aggregate a grid's runs into tables and figures (cli_report)
    book           build the grid's Jupyter Book, strictly and offline (cli_report)

Errors the user can fix (:class:`ConfigError`) print one line and exit with status 2.
"""

from __future__ import annotations

import argparse
import sys

from .cli_data import add_parser as add_data_parser
from .cli_grid import add_parser as add_grid_parser
from .cli_report import register as add_report_parsers
from .errors import ConfigError


def _setup_models(args: argparse.Namespace) -> int:
    from .provision import provision_all

    for name, path in provision_all(args.names or None).items():
        print(f"{name}: {path}")
    return 0


def _models(args: argparse.Namespace) -> int:
    from .registry import load_registry

    for name, e in load_registry().models.items():
        print(f"{name:14s} {e.source:5s} {e.model_type:8s} {e.hub_id or '-':36s} {','.join(e.target_modules)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bashkir-peft", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("setup-models", help="provision offline models into the cache")
    p.add_argument("names", nargs="*", help="registry names (default: every tiny and gguf entry)")
    p.set_defaults(func=_setup_models)
    p = sub.add_parser("models", help="list the model registry")
    p.set_defaults(func=_models)
    add_grid_parser(sub)
    add_report_parsers(sub)
    add_data_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

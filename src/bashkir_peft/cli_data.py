"""``bashkir-peft prepare-data CORPUS OUTPUT_DIR [--set key=value ...]``: the data preparation
without the notebook (same :class:`~bashkir_peft.dataprep.DataPrepParams`, same outputs).

Relative paths on the command line are taken from the current folder.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def _value(text: str):
    import yaml

    return yaml.safe_load(text)


def _prepare(args: argparse.Namespace) -> int:
    from .corpus import HUB_PREFIX
    from .dataprep import DataPrepParams, prepare
    from .errors import ConfigError
    from .runtime import configure_threads
    from .yamlio import validate

    corpus = args.corpus if args.corpus.startswith(HUB_PREFIX) else str(Path(args.corpus).expanduser().absolute())
    values = {"corpus": corpus, "output_dir": str(Path(args.output_dir).expanduser().absolute())}
    for item in args.set or []:
        key, sep, raw = item.partition("=")
        if not sep:
            raise ConfigError(f"--set {item!r}: expected key=value")
        values[key.strip()] = _value(raw)
    params = validate(DataPrepParams, values, "prepare-data")
    configure_threads()
    manifest = prepare(params, log=print)
    print(f"fingerprint {manifest['fingerprint']}")
    return 0


def add_parser(sub) -> None:
    """Register ``prepare-data`` on the CLI's subparsers."""
    p = sub.add_parser("prepare-data", help="clean, filter, de-duplicate and split a corpus (as notebook 01)")
    p.add_argument("corpus", help="a .jsonl/.jsonl.gz/.parquet file or folder, a folder of .txt, or hub:OWNER/NAME")
    p.add_argument("output_dir", help="where train/validation/test.parquet and manifest.json go")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="any other DataPrepParams field, e.g. --set seed=7 --set min_chars=100 (YAML values)")
    p.set_defaults(func=_prepare)

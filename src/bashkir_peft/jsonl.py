"""JSON Lines files (``.gz`` decompressed): the format of corpora and labelled samples."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path

from bashkir_peft.errors import DataError


def iter_json_lines(path: Path) -> Iterator[tuple[str, object]]:
    """Parse a JSON Lines file (``.gz`` decompressed), skipping blank lines.

    Yields:
        ``(where, value)``: ``"<path> line <n>"`` for error messages, and the parsed value.

    Raises:
        DataError: unreadable file, invalid UTF-8 or a line that is not JSON (with line and
            column), or no record at all.
    """
    opener = gzip.open if path.name.endswith(".gz") else open
    seen_any = False
    try:
        with opener(path, "rb") as fh:
            for i, raw in enumerate(fh, 1):
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as err:
                    raise DataError(f"{path} line {i}: invalid UTF-8 (byte 0x{raw[err.start]:02x} at column "
                                    f"{err.start + 1}); re-encode the file as UTF-8") from None
                if not line.strip():
                    continue
                try:
                    value = json.loads(line)
                except json.JSONDecodeError as err:
                    raise DataError(f"{path} line {i}: not valid JSON ({err.msg} at column {err.colno})") from None
                seen_any = True
                yield f"{path} line {i}", value
    except (OSError, EOFError) as err:  # gzip.BadGzipFile is an OSError
        raise DataError(f"{path}: cannot read ({type(err).__name__}: {err})") from None
    if not seen_any:
        raise DataError(f"{path}: the file is empty (no JSON records)")

"""Run ids: a stable hash of what determines a run's results.

A run id is ``<slug>-<hash>``: the slug (model-method-rR-sSEED) is for people; the hash,
the first 12 hex digits of SHA-256 over the canonical JSON of the cell's axes, its
resolved stage parameters, the data fingerprint and the model revision, is the identity.
Same inputs -> same id on any machine and Python version; any change -> a new id, so a
finished run is never recomputed and a changed one never reuses stale results.
Paths (run folder, data folder) are not part of the hash: they follow from the id.
"""

from __future__ import annotations

import hashlib
import json

HASH_CHARS = 12


def canonical_json(data: object) -> str:
    """JSON with sorted keys and no whitespace; ints and strings stay distinct (42 != "42").

    Raises:
        TypeError: a value JSON cannot represent (the grid schema allows only JSON values).
    """
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def params_hash(data: object, chars: int = HASH_CHARS) -> str:
    """First ``chars`` hex digits of SHA-256 of :func:`canonical_json` of ``data``."""
    return hashlib.sha256(canonical_json(data).encode("utf-8")).hexdigest()[:chars]


def identity(axes: dict, params: dict, data_fingerprint: str, model_revision: str) -> dict:
    """The record a run id hashes (also stored in the cell record, so the id can be checked)."""
    return {"axes": axes, "params": params, "data_fingerprint": data_fingerprint, "model_revision": model_revision}


def make_run_id(slug: str, axes: dict, params: dict, data_fingerprint: str, model_revision: str) -> str:
    """``<slug>-<hash>`` for a grid cell.

    Args:
        slug: readable prefix (``Cell.slug``).
        axes: model, method, lora_r, seed, label.
        params: stage -> resolved parameters (without paths).
        data_fingerprint: ``manifest.json["fingerprint"]`` of the prepared data.
        model_revision: ``ResolvedModel.revision`` of the base model.
    """
    return f"{slug}-{params_hash(identity(axes, params, data_fingerprint, model_revision))}"

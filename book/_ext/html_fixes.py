"""Sphinx extension of the book (``sphinx.local_extensions`` in ``_config.yml``).

sphinx-thebe 0.3.1 adds its inline configuration script (``const THEBE_JS_URL = ...``)
once per read of the sources; after a full rebuild the pages declare the constant twice,
and the browser reports ``SyntaxError: Identifier 'THEBE_JS_URL' has already been
declared``. Each page's scripts are kept once, in their order.
"""

from __future__ import annotations


def _key(js) -> tuple:
    # The two copies differ only in filename: None for one, "" for the other.
    attributes = getattr(js, "attributes", {})
    return (getattr(js, "filename", js) or "", tuple(sorted(attributes.items())), getattr(js, "priority", 0))


def _scripts_once(app, pagename, templatename, context, doctree) -> None:
    scripts = context.get("script_files")
    if scripts:
        seen, kept = set(), []
        for js in scripts:
            if _key(js) not in seen:
                seen.add(_key(js))
                kept.append(js)
        context["script_files"] = kept


def setup(app):
    app.connect("html-page-context", _scripts_once)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
